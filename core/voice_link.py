"""Watching one guild's voice connection: a fault, one notice, recovery or a rejoin.

Discord cuts voice connections in many ways (close codes 4006, 4009, 4014, 4015, a new
voice server, a move, a kick, a deleted channel); ``tests/README.md`` lists what
discord.py 2.7.1 does for each. Some it repairs by itself, some only after audio went
into the void for seconds, some it gives up on, and one leaves a client behind that is
neither connected nor trying. Listeners must lose no message through any of them.

A :class:`VoiceLinkSupervisor` polls the connection through a :class:`LinkPort` (the
cog's adapter over discord.py) and decides:

* **A fault** is a connection that does not carry audio: ``DOWN`` at once, or
  ``SETTLING`` (the library moving to a new voice server or channel) for longer than
  ``settle``. On a fault the utterance being spoken is cut (the player posts it as
  text), the guild gets one notice, and :attr:`~VoiceLinkSupervisor.down` tells the
  player to post new messages as text instead of queueing them for a voice that is
  not there.
* **Recovery**: the library reconnected by itself (``UP`` again). Speech resumes with
  the next message; no second notice.
* **Rejoin**: the library gave up (``GONE``). While someone who is not a bot is still
  in the channel, the supervisor rejoins it itself, with bounded backoff.
* **The end**: the bot was disconnected on purpose or its channel deleted (``ENDED``),
  the rejoins all failed, or nobody is left to listen. :meth:`~VoiceLinkSupervisor.run`
  returns why, and the cog ends the session with that notice.

No discord here: the port says what the connection is doing, this module what to do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from edge_voice.core.clock import Clock, monotonic

log = logging.getLogger(__name__)

VOICE_LOST_NOTICE = "🔌 Lost the voice connection; showing messages as text until it is back."
POLL_INTERVAL = 0.1
"""Seconds between two looks at the connection: audio lost to a fault is at most this."""
SETTLE = 0.75
"""Seconds the library may take to move to a new voice server or channel (it takes
about 20 ms) before the silence counts as a fault."""
BACKOFF_CAP = 8.0
"""The longest rejoin backoff, as a multiple of the first one."""


class LinkState(Enum):
    """What the voice connection is doing, as the port sees it."""

    UP = "up"
    """Connected: audio sent now reaches the channel."""
    SETTLING = "settling"
    """The library is moving the connection (new endpoint, moved channel); audio waits."""
    DOWN = "down"
    """Audio sent now is lost (the voice websocket closed under a "connected" client)."""
    GONE = "gone"
    """The library gave up: no client, or one that is neither connected nor trying."""
    KICKED = "kicked"
    """Discord disconnected the bot on purpose (an admin's disconnect)."""
    CHANNEL_DELETED = "channel deleted"
    """The voice channel no longer exists."""


class LinkEnd(Enum):
    """Why the session ends; the value is the notice the guild gets."""

    KICKED = "🔌 I was disconnected from voice; /join again."
    CHANNEL_DELETED = "🔌 My voice channel was deleted; /join another one."
    NOBODY_LISTENING = "👋 Left voice: nobody is listening anymore."
    REJOIN_FAILED = "🔌 I lost the voice connection and could not get back in; /join again."

    @property
    def notice(self) -> str:
        """The post that tells the guild."""
        return self.value


class LinkPort(Protocol):
    """The voice connection as the supervisor needs it (the cog implements it)."""

    def state(self) -> LinkState:
        """What the connection is doing right now; cheap, never blocks."""
        ...

    def interrupt(self) -> None:
        """Cut the utterance being played: it did not reach the listeners."""
        ...

    def listeners_present(self) -> bool:
        """Whether anyone who is not a bot is in the voice channel."""
        ...

    async def rejoin(self) -> bool:
        """Clean up what the library left and join the channel again; True if connected.
        Bounded by the port's own connect timeout."""
        ...

    async def notice(self, text: str) -> None:
        """Tell the guild (the bound text channel); never raises."""
        ...


@dataclass(frozen=True, slots=True)
class LinkPolicy:
    """How patient the supervisor is; see the module docstring."""

    poll: float = POLL_INTERVAL
    settle: float = SETTLE
    rejoin_attempts: int = 5
    rejoin_backoff: float = 1.0

    def backoff(self, failed: int) -> float:
        """Seconds to wait after ``failed`` rejoins failed (the first rejoin waits 0)."""
        if failed <= 0:
            return 0.0
        return self.rejoin_backoff * min(BACKOFF_CAP, 2.0 ** (failed - 1))


Sleep = Callable[[float], Awaitable[None]]


class VoiceLinkSupervisor:
    """Watches one guild's voice connection; see the module docstring."""

    def __init__(
        self,
        port: LinkPort,
        policy: LinkPolicy | None = None,
        *,
        name: str = "voice",
        clock: Clock = monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.port = port
        self.policy = policy or LinkPolicy()
        self.name = name
        self._clock = clock
        self._sleep = sleep
        self._down = False
        self._settling_since: float | None = None
        self._fault_since: float | None = None
        self._posts: set[asyncio.Future[None]] = set()
        self.faults = 0
        """Faults seen (each got one notice)."""
        self.recoveries = 0
        """Faults the library repaired by itself."""
        self.rejoins = 0
        """Rejoins that brought the connection back."""

    @property
    def down(self) -> bool:
        """True from a fault until the connection carries audio again."""
        return self._down

    async def run(self) -> LinkEnd:
        """Watch until the session must end; why it must. Cancel it to stop watching."""
        while True:
            await self._sleep(self.policy.poll)
            end = await self.check()
            if end is not None:
                return end

    async def check(self) -> LinkEnd | None:
        """Look at the connection once and act on it; a reason to end the session, or None."""
        state = self.port.state()
        if state is LinkState.KICKED:
            return LinkEnd.KICKED
        if state is LinkState.CHANNEL_DELETED:
            return LinkEnd.CHANNEL_DELETED
        if state is LinkState.UP:
            self._settling_since = None
            if self._down:
                self._recovered("the library reconnected")
                self.recoveries += 1
            return None
        if state is LinkState.SETTLING and not self._down:
            now = self._clock()
            if self._settling_since is None:
                self._settling_since = now
            if now - self._settling_since < self.policy.settle:
                return None
        if not self._down:
            await self._fault(state)
        if state is LinkState.GONE:
            return await self._rejoin()
        return None

    async def _fault(self, state: LinkState) -> None:
        self._down = True
        self._fault_since = self._clock()
        self.faults += 1
        log.warning(
            "%s: voice connection fault (%s): speaking as text until it is back",
            self.name,
            state.value,
        )
        self.port.interrupt()
        await self._notify(VOICE_LOST_NOTICE)

    async def _notify(self, text: str) -> None:
        # Shielded: stopping the supervisor (the session ending) must not cut a post off
        # halfway; it finishes on its own, within the poster's deadline, before the
        # session's last posts, which queue behind it in the channel's order.
        post = asyncio.ensure_future(self.port.notice(text))
        self._posts.add(post)
        post.add_done_callback(self._posts.discard)
        await asyncio.shield(post)

    def _recovered(self, how: str) -> None:
        down_for = self._clock() - (self._fault_since or self._clock())
        log.info("%s: voice connection back after %.1fs (%s)", self.name, down_for, how)
        self._down = False
        self._fault_since = None
        self._settling_since = None

    async def _rejoin(self) -> LinkEnd | None:
        """The library gave up: rejoin while someone listens, with bounded backoff."""
        for attempt in range(self.policy.rejoin_attempts):
            wait = self.policy.backoff(attempt)
            if wait:
                await self._sleep(wait)
            state = self.port.state()
            if state is LinkState.UP:  # a /join got there first
                self._recovered("joined again meanwhile")
                return None
            if state in (LinkState.KICKED, LinkState.CHANNEL_DELETED):
                return LinkEnd.KICKED if state is LinkState.KICKED else LinkEnd.CHANNEL_DELETED
            if not self.port.listeners_present():
                return LinkEnd.NOBODY_LISTENING
            log.info(
                "%s: rejoining voice (attempt %d of %d)",
                self.name,
                attempt + 1,
                self.policy.rejoin_attempts,
            )
            if await self.port.rejoin():
                self.rejoins += 1
                self._recovered(f"rejoined on attempt {attempt + 1}")
                return None
        log.warning(
            "%s: could not rejoin voice after %d attempts", self.name, self.policy.rejoin_attempts
        )
        return LinkEnd.REJOIN_FAILED

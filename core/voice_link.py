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
* **Taking over**: the library forgot a client that still holds its sockets and tasks
  (``STRANDED``: a new gateway session after a non-resumable op 9), or it has been
  reconnecting for ``recover_within`` seconds without getting anywhere. The port
  abandons that connection (:meth:`LinkPort.abandon`: its tasks stopped, voice left,
  sockets and threads closed), then the supervisor rejoins as above.
* **One outage, one notice**: the connection counts as back for good only once it has
  stayed up for ``stable`` seconds. Lost again before that (a voice session taken over
  on every reconnect), it is the same outage: the utterance is cut, no new notice; at
  the ``max_faults``-th loss the supervisor abandons the connection and gives up.
* **The end**: the bot was disconnected on purpose or its channel deleted, the rejoins
  all failed, the connection kept dropping, or nobody is left to listen.
  :meth:`~VoiceLinkSupervisor.run` returns why (a :class:`LinkEnd`), and the cog ends
  the session with that notice. Unless nobody is left (:attr:`LinkEnd.keeps_channel`),
  the bound channel stays: messages there are posted as text until ``/join``, ``/leave``
  or the last listener leaves, never ignored.

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
"""Seconds between two looks at the connection: about the audio a fault loses before it
is seen. A reconnect discord.py completes between two looks is not seen at all, and its
gap is lost unannounced (tests/test_e2e_voice_faults.py, the 4006 test)."""
SETTLE = 0.75
"""Seconds the library may take to move to a new voice server or channel (it takes
about 20 ms) before the silence counts as a fault."""
RECOVER_WITHIN = 44.0
"""Seconds the library may spend reconnecting by itself before it is taken over: its
first backoff (up to 2 s) and one connect attempt (``voice_connect_timeout``, 20 s by
default), twice over; the cog derives it from the configured connect timeout."""
STABLE = 30.0
"""Seconds a connection must stay up after a fault before the outage is over: lost
again sooner, it is the same outage (no new notice)."""
MAX_FAULTS = 3
"""Losses in one outage after which the connection is abandoned for good."""
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
    STRANDED = "stranded"
    """The library forgot a client that still has its connection, sockets and tasks (a
    new gateway session): it must be abandoned before anyone joins again."""
    KICKED = "kicked"
    """Discord disconnected the bot on purpose (an admin's disconnect)."""
    CHANNEL_DELETED = "channel deleted"
    """The voice channel no longer exists."""


class LinkEnd(Enum):
    """Why the session ends; the value is the notice the guild gets."""

    KICKED = (
        "🔌 I was disconnected from voice; /join again. "
        "Until then I post the messages here as text (/leave stops that)."
    )
    CHANNEL_DELETED = (
        "🔌 My voice channel was deleted; /join another one. "
        "Until then I post the messages here as text (/leave stops that)."
    )
    NOBODY_LISTENING = "👋 Left voice: nobody is listening anymore."
    REJOIN_FAILED = (
        "🔌 I lost the voice connection and could not get back in; /join again. "
        "Until then I post the messages here as text."
    )
    UNSTABLE = (
        "🔌 The voice connection kept dropping, so I left voice; /join again. "
        "Until then I post the messages here as text."
    )

    @property
    def notice(self) -> str:
        """The post that tells the guild."""
        return self.value

    @property
    def keeps_channel(self) -> bool:
        """Whether the bound channel stays read (as text posts) after the end: voice went
        away while the listeners are still there (only their leaving ends reading)."""
        return self is not LinkEnd.NOBODY_LISTENING


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

    async def abandon(self) -> None:
        """Take the connection away from the library: stop its tasks (a reconnect waiting
        in its backoff too), leave the channel, close its sockets and threads; the same
        for a stranded client. Bounded; never raises."""
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
    recover_within: float = RECOVER_WITHIN
    stable: float = STABLE
    max_faults: int = MAX_FAULTS

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
        self._up_since: float | None = None
        self._outage_faults = 0
        """Losses in the current outage (0: none open)."""
        self._posts: set[asyncio.Future[None]] = set()
        self.faults = 0
        """Faults seen (the first of each outage got the notice)."""
        self.recoveries = 0
        """Faults the library repaired by itself."""
        self.rejoins = 0
        """Rejoins that brought the connection back."""
        self.takeovers = 0
        """Connections abandoned: stranded, stuck reconnecting, or dropping too often."""

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
        now = self._clock()
        if state is LinkState.UP:
            self._settling_since = None
            if self._down:
                self._recovered("the library reconnected")
                self.recoveries += 1
            elif self._outage_faults and now - (self._up_since or now) >= self.policy.stable:
                self._outage_faults = 0  # up long enough: the outage is over
            return None
        if state is LinkState.SETTLING and not self._down:
            if self._settling_since is None:
                self._settling_since = now
            if now - self._settling_since < self.policy.settle:
                return None
        if not self._down:
            end = await self._fault(state)
            if end is not None:
                return end
        if state is LinkState.STRANDED:
            await self._take_over("the library forgot a client that is still connected")
            return await self._rejoin()
        if state is LinkState.GONE:
            return await self._rejoin()
        if now - (self._fault_since or now) >= self.policy.recover_within:
            await self._take_over(
                f"the library has not reconnected in {self.policy.recover_within:g}s"
            )
            return await self._rejoin()
        return None

    async def _fault(self, state: LinkState) -> LinkEnd | None:
        self._down = True
        self._fault_since = self._clock()
        self.faults += 1
        self._outage_faults += 1
        self.port.interrupt()
        if self._outage_faults == 1:
            log.warning(
                "%s: voice connection fault (%s): speaking as text until it is back",
                self.name,
                state.value,
            )
            await self._notify(VOICE_LOST_NOTICE)
            return None
        if self._outage_faults < self.policy.max_faults:
            log.warning(
                "%s: voice connection lost again (%s), %d of %d in this outage",
                self.name,
                state.value,
                self._outage_faults,
                self.policy.max_faults,
            )
            return None
        await self._take_over(f"the connection was lost {self._outage_faults} times")
        return LinkEnd.UNSTABLE

    async def _take_over(self, why: str) -> None:
        """Abandon the library's connection (see :meth:`LinkPort.abandon`)."""
        log.warning("%s: abandoning the voice connection: %s", self.name, why)
        self.takeovers += 1
        await self.port.abandon()

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
        self._up_since = self._clock()

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

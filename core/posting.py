"""The one posting path for text: text posts and notices, retried, in order, reported truthfully.

Everything the player posts in a guild's text channel (a message it could not speak, an
outage notice) goes through a :class:`ChannelPoster`. It

* sends each post with one nonce for all of its attempts, so a retry after an answer that
  never arrived cannot post the message twice (Discord drops a repeated nonce when the
  request enforces it, and discord.py 2.7 enforces every nonce it is given);
* retries transient failures (5xx, 429 with its ``retry_after``, a dropped connection, a
  transport timeout) with backoff, all within one deadline per post;
* gives up at once on permanent ones (403 missing permission, 404 unknown channel) and on
  a post Discord refuses (400), reporting why;
* keeps posts to one channel in the order they were asked for (one lock per channel;
  asyncio locks wake their waiters first come, first served);
* tells an operator once per outage when the channel cannot be posted to, and again only
  after a post went through;
* never raises: :meth:`ChannelPoster.post` returns a :class:`PostOutcome`.

Discord stays outside: the cog passes a ``send(text, nonce)`` coroutine function that
raises :class:`PostError` (it translates discord.py's and aiohttp's exceptions in one
place).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000
"""Discord's limit on the characters of one message."""
POST_DEADLINE = 20.0
"""Seconds one post may take, all its attempts and waits included."""
ATTEMPT_TIMEOUT = 8.0
"""Seconds one attempt may take before it counts as a transport timeout."""


class PostErrorKind(StrEnum):
    """How a failed attempt to post is handled."""

    TRANSIENT = "transient"
    """Discord or the connection failed this time (5xx, 429, reset, timeout): retried."""
    PERMANENT = "permanent"
    """The channel cannot be posted to (403, 404): not retried, the operator is told."""
    REFUSED = "refused"
    """Discord refused this message (400): not retried; the channel itself is fine."""


class PostError(Exception):
    """One failed attempt to post, already classified by the Discord adapter.

    ``reason`` is for people ("missing permission to send messages (403)");
    ``retry_after`` is Discord's rate-limit wait in seconds, when it gave one.
    """

    def __init__(
        self, kind: PostErrorKind, reason: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class PostOutcome:
    """What became of one post: delivered, or not and why."""

    delivered: bool
    attempts: int
    reason: str = ""
    """Why it was not delivered (empty when it was)."""
    permanent: bool = False
    """The channel cannot be posted to at all (as opposed to this one message)."""


Send = Callable[[str, str], Awaitable[None]]
"""Posts ``text`` with ``nonce``; raises :class:`PostError`."""
OperatorWarning = Callable[[str], Awaitable[None]]
"""Tells the operators something (the log channel); must not raise."""
Sleep = Callable[[float], Awaitable[None]]


def clip_message(text: str) -> str:
    """``text`` cut to Discord's message limit, marked with an ellipsis when cut."""
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


@dataclass(frozen=True, slots=True)
class PostRetry:
    """Backoff between attempts: ``base * 2**(n-1)`` capped at ``cap``, times [0.5, 1)."""

    base: float = 0.5
    cap: float = 4.0

    def delay(self, failed_attempts: int, jitter: float) -> float:
        """Seconds to wait after ``failed_attempts`` failures; ``jitter`` is in [0, 1)."""
        exponential = min(self.cap, self.base * 2.0 ** max(0, failed_attempts - 1))
        return exponential * (0.5 + jitter / 2)


class ChannelPoster:
    """Posts to one text channel; see the module docstring.

    ``name`` names the channel in logs and warnings. ``warn`` (optional) receives one
    warning per outage of the channel. ``sleep`` and ``jitter`` are injectable for tests;
    deadlines run on the event loop's clock, which ``asyncio.timeout`` enforces.
    """

    def __init__(
        self,
        send: Send,
        name: str,
        *,
        warn: OperatorWarning | None = None,
        deadline: float = POST_DEADLINE,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
        retry: PostRetry | None = None,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.send = send
        self.name = name
        self.warn = warn
        self.deadline = deadline
        self.attempt_timeout = attempt_timeout
        self.retry = retry or PostRetry()
        self._sleep = sleep
        self._jitter = jitter
        self._lock = asyncio.Lock()
        self.unreachable_since_warning = False
        """True once the operators were told the channel cannot be posted to."""
        self.delivered = 0
        self.failed = 0

    async def post(self, text: str) -> PostOutcome:
        """Post ``text`` (cut to Discord's limit); never raises, and never posts it twice."""
        text = clip_message(text)
        async with self._lock:
            outcome = await self._post_locked(text)
        if outcome.delivered:
            self.delivered += 1
            self.unreachable_since_warning = False
        else:
            self.failed += 1
            log.warning("could not post to %s: %s", self.name, outcome.reason)
            if outcome.permanent:
                await self._warn_once(outcome.reason)
        return outcome

    async def _post_locked(self, text: str) -> PostOutcome:
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.deadline
        nonce = str(secrets.randbits(63))
        attempt = 0
        while True:
            attempt += 1
            left = ends - loop.time()
            try:
                async with asyncio.timeout(min(self.attempt_timeout, max(left, 0.0))):
                    await self.send(text, nonce)
            except PostError as error:
                failure = error
            except TimeoutError:
                failure = PostError(PostErrorKind.TRANSIENT, "Discord did not answer in time")
            else:
                return PostOutcome(True, attempt)
            if failure.kind is not PostErrorKind.TRANSIENT:
                permanent = failure.kind is PostErrorKind.PERMANENT
                return PostOutcome(False, attempt, failure.reason, permanent=permanent)
            wait = self.retry.delay(attempt, self._jitter())
            if failure.retry_after is not None:
                wait = max(wait, failure.retry_after)
            if loop.time() + wait >= ends:
                return PostOutcome(
                    False, attempt, f"{failure.reason}; gave up after {attempt} attempts"
                )
            log.info("posting to %s failed (%s); retrying in %.1fs", self.name, failure, wait)
            await self._sleep(wait)

    async def _warn_once(self, reason: str) -> None:
        if self.warn is None or self.unreachable_since_warning:
            return
        self.unreachable_since_warning = True
        try:
            await self.warn(
                f"I can't post in {self.name}: {reason}. Messages I can't speak there are "
                "lost until this is fixed; check the channel and my permissions."
            )
        except Exception:
            log.exception("could not warn the operators about %s", self.name)

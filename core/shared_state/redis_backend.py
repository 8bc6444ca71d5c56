"""The shared store in Redis: the only module that imports the Redis client.

Every operation is one Lua script (:mod:`edge_voice.core.shared_state.scripts`) or one
pub/sub read, each under a deadline, and every exception the client raises becomes a
:class:`SharedStateError` in :func:`translated`. The client's own retries are off:
the coordinator decides what a failure means (fall back to local breakers), and a
retry loop inside the client would only make a dead Redis slower to notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from edge_voice.core.breaker import DurableState
from edge_voice.core.shared_state import scripts
from edge_voice.core.shared_state.backend import Notice, Written
from edge_voice.core.shared_state.errors import SharedStateError, SharedStateErrorKind
from edge_voice.core.shared_state.names import KeySpace
from edge_voice.core.shared_state.records import Payload, parse_record, parse_time

DEFAULT_TIMEOUT = 1.0
"""Seconds one operation may take before the store counts as not answering (paused,
overloaded or unreachable): each process then falls back to its own breakers."""


@contextlib.asynccontextmanager
async def translated(deadline: float) -> AsyncIterator[None]:
    """Run the block under ``deadline`` seconds and turn the client's errors into ours.

    A cancellation that arrived during the block is raised even when the client
    swallowed it: redis-py awaits its socket writes with ``asyncio.wait_for``, which on
    Python 3.11 returns the result and drops a cancel that comes as the write finishes,
    and a canary task cancelled there went on probing until its next deadline.
    """
    task = asyncio.current_task()
    cancels_before = task.cancelling() if task is not None else 0
    try:
        async with asyncio.timeout(deadline):
            yield
    # AuthenticationError is a ConnectionError in redis-py: it comes first.
    except redis_errors.AuthenticationError as exc:
        raise SharedStateError(SharedStateErrorKind.REFUSED, str(exc)) from None
    except (TimeoutError, redis_errors.TimeoutError) as exc:
        raise SharedStateError(SharedStateErrorKind.TIMEOUT, str(exc) or "no answer") from None
    except (redis_errors.ConnectionError, OSError) as exc:
        raise SharedStateError(SharedStateErrorKind.UNREACHABLE, str(exc)) from None
    except redis_errors.RedisError as exc:
        raise SharedStateError(SharedStateErrorKind.REFUSED, str(exc)) from None
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise SharedStateError(SharedStateErrorKind.PROTOCOL, repr(exc)) from None
    if task is not None and task.cancelling() > cancels_before:
        raise asyncio.CancelledError


class RedisBackend:
    """Breaker records, trial leases and transition notices in the Redis at ``url``."""

    def __init__(
        self, url: str, *, keys: KeySpace | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.keys = keys or KeySpace()
        self.timeout = timeout
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._transition = self._client.register_script(scripts.TRANSITION)
        self._read = self._client.register_script(scripts.READ)
        self._acquire = self._client.register_script(scripts.LEASE_ACQUIRE)
        self._release = self._client.register_script(scripts.LEASE_RELEASE)
        self._run = self._client.register_script(scripts.RUN)
        self._pubsub: PubSub | None = None

    async def transition(self, name: str, expected: int | None, payload: Payload) -> Written:
        """See :meth:`~edge_voice.core.shared_state.backend.SharedBackend.transition`."""
        argv = ["*" if expected is None else str(expected), self.keys.channel, name]
        async with translated(self.timeout):
            answer: Any = await self._transition(
                keys=[self.keys.record(name), self.keys.failures(name)],
                args=[*argv, *payload.args()],
            )
            applied, stamp, fields = answer
        return Written(bool(int(applied)), parse_time(stamp), parse_record(fields))

    async def read(self, names: Sequence[str]) -> tuple[float, dict[str, DurableState]]:
        """See :meth:`~edge_voice.core.shared_state.backend.SharedBackend.read`."""
        async with translated(self.timeout):
            answer: Any = await self._read(keys=[self.keys.record(n) for n in names])
        now = parse_time(answer[0])
        records = {}
        for name, fields in zip(names, answer[1:], strict=True):
            record = parse_record(fields)
            if record is not None:
                records[name] = record
        return now, records

    async def acquire_lease(self, name: str, token: str, ttl: float, limit: int) -> bool:
        """See :meth:`~edge_voice.core.shared_state.backend.SharedBackend.acquire_lease`."""
        async with translated(self.timeout):
            granted: Any = await self._acquire(
                keys=[self.keys.lease(name)], args=[token, max(1, round(ttl * 1000)), limit]
            )
        return bool(int(granted))

    async def release_lease(self, name: str, token: str) -> None:
        """See :meth:`~edge_voice.core.shared_state.backend.SharedBackend.release_lease`."""
        async with translated(self.timeout):
            await self._release(keys=[self.keys.lease(name)], args=[token])

    async def report_run(self, name: str, member: str, run: float, ttl: float) -> float:
        """See :meth:`~edge_voice.core.shared_state.backend.SharedBackend.report_run`."""
        async with translated(self.timeout):
            total: Any = await self._run(
                keys=[self.keys.failures(name)],
                args=[member, f"{run:.6f}", max(1, round(ttl * 1000))],
            )
        return parse_time(total)

    async def next_notice(self, wait: float) -> Notice | None:
        """See :meth:`~edge_voice.core.shared_state.backend.SharedBackend.next_notice`.

        A lost subscription raises; the next call subscribes again.
        """
        try:
            async with translated(wait + self.timeout):
                if self._pubsub is None:
                    pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                    self._pubsub = pubsub
                    await pubsub.subscribe(self.keys.channel)
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=wait
                )
        except SharedStateError:
            await self._drop_subscription()
            raise
        if message is None or message.get("type") != "message":
            return None
        return _notice(message["data"])

    async def _drop_subscription(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            # A dead or frozen server may never answer the goodbye: bounded, then dropped.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.timeout):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        """Close the subscription and the connection pool (each within the deadline)."""
        await self._drop_subscription()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.timeout):
                await self._client.aclose()


def _notice(data: str) -> Notice | None:
    try:
        decoded = json.loads(data)
        name, stamp, fields = decoded["name"], decoded["now"], decoded["fields"]
        record = parse_record(fields)
    except (ValueError, KeyError, TypeError, SharedStateError):
        return None  # not ours (or mangled): the polling read will bring the truth
    if record is None:
        return None
    return Notice(str(name), parse_time(stamp), record)

"""What the coordinator needs from a shared store, and an in-memory one.

:class:`SharedBackend` is the seam: the Redis store
(:mod:`edge_voice.core.shared_state.redis_backend`) implements it for real fleets; the
:class:`MemoryHub` implements the same semantics in one process, on an injected clock,
for the simulated benchmarks (``bench/shards.py``) and the coordinator's unit tests.
Every method raises :class:`~edge_voice.core.shared_state.errors.SharedStateError` and
nothing else when the store fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from edge_voice.core.breaker import DurableState
from edge_voice.core.clock import Clock
from edge_voice.core.shared_state.errors import SharedStateError, SharedStateErrorKind
from edge_voice.core.shared_state.records import Payload


@dataclass(frozen=True, slots=True)
class Written:
    """A transition's answer: ``applied``, or the newer record that won instead."""

    applied: bool
    server_now: float
    record: DurableState | None


@dataclass(frozen=True, slots=True)
class Notice:
    """Another process's transition, as published."""

    name: str
    server_now: float
    record: DurableState


class SharedBackend(Protocol):
    """A shared store for breaker records, trial leases and transition notices."""

    async def transition(self, name: str, expected: int | None, payload: Payload) -> Written:
        """Write ``payload`` as version ``expected + 1`` if the stored version is still
        ``expected`` (None: whatever it is), and publish it; else return the stored one."""
        ...

    async def read(self, names: Sequence[str]) -> tuple[float, dict[str, DurableState]]:
        """The server's time and the stored record of each name that has one."""
        ...

    async def acquire_lease(self, name: str, token: str, ttl: float, limit: int) -> bool:
        """Take a trial lease for ``ttl`` seconds if fewer than ``limit`` are out."""
        ...

    async def release_lease(self, name: str, token: str) -> None:
        """Give the lease ``token`` back (nothing if it already expired)."""
        ...

    async def next_notice(self, wait: float) -> Notice | None:
        """The next published transition, or None after ``wait`` seconds."""
        ...

    async def report_run(self, name: str, member: str, run: float, ttl: float) -> float:
        """Set ``member``'s current run of failures (0: it is over); the fleet's sum."""
        ...

    async def close(self) -> None:
        """Close connections and subscriptions."""
        ...


@dataclass
class MemoryHub:
    """One shared store in memory: what Redis is to a fleet, for one process's tests
    and benchmarks. ``down`` makes every member fail as an unreachable store would;
    ``latency`` is the simulated round trip of each operation (on the running loop's
    clock, so a simulated loop makes it virtual)."""

    clock: Clock
    latency: float = 0.0
    down: bool = False
    records: dict[str, DurableState] = field(default_factory=dict)
    leases: dict[str, dict[str, float]] = field(default_factory=dict)
    runs: dict[str, tuple[dict[str, float], float]] = field(default_factory=dict)
    """Per breaker: each member's run of failures, and when they all expire."""
    _queues: list[asyncio.Queue[Notice]] = field(default_factory=list)

    def member(self) -> MemoryBackend:
        """A connection of one process to this hub."""
        queue: asyncio.Queue[Notice] = asyncio.Queue()
        self._queues.append(queue)
        return MemoryBackend(self, queue)

    def _publish(self, notice: Notice) -> None:
        for queue in self._queues:
            queue.put_nowait(notice)


class MemoryBackend:
    """One process's view of a :class:`MemoryHub` (see :class:`SharedBackend`)."""

    def __init__(self, hub: MemoryHub, queue: asyncio.Queue[Notice]) -> None:
        self._hub = hub
        self._queue = queue

    async def _round_trip(self) -> float:
        if self._hub.latency:
            await asyncio.sleep(self._hub.latency)
        if self._hub.down:
            raise SharedStateError(SharedStateErrorKind.UNREACHABLE, "memory hub is down")
        return self._hub.clock()

    async def transition(self, name: str, expected: int | None, payload: Payload) -> Written:
        """See :meth:`SharedBackend.transition`."""
        now = await self._round_trip()
        current = self._hub.records.get(name)
        version = 0 if current is None else current.version
        if expected is not None and expected != version:
            return Written(False, now, current)
        record = payload.stored(version + 1, now)
        self._hub.records[name] = record
        self._hub.runs.pop(name, None)
        self._hub._publish(Notice(name, now, record))
        return Written(True, now, record)

    async def read(self, names: Sequence[str]) -> tuple[float, dict[str, DurableState]]:
        """See :meth:`SharedBackend.read`."""
        now = await self._round_trip()
        return now, {n: self._hub.records[n] for n in names if n in self._hub.records}

    async def acquire_lease(self, name: str, token: str, ttl: float, limit: int) -> bool:
        """See :meth:`SharedBackend.acquire_lease`."""
        now = await self._round_trip()
        held = self._hub.leases.setdefault(name, {})
        for other, expires in list(held.items()):
            if expires <= now:
                del held[other]
        if len(held) >= limit:
            return False
        held[token] = now + ttl
        return True

    async def release_lease(self, name: str, token: str) -> None:
        """See :meth:`SharedBackend.release_lease`."""
        await self._round_trip()
        self._hub.leases.get(name, {}).pop(token, None)

    async def next_notice(self, wait: float) -> Notice | None:
        """See :meth:`SharedBackend.next_notice`."""
        if self._hub.down:
            await asyncio.sleep(wait)
            raise SharedStateError(SharedStateErrorKind.UNREACHABLE, "memory hub is down")
        try:
            async with asyncio.timeout(wait):
                return await self._queue.get()
        except TimeoutError:
            return None

    async def report_run(self, name: str, member: str, run: float, ttl: float) -> float:
        """See :meth:`SharedBackend.report_run`."""
        now = await self._round_trip()
        runs, expires = self._hub.runs.get(name, ({}, now))
        if expires <= now:
            runs = {}
        if run > 0:
            runs[member] = run
        else:
            runs.pop(member, None)
        self._hub.runs[name] = (runs, now + ttl)
        return sum(runs.values())

    async def close(self) -> None:
        """Stop receiving notices."""
        if self._queue in self._hub._queues:
            self._hub._queues.remove(self._queue)

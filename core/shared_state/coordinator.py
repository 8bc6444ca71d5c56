"""Every process's breakers, kept in step through a shared store.

Each process keeps its own :class:`~edge_voice.core.breaker.CircuitBreaker` objects: a
call on the CLOSED path reads only local memory and never waits on the store. What the
fleet shares is each breaker's durable record:

* a local transition (a trip, a failed trial, a close, an operator's mode) is written
  by a background task with a compare-and-set on the record's version; a writer that
  lost the race adopts the record that won;
* every other process adopts it from the published notice, or from a polling read
  every ``poll_interval`` seconds if a notice was lost: within a second either way;
* failures in a row are counted across the fleet too (:meth:`SharedBreakers.attempt_failed`,
  in the background): each process writes its current run (in failed requests, each
  failed attempt a share of one) and the fleet trips when the runs add up to
  ``consecutive_failures``, where alone every process would pay that many before it
  trips; a process's success ends its run, and its own window still trips it alone;
* trial calls and canaries take a fleet-wide lease first (:meth:`SharedBreakers.trial`),
  so no more than ``half_open_max_calls`` run across the fleet at once; a trial that is
  cancelled gives its lease back at once, one that dies with its process after the TTL;
* if the store stops answering, each process carries on with its own breakers (one
  warning), remembers which ones moved meanwhile, and when the store answers again
  writes those and adopts the rest: the fleet converges.

HALF_OPEN is local: each process moves to it when its copy of the outage ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from edge_voice.core.breaker import (
    CircuitBreaker,
    CircuitState,
    DurableState,
    TransitionEvent,
    TripCause,
    TripFigures,
)
from edge_voice.core.breaker.store import BreakerGroup
from edge_voice.core.clock import WallClock, wall_time
from edge_voice.core.shared_state.backend import SharedBackend
from edge_voice.core.shared_state.errors import SharedStateError
from edge_voice.core.shared_state.names import InvalidBreakerName, check_name
from edge_voice.core.shared_state.records import Payload, on_wall_clock
from edge_voice.core.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

POLL_INTERVAL = 0.5
"""Seconds between polling reads: a trip whose notice was lost still reaches every
process within 1 s (one interval plus a read)."""
RECONNECT_INTERVAL = 1.0
"""Seconds between attempts to reach a store that stopped answering."""
FAILURE_RUN_TTL = 60.0
"""Seconds the fleet's runs of failures last without a new one (the breaker's own run has
no end in time; a shared one must, or a dead process's run would linger)."""
LEASE_TTL = 60.0
"""Seconds a trial lease lasts if its holder dies without giving it back; longer than
a synthesis may take ([deadlines] total), so a slow trial keeps its lease."""


class SharedBreakers:
    """Keeps the breakers of this process in step with every other process's.

    ``wall_clock`` must be the breakers' own wall clock (their exported records are on
    it); the fleet never compares two machines' clocks, only durations on one.
    """

    def __init__(
        self,
        backend: SharedBackend,
        *,
        wall_clock: WallClock = wall_time,
        sleep: Sleep = asyncio.sleep,
        poll_interval: float = POLL_INTERVAL,
        reconnect_interval: float = RECONNECT_INTERVAL,
        lease_ttl: float = LEASE_TTL,
        token: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._backend = backend
        self._wall = wall_clock
        self._sleep = sleep
        self.poll_interval = poll_interval
        self.reconnect_interval = reconnect_interval
        self.lease_ttl = lease_ttl
        self._token = token
        self._groups: list[BreakerGroup] = []
        self._attached: list[CircuitBreaker] = []
        self._versions: dict[str, int] = {}
        self._pending: dict[str, DurableState] = {}
        self._dirty: set[str] = set()
        self._unshared: set[str] = set()
        self._adopting = False
        self._closed = False
        self.fallback = False
        """True while the store does not answer: every process on its own breakers."""
        self.outages = 0
        self.adopted = 0
        self.leases_refused = 0
        self.fleet_trips = 0
        self._member = token()
        self._runs: dict[str, float] = {}
        self._run_writers: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pushers: dict[str, asyncio.Task[None]] = {}
        self._loops: list[asyncio.Task[None]] = []

    # -- wiring ------------------------------------------------------------

    def attach_service(self, service: Any) -> None:
        """Share every breaker of ``service`` (a ``TTSService``: present and future
        breakers, through its ``ServiceBreakers``), and make its trials and canaries take
        fleet-wide leases and its failed attempts count in the fleet's runs."""
        group: BreakerGroup = service.breakers
        self._groups.append(group)
        group.add_listener(self._on_transition)
        service.trial_gate = self.trial
        service.outcomes = self

    def attach(self, breakers: Iterable[CircuitBreaker]) -> None:
        """Share these breakers."""
        for breaker in breakers:
            self._attached.append(breaker)
            breaker.add_listener(self._on_transition)

    def breakers(self) -> dict[str, CircuitBreaker]:
        """The shared breakers by name (a name that cannot be a key stays local)."""
        found: dict[str, CircuitBreaker] = {}
        every = [*self._attached, *(b for g in self._groups for b in g.breakers)]
        for breaker in every:
            if self._shareable(breaker.name):
                found.setdefault(breaker.name, breaker)
        return found

    def _shareable(self, name: str) -> bool:
        if name in self._unshared:
            return False
        try:
            check_name(name)
        except InvalidBreakerName as bad:
            self._unshared.add(name)
            log.warning("shared breaker state: %s; it stays local to this process", bad)
            return False
        return True

    async def start(self) -> None:
        """Adopt what the store holds now, then follow it (notices, polling)."""
        await self.sync()
        loop = asyncio.get_running_loop()
        self._loops = [
            loop.create_task(self._poll_loop(), name="shared-state-poll"),
            loop.create_task(self._notice_loop(), name="shared-state-notices"),
        ]

    async def close(self) -> None:
        """Stop following the store; writes and lease returns under way finish first
        (each under the store's deadline), then the connection closes."""
        self._closed = True
        for task in self._loops:
            await cancel_and_wait(task)
        self._loops = []
        pending = [*self._pushers.values(), *self._tasks]
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        for task in pending:
            await cancel_and_wait(task)
        await self._backend.close()

    # -- local transitions go out ---------------------------------------------

    def _on_transition(self, event: TransitionEvent) -> None:
        name = event.breaker
        self._runs.pop(name, None)  # the transition's write ends every run in the store
        if self._adopting or self._closed or event.new is CircuitState.HALF_OPEN:
            return
        if not self._shareable(name) or event.snapshot.durable is None:
            return
        if self.fallback:
            self._dirty.add(name)
            return
        self._pending[name] = event.snapshot.durable
        self._push_soon(name)

    def _push_soon(self, name: str) -> None:
        pusher = self._pushers.get(name)
        if pusher is not None and not pusher.done():
            return  # it takes the newest pending record when it loops
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._dirty.add(name)
            return
        task = loop.create_task(self._push(name), name=f"shared-state-push-{name}")
        self._pushers[name] = task
        task.add_done_callback(lambda done: self._forget_pusher(name, done))

    def _forget_pusher(self, name: str, task: asyncio.Task[None]) -> None:
        if self._pushers.get(name) is task:
            del self._pushers[name]

    async def _push(self, name: str) -> None:
        while name in self._pending:
            record = self._pending.pop(name)
            payload = Payload.of(record, self._wall())
            try:
                written = await self._backend.transition(name, self._versions.get(name, 0), payload)
            except SharedStateError as error:
                self._dirty.add(name)
                self._lost(error)
                return
            if written.applied and written.record is not None:
                self._versions[name] = written.record.version
            elif written.record is not None:
                # Someone else's transition won: theirs is the fleet's state now.
                self._adopt(name, written.record, written.server_now)

    # -- the fleet's transitions come in ---------------------------------------

    def _adopt(self, name: str, stored: DurableState, server_now: float) -> bool:
        if stored.version <= self._versions.get(name, 0):
            return False
        breaker = self.breakers().get(name)
        if breaker is None:
            return False  # created later here: the next polling read brings it
        record = on_wall_clock(stored, server_now, self._wall())
        # The fleet's version numbers its shared records; the breaker numbers its own
        # transitions (HALF_OPEN too). Adopt as newer than anything local.
        local = breaker.export_state()
        self._adopting = True
        try:
            breaker.adopt_state(dataclasses.replace(record, version=local.version + 1))
        finally:
            self._adopting = False
        self._versions[name] = stored.version
        self.adopted += 1
        return True

    async def sync(self) -> None:
        """One polling read: adopt newer records, or converge after an outage."""
        shared = self.breakers()
        try:
            now, records = await self._backend.read(list(shared))
        except SharedStateError as error:
            self._lost(error)
            return
        if self.fallback:
            self._converge(shared, now, records)
            return
        for name, stored in records.items():
            self._adopt(name, stored, now)

    def _converge(
        self, shared: dict[str, CircuitBreaker], now: float, records: dict[str, DurableState]
    ) -> None:
        self.fallback = False
        dirty, self._dirty = self._dirty, set()
        log.info(
            "shared breaker state: the store answers again; %d breaker(s) that moved here "
            "meanwhile are written, the rest follow the fleet",
            len(dirty & set(shared)),
        )
        for name, breaker in shared.items():
            stored = records.get(name)
            if name in dirty:
                # What this process learned alone is the newest news: write it against
                # the stored version (a process that converged first wins the race).
                self._versions[name] = 0 if stored is None else stored.version
                self._pending[name] = breaker.export_state()
                self._push_soon(name)
            elif stored is not None:
                self._adopt(name, stored, now)

    def _lost(self, error: SharedStateError) -> None:
        if self.fallback or self._closed:
            return
        self.fallback = True
        self.outages += 1
        log.warning(
            "shared breaker state unavailable (%s): each process uses its own breakers "
            "until the store answers again",
            error,
        )

    # Both loops also stop on _closed: a cancellation that lands as the client's own read
    # deadline expires can come back as a timeout, and must not keep a loop alive.
    async def _poll_loop(self) -> None:
        while not self._closed:
            await self._sleep(self.reconnect_interval if self.fallback else self.poll_interval)
            await self.sync()

    async def _notice_loop(self) -> None:
        while not self._closed:
            if self.fallback:
                await self._sleep(self.reconnect_interval)
                continue
            try:
                notice = await self._backend.next_notice(self.poll_interval)
            except SharedStateError as error:
                self._lost(error)
                continue
            if notice is not None and not self.fallback:
                self._adopt(notice.name, notice.record, notice.server_now)

    # -- fleet-wide runs of failures ---------------------------------------------

    def attempt_failed(self, breaker: CircuitBreaker, share: float) -> None:
        """An attempt under ``breaker`` failed: this process's run grows by ``share`` of
        a failed request; the fleet's runs are added up in the background, and the
        failure that makes them reach ``consecutive_failures`` trips the fleet."""
        name = breaker.name
        if (
            self.fallback
            or self._closed
            or breaker.state is not CircuitState.CLOSED
            or not breaker.config.consecutive_failures
            or not self._shareable(name)
        ):
            return
        self._runs[name] = self._runs.get(name, 0.0) + share
        self._write_run(breaker)

    def succeeded(self, breaker: CircuitBreaker) -> None:
        """A request under ``breaker`` succeeded: this process's run is over (a dict
        lookup when there was none: this is the CLOSED path)."""
        if self._runs.get(breaker.name):
            self._runs[breaker.name] = 0.0
            self._write_run(breaker)

    def _write_run(self, breaker: CircuitBreaker) -> None:
        # One writer per breaker, always sending the newest run: writes stay in order.
        writer = self._run_writers.get(breaker.name)
        if writer is not None and not writer.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self._send_runs(breaker), name=f"shared-state-run-{breaker.name}")
        self._run_writers[breaker.name] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_runs(self, breaker: CircuitBreaker) -> None:
        name = breaker.name
        sent = None
        while not self._closed and (run := self._runs.get(name, 0.0)) != sent:
            sent = run
            try:
                total = await self._backend.report_run(name, self._member, run, FAILURE_RUN_TTL)
            except SharedStateError as error:
                self._lost(error)
                return
            limit = breaker.config.consecutive_failures
            # A float sum of shares: a hair under the limit is the limit.
            if run > 0 and total >= limit - 1e-6 and breaker.state is CircuitState.CLOSED:
                self._trip_fleet(breaker, total)

    def _trip_fleet(self, breaker: CircuitBreaker, run: float) -> None:
        # The trip the breaker would make itself, through its durable-state seam; the
        # transition listener then writes it for the fleet like any other trip.
        snapshot = breaker.typed_snapshot()
        local = breaker.export_state()
        now = self._wall()
        breaker.adopt_state(
            DurableState(
                version=local.version + 1,
                state=CircuitState.OPEN,
                reason=f"{run:.0f} failed requests in a row across the fleet",
                opened_at=now,
                open_until=now + snapshot.cooldown,
                cooldown=snapshot.cooldown,
                cooldown_level=snapshot.cooldown_level + 1,
                calm_since=None,
                trips=local.trips + 1,
                consecutive_trips=local.consecutive_trips + 1,
                tripped_by=TripFigures(
                    TripCause.CONSECUTIVE_FAILURES, consecutive_failures=round(run)
                ),
            )
        )
        self.fleet_trips += 1

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(_run(work), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- fleet-wide trials -------------------------------------------------------

    @contextlib.asynccontextmanager
    async def trial(self, breaker: CircuitBreaker) -> AsyncIterator[bool]:
        """``async with shared.trial(breaker) as granted``: a fleet-wide lease for one
        trial call or canary. Without the store (fallback) the local breaker decides.
        The lease goes back when the block ends, cancelled or not."""
        name = breaker.name
        token = None
        if not self.fallback and self._shareable(name):
            token = self._token()
            try:
                granted = await self._backend.acquire_lease(
                    name, token, self.lease_ttl, breaker.config.half_open_max_calls
                )
            except SharedStateError as error:
                self._lost(error)
                token = None
            else:
                if not granted:
                    self.leases_refused += 1
                    yield False
                    return
        try:
            yield True
        finally:
            if token is not None:
                self._release_soon(name, token)

    def _release_soon(self, name: str, token: str) -> None:
        # A task, so a cancelled trial returns its lease without awaiting in its cleanup.
        self._spawn(self._release(name, token), f"shared-state-lease-{name}")

    async def _release(self, name: str, token: str) -> None:
        # A lease not returned expires after lease_ttl; the store's trouble is the poller's.
        with contextlib.suppress(SharedStateError):
            await self._backend.release_lease(name, token)

    def __repr__(self) -> str:
        mode = "fallback" if self.fallback else "shared"
        return f"<SharedBreakers {mode} breakers={len(self.breakers())}>"


async def _run(work: Awaitable[None]) -> None:
    await work

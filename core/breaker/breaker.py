"""The asyncio face of the circuit breaker.

:class:`CircuitBreaker` reads the clock, asks the pure
:class:`~core.breaker.state.BreakerStateMachine` for a permit, awaits the
guarded call, and reports the outcome. It holds no lock at all: the state
machine's methods never await, so on one event loop each admission and each
outcome is atomic, and nothing is held across the guarded await.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from edge_voice.core.breaker.events import Listener, ListenerSet, TransitionEvent
from edge_voice.core.breaker.record import DurableState
from edge_voice.core.breaker.snapshot import BreakerSnapshot
from edge_voice.core.breaker.state import (
    BreakerStateMachine,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    Permit,
)
from edge_voice.core.clock import Clock, WallClock, at_datetime, monotonic, wall_time

_CLOSED = CircuitState.CLOSED
_NO_PERMIT = Permit(-1, trial=False)
"""What ``async with`` entries share before the first: no machine hands it out."""
P = ParamSpec("P")
T = TypeVar("T")

FailurePredicate = Callable[[BaseException], bool]
ResultPredicate = Callable[[Any], bool]


def counts_as_failure(exc: BaseException) -> bool:
    """Default classification: any ``Exception`` except another circuit's rejection."""
    return isinstance(exc, Exception) and not isinstance(exc, CircuitOpenError)


def describe_failure(exc: BaseException) -> str:
    """A short reason for a failure, as shown in transitions and snapshots."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class CircuitBreaker:
    """Guards one downstream call site.

    Use ``await breaker.call(fn, *args)`` or ``async with breaker:``. While the
    circuit rejects calls both raise :class:`CircuitOpenError` before anything
    reaches the downstream. ``asyncio.CancelledError`` is neither a success
    nor a failure; a cancelled trial call gives its HALF_OPEN permit back.
    ``is_failure_result`` makes ``call()`` count a returned value as a failure.
    """

    _exited: asyncio.Future[None]

    def __init__(
        self,
        name: str,
        config: CircuitBreakerConfig | None = None,
        clock: Clock = monotonic,
        *,
        wall_clock: WallClock = wall_time,
        is_failure: FailurePredicate = counts_as_failure,
        is_failure_result: ResultPredicate | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.name = name
        self.config = config or CircuitBreakerConfig()
        self._clock = clock
        self._wall = wall_clock
        self._is_failure = is_failure
        self._failing_result = is_failure_result
        self._machine = BreakerStateMachine(name, self.config, jitter)
        self._window = self._machine.window
        self._timed = self.config.timed
        if not self._timed and is_failure_result is None:
            self.call = self._call_plain  # type: ignore[method-assign]
        self._slow_after = self.config.slow_call_duration
        self._listeners = ListenerSet()
        # ``async with`` bookkeeping. Entries made while CLOSED in one generation
        # all hold the same permit, so they are only counted (``_shared``); any
        # other entry, or any entry while such others are outstanding, is filed
        # under its task (``_tagged``). Within a task entries exit in reverse
        # order, so a task's newest tagged entry is the one leaving.
        # ``_gate`` is the permit a new entry may share, so that ``__aenter__``
        # decides with one comparison: ``_shared_permit`` from when ``_enter``
        # starts sharing, one no machine hands out from its first tagged entry.
        # (Sharing never resumes after that: the shared permit is then stale, as
        # only a transition or a timed breaker makes tagged entries; ``_enter``
        # starts sharing afresh once nothing is outstanding.)
        self._shared = 0
        self._shared_permit = self._gate = _NO_PERMIT
        self._tagged: dict[object, list[Permit]] = {}
        self._tagged_count = 0
        # Done futures, made on the first entry (they need the running loop); the
        # exit one is only read after an entry made both (declared on the class).
        self._entered: asyncio.Future[CircuitBreaker] | None = None

    # -- guarded calls ---------------------------------------------------

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` under the breaker.

        This is the path of a breaker that times calls or judges their results; the
        constructor gives one that does neither :meth:`_call_plain`, which reads the
        clock only once per call.
        """
        machine = self._machine
        clock = self._clock
        # CLOSED admits without a method call; nearly every call takes this path, so
        # it is spelled out here. Untimed, a call starts at +inf, which none outlasts.
        if machine.state is _CLOSED:
            permit = machine.closed_permit
            started = clock() if self._timed else math.inf
        else:
            # One reading for admission and start: the machine judges by the same one.
            started = clock()
            admitted = machine.try_acquire(started)
            if admitted is None:  # a rejection never comes with a transition
                raise CircuitOpenError(self.name, machine.state, machine.rejected_retry_after)
            if machine.transitions:
                self._publish()
            permit = admitted
            if not self._timed:
                started = math.inf
        try:
            # An empty **kwargs passed on is a dict the call would unpack; fn(*args) is not.
            result = await (fn(*args, **kwargs) if kwargs else fn(*args))  # type: ignore[call-arg]
        except BaseException as exc:
            self._settle_error(permit, exc, clock() - started >= self._slow_after)
            raise
        now = clock()
        failing = self._failing_result
        if failing is not None and failing(result):
            self._settle_result(permit, result, now, now - started >= self._slow_after)
            return result
        if now - started >= self._slow_after:
            # Said, not left to the machine: a CLOSED permit carries no start time.
            if machine.on_success(permit, now, True):
                self._publish()
            return result
        # A fast success while CLOSED is only counted (see core/breaker/window.py);
        # anything else goes through the machine, which judges by the permit's start.
        window = self._window
        if now < window.edge and permit is machine.closed_permit:
            machine.last_success_at = now
            machine.consecutive_failures = 0
            window.pending += 1
        elif machine.on_success(permit, now):
            self._publish()
        return result

    async def _call_plain(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """:meth:`call` for a breaker that neither times calls nor judges results."""
        machine = self._machine
        if machine.state is _CLOSED:
            permit = machine.closed_permit
        else:
            admitted = machine.try_acquire(self._clock())
            if admitted is None:
                raise CircuitOpenError(self.name, machine.state, machine.rejected_retry_after)
            if machine.transitions:
                self._publish()
            permit = admitted
        try:
            result = await (fn(*args, **kwargs) if kwargs else fn(*args))  # type: ignore[call-arg]
        except BaseException as exc:
            self._settle_error(permit, exc)
            raise
        now = self._clock()
        # As in call(): a fast CLOSED success is only counted.
        window = self._window
        if now < window.edge and permit is machine.closed_permit:
            machine.last_success_at = now
            machine.consecutive_failures = 0
            window.pending += 1
        elif machine.on_success(permit, now):
            self._publish()
        return result

    def _settle_result(self, permit: Permit, result: object, now: float, slow: bool) -> None:
        self._machine.on_failure(permit, now, f"result counted as a failure: {result!r:.80}", slow)
        if self._machine.transitions:
            self._publish()

    # Plain methods returning done awaitables: a coroutine per enter and exit would
    # cost more than the breaker's own work (bench/breaker_overhead.py, async with).
    def __aenter__(self) -> Awaitable[CircuitBreaker]:
        # The permit shared is only CLOSED's while its generation lasts: every
        # transition hands out a new one.
        if self._machine.closed_permit is self._gate:
            self._shared += 1
            return self._entered  # type: ignore[return-value]  # set with _shared_permit
        return self._enter()

    def _enter(self) -> Awaitable[CircuitBreaker]:
        machine = self._machine
        entered = self._entered
        if entered is None:
            loop = asyncio.get_running_loop()
            entered = loop.create_future()
            entered.set_result(self)
            exited: asyncio.Future[None] = loop.create_future()
            exited.set_result(None)
            self._entered, self._exited = entered, exited
        if (
            machine.state is _CLOSED
            and not self._timed
            and not self._tagged_count
            and not self._shared
        ):
            self._shared_permit = self._gate = machine.closed_permit
            self._shared += 1
            return entered
        now = self._clock()
        admitted = machine.try_acquire(now)
        if admitted is None:
            raise CircuitOpenError(self.name, machine.state, machine.rejected_retry_after)
        if machine.transitions:
            self._publish()
        self._tagged.setdefault(asyncio.current_task(), []).append(admitted)
        self._tagged_count += 1
        self._gate = _NO_PERMIT
        return entered

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        if self._tagged_count:
            task = asyncio.current_task()
            stack = self._tagged.get(task)
            if stack:
                return self._exit_tagged(task, stack, exc)
        if not self._shared:
            raise RuntimeError(f"breaker {self.name!r} exited without a matching enter")
        self._shared -= 1
        permit = self._shared_permit
        if exc is not None:
            self._settle_error(permit, exc)
            return self._exited
        now = self._clock()
        window = self._window
        machine = self._machine
        # As in call(): a fast CLOSED success is only counted.
        if now < window.edge and permit is machine.closed_permit:
            machine.last_success_at = now
            machine.consecutive_failures = 0
            window.pending += 1
        elif machine.on_success(permit, now):
            self._publish()
        return self._exited

    def _exit_tagged(
        self, task: object, stack: list[Permit], exc: BaseException | None
    ) -> Awaitable[None]:
        permit = stack.pop()
        if not stack:
            del self._tagged[task]
        self._tagged_count -= 1
        # A timed breaker's permit carries its start: the machine judges slowness.
        if exc is None:
            if self._machine.on_success(permit, self._clock()):
                self._publish()
        else:
            self._settle_error(permit, exc)
        return self._exited

    def _settle_error(self, permit: Permit, exc: BaseException, slow: bool | None = None) -> None:
        machine = self._machine
        if isinstance(exc, asyncio.CancelledError) or not self._is_failure(exc):
            machine.release(permit)
        else:
            machine.on_failure(permit, self._clock(), describe_failure(exc), slow)
        if machine.transitions:
            self._publish()

    # -- explicit outcomes, for callers that judge a result themselves ------

    def acquire(self) -> Permit:
        """Take a permit by hand; pair it with :meth:`record_success`,
        :meth:`record_failure` or :meth:`release`. Raises :class:`CircuitOpenError`."""
        permit = self._machine.acquire(self._clock())
        if self._machine.transitions:
            self._publish()
        return permit

    def record_success(self, permit: Permit, *, slow: bool | None = None) -> None:
        """Report that the call admitted with ``permit`` succeeded.

        ``slow``: the caller's own verdict; None lets a timed breaker judge by its clock.
        """
        if self._machine.on_success(permit, self._clock(), slow):
            self._publish()

    def record_failure(self, permit: Permit, reason: str, *, slow: bool | None = None) -> None:
        """Report that the call admitted with ``permit`` failed in a way that counts."""
        self._machine.on_failure(permit, self._clock(), reason, slow)
        if self._machine.transitions:
            self._publish()

    def release(self, permit: Permit) -> None:
        """Give ``permit`` back without an outcome (cancelled, or not the downstream's fault)."""
        self._machine.release(permit)

    # -- operator controls ------------------------------------------------

    def reset(self, reason: str = "manual reset") -> None:
        """CLOSED from any state and mode; clears every counter and the grown cooldown."""
        self._machine.reset(self._clock(), reason)
        self._publish()

    def force_open(self, reason: str, duration: float | None = None) -> None:
        """Open the circuit now, for ``duration`` seconds or the current cooldown."""
        self._machine.force_open(self._clock(), reason, duration)
        self._publish()

    def isolate(self, reason: str) -> None:
        """FORCED_OPEN: reject every call until :meth:`reset`; no trial calls, no canaries.
        ``reason`` (say, who did it) is the transition's reason as given."""
        self._machine.isolate(self._clock(), reason)
        self._publish()

    def disable(self, reason: str = "disabled") -> None:
        """DISABLED: admit every call and record nothing, until :meth:`reset`."""
        self._machine.disable(self._clock(), reason)
        self._publish()

    def metrics_only(self, reason: str = "metrics only") -> None:
        """METRICS_ONLY: admit every call and record it, never trip, until :meth:`reset`."""
        self._machine.metrics_only(self._clock(), reason)
        self._publish()

    def restore_trips(self, trips: int) -> None:
        """Carry the trip count of an earlier run over to this CLOSED circuit."""
        self._machine.restore_trips(trips)

    def restore_open(self, remaining: float, cooldown: float, trips: int) -> None:
        """Re-enter an outage persisted before a restart, ``remaining`` seconds from its end."""
        self._machine.restore_open(self._clock(), remaining, cooldown, trips)
        self._publish()

    def export_state(self) -> DurableState:
        """The durable part of the state, times on the wall clock."""
        return self._machine.export_state().shifted(self._wall() - self._clock())

    def adopt_state(self, record: DurableState, reason: str | None = None) -> bool:
        """Take over ``record`` (wall-clock times, as :meth:`export_state` gives);
        False, and nothing changes, if it is older than this breaker's state."""
        now = self._clock()
        adopted = self._machine.adopt_state(record.shifted(now - self._wall()), now, reason)
        self._publish()
        return adopted

    # -- observation ---------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """The current state. An OPEN circuit whose cooldown is over still reads
        OPEN until the next admission attempt moves it to HALF_OPEN."""
        return self._machine.state

    @property
    def retry_after(self) -> float:
        """Seconds until a trial call may be admitted (0 unless OPEN or FORCED_OPEN)."""
        return self._machine.retry_after(self._clock())

    def would_admit(self) -> bool:
        """Whether a call made now would be admitted (changes nothing)."""
        return self._machine.would_admit(self._clock())

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` on every transition; it may be async."""
        self._listeners.add(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        self._listeners.remove(listener)

    async def drain_listeners(self) -> None:
        """Wait until async listeners already started have finished."""
        await self._listeners.drain()

    def typed_snapshot(self) -> BreakerSnapshot:
        """Everything an operator wants to see, typed. While the circuit rejects
        or tests (OPEN, HALF_OPEN, FORCED_OPEN), the failure figures are the ones
        that tripped it."""
        m = self._machine
        now = self._clock()
        m.advance(now)
        offset = self._wall() - now

        def when(at: float | None) -> datetime | None:
            return None if at is None else datetime.fromtimestamp(at + offset, tz=UTC)

        kept = m.tripped_by
        cfg = self.config
        return BreakerSnapshot(
            name=self.name,
            state=m.state,
            consecutive_failures=m.consecutive_failures if kept is None
            else kept.consecutive_failures,
            failure_rate=m.failure_rate if kept is None else kept.failure_rate,
            slow_call_rate=m.slow_call_rate if kept is None else kept.slow_call_rate,
            window_calls=m.window_calls if kept is None else kept.window_calls,
            window_failures=m.window_failures if kept is None else kept.window_failures,
            window_slow_calls=m.window_slow_calls if kept is None else kept.window_slow_calls,
            window_type=cfg.window_type,
            window_size=cfg.window_size,
            window_duration=cfg.window_duration,
            tripped_by=kept,
            last_failure=when(m.last_failure_at),
            last_failure_reason=m.last_failure_reason,
            last_success=when(m.last_success_at),
            opened_at=when(m.opened_at),
            retry_after=m.retry_after(now),
            cooldown=m.cooldown if m.state.recovering else m.next_cooldown(now),
            cooldown_level=m.level(now),
            trips=m.trips,
            consecutive_trips=m.consecutive_trips,
            half_open_in_flight=m.half_open_in_flight,
            half_open_successes=m.half_open_successes,
            rejected_calls=m.rejected_calls,
            last_transition_reason=None if m.last_transition is None else m.last_transition.reason,
            version=m.version,
            durable=m.export_state().shifted(offset),
        )  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        """:meth:`typed_snapshot` as plain data, with every key the seed API had."""
        return self.typed_snapshot().as_dict()

    def _publish(self) -> None:
        transitions = self._machine.transitions
        if not transitions:
            return
        pending = list(transitions)
        transitions.clear()
        if not self._listeners:
            return
        snapshot = self.typed_snapshot()
        for t in pending:
            at = at_datetime(t.at, self._clock, self._wall)
            self._listeners.emit(TransitionEvent(self.name, t.old, t.new, t.reason, at, snapshot))

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self._machine.state.value}>"

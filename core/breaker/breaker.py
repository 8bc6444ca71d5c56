"""The asyncio face of the circuit breaker.

:class:`CircuitBreaker` reads the clock, asks the pure
:class:`~core.breaker.state.BreakerStateMachine` for a permit, awaits the
guarded call, and reports the outcome. It holds no lock at all: the state
machine's methods never await, so on one event loop each admission and each
outcome is atomic, and nothing is held across the guarded await.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from edge_voice.core.breaker.events import Listener, ListenerSet, TransitionEvent
from edge_voice.core.breaker.state import (
    BreakerStateMachine,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    Permit,
)
from edge_voice.core.clock import Clock, WallClock, at_datetime, monotonic, to_datetime, wall_time

_CLOSED = CircuitState.CLOSED
P = ParamSpec("P")
T = TypeVar("T")

FailurePredicate = Callable[[BaseException], bool]

# Permits taken by ``async with breaker:``, innermost last, per task.
_held_permits: ContextVar[tuple[tuple[CircuitBreaker, Permit], ...]] = ContextVar(
    "held_breaker_permits", default=()
)


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
    """

    def __init__(
        self,
        name: str,
        config: CircuitBreakerConfig | None = None,
        clock: Clock = monotonic,
        *,
        wall_clock: WallClock = wall_time,
        is_failure: FailurePredicate = counts_as_failure,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.name = name
        self.config = config or CircuitBreakerConfig()
        self._clock = clock
        self._wall = wall_clock
        self._is_failure = is_failure
        self._machine = BreakerStateMachine(name, self.config, jitter)
        self._listeners = ListenerSet()

    # -- guarded calls ---------------------------------------------------

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` under the breaker."""
        machine = self._machine
        # CLOSED admits without looking at the clock; nearly every call takes this
        # path, so it is spelled out here rather than behind a method call.
        if machine.state is _CLOSED:
            permit = machine.closed_permit
        else:
            admitted = machine.try_acquire(self._clock())
            if admitted is None:  # a rejection never comes with a transition
                raise CircuitOpenError(self.name, machine.state, machine.rejected_retry_after)
            if machine.transitions:
                self._publish()
            permit = admitted
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._settle_error(permit, exc)
            raise
        if machine.on_success(permit, self._clock()):
            self._publish()
        return result

    async def __aenter__(self) -> CircuitBreaker:
        permit = self._machine.acquire(self._clock())
        if self._machine.transitions:
            self._publish()
        _held_permits.set((*_held_permits.get(), (self, permit)))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        held = _held_permits.get()
        for index in range(len(held) - 1, -1, -1):
            if held[index][0] is self:
                permit = held[index][1]
                _held_permits.set(held[:index] + held[index + 1 :])
                break
        else:
            raise RuntimeError(f"breaker {self.name!r} exited without a matching enter")
        if exc is None:
            if self._machine.on_success(permit, self._clock()):
                self._publish()
        else:
            self._settle_error(permit, exc)

    def _settle_error(self, permit: Permit, exc: BaseException) -> None:
        machine = self._machine
        if isinstance(exc, asyncio.CancelledError) or not self._is_failure(exc):
            machine.release(permit)
        else:
            machine.on_failure(permit, self._clock(), describe_failure(exc))
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

    def record_success(self, permit: Permit) -> None:
        """Report that the call admitted with ``permit`` succeeded."""
        if self._machine.on_success(permit, self._clock()):
            self._publish()

    def record_failure(self, permit: Permit, reason: str) -> None:
        """Report that the call admitted with ``permit`` failed in a way that counts."""
        self._machine.on_failure(permit, self._clock(), reason)
        if self._machine.transitions:
            self._publish()

    def release(self, permit: Permit) -> None:
        """Give ``permit`` back without an outcome (cancelled, or not the downstream's fault)."""
        self._machine.release(permit)

    # -- operator controls and observation ------------------------------

    def reset(self, reason: str = "manual reset") -> None:
        """Close the circuit and clear every counter and the grown cooldown."""
        self._machine.reset(self._clock(), reason)
        self._publish()

    def force_open(self, reason: str, duration: float | None = None) -> None:
        """Open the circuit now, for ``duration`` seconds or the current cooldown."""
        self._machine.force_open(self._clock(), reason, duration)
        self._publish()

    def restore_trips(self, trips: int) -> None:
        """Carry the trip count of an earlier run over to this CLOSED circuit."""
        self._machine.restore_trips(trips)

    def restore_open(self, remaining: float, cooldown: float, trips: int) -> None:
        """Re-enter an outage persisted before a restart, ``remaining`` seconds from its end."""
        self._machine.restore_open(self._clock(), remaining, cooldown, trips)
        self._publish()

    @property
    def state(self) -> CircuitState:
        """The current state. An OPEN circuit whose cooldown is over still reads
        OPEN until the next admission attempt moves it to HALF_OPEN."""
        return self._machine.state

    @property
    def retry_after(self) -> float:
        """Seconds until a trial call may be admitted (0 unless OPEN)."""
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

    def snapshot(self) -> dict[str, Any]:
        """Everything an operator wants to see, as plain data.

        Times are aware UTC datetimes (or None); durations are seconds.
        """
        m = self._machine
        now = self._clock()

        def when(at: float | None) -> Any:
            return to_datetime(at, self._clock, self._wall)

        return {
            "name": self.name,
            "state": m.state.value,
            "circuit_open": m.state is CircuitState.OPEN,
            "half_open": m.state is CircuitState.HALF_OPEN,
            "consecutive_failures": m.consecutive_failures,
            "failure_rate": m.failure_rate,
            "window_calls": m.window_calls,
            "window_failures": m.window_failures,
            "window_size": self.config.window_size,
            "last_failure": when(m.last_failure_at),
            "last_failure_reason": m.last_failure_reason,
            "last_success": when(m.last_success_at),
            "opened_at": when(m.opened_at),
            "retry_after": m.retry_after(now),
            "cooldown": m.cooldown,
            "trips": m.trips,
            "consecutive_trips": m.consecutive_trips,
            "half_open_in_flight": m.half_open_in_flight,
            "half_open_successes": m.half_open_successes,
            "last_transition_reason": m.last_transition.reason if m.last_transition else None,
        }

    def _publish(self) -> None:
        transitions = self._machine.transitions
        if not transitions:
            return
        pending = list(transitions)
        transitions.clear()
        if not self._listeners:
            return
        snapshot = self.snapshot()
        for t in pending:
            at = at_datetime(t.at, self._clock, self._wall)
            self._listeners.emit(TransitionEvent(self.name, t.old, t.new, t.reason, at, snapshot))

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self._machine.state.value}>"

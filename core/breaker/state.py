"""The circuit breaker's state machine: pure, synchronous, and told the time.

No asyncio, no clock reads: every method that depends on time takes ``now``
(monotonic seconds). That keeps every transition a plain function call a test
can drive with numbers, and keeps the asyncio wrapper in
:mod:`core.breaker.breaker` thin.

Calls are admitted with a :class:`Permit` and reported back with it. A permit
remembers the *generation* it was issued in; every transition starts a new
generation, so the outcome of a call admitted before a transition (for example
a slow call admitted while CLOSED that fails after the circuit already opened,
or any call in flight during ``reset()``) updates the timestamps but never
moves the state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast


class CircuitState(StrEnum):
    """The three states of a circuit breaker."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


class CircuitOpenError(Exception):
    """Raised instead of calling the downstream while the circuit rejects calls.

    ``retry_after`` is the number of seconds until a trial call may be admitted
    (0 while HALF_OPEN with every trial permit taken).
    """

    # No Python-level __init__: BaseException keeps the arguments in C, which makes
    # a rejection (the hot path during an outage) about as cheap as a bare raise.
    if TYPE_CHECKING:

        def __init__(self, name: str, state: CircuitState, retry_after: float) -> None: ...

    @property
    def name(self) -> str:
        """The rejecting circuit's name."""
        return cast(str, self.args[0])

    @property
    def state(self) -> CircuitState:
        """The circuit's state when it rejected the call."""
        return cast(CircuitState, self.args[1])

    @property
    def retry_after(self) -> float:
        """Seconds until a trial call may be admitted."""
        return cast(float, self.args[2])

    def __str__(self) -> str:
        return f"circuit {self.name!r} is {self.state.value}; retry after {self.retry_after:.1f}s"


# Plain module names for the members: looking a member up on the Enum class goes
# through its metaclass, which costs more than the rest of a rejection.
_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN


@dataclass(frozen=True, slots=True)
class CircuitBreakerConfig:
    """How a breaker trips and recovers.

    The two trip policies are independent; set ``consecutive_failures`` or
    ``failure_threshold`` to ``None`` to switch one off.
    """

    failure_threshold: float | None = 0.5
    """Open when the failure rate over the window reaches this share (0 < x <= 1)."""
    window_size: int = 10
    """How many of the most recent calls the failure rate is computed over."""
    minimum_calls: int = 10
    """The rate policy waits until the window holds at least this many calls."""
    consecutive_failures: int | None = 5
    """Open after this many failures in a row."""
    cooldown_period: float = 60.0
    """Seconds the first trip stays OPEN."""
    max_cooldown_period: float = 300.0
    """Cap for the cooldown of repeated trips."""
    cooldown_multiplier: float = 2.0
    """Each repeated trip's cooldown is the previous one times this, plus jitter."""
    cooldown_jitter: float = 0.1
    """Up to this share of the grown cooldown is added at random (never subtracted)."""
    success_threshold: int = 3
    """Consecutive successful trial calls in HALF_OPEN that close the circuit."""
    half_open_max_calls: int = 1
    """Trial calls admitted at once in HALF_OPEN."""

    def __post_init__(self) -> None:
        problems = config_problems({f.name: getattr(self, f.name) for f in fields(self)})
        if problems:
            raise ValueError(
                "invalid CircuitBreakerConfig: "
                + "; ".join(
                    f"{key} must be {expected}, got {got!r}" for key, expected, got in problems
                )
            )


def config_problems(values: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """Check a complete set of :class:`CircuitBreakerConfig` field values.

    Returns ``(field, expected, got)`` for each problem, so a config loader can
    name the key without parsing messages.
    """
    v = values
    checks: list[tuple[str, bool, str]] = [
        (
            "failure_threshold",
            v["failure_threshold"] is None or 0.0 < v["failure_threshold"] <= 1.0,
            "in (0, 1]",
        ),
        ("window_size", v["window_size"] >= 1, ">= 1"),
        (
            "minimum_calls",
            1 <= v["minimum_calls"] <= v["window_size"],
            f"between 1 and window_size ({v['window_size']})",
        ),
        (
            "consecutive_failures",
            v["consecutive_failures"] is None or v["consecutive_failures"] >= 1,
            ">= 1",
        ),
        (
            "cooldown_period",
            math.isfinite(v["cooldown_period"]) and v["cooldown_period"] > 0,
            "> 0",
        ),
        (
            "max_cooldown_period",
            math.isfinite(v["max_cooldown_period"])
            and v["max_cooldown_period"] >= v["cooldown_period"],
            f">= cooldown_period ({v['cooldown_period']})",
        ),
        ("cooldown_multiplier", v["cooldown_multiplier"] >= 1.0, ">= 1"),
        ("cooldown_jitter", 0.0 <= v["cooldown_jitter"] <= 1.0, "in [0, 1]"),
        ("success_threshold", v["success_threshold"] >= 1, ">= 1"),
        ("half_open_max_calls", v["half_open_max_calls"] >= 1, ">= 1"),
    ]
    return [(key, expected, v[key]) for key, ok, expected in checks if not ok]


@dataclass(frozen=True, slots=True)
class Permit:
    """Proof that a call was admitted; hand it back with the call's outcome."""

    generation: int
    trial: bool


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change, with the monotonic time it happened at."""

    old: CircuitState
    new: CircuitState
    reason: str
    at: float


class BreakerStateMachine:
    """All of a breaker's decisions, with time passed in.

    Not thread-safe and not meant to be: the asyncio wrapper calls it from one
    event loop, and every method runs to completion without awaiting.
    Transitions accumulate in :attr:`transitions` until the owner drains them.
    While CLOSED, :meth:`acquire` always returns :attr:`closed_permit`, so a
    caller on a hot path may take that attribute directly without a clock read.
    """

    def __init__(
        self,
        name: str,
        config: CircuitBreakerConfig,
        jitter: Callable[[], float],
    ) -> None:
        self.name = name
        self.config = config
        self._jitter = jitter
        self._window_size = config.window_size
        self.transitions: list[Transition] = []
        self.state = CircuitState.CLOSED
        self.trips = 0
        self.consecutive_trips = 0
        self.cooldown = config.cooldown_period
        self.opened_at: float | None = None
        self.open_until = 0.0
        self.last_failure_at: float | None = None
        self.last_failure_reason: str | None = None
        self.last_success_at: float | None = None
        self.last_transition: Transition | None = None
        self.rejected_retry_after = 0.0
        self._generation = 0
        self.closed_permit = Permit(0, trial=False)
        self._clear_counters()

    def _clear_counters(self) -> None:
        self.consecutive_failures = 0
        # A ring of outcomes (True = failure) with a running failure count. While
        # the window is full of successes its contents are all alike, so a further
        # success need not touch it: the common path stays cheap.
        self._window: list[bool] = [False] * self.config.window_size
        self._window_next = 0
        self.window_calls = 0
        self.window_failures = 0
        self.half_open_in_flight = 0
        self.half_open_successes = 0

    @property
    def failure_rate(self) -> float:
        """Failures over calls in the current window (0.0 when it is empty)."""
        return self.window_failures / self.window_calls if self.window_calls else 0.0

    def retry_after(self, now: float) -> float:
        """Seconds until a trial call may be admitted (0 unless OPEN).

        Never more than the cooldown, even if the clock went backwards.
        """
        if self.state is not _OPEN:
            return 0.0
        left = self.open_until - now
        if left <= 0.0:
            return 0.0
        return left if left < self.cooldown else self.cooldown

    # -- admission -------------------------------------------------------

    def acquire(self, now: float) -> Permit:
        """Admit a call or raise :class:`CircuitOpenError`."""
        permit = self.try_acquire(now)
        if permit is None:
            raise CircuitOpenError(self.name, self.state, self.rejected_retry_after)
        return permit

    def try_acquire(self, now: float) -> Permit | None:
        """Admit a call, or return None when the circuit rejects it.

        On a rejection :attr:`rejected_retry_after` holds the rejection's
        ``retry_after``, so the caller needs no second call to build its error.
        """
        state = self.state
        if state is _CLOSED:
            return self.closed_permit
        if state is _OPEN:
            left = self.open_until - now
            if left > 0.0:
                self.rejected_retry_after = left if left < self.cooldown else self.cooldown
                return None
            self._move(_HALF_OPEN, f"cooldown of {self.cooldown:.0f}s elapsed", now)
        if self.half_open_in_flight >= self.config.half_open_max_calls:
            self.rejected_retry_after = 0.0
            return None
        self.half_open_in_flight += 1
        return Permit(self._generation, trial=True)

    def would_admit(self, now: float) -> bool:
        """Whether :meth:`acquire` would admit a call now, without changing anything."""
        if self.state is CircuitState.CLOSED:
            return True
        if self.state is CircuitState.OPEN:
            return now >= self.open_until
        return self.half_open_in_flight < self.config.half_open_max_calls

    # -- outcomes --------------------------------------------------------

    def on_success(self, permit: Permit, now: float) -> bool:
        """Record that an admitted call succeeded; True if that changed the state."""
        self.last_success_at = now
        if permit is self.closed_permit:
            self.consecutive_failures = 0
            if self.window_failures or self.window_calls < self._window_size:
                self._record_in_window(failed=False)
            return False
        if permit.generation != self._generation or not permit.trial:
            return False
        self.half_open_in_flight -= 1
        self.half_open_successes += 1
        if self.half_open_successes >= self.config.success_threshold:
            self._close(f"{self.half_open_successes} trial calls succeeded", now)
            return True
        return False

    def on_failure(self, permit: Permit, now: float, reason: str) -> None:
        """Record that an admitted call failed in a way that counts."""
        self.last_failure_at = now
        self.last_failure_reason = reason
        if permit.generation != self._generation:
            return
        if permit.trial:
            self.half_open_in_flight -= 1
            self._open(f"trial call failed: {reason}", now)
            return
        self.consecutive_failures += 1
        self._record_in_window(failed=True)
        limit = self.config.consecutive_failures
        if limit is not None and self.consecutive_failures >= limit:
            self._open(f"{self.consecutive_failures} consecutive failures, last: {reason}", now)
            return
        threshold = self.config.failure_threshold
        if (
            threshold is not None
            and self.window_calls >= self.config.minimum_calls
            and self.failure_rate >= threshold
        ):
            self._open(
                f"failure rate {self.failure_rate:.0%} over the last {self.window_calls} calls, "
                f"last: {reason}",
                now,
            )

    def release(self, permit: Permit) -> None:
        """Hand back a permit whose call neither succeeded nor failed.

        Used for cancelled calls and for exceptions the classifier does not count:
        a trial permit becomes free for the next caller, and nothing is recorded.
        """
        if permit.trial and permit.generation == self._generation:
            self.half_open_in_flight -= 1

    # -- operator controls ----------------------------------------------

    def reset(self, now: float, reason: str = "manual reset") -> None:
        """Close the circuit and forget every counter and the grown cooldown.

        Resetting a circuit that is already CLOSED clears its counters without
        recording a transition: nothing changed state.
        """
        if self.state is CircuitState.CLOSED:
            self.consecutive_trips = 0
            self.cooldown = self.config.cooldown_period
            self._clear_counters()
            self._new_generation()
            return
        self._close(reason, now)

    def force_open(self, now: float, reason: str, duration: float | None = None) -> None:
        """Open the circuit now for ``duration`` seconds (default: the current cooldown)."""
        if duration is not None:
            self.cooldown = duration
        self.trips += 1
        self.opened_at = now
        self.open_until = now + self.cooldown
        self._clear_counters()
        self._move(CircuitState.OPEN, reason, now)

    def restore_trips(self, trips: int) -> None:
        """Carry the trip count of an earlier run over (the circuit stays as it is)."""
        self.trips = trips

    def restore_open(self, now: float, remaining: float, cooldown: float, trips: int) -> None:
        """Resume an outage that started before a restart: OPEN for ``remaining`` seconds."""
        self.trips = trips
        self.consecutive_trips = max(1, self.consecutive_trips)
        self.cooldown = cooldown
        self.opened_at = now - max(0.0, cooldown - remaining)
        self.open_until = now + remaining
        self._clear_counters()
        self._move(CircuitState.OPEN, f"restored after restart, {remaining:.0f}s left", now)

    # -- internals -------------------------------------------------------

    def _record_in_window(self, *, failed: bool) -> None:
        size = self.config.window_size
        index = self._window_next
        if self.window_calls == size:
            self.window_failures -= self._window[index]
        else:
            self.window_calls += 1
        self._window[index] = failed
        self.window_failures += failed
        self._window_next = index + 1 if index + 1 < size else 0

    def _open(self, reason: str, now: float) -> None:
        if self.consecutive_trips > 0:
            self.cooldown = self._grown_cooldown()
        self.consecutive_trips += 1
        self.trips += 1
        self.opened_at = now
        self.open_until = now + self.cooldown
        self._clear_counters()
        self._move(CircuitState.OPEN, reason, now)

    def _grown_cooldown(self) -> float:
        cfg = self.config
        grown = self.cooldown * cfg.cooldown_multiplier
        grown += grown * cfg.cooldown_jitter * self._jitter()
        return min(cfg.max_cooldown_period, max(self.cooldown, grown))

    def _close(self, reason: str, now: float) -> None:
        self.consecutive_trips = 0
        self.cooldown = self.config.cooldown_period
        self.opened_at = None
        self.open_until = 0.0
        self._clear_counters()
        self._move(CircuitState.CLOSED, reason, now)

    def _new_generation(self) -> None:
        self._generation += 1
        self.closed_permit = Permit(self._generation, trial=False)

    def _move(self, new: CircuitState, reason: str, now: float) -> None:
        old = self.state
        self.state = new
        self._new_generation()
        transition = Transition(old, new, reason, now)
        self.last_transition = transition
        self.transitions.append(transition)

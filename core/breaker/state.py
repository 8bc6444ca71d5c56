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

The windows live in :mod:`core.breaker.window`, the cooldown levels in
:mod:`core.breaker.cooldown`, the durable record in :mod:`core.breaker.record`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from edge_voice.core.breaker.config import CircuitBreakerConfig, config_problems
from edge_voice.core.breaker.cooldown import CooldownSchedule
from edge_voice.core.breaker.record import DurableState, TripCause, TripFigures
from edge_voice.core.breaker.states import CircuitOpenError, CircuitState
from edge_voice.core.breaker.window import make_window

__all__ = [
    "BreakerStateMachine",
    "CircuitBreakerConfig",
    "CircuitOpenError",
    "CircuitState",
    "Permit",
    "Transition",
    "config_problems",
]

# Plain module names for the members: looking a member up on the Enum class goes
# through its metaclass, which costs more than the rest of a rejection.
_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN
_FORCED_OPEN = CircuitState.FORCED_OPEN
_DISABLED = CircuitState.DISABLED
_METRICS_ONLY = CircuitState.METRICS_ONLY


@dataclass(frozen=True, slots=True)
class Permit:
    """Proof that a call was admitted; hand it back with the call's outcome.

    ``started`` is when it was admitted, set only when the breaker times calls.
    """

    generation: int
    trial: bool = False
    started: float | None = None


_UNRECORDED = Permit(-1)
"""What a DISABLED circuit hands out: no generation matches it, so nothing is recorded."""


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
    While CLOSED, :meth:`acquire` of an untimed breaker always returns
    :attr:`closed_permit`, so a caller on a hot path may take that attribute
    directly without a clock read, and, for a fast success of that permit while
    ``now < window.edge``, do what :meth:`on_success` would: set
    :attr:`last_success_at`, zero :attr:`consecutive_failures` and add one to
    ``window.pending``.
    """

    open_until: float
    """When an OPEN circuit admits a trial call; set on opening, read only while
    OPEN or HALF_OPEN."""
    rejected_retry_after: float
    """The last rejection's ``retry_after``, set by every rejection."""

    def __init__(
        self,
        name: str,
        config: CircuitBreakerConfig,
        jitter: Callable[[], float],
    ) -> None:
        self.name = name
        self.config = config
        self.cooldowns = CooldownSchedule(config, jitter)
        self.window = make_window(config)
        self.timed = config.timed
        self.transitions: list[Transition] = []
        self.state = _CLOSED
        self.version = 0
        self.reason = ""
        self.trips = 0
        self.consecutive_trips = 0
        self.cooldown = config.cooldown_period
        self.cooldown_level = 0
        self.calm_since: float | None = None
        self.opened_at: float | None = None
        self.tripped_by: TripFigures | None = None
        self.last_failure_at: float | None = None
        self.last_failure_reason: str | None = None
        self.last_success_at: float | None = None
        self.last_transition: Transition | None = None
        self.rejected_calls = 0
        self._generations = itertools.count()
        self._new_generation()
        self._clear_counters()

    def _clear_counters(self) -> None:
        self.consecutive_failures = 0
        self.window.clear()
        self.half_open_in_flight = 0
        self.half_open_successes = 0

    # -- the window, as read by snapshots ----------------------------------

    @property
    def window_calls(self) -> int:
        """Calls in the current window."""
        return self.window.calls

    @property
    def window_failures(self) -> int:
        """Failed calls in the current window."""
        return self.window.failures

    @property
    def window_slow_calls(self) -> int:
        """Slow calls (failed or not) in the current window."""
        return self.window.slow

    @property
    def failure_rate(self) -> float:
        """Failures over calls in the current window (0.0 when it is empty)."""
        w = self.window
        return w.failures / w.calls if w.calls else 0.0

    @property
    def slow_call_rate(self) -> float:
        """Slow calls over calls in the current window (0.0 when it is empty)."""
        w = self.window
        return w.slow / w.calls if w.calls else 0.0

    def advance(self, now: float) -> None:
        """Let the window drop what is older than it at ``now`` (changes no state)."""
        self.window.advance(now)

    def retry_after(self, now: float) -> float:
        """Seconds until a trial call may be admitted (0 unless OPEN or FORCED_OPEN).

        Never more than the cooldown, even if the clock went backwards.
        """
        if self.state is _FORCED_OPEN:
            return self.config.cooldown_period
        if self.state is not _OPEN:
            return 0.0
        return max(0.0, min(self.open_until - now, self.cooldown))

    def next_cooldown(self, now: float) -> float:
        """The cooldown a trip from CLOSED would start with now (without jitter)."""
        return self.cooldowns.plain(self.level(now))

    def level(self, now: float) -> int:
        """The cooldown level the next trip opens at, after healthy time stepped it down."""
        return self.cooldowns.decayed(self.cooldown_level, self.calm_since, now)

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
        if state is _CLOSED or state is _METRICS_ONLY:
            return Permit(self._generation, started=now) if self.timed else self.closed_permit
        if state is _OPEN:
            left = self.open_until - now
            if left > 0.0:
                self.rejected_calls += 1
                self.rejected_retry_after = left if left < self.cooldown else self.cooldown
                return None
            self._move(_HALF_OPEN, f"cooldown of {self.cooldown:.0f}s elapsed", now)
        elif state is _DISABLED:
            return _UNRECORDED
        elif state is _FORCED_OPEN:
            self.rejected_calls += 1
            self.rejected_retry_after = self.config.cooldown_period
            return None
        if self.half_open_in_flight >= self.config.half_open_max_calls:
            self.rejected_calls += 1
            self.rejected_retry_after = 0.0
            return None
        self.half_open_in_flight += 1
        return Permit(self._generation, True, now if self.timed else None)

    def would_admit(self, now: float) -> bool:
        """Whether :meth:`acquire` would admit a call now, without changing anything."""
        state = self.state
        if state is _OPEN:
            return now >= self.open_until
        if state is _HALF_OPEN:
            return self.half_open_in_flight < self.config.half_open_max_calls
        return state is not _FORCED_OPEN

    # -- outcomes --------------------------------------------------------

    def on_success(self, permit: Permit, now: float, slow: bool | None = None) -> bool:
        """Record that an admitted call succeeded; True if that changed the state.

        ``slow`` None: slow if the permit was admitted at least
        ``slow_call_duration`` ago (timed breakers only). The asyncio wrapper
        records most fast CLOSED successes itself without calling this (see
        :attr:`window`); this is the whole rule, for every other outcome.
        """
        state = self.state
        if state is _DISABLED:
            return False
        self.last_success_at = now
        if permit.generation != self._generation:
            return False
        if slow is None:
            slow = self._is_slow(permit, now)
        if permit.trial:
            # Reopening and closing clear the trial counters; only a wait frees a permit.
            if slow and self.config.slow_call_rate_threshold:
                self._reopen("trial call was slow", now)
                return True
            self.half_open_successes += 1
            if self.half_open_successes >= self.config.success_threshold:
                self._close(f"{self.half_open_successes} trial calls succeeded", now)
                return True
            self.half_open_in_flight -= 1
            return False
        self.consecutive_failures = 0
        if slow:
            self.window.add(now, False, True)
            return state is _CLOSED and self._check_rates(now, ", last call slow")
        return self.window.add_success(now) and state is _CLOSED and self._check_rates(now, "")

    def on_failure(self, permit: Permit, now: float, reason: str, slow: bool | None = None) -> None:
        """Record that an admitted call failed in a way that counts."""
        if self.state is _DISABLED:
            return
        self.last_failure_at = now
        self.last_failure_reason = reason
        if permit.generation != self._generation:
            return
        if permit.trial:  # reopening clears the trial counters
            self._reopen(f"trial call failed: {reason}", now)
            return
        if slow is None:
            slow = self._is_slow(permit, now)
        self.consecutive_failures += 1
        self.window.add(now, True, slow)
        if self.state is not _CLOSED:
            return
        limit = self.config.consecutive_failures
        if limit and self.consecutive_failures >= limit:
            self._trip(
                TripCause.CONSECUTIVE_FAILURES,
                f"{self.consecutive_failures} consecutive failures, last: {reason}",
                now,
            )
            return
        self._check_rates(now, f", last: {reason}")

    def release(self, permit: Permit) -> None:
        """Hand back a permit whose call neither succeeded nor failed.

        Used for cancelled calls and for exceptions the classifier does not count:
        a trial permit becomes free for the next caller, and nothing is recorded.
        """
        if permit.trial and permit.generation == self._generation:
            self.half_open_in_flight -= 1

    def _is_slow(self, permit: Permit, now: float) -> bool:
        # Only a timed breaker's permits carry a start.
        started = permit.started
        return started is not None and now - started >= self.config.slow_call_duration

    def _check_rates(self, now: float, last: str) -> bool:
        w = self.window
        calls = w.calls
        if calls < self.config.minimum_calls:
            return False
        threshold = self.config.failure_threshold
        if threshold and w.failures / calls >= threshold:
            cause, what = TripCause.FAILURE_RATE, f"failure rate {w.failures / calls:.0%}"
        else:
            threshold = self.config.slow_call_rate_threshold
            if not (threshold and w.slow / calls >= threshold):
                return False
            cause, what = TripCause.SLOW_CALL_RATE, f"slow-call rate {w.slow / calls:.0%}"
        self._trip(cause, f"{what} over the last {calls} calls{w.label}{last}", now)
        return True

    # -- operator controls ----------------------------------------------

    def reset(self, now: float, reason: str = "manual reset") -> None:
        """Close the circuit, from any state, and forget every counter and the grown
        cooldown. A CLOSED circuit records a transition only if it forgot a level."""
        forgot = self.level(now) > 0
        self.cooldown_level = 0
        self.cooldown = self.config.cooldown_period
        if self.state is not _CLOSED:
            self._close(reason, now)
            return
        self.calm_since = now
        self._clear_counters()
        if forgot:
            self._move(_CLOSED, reason, now)
        else:
            self._new_generation()

    def force_open(self, now: float, reason: str, duration: float | None = None) -> None:
        """Open the circuit now for ``duration`` seconds (default: the current cooldown)."""
        if duration is not None:
            self.cooldown = duration
        self.tripped_by = self.tripped_by or self._figures(TripCause.FORCED)
        self.trips += 1
        self.opened_at = now
        self.open_until = now + self.cooldown
        self._leave(_OPEN, reason, now)

    def isolate(self, now: float, reason: str) -> None:
        """FORCED_OPEN: reject every call until :meth:`reset` (no cooldown, no trials)."""
        if self.state is not _FORCED_OPEN:
            self.tripped_by = self.tripped_by or self._figures(TripCause.ISOLATED)
            self.opened_at = now
            self._leave(_FORCED_OPEN, reason, now)

    def disable(self, now: float, reason: str) -> None:
        """DISABLED: admit every call and record nothing, until :meth:`reset`."""
        self._quiet_mode(_DISABLED, reason, now)

    def metrics_only(self, now: float, reason: str) -> None:
        """METRICS_ONLY: admit every call, record it, never trip, until :meth:`reset`."""
        self._quiet_mode(_METRICS_ONLY, reason, now)

    def _quiet_mode(self, mode: CircuitState, reason: str, now: float) -> None:
        if self.state is not mode:
            self.tripped_by = None
            self.opened_at = None
            self._leave(mode, reason, now)

    def restore_trips(self, trips: int) -> None:
        """Carry the trip count of an earlier run over (the circuit stays as it is)."""
        self.trips = trips

    def restore_open(self, now: float, remaining: float, cooldown: float, trips: int) -> None:
        """Resume an outage that started before a restart: OPEN for ``remaining`` seconds."""
        self.adopt_state(
            DurableState(
                version=self.version + 1,
                state=_OPEN,
                reason=f"restored after restart, {remaining:.0f}s left",
                opened_at=now - max(0.0, cooldown - remaining),
                open_until=now + remaining,
                cooldown=cooldown,
                cooldown_level=max(self.cooldown_level, self.cooldowns.level_of(cooldown) + 1),
                calm_since=None,
                trips=trips,
                consecutive_trips=max(1, self.consecutive_trips),
                tripped_by=None,
            ),
            now,
        )

    # -- the durable record ----------------------------------------------

    def export_state(self) -> DurableState:
        """The durable part of the state, times on this machine's clock."""
        return DurableState(
            version=self.version,
            state=self.state,
            reason=self.reason,
            opened_at=self.opened_at,
            open_until=self.open_until if self.state.recovering else None,
            cooldown=self.cooldown,
            cooldown_level=self.cooldown_level,
            calm_since=self.calm_since,
            trips=self.trips,
            consecutive_trips=self.consecutive_trips,
            tripped_by=self.tripped_by,
        )

    def adopt_state(self, record: DurableState, now: float, reason: str | None = None) -> bool:
        """Take ``record`` (times on this machine's clock) over; False if it is older
        than what this machine has. A change of state is a transition (with
        ``reason``, default the record's own) and starts a fresh window."""
        if record.version < self.version:
            return False
        self.trips = record.trips
        self.consecutive_trips = record.consecutive_trips
        self.cooldown = record.cooldown
        self.cooldown_level = min(self.cooldowns.top, max(0, record.cooldown_level))
        self.opened_at = record.opened_at
        # An OPEN record without an end admits a trial call at once.
        self.open_until = now if record.open_until is None else record.open_until
        self.calm_since = None
        if record.state is _CLOSED:
            self.calm_since = now if record.calm_since is None else record.calm_since
        self.tripped_by = record.tripped_by
        if record.state is not self.state:
            self._clear_counters()
            self._move(record.state, reason or record.reason, now)
        self.reason = reason or record.reason
        self.version = record.version
        return True

    # -- internals -------------------------------------------------------

    def _figures(self, cause: TripCause) -> TripFigures:
        w = self.window
        calls = w.calls
        return TripFigures(
            cause=cause,
            consecutive_failures=self.consecutive_failures,
            failure_rate=w.failures / calls if calls else 0.0,
            slow_call_rate=w.slow / calls if calls else 0.0,
            window_calls=calls,
            window_failures=w.failures,
            window_slow_calls=w.slow,
        )

    def _trip(self, cause: TripCause, reason: str, now: float) -> None:
        self.tripped_by = self._figures(cause)
        level = self.level(now)
        self.cooldown = self.cooldowns.draw(level)
        self._open(level, reason, now)

    def _reopen(self, reason: str, now: float) -> None:
        self.tripped_by = self.tripped_by or TripFigures(TripCause.TRIAL_FAILED)
        level = self.cooldown_level
        self.cooldown = self.cooldowns.draw(level, self.cooldown)
        self._open(level, reason, now)

    def _open(self, level: int, reason: str, now: float) -> None:
        self.calm_since = None
        self.cooldown_level = min(self.cooldowns.top, level + 1)
        self.consecutive_trips += 1
        self.trips += 1
        self.opened_at = now
        self.open_until = now + self.cooldown
        self._leave(_OPEN, reason, now)

    def _leave(self, new: CircuitState, reason: str, now: float) -> None:
        # Healthy time stops counting once the circuit leaves CLOSED: fold it in.
        self.cooldown_level = self.level(now)
        self.calm_since = None
        self._clear_counters()
        self._move(new, reason, now)

    def _close(self, reason: str, now: float) -> None:
        self.consecutive_trips = 0
        self.calm_since = now
        self.opened_at = None
        self.tripped_by = None
        self._clear_counters()
        self._move(_CLOSED, reason, now)

    def _new_generation(self) -> None:
        self._generation = next(self._generations)
        self.closed_permit = Permit(self._generation)

    def _move(self, new: CircuitState, reason: str, now: float) -> None:
        old = self.state
        self.state = new
        self._new_generation()
        self.version += 1
        self.reason = reason
        transition = Transition(old, new, reason, now)
        self.last_transition = transition
        self.transitions.append(transition)

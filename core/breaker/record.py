"""The durable part of a breaker's state, and the figures that tripped it.

:class:`DurableState` is what must outlive the process and could be shared
between processes: the state (or operator mode), when the outage ends, the
cooldown and its level, the trip counts, and a version that grows with every
transition. The window's counters are not in it: they are local and cheap, and
the CLOSED path never has to wait for anyone else to update them.

A machine exports it and adopts it (``export_state`` / ``adopt_state``); the
SQLite store keeps one per breaker, and a shared store can compare versions
before it writes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from edge_voice.core.breaker.states import CircuitState


class TripCause(StrEnum):
    """Why a circuit left CLOSED."""

    CONSECUTIVE_FAILURES = "consecutive_failures"
    FAILURE_RATE = "failure_rate"
    SLOW_CALL_RATE = "slow_call_rate"
    FORCED = "forced"
    """``force_open``: an operator opened it for a while."""
    ISOLATED = "isolated"
    """``isolate``: an operator holds it open until reset."""
    TRIAL_FAILED = "trial_failed"
    """A trial call failed and nothing older is known (a restored outage)."""


@dataclass(frozen=True, slots=True)
class TripFigures:
    """The window as it was when the circuit tripped: what ``/tts status`` quotes."""

    cause: TripCause
    consecutive_failures: int = 0
    failure_rate: float = 0.0
    slow_call_rate: float = 0.0
    window_calls: int = 0
    window_failures: int = 0
    window_slow_calls: int = 0

    def describe(self) -> str:
        """A short phrase: "5 consecutive failures", "failure rate 60% of 10 calls"..."""
        cause = self.cause
        if cause is TripCause.CONSECUTIVE_FAILURES:
            return f"{self.consecutive_failures} consecutive failures"
        if cause is TripCause.FAILURE_RATE:
            return f"failure rate {self.failure_rate:.0%} of {self.window_calls} calls"
        if cause is TripCause.SLOW_CALL_RATE:
            return f"slow-call rate {self.slow_call_rate:.0%} of {self.window_calls} calls"
        return {
            TripCause.FORCED: "opened by an operator",
            TripCause.ISOLATED: "isolated by an operator",
            TripCause.TRIAL_FAILED: "a failed trial call",
        }[cause]

    def as_dict(self) -> dict[str, Any]:
        """Plain data (str, int, float)."""
        return {
            "cause": self.cause.value,
            "consecutive_failures": self.consecutive_failures,
            "failure_rate": self.failure_rate,
            "slow_call_rate": self.slow_call_rate,
            "window_calls": self.window_calls,
            "window_failures": self.window_failures,
            "window_slow_calls": self.window_slow_calls,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TripFigures:
        """The inverse of :meth:`as_dict`; raises ValueError or TypeError on bad data."""
        return cls(
            cause=TripCause(data["cause"]),
            consecutive_failures=_count(data, "consecutive_failures"),
            failure_rate=_share(data, "failure_rate"),
            slow_call_rate=_share(data, "slow_call_rate"),
            window_calls=_count(data, "window_calls"),
            window_failures=_count(data, "window_failures"),
            window_slow_calls=_count(data, "window_slow_calls"),
        )


def _count(data: dict[str, Any], key: str) -> int:
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{key} {value!r}")
    return value


def _share(data: dict[str, Any], key: str) -> float:
    value = data[key]
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f"{key} {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class DurableState:
    """A breaker's state that outlives the window: small, frozen, comparable by version.

    Times are on one clock, named by whoever holds the record: the machine's own
    (monotonic) clock for :meth:`BreakerStateMachine.export_state`, the wall clock
    for :meth:`CircuitBreaker.export_state`. :meth:`shifted` moves between them.
    """

    version: int
    """Grows by one with every transition; a newer record wins."""
    state: CircuitState
    reason: str
    """Why the last transition happened (an operator's reason for a mode)."""
    opened_at: float | None
    open_until: float | None
    """While OPEN or HALF_OPEN: when a trial call may be (or was first) admitted."""
    cooldown: float
    """The cooldown of the current (or last) trip."""
    cooldown_level: int
    """The level the next trip opens at, before healthy time steps it down."""
    calm_since: float | None
    """While CLOSED: since when, the start of the level's stepping down."""
    trips: int
    consecutive_trips: int
    tripped_by: TripFigures | None

    def shifted(self, offset: float) -> DurableState:
        """The same record with every time moved by ``offset`` seconds (clock to clock)."""
        return replace(
            self,
            opened_at=None if self.opened_at is None else self.opened_at + offset,
            open_until=None if self.open_until is None else self.open_until + offset,
            calm_since=None if self.calm_since is None else self.calm_since + offset,
        )

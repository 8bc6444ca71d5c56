"""What a breaker shows: :class:`BreakerSnapshot`, typed, and its plain-dict form.

``/tts status``, the alerts, the diagnostics and the store read the typed
snapshot; ``CircuitBreaker.snapshot()`` and the seed API's health dicts are
:meth:`BreakerSnapshot.as_dict`. While the circuit is OPEN, HALF_OPEN or
FORCED_OPEN its window is empty (nothing is recorded while it rejects), so the
failure figures are the ones that tripped it, kept in ``tripped_by``: the
status says "OPEN after 5 consecutive failures", not "OPEN, 0 failures".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from edge_voice.core.breaker.record import DurableState, TripFigures
from edge_voice.core.breaker.states import CircuitState


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """One breaker at one moment. Times are aware UTC datetimes (or None);
    durations are seconds; rates are shares in [0, 1]."""

    name: str
    state: CircuitState
    consecutive_failures: int = 0
    failure_rate: float = 0.0
    slow_call_rate: float = 0.0
    window_calls: int = 0
    window_failures: int = 0
    window_slow_calls: int = 0
    window_type: str = "count"
    window_size: int = 10
    window_duration: float = 60.0
    tripped_by: TripFigures | None = None
    """What opened it (or was true when an operator did); None while it admits all."""
    last_failure: datetime | None = None
    last_failure_reason: str | None = None
    last_success: datetime | None = None
    opened_at: datetime | None = None
    retry_after: float = 0.0
    cooldown: float = 60.0
    """The current trip's cooldown; while admitting all, the one the next trip starts with."""
    cooldown_level: int = 0
    trips: int = 0
    consecutive_trips: int = 0
    half_open_in_flight: int = 0
    half_open_successes: int = 0
    rejected_calls: int = 0
    last_transition_reason: str | None = None
    version: int = 0
    durable: DurableState | None = None
    """The durable record, times on the wall clock (what the store saves)."""

    @property
    def circuit_open(self) -> bool:
        """Whether it rejects calls outright (OPEN or FORCED_OPEN)."""
        return self.state is CircuitState.OPEN or self.state is CircuitState.FORCED_OPEN

    @property
    def half_open(self) -> bool:
        """Whether trial calls decide what happens next."""
        return self.state is CircuitState.HALF_OPEN

    @property
    def window(self) -> str:
        """The window in words: "10 calls" or "60 s"."""
        if self.window_type == "count":
            return f"{self.window_size} calls"
        return f"{self.window_duration:g} s"

    def as_dict(self) -> dict[str, Any]:
        """Plain data with every key the seed API's snapshot had, and the new ones."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "durable"}
        data["state"] = self.state.value
        data["circuit_open"] = self.circuit_open
        data["half_open"] = self.half_open
        data["tripped_by"] = None if self.tripped_by is None else self.tripped_by.as_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BreakerSnapshot:
        """Read a snapshot back from :meth:`as_dict` (or a hand-written subset: absent
        keys take their defaults). Raises KeyError without ``name`` and ``state``,
        ValueError for an unknown state."""
        known = {f.name for f in fields(cls)} - {"durable"}
        values = {key: data[key] for key in known if key in data}
        values["state"] = CircuitState(str(data["state"]))  # a StrEnum is its value
        values["name"] = str(data["name"])
        tripped = data.get("tripped_by")
        values["tripped_by"] = (
            TripFigures.from_dict(dict(tripped)) if isinstance(tripped, Mapping) else None
        )
        return cls(**values)

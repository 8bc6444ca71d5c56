"""A breaker's :class:`DurableState` as the shared store keeps it: pure conversions.

Processes do not share a clock, Redis does. So a process sends durations ("opened 3 s
ago, open for 57 s more, calm for 10 s"), the transition script turns them into times on
the Redis server's clock (``TIME``), and a reader turns those back into its own wall
clock with the server's "now" that came with the answer. A skewed machine clock moves
nothing: only differences of one clock are ever compared.

HALF_OPEN is never stored: it is an OPEN outage whose time is up, and each process
moves to it on its own when it next admits a call (as the SQLite store does).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edge_voice.core.breaker import CircuitState, DurableState, TripFigures
from edge_voice.core.shared_state.errors import SharedStateError, SharedStateErrorKind

_STORED = frozenset(s for s in CircuitState if s is not CircuitState.HALF_OPEN)


def record_fields(record: DurableState) -> dict[str, str]:
    """A stored record's hash fields, as the transition script writes them."""
    return {
        "version": str(record.version),
        "state": record.state.value,
        "reason": record.reason,
        "opened_at": _time(record.opened_at),
        "open_until": _time(record.open_until),
        "cooldown": repr(record.cooldown),
        "cooldown_level": str(record.cooldown_level),
        "calm_since": _time(record.calm_since),
        "trips": str(record.trips),
        "consecutive_trips": str(record.consecutive_trips),
        "tripped_by": "" if record.tripped_by is None else _figures(record.tripped_by),
    }


def on_wall_clock(stored: DurableState, server_now: float, wall_now: float) -> DurableState:
    """A stored record (server-clock times) on a process's wall clock, given the
    server's time of the answer that brought it."""
    return stored.shifted(wall_now - server_now)


@dataclass(frozen=True, slots=True)
class Payload:
    """What a process sends with a transition: no times, only durations."""

    state: CircuitState
    reason: str
    cooldown: float
    cooldown_level: int
    trips: int
    consecutive_trips: int
    tripped_by: str
    opened_ago: float | None
    open_for: float | None
    calm_for: float | None

    @classmethod
    def of(cls, record: DurableState, wall_now: float) -> Payload:
        """``record`` (wall-clock times, as ``CircuitBreaker.export_state`` gives) now."""
        state = record.state
        open_for = None
        if state.recovering:
            # HALF_OPEN is stored as an OPEN outage whose time is up.
            state = CircuitState.OPEN
            ends = wall_now if record.open_until is None else record.open_until
            open_for = max(0.0, min(ends - wall_now, record.cooldown))

        def ago(at: float | None) -> float | None:
            return None if at is None else max(0.0, wall_now - at)

        return cls(
            state=state,
            reason=record.reason[:500],
            cooldown=record.cooldown,
            cooldown_level=record.cooldown_level,
            trips=record.trips,
            consecutive_trips=record.consecutive_trips,
            tripped_by="" if record.tripped_by is None else _figures(record.tripped_by),
            opened_ago=ago(record.opened_at),
            open_for=open_for,
            calm_for=ago(record.calm_since),
        )

    def args(self) -> list[str]:
        """The script's ARGV after its own leading arguments, in the script's order."""
        return [
            self.state.value,
            self.reason,
            repr(self.cooldown),
            str(self.cooldown_level),
            str(self.trips),
            str(self.consecutive_trips),
            self.tripped_by,
            _time(self.opened_ago),
            _time(self.open_for),
            _time(self.calm_for),
        ]

    def stored(self, version: int, server_now: float) -> DurableState:
        """What the transition script makes of this payload at ``server_now`` (times on
        the server's clock): the same arithmetic, for the in-memory store and the tests."""

        def back(duration: float | None) -> float | None:
            return None if duration is None else server_now - duration

        return DurableState(
            version=version,
            state=self.state,
            reason=self.reason,
            opened_at=back(self.opened_ago),
            open_until=None if self.open_for is None else server_now + self.open_for,
            cooldown=self.cooldown,
            cooldown_level=self.cooldown_level,
            calm_since=back(self.calm_for),
            trips=self.trips,
            consecutive_trips=self.consecutive_trips,
            tripped_by=None if not self.tripped_by else _parse_figures(self.tripped_by),
        )


def parse_record(raw: Mapping[str, str] | Sequence[str | bytes]) -> DurableState | None:
    """A stored record (times on the server's clock) from a hash (a mapping, or
    HGETALL's flat list); None for an empty hash.

    Raises :class:`SharedStateError` (``protocol``) for fields that make no sense.
    """
    fields = _as_mapping(raw)
    if not fields:
        return None
    try:
        state = CircuitState(fields["state"])
        if state not in _STORED:
            raise ValueError(f"state {state.value} is never stored")
        record = DurableState(
            version=_count(fields["version"]),
            state=state,
            reason=fields.get("reason", ""),
            opened_at=_optional_time(fields.get("opened_at", "")),
            open_until=_optional_time(fields.get("open_until", "")),
            cooldown=_positive(fields["cooldown"]),
            cooldown_level=_count(fields["cooldown_level"]),
            calm_since=_optional_time(fields.get("calm_since", "")),
            trips=_count(fields["trips"]),
            consecutive_trips=_count(fields["consecutive_trips"]),
            tripped_by=_parse_figures(fields["tripped_by"]) if fields.get("tripped_by") else None,
        )
    except (KeyError, ValueError, TypeError) as bad:
        raise SharedStateError(SharedStateErrorKind.PROTOCOL, f"unusable record: {bad}") from None
    if state is CircuitState.OPEN and record.open_until is None:
        raise SharedStateError(SharedStateErrorKind.PROTOCOL, "an OPEN record without its end")
    return record


def parse_time(raw: str | bytes) -> float:
    """The server's "now" as the scripts return it (seconds, as text)."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise SharedStateError(SharedStateErrorKind.PROTOCOL, f"time {raw!r}") from None
    if not math.isfinite(value):
        raise SharedStateError(SharedStateErrorKind.PROTOCOL, f"time {raw!r}")
    return value


def _as_mapping(raw: Mapping[str, str] | Sequence[str | bytes]) -> dict[str, str]:
    if isinstance(raw, Mapping):
        return {_text(k): _text(v) for k, v in raw.items()}
    if len(raw) % 2:
        raise SharedStateError(SharedStateErrorKind.PROTOCOL, "a hash with an odd field count")
    items = [_text(x) for x in raw]
    return dict(zip(items[::2], items[1::2], strict=True))


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _time(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def _optional_time(raw: str) -> float | None:
    if raw == "":
        return None
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(f"time {raw!r}")
    return value


def _count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(f"negative count {raw!r}")
    return value


def _positive(raw: str) -> float:
    value = float(raw)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"cooldown {raw!r}")
    return value


def _figures(figures: TripFigures) -> str:
    return json.dumps(figures.as_dict(), separators=(",", ":"))


def _parse_figures(raw: str) -> TripFigures:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("tripped_by is not an object")
    return TripFigures.from_dict(data)

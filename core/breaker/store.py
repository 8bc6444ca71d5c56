"""Breaker state that survives a restart, kept in one SQLite file.

A bot restarted during an outage should stay OPEN until the cooldown it was
serving ends, instead of sending the first messages after every restart to a
service that is known to be down; an operator's mode (isolated, disabled,
metrics only) must survive it too, and so must the cooldown level a flapping
service has earned. :class:`BreakerStateStore` writes each breaker's
:class:`~core.breaker.record.DurableState` as one row on every transition and
puts each breaker back where it was on start.

Times are stored on the wall clock (monotonic readings mean nothing after a
restart). A wall clock that went backwards, a row that makes no sense, or a
file that is not a readable database all end the same way: a warning, and the
breaker starts CLOSED. Nothing here raises into the caller; a store that cannot
write logs why and the breakers work on without it.

Writes happen synchronously in the listener, on the event loop. With WAL and
``synchronous=NORMAL`` a row write costs about 20 µs (p99 under 0.1 ms, the
occasional checkpoint a few ms), and transitions are rare: they are bounded by
the cooldowns. A worker thread would cost more than it saves and would have to
keep the writes in order.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from edge_voice.core.breaker.breaker import CircuitBreaker
from edge_voice.core.breaker.events import Listener, TransitionEvent
from edge_voice.core.breaker.record import DurableState, TripFigures
from edge_voice.core.breaker.states import CircuitState
from edge_voice.core.breaker.store_db import StateDatabase
from edge_voice.core.clock import WallClock, wall_time

log = logging.getLogger(__name__)

STATE_FILE_NAME = "breaker_state.sqlite3"

CLOCK_SKEW_TOLERANCE = 2.0
"""Seconds a row may appear to come from the future before the clock counts as turned back."""


class RestoreOutcome(StrEnum):
    """What :meth:`BreakerStateStore.restore` did to a breaker."""

    OPEN = "open"
    """Resumed an outage: OPEN for the rest of its cooldown."""
    TRIAL = "trial"
    """The outage's cooldown ended while the bot was down: the next call is a trial."""
    CLOSED = "closed"
    """The stored state was CLOSED; its trips and cooldown level were carried over."""
    MODE = "mode"
    """An operator's mode (FORCED_OPEN, DISABLED, METRICS_ONLY) was resumed."""
    DISCARDED = "discarded"
    """The row was unusable (clock turned back, nonsense values): left CLOSED, warned."""
    NOTHING_STORED = "nothing stored"
    """No row for this breaker (first start, or the file was just replaced)."""
    UNAVAILABLE = "unavailable"
    """The file could not be read (locked, unwritable directory): left CLOSED, warned."""
    SKIPPED = "skipped"
    """The breaker had already left CLOSED in this process; its live state wins."""


_STORED_STATES = {
    s.value
    for s in CircuitState
    if s is not CircuitState.HALF_OPEN  # stored as OPEN with no time left
}


@dataclass(frozen=True, slots=True)
class StoredBreaker:
    """One breaker's persisted row. ``state`` is never HALF_OPEN (stored as OPEN
    with no time left)."""

    name: str
    state: CircuitState
    open_until_wall: float | None
    cooldown: float
    trips: int
    consecutive_trips: int
    saved_at_wall: float
    cooldown_level: int = 0
    calm_since_wall: float | None = None
    version: int = 0
    reason: str = ""
    tripped_by: TripFigures | None = None


class BreakerGroup(Protocol):
    """Something owning breakers, such as ``TTSService``."""

    @property
    def breakers(self) -> Sequence[CircuitBreaker]:
        """Every breaker the group has now."""
        ...

    def add_listener(self, listener: Listener) -> None:
        """Deliver transitions of every breaker, present and future, to ``listener``."""
        ...


class BreakerStateStore:
    """Persists breaker states, trip counts and outage ends in the SQLite file ``path``.

    Call :meth:`attach` (or :meth:`attach_service`) once at start-up with fresh
    breakers, and :meth:`close` at shutdown. The file and its directory are
    created when missing. Safe to call from any thread; meant for one process.
    """

    def __init__(self, path: str | os.PathLike[str], *, wall_clock: WallClock = wall_time) -> None:
        self.path = Path(path)
        self._wall = wall_clock
        self._lock = threading.RLock()
        self._db = StateDatabase(self.path)
        self._closed = False
        # Trips from earlier runs that a CLOSED breaker cannot be told about
        # (it adopts no row): added to what it counts itself.
        self._trip_offsets: dict[str, int] = {}
        self._attached: list[CircuitBreaker] = []
        self._groups: list[BreakerGroup] = []

    @classmethod
    def in_data_dir(
        cls, data_dir: str | os.PathLike[str], *, wall_clock: WallClock = wall_time
    ) -> BreakerStateStore:
        """A store in the configured data directory (``[state] data_dir``)."""
        return cls(Path(data_dir) / STATE_FILE_NAME, wall_clock=wall_clock)

    # -- wiring ------------------------------------------------------------

    def attach(self, breakers: Iterable[CircuitBreaker]) -> dict[str, RestoreOutcome]:
        """Restore each breaker, then save it on every transition from now on."""
        outcomes: dict[str, RestoreOutcome] = {}
        for breaker in breakers:
            if any(breaker is known for known in self._attached):
                continue
            outcomes[breaker.name] = self.restore(breaker)
            breaker.add_listener(self._on_transition)
            self._attached.append(breaker)
        return outcomes

    def attach_service(self, service: BreakerGroup) -> dict[str, RestoreOutcome]:
        """Restore the breakers ``service`` has, and save every transition of its
        breakers, including ones it creates later (those start CLOSED)."""
        if any(service is known for known in self._groups):
            return {}
        outcomes = {breaker.name: self.restore(breaker) for breaker in service.breakers}
        service.add_listener(self._on_transition)
        self._groups.append(service)
        return outcomes

    def _on_transition(self, event: TransitionEvent) -> None:
        # After close() the file is closed too: a save is a no-op, nothing to check here.
        if event.snapshot.durable is not None:
            self._save(event.breaker, event.snapshot.durable)

    # -- saving ------------------------------------------------------------

    def save(self, breaker: CircuitBreaker) -> None:
        """Write ``breaker``'s current state now. Logs instead of raising."""
        self._save(breaker.name, breaker.export_state())

    def _save(self, name: str, record: DurableState) -> None:
        # A listener must never break a call, and a lost row only costs the
        # restart-time protection: log everything, raise nothing.
        try:
            with self._lock:
                self._db.upsert(self._row(name, record, self._wall()))
        except Exception:
            log.exception("breaker state: could not save %r", name)

    def _row(self, name: str, record: DurableState, now_wall: float) -> tuple[object, ...]:
        state = record.state
        open_until = None
        if state.recovering:
            # HALF_OPEN is stored as an OPEN outage that has ended
            # (its open_until has passed), so a restart goes straight to a trial call.
            state = CircuitState.OPEN
            ends = now_wall if record.open_until is None else record.open_until
            open_until = min(ends, now_wall + record.cooldown)
        tripped = None if record.tripped_by is None else json.dumps(record.tripped_by.as_dict())
        return (
            name,
            state.value,
            open_until,
            record.cooldown,
            self._trip_offset(name) + record.trips,
            record.consecutive_trips,
            now_wall,
            record.cooldown_level,
            record.calm_since,
            record.version,
            record.reason,
            tripped,
        )

    def _trip_offset(self, name: str) -> int:
        offset = self._trip_offsets.get(name)
        if offset is None:
            # Not restored by this store (a breaker created after attach_service):
            # keep counting from what an earlier run stored.
            rows = self._select(name)
            offset = 0
            if rows:
                with contextlib.suppress(ValueError, KeyError):
                    offset = _parse_row(rows[0]).trips
            self._trip_offsets[name] = offset
        return offset

    # -- restoring ---------------------------------------------------------

    def load(self, name: str) -> StoredBreaker | None:
        """The stored row for ``name``; None when there is none or it is unusable."""
        try:
            rows = self._select(name)
            return _parse_row(rows[0]) if rows else None
        except Exception:
            log.warning("breaker state: stored row for %r is unusable", name, exc_info=True)
            return None

    def restore(self, breaker: CircuitBreaker) -> RestoreOutcome:
        """Put a freshly created, CLOSED ``breaker`` back into its stored state.

        An outage still running resumes OPEN for the time it has left. An outage
        whose cooldown ran out while the bot was down is restored OPEN with no
        time left, so the next call is a trial, not a fully trusted CLOSED
        circuit: the last thing known about the service is that it was failing,
        and nobody has seen it recover. One trial call is what the cooldown's
        end would have cost anyway, a failing trial reopens with the grown
        cooldown instead of waiting for a fresh run of failures, and a
        successful run of trials closes it as usual. An operator's mode
        (FORCED_OPEN, DISABLED, METRICS_ONLY) resumes as it was left, with its
        reason; a CLOSED row brings its trips and cooldown level, the level still
        stepping down from when the circuit closed.

        A row saved after "now" (the wall clock went backwards) or with
        nonsense values is discarded: the breaker stays CLOSED, a warning is
        logged, and the row is overwritten. Never raises.
        """
        try:
            return self._restore(breaker)
        except Exception:
            log.exception("breaker state: could not restore %r; it starts CLOSED", breaker.name)
            return RestoreOutcome.UNAVAILABLE

    def _restore(self, breaker: CircuitBreaker) -> RestoreOutcome:
        name = breaker.name
        if breaker.state is not CircuitState.CLOSED:
            log.info("breaker state: %r is already %s; not restored", name, breaker.state.value)
            return RestoreOutcome.SKIPPED
        rows = self._select(name)
        if rows is None:
            return RestoreOutcome.UNAVAILABLE
        if not rows:
            self._trip_offsets[name] = 0
            return RestoreOutcome.NOTHING_STORED
        try:
            row = _parse_row(rows[0])
        except (ValueError, KeyError) as bad:
            return self._discard(breaker, f"stored row is unusable ({bad})")
        now_wall = self._wall()
        if row.saved_at_wall > now_wall + CLOCK_SKEW_TOLERANCE:
            return self._discard(
                breaker,
                f"it was saved {row.saved_at_wall - now_wall:.0f}s in the future "
                "(the wall clock went backwards)",
            )
        record = DurableState(
            version=row.version,
            state=row.state,
            reason=row.reason,
            opened_at=None,
            open_until=None,
            cooldown=row.cooldown,
            cooldown_level=row.cooldown_level,
            calm_since=None,
            trips=row.trips,
            consecutive_trips=row.consecutive_trips,
            tripped_by=row.tripped_by,
        )
        self._trip_offsets[name] = 0
        if row.state is CircuitState.CLOSED:
            # A calm stretch that began before the restart still steps the level down.
            since = row.saved_at_wall if row.calm_since_wall is None else row.calm_since_wall
            breaker.adopt_state(replace(record, calm_since=min(since, now_wall)))
            return RestoreOutcome.CLOSED
        if row.state is not CircuitState.OPEN:
            breaker.adopt_state(
                replace(record, opened_at=row.saved_at_wall),
                f"restored after restart: {row.reason or row.state.value}",
            )
            log.info("breaker state: %r restored %s", name, row.state.value)
            return RestoreOutcome.MODE
        cooldown = row.cooldown
        if cooldown > breaker.config.max_cooldown_period:
            log.info(
                "breaker state: %r cooldown %.0fs capped to the configured maximum %.0fs",
                name,
                cooldown,
                breaker.config.max_cooldown_period,
            )
            cooldown = breaker.config.max_cooldown_period
        assert row.open_until_wall is not None  # _parse_row checks OPEN rows have one
        remaining = min(cooldown, max(0.0, row.open_until_wall - now_wall))
        breaker.adopt_state(
            replace(
                record,
                opened_at=now_wall - max(0.0, cooldown - remaining),
                open_until=now_wall + remaining,
                cooldown=cooldown,
                cooldown_level=max(1, row.cooldown_level),
                consecutive_trips=max(1, row.consecutive_trips),
            ),
            f"restored after restart, {remaining:.0f}s left",
        )
        log.info(
            "breaker state: %r restored OPEN, %.0fs of %.0fs cooldown left",
            name,
            remaining,
            cooldown,
        )
        return RestoreOutcome.OPEN if remaining > 0 else RestoreOutcome.TRIAL

    def _discard(self, breaker: CircuitBreaker, why: str) -> RestoreOutcome:
        log.warning(
            "breaker state: ignoring the stored state of %r in %s: %s; it starts CLOSED",
            breaker.name,
            self.path,
            why,
        )
        # Overwrite the bad row so the next start does not warn again (the trips of a
        # row that could be read still count: see _trip_offset).
        self.save(breaker)
        return RestoreOutcome.DISCARDED

    def _select(self, name: str) -> list[Any] | None:
        with self._lock:
            return self._db.select(name)

    # -- lifetime ------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran: nothing is saved any more."""
        return self._closed

    def close(self) -> None:
        """Stop saving and close the file. Idempotent; later saves do nothing.

        Breakers attached with :meth:`attach` lose the listener; a service has
        no way to remove one, so its listener stays and does nothing.
        """
        with self._lock:
            self._closed = True
            for breaker in self._attached:
                breaker.remove_listener(self._on_transition)
            self._attached.clear()
            self._groups.clear()
            self._db.close()

    def __enter__(self) -> BreakerStateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _parse_row(values: Sequence[Any]) -> StoredBreaker:
    """Check one row's values; ValueError (or KeyError) says what is wrong with them."""
    (name, state, open_until, cooldown, trips, consecutive, saved_at,
     level, calm_since, version, reason, tripped) = values  # fmt: skip
    if state not in _STORED_STATES:
        raise ValueError(f"state {state!r}")
    for label, number in (("cooldown", cooldown), ("saved_at_wall", saved_at)):
        if not _finite(number):
            raise ValueError(f"{label} {number!r}")
    if cooldown <= 0:
        raise ValueError(f"cooldown {cooldown!r}")
    for label, count in (
        ("trips", trips),
        ("consecutive_trips", consecutive),
        ("cooldown_level", level),
        ("version", version),
    ):
        if not isinstance(count, int) or count < 0:
            raise ValueError(f"{label} {count!r}")
    if calm_since is not None and not _finite(calm_since):
        raise ValueError(f"calm_since_wall {calm_since!r}")
    if not isinstance(reason, str):
        raise ValueError(f"reason {reason!r}")
    if state == CircuitState.OPEN.value:
        if not _finite(open_until):
            raise ValueError(f"open_until_wall {open_until!r}")
        # Written as at most saved_at + cooldown.
        if open_until - saved_at > cooldown + CLOCK_SKEW_TOLERANCE:
            raise ValueError(
                f"outage ends {open_until - saved_at:.0f}s after it was saved, "
                f"longer than its cooldown of {cooldown:.0f}s"
            )
    return StoredBreaker(
        name=str(name),
        state=CircuitState(state),
        open_until_wall=float(open_until) if state == CircuitState.OPEN.value else None,
        cooldown=float(cooldown),
        trips=trips,
        consecutive_trips=consecutive,
        saved_at_wall=float(saved_at),
        cooldown_level=level,
        calm_since_wall=None if calm_since is None else float(calm_since),
        version=version,
        reason=reason,
        tripped_by=None if tripped is None else TripFigures.from_dict(json.loads(tripped)),
    )


def _finite(number: object) -> bool:
    return isinstance(number, int | float) and math.isfinite(number)

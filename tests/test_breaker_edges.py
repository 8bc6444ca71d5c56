"""The breaker's less travelled paths: compatibility methods, errors, a store that fails."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from edge_voice.core.breaker import (
    BreakerSnapshot,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    TransitionEvent,
    store_db,
)
from edge_voice.core.breaker.events import ListenerSet
from edge_voice.core.breaker.store import STATE_FILE_NAME, BreakerStateStore, RestoreOutcome
from edge_voice.core.clock import FakeClock
from tests.breaker_store_support import (
    Downstream,
    new_breaker,
    rebooted,
    start,
    store_warnings,
    trip,
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / STATE_FILE_NAME


def test_state_properties_and_the_rejection_error() -> None:
    assert [s.value for s in CircuitState if s.admits_all] == ["CLOSED", "DISABLED", "METRICS_ONLY"]
    assert [s.value for s in CircuitState if s.recovering] == ["OPEN", "HALF_OPEN"]
    error = CircuitOpenError("edge", CircuitState.FORCED_OPEN, 60.0)
    assert (error.name, error.state, error.retry_after) == ("edge", CircuitState.FORCED_OPEN, 60.0)
    assert str(error) == "circuit 'edge' is FORCED_OPEN; retry after 60.0s"


def test_compatibility_methods_and_repr() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("edge", clock=clock, wall_clock=clock.wall)
    breaker.restore_trips(4)
    assert breaker.typed_snapshot().trips == 4
    breaker.restore_open(30.0, 120.0, 5)
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after == 30.0
    assert repr(breaker) == "<CircuitBreaker 'edge' OPEN>"
    clock.advance(30)
    assert breaker.would_admit()
    breaker.acquire()
    assert not breaker.would_admit()  # HALF_OPEN, its one trial taken


async def test_a_closed_entry_that_expires_old_calls_can_trip() -> None:
    clock = FakeClock()
    config = CircuitBreakerConfig(
        consecutive_failures=0, minimum_calls=4, window_duration=10.0, window_buckets=10
    )
    breaker = CircuitBreaker("edge", config, clock, wall_clock=clock.wall)
    seen: list[TransitionEvent] = []
    breaker.add_listener(seen.append)
    for _ in range(4):
        async with breaker:
            pass
    clock.advance(5)
    for _ in range(3):
        breaker.record_failure(breaker.acquire(), "down")
    clock.advance(5.5)
    async with breaker:
        pass
    assert breaker.state is CircuitState.OPEN
    assert "failure rate 75%" in seen[-1].reason


def test_listener_set_edges(caplog: pytest.LogCaptureFixture) -> None:
    listeners = ListenerSet()
    listeners.remove(print)  # unknown: ignored

    class Awaitable:
        def __await__(self) -> Any:
            yield

    listeners.add(lambda event: Awaitable())
    event = TransitionEvent(
        "edge", CircuitState.CLOSED, CircuitState.OPEN, "x", None,  # type: ignore[arg-type]
        BreakerSnapshot("edge", CircuitState.OPEN),
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        listeners.emit(event)
    assert "no running loop" in caplog.text


# -- the store, when things go wrong ---------------------------------------------------


async def test_attaching_twice_and_a_breaker_that_already_left_closed(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    assert store.attach([breaker]) == {}
    other = new_breaker(clock, "other")
    other.isolate("busy")
    assert store.restore(other) is RestoreOutcome.SKIPPED
    assert not store.closed
    store.close()
    assert store.closed


class Group:
    def __init__(self, breakers: list[CircuitBreaker]) -> None:
        self.breakers = breakers

    def add_listener(self, listener: Any) -> None:
        for breaker in self.breakers:
            breaker.add_listener(listener)


async def test_a_later_breaker_keeps_counting_from_a_stored_row(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    store.close()

    store = BreakerStateStore(path, wall_clock=clock.wall)
    assert store.attach_service(Group([])) == {}
    group = Group([])
    store.attach_service(group)
    assert store.attach_service(group) == {}
    late = new_breaker(clock)
    group.breakers.append(late)
    late.add_listener(store._on_transition)
    await trip(late, Downstream())
    row = store.load("edge")
    assert row is not None
    assert row.trips == 2
    store.close()


async def test_events_without_a_record_and_saves_that_fail(
    path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    store._on_transition(
        TransitionEvent(
            "edge",
            CircuitState.CLOSED,
            CircuitState.OPEN,
            "hand-made",
            None,  # type: ignore[arg-type]
            BreakerSnapshot("edge", CircuitState.OPEN),
        )
    )
    assert store.load("edge") is None

    def broken(row: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store._db, "upsert", broken)
    await trip(breaker, Downstream())
    assert "could not save 'edge'" in caplog.text
    monkeypatch.undo()

    monkeypatch.setattr(store, "_select", lambda name: [("garbage",)])
    assert store.load("edge") is None
    monkeypatch.setattr(store, "_restore", lambda b: 1 / 0)
    assert store.restore(new_breaker(clock)) is RestoreOutcome.UNAVAILABLE
    store.close()


async def test_a_reason_that_is_not_text_discards_the_row(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    breaker.isolate("x")
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE breaker_state SET reason = X'00ff'")
    db.close()
    _, store, outcome = start(path, rebooted(clock, after=1))
    assert outcome is RestoreOutcome.DISCARDED
    store.close()


async def test_a_v2_table_without_its_version_is_adopted(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 0")
    db.close()
    _, store, outcome = start(path, rebooted(clock, after=1))
    assert outcome is RestoreOutcome.OPEN
    store.close()


async def test_a_migration_that_fails_is_rolled_back(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE breaker_state (name TEXT PRIMARY KEY, state TEXT NOT NULL, "
        "open_until_wall REAL, cooldown REAL NOT NULL, trips INTEGER NOT NULL, "
        "consecutive_trips INTEGER NOT NULL, saved_at_wall REAL NOT NULL)"
    )
    db.execute("INSERT INTO breaker_state VALUES ('edge', 'CLOSED', NULL, 60, 1, 0, 0)")
    db.execute(
        "CREATE TRIGGER no_updates BEFORE UPDATE ON breaker_state "
        "BEGIN SELECT RAISE(ABORT, 'read only'); END"
    )
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()

    _, store, outcome = start(path, FakeClock())
    assert outcome is RestoreOutcome.UNAVAILABLE
    assert any("read only" in m for m in store_warnings(caplog))
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (1,)
        assert len(db.execute("PRAGMA table_info(breaker_state)").fetchall()) == 7
    db.close()


class CorruptOnce:
    """A connection whose first statement finds the file corrupt."""

    def __init__(self, real: sqlite3.Connection) -> None:
        self.real = real
        self.failed = False

    def execute(self, sql: str, params: object = ()) -> Any:
        if not self.failed:
            self.failed = True
            error = sqlite3.DatabaseError("database disk image is malformed")
            error.sqlite_errorcode = sqlite3.SQLITE_CORRUPT  # type: ignore[attr-defined]
            raise error
        return self.real.execute(sql, params)  # type: ignore[arg-type]

    def close(self) -> None:
        self.real.close()


def test_corruption_found_mid_use_moves_the_file_aside_once(
    path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = store_db.StateDatabase(path)
    real_open = store_db.StateDatabase._open
    opened: list[CorruptOnce] = []

    def corrupt_first(self: store_db.StateDatabase) -> Any:
        conn = CorruptOnce(real_open(self))
        conn.failed = bool(opened)
        opened.append(conn)
        return conn

    monkeypatch.setattr(store_db.StateDatabase, "_open", corrupt_first)
    assert db.select("edge") == []
    assert len(opened) == 2
    assert any("not a usable database" in m for m in store_warnings(caplog))

    opened.clear()
    monkeypatch.setattr(store_db.StateDatabase, "_open", lambda self: CorruptOnce(real_open(self)))
    db.close()
    db = store_db.StateDatabase(path)
    assert db.select("edge") is None  # corrupt again after the retry: give up
    db.close()


def test_a_corrupt_file_that_cannot_be_replaced(
    path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage" * 1000)
    error = sqlite3.DatabaseError("file is not a database")
    error.sqlite_errorcode = sqlite3.SQLITE_NOTADB  # type: ignore[attr-defined]
    calls: list[int] = []

    def refuse(self: store_db.StateDatabase) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise error
        raise OSError("read-only file system")

    monkeypatch.setattr(store_db.StateDatabase, "_open", refuse)
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(PermissionError("no")))
    db = store_db.StateDatabase(path)
    assert db.select("edge") is None
    messages = store_warnings(caplog)
    assert any("cannot move" in m for m in messages)
    assert any("cannot recreate" in m for m in messages)
    assert not path.exists()  # deleted, since it could not be moved

    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(FileNotFoundError()))
    db._quarantine(error)  # the file is already gone: nothing to move
    db.close()

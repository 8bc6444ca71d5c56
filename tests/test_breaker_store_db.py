"""The breaker state file (core/breaker/store_db.py): bad, locked, missing and closed files.

See :mod:`tests.breaker_store_support` for what a "restart" is here.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest

from edge_voice.core.breaker import CircuitState
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


async def test_corrupt_file_starts_closed_and_is_replaced(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = b"\x00not a database\xff" * 500
    path.parent.mkdir(parents=True)
    path.write_bytes(garbage)
    clock = FakeClock()

    breaker, store, outcome = start(path, clock)
    assert breaker.state is CircuitState.CLOSED
    assert outcome is RestoreOutcome.NOTHING_STORED
    assert any("not a usable database" in message for message in store_warnings(caplog))
    assert path.with_name(path.name + ".corrupt").read_bytes() == garbage

    await trip(breaker, Downstream())
    store.close()
    breaker, store, outcome = start(path, rebooted(clock, after=1))
    assert outcome is RestoreOutcome.OPEN
    assert breaker.state is CircuitState.OPEN
    store.close()


async def test_an_unrecognised_table_is_kept_aside_and_replaced(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE breaker_state (name TEXT, colour TEXT)")
    db.execute("INSERT INTO breaker_state VALUES ('edge', 'blue')")
    db.execute("CREATE TABLE breaker_state_unrecognised_1 (x)")
    db.commit()
    db.close()
    clock = FakeClock()

    breaker, store, outcome = start(path, clock)
    assert outcome is RestoreOutcome.NOTHING_STORED
    assert any("kept as breaker_state_unrecognised_2" in m for m in store_warnings(caplog))
    await trip(breaker, Downstream())
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT * FROM breaker_state_unrecognised_2").fetchall() == [
            ("edge", "blue")
        ]
    db.close()
    _, store, outcome = start(path, rebooted(clock, after=1))
    assert outcome is RestoreOutcome.OPEN
    store.close()


async def test_a_newer_schema_is_refused_and_never_written(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE breaker_state (name TEXT, from_the_future BLOB)")
    db.execute("PRAGMA user_version = 7")
    db.commit()
    db.close()
    before = path.read_bytes()
    clock = FakeClock()

    breaker, store, outcome = start(path, clock)
    assert outcome is RestoreOutcome.UNAVAILABLE
    assert breaker.state is CircuitState.CLOSED
    assert any("newer than this release" in m for m in store_warnings(caplog))
    await trip(breaker, Downstream())
    store.save(breaker)
    assert store.load("edge") is None
    store.close()
    assert path.read_bytes() == before


V1_CREATE = """
CREATE TABLE breaker_state (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    open_until_wall REAL,
    cooldown REAL NOT NULL,
    trips INTEGER NOT NULL,
    consecutive_trips INTEGER NOT NULL,
    saved_at_wall REAL NOT NULL
)"""


async def test_a_version_1_file_is_upgraded_in_place(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    now = clock.wall()
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.execute(V1_CREATE)
    db.execute(
        "INSERT INTO breaker_state VALUES (?, ?, ?, ?, ?, ?, ?)",
        ("edge", "OPEN", now + 100, 120.0, 4, 2, now - 20),
    )
    db.execute(
        "INSERT INTO breaker_state VALUES (?, ?, ?, ?, ?, ?, ?)",
        ("edge:voice", "CLOSED", None, 60.0, 9, 0, now - 20),
    )
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()

    with caplog.at_level(logging.INFO, logger="edge_voice.core.breaker.store"):
        breaker, store, outcome = start(path, clock)
    assert f"breaker state: {path} upgraded to schema version 2" in caplog.messages
    assert store_warnings(caplog) == []
    assert outcome is RestoreOutcome.OPEN
    assert breaker.retry_after == pytest.approx(100)
    assert breaker.typed_snapshot().trips == 4
    assert breaker.typed_snapshot().cooldown_level == 2
    voice = new_breaker(clock, "edge:voice")
    assert store.attach([voice]) == {"edge:voice": RestoreOutcome.CLOSED}
    assert voice.typed_snapshot().trips == 9
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (2,)
        assert db.execute("SELECT count(*) FROM breaker_state").fetchone() == (2,)
    db.close()


async def test_locked_file_is_left_alone_and_used_once_free(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir(parents=True)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE someone_elses (x)")
    other.execute("BEGIN EXCLUSIVE")
    clock = FakeClock()

    breaker, store, outcome = start(path, clock)
    down = Downstream()
    assert outcome is RestoreOutcome.UNAVAILABLE
    assert breaker.state is CircuitState.CLOSED
    assert any("locked" in message for message in store_warnings(caplog))
    await trip(breaker, down)  # the save fails, quietly
    assert not path.with_name(path.name + ".corrupt").exists()

    other.execute("COMMIT")
    other.close()
    clock.advance(60)
    assert await breaker.call(down.ok) == "ok"
    await trip(breaker, down)
    store.close()
    breaker, store, outcome = start(path, rebooted(clock, after=1))
    assert outcome is RestoreOutcome.OPEN
    assert breaker.snapshot()["trips"] == 2
    store.close()


async def test_write_lock_held_by_another_process_does_not_break_calls(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    await trip(breaker, Downstream())
    assert any("locked" in message for message in store_warnings(caplog))
    other.execute("ROLLBACK")
    other.close()

    breaker.reset()
    row = store.load("edge")
    assert row is not None
    assert row.state is CircuitState.CLOSED
    store.close()


async def test_store_survives_many_transitions(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    down = Downstream()
    cycles = 300
    for _ in range(cycles):
        await trip(breaker, down)
        clock.advance(breaker.retry_after)  # grows: the breaker remembers the flapping
        await breaker.call(down.ok)
    store.close()

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*), trips, state FROM breaker_state").fetchone() == (
            1,
            cycles,
            "CLOSED",
        )
    db.close()
    _, store, outcome = start(path, rebooted(clock, after=1))
    assert outcome is RestoreOutcome.CLOSED
    store.close()


def open_handles(path: Path) -> list[str]:
    fd_dir = Path("/proc/self/fd")
    targets = []
    for fd in os.listdir(fd_dir):
        try:
            targets.append(os.readlink(fd_dir / fd))
        except OSError:
            continue
    return [t for t in targets if t.startswith(str(path.resolve()))]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
async def test_close_releases_the_file_and_stops_saving(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    assert open_handles(path)

    store.close()
    store.close()
    assert open_handles(path) == []
    assert not path.with_name(path.name + "-wal").exists()
    breaker.reset()
    store.save(breaker)
    assert open_handles(path) == []
    _, store, outcome = start(path, rebooted(clock, after=1))
    assert outcome is RestoreOutcome.OPEN
    store.close()


async def test_missing_directory_is_created_and_unusable_one_is_survived(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    store = BreakerStateStore.in_data_dir(tmp_path / "a" / "b", wall_clock=clock.wall)
    breaker = new_breaker(clock)
    store.attach([breaker])
    assert (tmp_path / "a" / "b" / STATE_FILE_NAME).is_file()
    store.close()

    (tmp_path / "blocker").write_text("a file where the directory should be")
    breaker = new_breaker(clock)
    with BreakerStateStore.in_data_dir(tmp_path / "blocker" / "d", wall_clock=clock.wall) as store:
        assert store.attach([breaker]) == {"edge": RestoreOutcome.UNAVAILABLE}
        down = Downstream()
        await trip(breaker, down)
        assert store_warnings(caplog)

"""The breaker state file (core/breaker/store_db.py): bad, locked, missing and closed files.

See :mod:`tests.breaker_store_support` for what a "restart" is here.
"""

from __future__ import annotations

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


@pytest.mark.parametrize(
    "setup",
    [
        ["CREATE TABLE breaker_state (name TEXT, colour TEXT)"],
        ["PRAGMA user_version = 7"],
    ],
    ids=["other columns", "newer version"],
)
async def test_wrong_schema_is_replaced(
    path: Path, caplog: pytest.LogCaptureFixture, setup: list[str]
) -> None:
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    for statement in setup:
        db.execute(statement)
    db.commit()
    db.close()
    clock = FakeClock()

    breaker, store, outcome = start(path, clock)
    assert outcome is RestoreOutcome.NOTHING_STORED
    assert any("schema" in message for message in store_warnings(caplog))
    await trip(breaker, Downstream())
    store.close()
    _, store, outcome = start(path, rebooted(clock, after=1))
    assert outcome is RestoreOutcome.OPEN
    store.close()


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
        clock.advance(60)
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

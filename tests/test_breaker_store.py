"""Breaker state across restarts, against a real SQLite file.

A "restart" is a new FakeClock whose monotonic reading starts over while its
wall clock carries on, a new CircuitBreaker and a new store on the same file:
only what the file holds survives, as in a real restart.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from core.breaker import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError, CircuitState
from core.breaker.store import (
    STATE_FILE_NAME,
    BreakerStateStore,
    RestoreOutcome,
)
from core.clock import FakeClock
from core.tts.provider import EDGE_MP3, SynthesisRequest
from core.tts.service import TTSService

CONFIG = CircuitBreakerConfig(
    consecutive_failures=2,
    cooldown_period=60,
    max_cooldown_period=600,
    success_threshold=1,
    cooldown_jitter=0.0,
)


class Downstream:
    """Counts every call that reached it."""

    def __init__(self) -> None:
        self.calls = 0

    async def ok(self) -> str:
        self.calls += 1
        return "ok"

    async def fail(self) -> str:
        self.calls += 1
        raise ConnectionError("down")


def new_breaker(
    clock: FakeClock, name: str = "edge", config: CircuitBreakerConfig = CONFIG
) -> CircuitBreaker:
    return CircuitBreaker(name, config, clock, wall_clock=clock.wall)


def rebooted(clock: FakeClock, after: float) -> FakeClock:
    """A clock for the next process: monotonic starts over, wall time moved on by ``after``."""
    return FakeClock(start=5.0, epoch=clock.wall() + after - 5.0)


def start(
    path: Path, clock: FakeClock, config: CircuitBreakerConfig = CONFIG
) -> tuple[CircuitBreaker, BreakerStateStore, RestoreOutcome]:
    """One process's breaker and store, attached; returns (breaker, store, outcome)."""
    breaker = new_breaker(clock, config=config)
    store = BreakerStateStore(path, wall_clock=clock.wall)
    outcome = store.attach([breaker])[breaker.name]
    return breaker, store, outcome


async def trip(breaker: CircuitBreaker, down: Downstream) -> None:
    for _ in range(CONFIG.consecutive_failures or 1):
        with pytest.raises(ConnectionError):
            await breaker.call(down.fail)
    assert breaker.state is CircuitState.OPEN


def store_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "core.breaker.store" and r.levelno >= logging.WARNING
    ]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / STATE_FILE_NAME


async def test_open_breaker_stays_open_after_restart_with_remaining_cooldown(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    clock.advance(20)
    store.close()

    later = rebooted(clock, after=10)
    breaker, store, outcome = start(path, later)
    down = Downstream()
    assert outcome is RestoreOutcome.OPEN
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after == pytest.approx(30)
    with pytest.raises(CircuitOpenError):
        await breaker.call(down.ok)
    assert down.calls == 0

    later.advance(30)
    assert await breaker.call(down.ok) == "ok"
    assert down.calls == 1
    assert breaker.state is CircuitState.CLOSED
    store.close()


async def test_outage_that_ended_while_down_makes_the_next_call_a_trial(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    store.close()

    later = rebooted(clock, after=90)
    breaker, store, outcome = start(path, later)
    assert outcome is RestoreOutcome.TRIAL
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after == 0
    down = Downstream()
    with pytest.raises(ConnectionError):
        await breaker.call(down.fail)
    # One failed trial reopens at once, with the grown cooldown.
    assert down.calls == 1
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after == pytest.approx(120)
    store.close()


async def test_half_open_at_shutdown_restarts_into_a_trial(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    clock.advance(60)
    breaker.acquire()
    assert breaker.state is CircuitState.HALF_OPEN
    store.close()

    _, store, outcome = start(path, rebooted(clock, after=1))
    assert outcome is RestoreOutcome.TRIAL
    store.close()


async def test_clock_gone_backwards_starts_closed_with_a_warning(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    store.close()

    earlier = rebooted(clock, after=-3600)
    breaker, store, outcome = start(path, earlier)
    assert outcome is RestoreOutcome.DISCARDED
    assert breaker.state is CircuitState.CLOSED
    assert any("backwards" in message for message in store_warnings(caplog))
    row = store.load("edge")
    assert row is not None
    assert row.state is CircuitState.CLOSED
    assert row.trips == 1
    store.close()

    caplog.clear()
    _, store, outcome = start(path, rebooted(earlier, after=1))
    assert outcome is RestoreOutcome.CLOSED
    assert store_warnings(caplog) == []
    store.close()


@pytest.mark.parametrize(
    ("state", "open_until", "cooldown", "trips"),
    [
        ("BANANA", 10.0, 60.0, 1),
        ("OPEN", 10_000.0, 60.0, 1),
        ("OPEN", 10.0, -5.0, 1),
        ("OPEN", None, 60.0, 1),
        ("OPEN", 10.0, float("inf"), 1),
        ("OPEN", 10.0, 60.0, "many"),
        ("OPEN", 10.0, 60.0, -3),
    ],
)
async def test_nonsense_row_starts_closed_with_a_warning(
    path: Path,
    caplog: pytest.LogCaptureFixture,
    state: str,
    open_until: float | None,
    cooldown: float,
    trips: object,
) -> None:
    clock = FakeClock()
    with BreakerStateStore(path, wall_clock=clock.wall) as creator:
        assert creator.load("edge") is None
    now = clock.wall()
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO breaker_state VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                "edge",
                state,
                None if open_until is None else now + open_until,
                cooldown,
                trips,
                1,
                now,
            ),
        )
    db.close()

    breaker, store, outcome = start(path, clock)
    down = Downstream()
    assert outcome is RestoreOutcome.DISCARDED
    assert breaker.state is CircuitState.CLOSED
    assert await breaker.call(down.ok) == "ok"
    assert store_warnings(caplog)
    row = store.load("edge")
    assert row is not None
    assert row.state is CircuitState.CLOSED
    store.close()


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


async def test_trips_survive_restarts(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    down = Downstream()
    await trip(breaker, down)
    clock.advance(60)
    await breaker.call(down.ok)
    assert breaker.state is CircuitState.CLOSED
    store.close()

    clock = rebooted(clock, after=1)
    breaker, store, outcome = start(path, clock)
    assert outcome is RestoreOutcome.CLOSED
    assert breaker.snapshot()["trips"] == 1  # a CLOSED circuit shows its history too
    await trip(breaker, down)
    row = store.load("edge")
    assert row is not None
    assert row.trips == 2
    store.close()

    breaker, store, outcome = start(path, rebooted(clock, after=1))
    assert outcome is RestoreOutcome.OPEN
    assert breaker.snapshot()["trips"] == 2
    store.close()


async def test_reset_persists_closed(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    breaker.reset()
    store.close()

    breaker, store, outcome = start(path, rebooted(clock, after=1))
    down = Downstream()
    assert outcome is RestoreOutcome.CLOSED
    assert await breaker.call(down.ok) == "ok"
    assert down.calls == 1
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


async def test_cooldown_above_a_lowered_maximum_is_capped(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    breaker.force_open("maintenance", duration=500)
    store.close()

    lowered = CircuitBreakerConfig(
        consecutive_failures=2, cooldown_period=60, max_cooldown_period=100, cooldown_jitter=0.0
    )
    breaker, store, outcome = start(path, rebooted(clock, after=10), config=lowered)
    assert outcome is RestoreOutcome.OPEN
    assert breaker.retry_after == pytest.approx(100)
    store.close()


class CountingProvider:
    """A TTS provider that always answers, counting every request that reached it."""

    name = "edge"
    audio_format = EDGE_MP3

    def __init__(self) -> None:
        self.calls = 0

    async def stream(self, request: SynthesisRequest) -> AsyncGenerator[bytes, None]:
        self.calls += 1
        yield b"audio"


async def test_service_breakers_are_restored_and_saved(path: Path) -> None:
    clock = FakeClock()
    service = TTSService(
        CountingProvider(), voices=["de-DE-KillianNeural"], clock=clock, wall_clock=clock.wall
    )
    store = BreakerStateStore(path, wall_clock=clock.wall)
    outcomes = store.attach_service(service)
    assert set(outcomes) == {"edge", "edge:de-DE-KillianNeural"}
    service.service_breaker.force_open("outage")
    service.voice_breaker("de-DE-ConradNeural").force_open("voice gone")
    store.close()

    later = rebooted(clock, after=10)
    provider = CountingProvider()
    service = TTSService(
        provider,
        voices=["de-DE-KillianNeural", "de-DE-ConradNeural"],
        clock=later,
        wall_clock=later.wall,
    )
    store = BreakerStateStore(path, wall_clock=later.wall)
    outcomes = store.attach_service(service)
    assert outcomes["edge"] is RestoreOutcome.OPEN
    assert outcomes["edge:de-DE-ConradNeural"] is RestoreOutcome.OPEN
    assert outcomes["edge:de-DE-KillianNeural"] is RestoreOutcome.NOTHING_STORED
    with pytest.raises(CircuitOpenError):
        await service.synthesize("Hallo")
    assert provider.calls == 0
    store.close()

"""Exact expectations: whole snapshots, records, messages and log lines, not fragments.

The other breaker tests check behaviour; these pin every field and every word an
operator reads, so that a change to any of them is a deliberate one.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge_voice.core.breaker import (
    BreakerSnapshot,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    DurableState,
    TransitionEvent,
    TripCause,
    TripFigures,
    counts_as_failure,
    describe_failure,
)
from edge_voice.core.breaker.config import config_problems
from edge_voice.core.breaker.cooldown import CooldownSchedule
from edge_voice.core.breaker.store import STATE_FILE_NAME, BreakerStateStore, RestoreOutcome
from edge_voice.core.clock import FakeClock
from tests.breaker_store_support import Downstream, rebooted, start, store_warnings, trip

DEFAULTS = {f.name: f.default for f in fields(CircuitBreakerConfig)}


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("failure_threshold", 2.0, "in (0, 1], or 0 to switch it off"),
        ("failure_threshold", None,
         "in (0, 1], or 0 to switch it off (None is not accepted: use 0 to switch it off)"),
        ("window_type", "x", "'count' or 'time'"),
        ("window_size", 0, "an integer from 1 to 10000"),
        ("window_duration", 0.0, "seconds in (0, 86400]"),
        ("window_buckets", 0, "an integer from 1 to 1000"),
        ("minimum_calls", 0, "between 1 and 10000"),
        ("consecutive_failures", -1, "an integer from 1 to 10000, or 0 to switch it off"),
        ("slow_call_duration", -1.0, "seconds in (0, 3600], or 0 to switch it off"),
        ("slow_call_rate_threshold", 2.0, "in (0, 1], or 0 to switch it off"),
        ("cooldown_period", 0.0, "seconds in (0, 604800]"),
        ("max_cooldown_period", 1.0, ">= cooldown_period (60.0) and <= 604800"),
        ("cooldown_multiplier", 0.5, "in [1, 100]"),
        ("cooldown_jitter", 2.0, "in [0, 1]"),
        ("success_threshold", 0, "an integer from 1 to 1000"),
        ("half_open_max_calls", 0, "an integer from 1 to 1000"),
    ],
)  # fmt: skip
def test_every_config_problem_names_the_field_the_bound_and_the_value(
    field: str, value: object, expected: str
) -> None:
    assert config_problems({**DEFAULTS, field: value}) == [(field, expected, value)]
    with pytest.raises(ValueError) as info:  # noqa: PT011 - the message is checked whole
        CircuitBreakerConfig(**{field: value})  # type: ignore[arg-type]
    assert (
        str(info.value)
        == f"invalid CircuitBreakerConfig: {field} must be {expected}, got {value!r}"
    )


def test_count_windows_bound_minimum_calls_by_their_size() -> None:
    values = {**DEFAULTS, "window_type": "count", "minimum_calls": 11}
    assert config_problems(values) == [("minimum_calls", "between 1 and window_size (10)", 11)]
    assert config_problems({**values, "minimum_calls": 10}) == []
    values = {**DEFAULTS, "window_type": "count", "window_size": 0, "minimum_calls": 5}
    assert [key for key, _, _ in config_problems(values)] == ["window_size"]
    assert config_problems({**DEFAULTS, "max_cooldown_period": 60.0}) == []
    assert [key for key, _, _ in config_problems({**DEFAULTS, "cooldown_period": 0.0})] == [
        "cooldown_period"
    ]


def test_the_zero_spelling_and_the_exact_bounds() -> None:
    for field in ("failure_threshold", "consecutive_failures", "slow_call_duration",
                  "slow_call_rate_threshold"):  # fmt: skip
        assert config_problems({**DEFAULTS, field: 0}) == []
    assert config_problems({**DEFAULTS, "window_duration": 86_400}) == []
    assert config_problems({**DEFAULTS, "cooldown_jitter": 0}) == []
    assert config_problems({**DEFAULTS, "cooldown_jitter": 1}) == []
    assert config_problems({**DEFAULTS, "failure_threshold": 1}) == []
    assert config_problems({**DEFAULTS, "window_duration": float("nan")})[0][0] == (
        "window_duration"
    )
    assert CircuitBreakerConfig().timed is False
    assert CircuitBreakerConfig(slow_call_duration=0.5).timed is True


def test_the_whole_snapshot_of_an_open_breaker() -> None:
    clock = FakeClock()
    config = CircuitBreakerConfig(consecutive_failures=2, cooldown_jitter=0.0, window_buckets=5)
    breaker = CircuitBreaker("edge", config, clock, wall_clock=clock.wall)
    breaker.record_success(breaker.acquire())
    clock.advance(5)
    breaker.record_failure(breaker.acquire(), "first", slow=True)
    breaker.record_failure(breaker.acquire(), "second")
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    clock.advance(20)

    def at(seconds: float) -> datetime:
        return datetime.fromtimestamp(clock.epoch + seconds, tz=UTC)

    tripped = TripFigures(TripCause.CONSECUTIVE_FAILURES, 2, 2 / 3, 1 / 3, 3, 2, 1)
    assert breaker.typed_snapshot() == BreakerSnapshot(
        name="edge",
        state=CircuitState.OPEN,
        consecutive_failures=2,
        failure_rate=2 / 3,
        slow_call_rate=1 / 3,
        window_calls=3,
        window_failures=2,
        window_slow_calls=1,
        window_type="time",
        window_size=10,
        window_duration=60.0,
        tripped_by=tripped,
        last_failure=at(1005),
        last_failure_reason="second",
        last_success=at(1000),
        opened_at=at(1005),
        retry_after=40.0,
        cooldown=60.0,
        cooldown_level=1,
        trips=1,
        consecutive_trips=1,
        half_open_in_flight=0,
        half_open_successes=0,
        rejected_calls=1,
        last_transition_reason="2 consecutive failures, last: second",
        version=1,
        durable=DurableState(
            version=1,
            state=CircuitState.OPEN,
            reason="2 consecutive failures, last: second",
            opened_at=clock.epoch + 1005,
            open_until=clock.epoch + 1065,
            cooldown=60.0,
            cooldown_level=1,
            calm_since=None,
            trips=1,
            consecutive_trips=1,
            tripped_by=tripped,
        ),
    )
    data = breaker.snapshot()
    assert data["tripped_by"] == {
        "cause": "consecutive_failures",
        "consecutive_failures": 2,
        "failure_rate": 2 / 3,
        "slow_call_rate": 1 / 3,
        "window_calls": 3,
        "window_failures": 2,
        "window_slow_calls": 1,
    }
    assert "durable" not in data
    assert (data["state"], data["circuit_open"], data["half_open"]) == ("OPEN", True, False)
    assert (
        BreakerSnapshot.from_dict({**data, "state": CircuitState.OPEN}).state is CircuitState.OPEN
    )


def test_the_whole_record_of_a_closed_breaker_and_its_shift() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("edge", CircuitBreakerConfig(consecutive_failures=1), clock,
                             wall_clock=clock.wall, jitter=lambda: 0.0)  # fmt: skip
    breaker.record_failure(breaker.acquire(), "x")
    clock.advance(60)
    breaker.record_success(breaker.acquire())
    breaker.record_success(breaker.acquire())
    breaker.record_success(breaker.acquire())
    record = breaker.export_state()
    assert record == DurableState(
        version=3, state=CircuitState.CLOSED, reason="3 trial calls succeeded",
        opened_at=None, open_until=None, cooldown=60.0, cooldown_level=1,
        calm_since=clock.wall(), trips=1, consecutive_trips=0, tripped_by=None,
    )  # fmt: skip
    moved = replace(record, opened_at=1.0, open_until=2.0).shifted(10.0)
    assert (moved.opened_at, moved.open_until, moved.calm_since) == (11.0, 12.0, clock.wall() + 10)


def test_restore_open_resumes_exactly() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("edge", CircuitBreakerConfig(), clock, wall_clock=clock.wall)
    breaker.record_failure(breaker.acquire(), "x")
    breaker.restore_open(30.0, 120.0, 5)
    record = breaker.export_state()
    assert record == DurableState(
        version=1, state=CircuitState.OPEN, reason="restored after restart, 30s left",
        opened_at=clock.wall() - 90, open_until=clock.wall() + 30, cooldown=120.0,
        cooldown_level=2, calm_since=None, trips=5, consecutive_trips=1, tripped_by=None,
    )  # fmt: skip
    assert breaker.typed_snapshot().consecutive_failures == 0  # no figures were kept


def test_cooldown_levels_of_a_schedule() -> None:
    config = CircuitBreakerConfig(cooldown_period=10, max_cooldown_period=100)
    schedule = CooldownSchedule(config, lambda: 1.0)
    assert schedule.top == 4
    assert [schedule.level_of(c) for c in (5, 10, 11, 20, 21, 80, 100, 1000)] == [
        0, 0, 1, 1, 2, 3, 4, 4
    ]  # fmt: skip
    assert schedule.draw(0) == 10
    assert schedule.draw(0, floor=15) == 15
    assert schedule.draw(1) == pytest.approx(22.0)
    assert schedule.draw(1, floor=25) == 25
    assert schedule.draw(9) == 100
    assert schedule.decayed(3, 0.0, 29.9) == 1
    assert schedule.decayed(3, 0.0, 30.0) == 0
    assert schedule.decayed(3, None, 1000.0) == 3
    assert schedule.decayed(3, 50.0, 0.0) == 3  # a clock gone backwards steps nothing down
    flat = CooldownSchedule(CircuitBreakerConfig(cooldown_multiplier=1.0), lambda: 0.0)
    assert flat.top == 1
    capped = CooldownSchedule(CircuitBreakerConfig(max_cooldown_period=60.0), lambda: 0.0)
    assert capped.top == 1


def test_failures_are_classified_and_described() -> None:
    assert counts_as_failure(ConnectionError())
    assert not counts_as_failure(CircuitOpenError("other", CircuitState.OPEN, 1.0))
    assert not counts_as_failure(KeyboardInterrupt())
    assert describe_failure(ConnectionError()) == "ConnectionError"
    assert describe_failure(ConnectionError("refused")) == "ConnectionError: refused"


async def test_rejections_name_the_breaker() -> None:
    breaker = CircuitBreaker("voice:x", CircuitBreakerConfig())
    breaker.isolate("test")

    async def ok() -> None:
        return None

    with pytest.raises(CircuitOpenError) as by_call:
        await breaker.call(ok)
    with pytest.raises(CircuitOpenError) as by_with:
        async with breaker:
            pass
    assert by_call.value.name == by_with.value.name == "voice:x"


async def test_exactly_the_boundary_duration_is_slow_everywhere() -> None:
    clock = FakeClock()
    config = CircuitBreakerConfig(slow_call_duration=2.0, slow_call_rate_threshold=0,
                                  consecutive_failures=0, failure_threshold=0)  # fmt: skip
    breaker = CircuitBreaker("edge", config, clock, wall_clock=clock.wall,
                             is_failure_result=lambda r: r == "bad")  # fmt: skip

    async def takes(seconds: float, result: str = "ok") -> str:
        clock.advance(seconds)
        if result == "raise":
            raise ConnectionError("down")
        return result

    await breaker.call(takes, 2.0)
    await breaker.call(takes, 1.9)
    await breaker.call(takes, 2.0, "bad")
    with pytest.raises(ConnectionError):
        await breaker.call(takes, 2.0, "raise")
    async with breaker:
        clock.advance(2.0)

    async def slow_failure() -> None:
        async with breaker:
            clock.advance(2.0)
            raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await slow_failure()
    snap = breaker.typed_snapshot()
    assert (snap.window_calls, snap.window_failures, snap.window_slow_calls) == (6, 3, 5)


async def test_many_tagged_entries_in_many_tasks_all_settle() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("edge", CircuitBreakerConfig(slow_call_duration=1.0), clock)
    gate = __import__("asyncio").Event()

    async def hold() -> None:
        async with breaker:
            await gate.wait()

    asyncio = __import__("asyncio")
    tasks = [asyncio.create_task(hold()) for _ in range(3)]
    await asyncio.sleep(0)
    assert breaker._tagged_count == 3
    gate.set()
    await asyncio.gather(*tasks)
    assert breaker._tagged_count == 0
    assert breaker._tagged == {}
    assert breaker.typed_snapshot().window_calls == 3


# -- what operators read in the log --------------------------------------------------


def test_listener_failures_are_logged_with_breaker_and_listener(
    caplog: pytest.LogCaptureFixture,
) -> None:
    breaker = CircuitBreaker("edge")

    def broken(event: TransitionEvent) -> None:
        raise RuntimeError("bug")

    breaker.add_listener(broken)
    with caplog.at_level(logging.ERROR):
        breaker.isolate("x")
    assert [r.getMessage() for r in caplog.records] == [f"breaker edge: listener {broken!r} failed"]


async def test_async_listener_failures_and_skips_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    breaker = CircuitBreaker("edge")

    async def broken(event: TransitionEvent) -> None:
        raise RuntimeError("bug")

    breaker.add_listener(broken)
    with caplog.at_level(logging.ERROR):
        breaker.isolate("x")
        await breaker.drain_listeners()
    assert [r.getMessage() for r in caplog.records] == [f"breaker edge: listener {broken!r} failed"]


def test_an_async_listener_without_a_loop_is_closed_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    breaker = CircuitBreaker("edge")
    made = []

    async def listener(event: TransitionEvent) -> None:
        raise AssertionError("never runs")

    def making(event: TransitionEvent) -> object:
        coroutine = listener(event)
        made.append(coroutine)
        return coroutine

    breaker.add_listener(making)
    with caplog.at_level(logging.WARNING):
        breaker.isolate("x")
    assert [r.getMessage() for r in caplog.records] == [
        f"breaker edge: async listener {making!r} skipped, no running loop"
    ]
    assert made[0].cr_frame is None  # closed, so no "never awaited" warning


async def test_listener_tasks_are_named_after_their_breaker() -> None:
    breaker = CircuitBreaker("edge")
    names: list[str] = []

    async def listener(event: TransitionEvent) -> None:
        task = __import__("asyncio").current_task()
        assert task is not None
        names.append(task.get_name())

    breaker.add_listener(listener)
    breaker.isolate("x")
    await breaker.drain_listeners()
    assert names == ["breaker-listener-edge"]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / STATE_FILE_NAME


@pytest.mark.parametrize(
    ("column", "value", "why"),
    [
        ("state", "BANANA", "state 'BANANA'"),
        ("cooldown", -5.0, "cooldown -5.0"),
        ("cooldown", "x", "cooldown 'x'"),
        ("saved_at_wall", "x", "saved_at_wall 'x'"),
        ("trips", -3, "trips -3"),
        ("consecutive_trips", -1, "consecutive_trips -1"),
        ("cooldown_level", -1, "cooldown_level -1"),
        ("version", -2, "version -2"),
        ("calm_since_wall", "x", "calm_since_wall 'x'"),
        ("open_until_wall", None, "open_until_wall None"),
        ("open_until_wall", 1e12, "outage ends"),
    ],
)
async def test_a_discarded_row_says_what_is_wrong_with_it(
    path: Path, caplog: pytest.LogCaptureFixture, column: str, value: object, why: str
) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    store.close()
    with sqlite3.connect(path) as db:
        db.execute(f"UPDATE breaker_state SET {column} = ?", (value,))
    db.close()
    _, store, outcome = start(path, rebooted(clock, after=1))
    assert outcome is RestoreOutcome.DISCARDED
    warning = store_warnings(caplog)[0]
    assert warning.startswith(
        f"breaker state: ignoring the stored state of 'edge' in {path}: stored row is unusable ("
    )
    assert why in warning
    assert warning.endswith("; it starts CLOSED")
    store.close()


async def test_restore_logs_and_exact_records(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    store.close()
    later = rebooted(clock, after=20)
    with caplog.at_level(logging.INFO, logger="edge_voice.core.breaker.store"):
        breaker, store, outcome = start(path, later)
    assert outcome is RestoreOutcome.OPEN
    assert "breaker state: 'edge' restored OPEN, 40s of 60s cooldown left" in caplog.messages
    assert breaker.export_state() == DurableState(
        version=1, state=CircuitState.OPEN, reason="restored after restart, 40s left",
        opened_at=later.wall() - 20, open_until=later.wall() + 40, cooldown=60.0,
        cooldown_level=1, calm_since=None, trips=1, consecutive_trips=1,
        tripped_by=TripFigures(TripCause.CONSECUTIVE_FAILURES, 2, 1.0, 0.0, 2, 2, 0),
    )  # fmt: skip
    breaker.isolate("by @root")
    store.close()
    caplog.clear()
    again = rebooted(later, after=5)
    with caplog.at_level(logging.INFO, logger="edge_voice.core.breaker.store"):
        breaker, store, outcome = start(path, again)
    assert outcome is RestoreOutcome.MODE
    assert "breaker state: 'edge' restored FORCED_OPEN" in caplog.messages
    assert breaker.export_state() == DurableState(
        version=2, state=CircuitState.FORCED_OPEN, reason="restored after restart: by @root",
        opened_at=again.wall() - 5, open_until=None, cooldown=60.0, cooldown_level=1,
        calm_since=None, trips=1, consecutive_trips=1,
        tripped_by=TripFigures(TripCause.CONSECUTIVE_FAILURES, 2, 1.0, 0.0, 2, 2, 0),
    )  # fmt: skip
    store.close()


async def test_a_restored_half_open_row_and_skipped_breakers_are_logged(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    with caplog.at_level(logging.INFO, logger="edge_voice.core.breaker.store"):
        breaker.isolate("busy")
        assert store.restore(breaker) is RestoreOutcome.SKIPPED
    assert "breaker state: 'edge' is already FORCED_OPEN; not restored" in caplog.messages
    row = store.load("edge")
    assert row is not None
    assert (row.state, row.open_until_wall, row.reason) == (
        CircuitState.FORCED_OPEN, None, "busy"
    )  # fmt: skip
    store.close()


async def test_a_capped_cooldown_is_logged(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    breaker.force_open("maintenance", duration=500)
    store.close()
    lowered = CircuitBreakerConfig(consecutive_failures=2, max_cooldown_period=100)
    with caplog.at_level(logging.INFO, logger="edge_voice.core.breaker.store"):
        _, store, _ = start(path, rebooted(clock, after=10), config=lowered)
    assert (
        "breaker state: 'edge' cooldown 500s capped to the configured maximum 100s"
        in caplog.messages
    )
    store.close()


def test_saves_from_another_thread(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    breaker.isolate("x")
    worker = threading.Thread(target=store.save, args=(breaker,))
    worker.start()
    worker.join()
    row = store.load("edge")
    assert row is not None
    assert row.state is CircuitState.FORCED_OPEN
    store.close()


def test_in_data_dir_uses_the_wall_clock_given(tmp_path: Path) -> None:
    clock = FakeClock()
    store = BreakerStateStore.in_data_dir(tmp_path, wall_clock=clock.wall)
    breaker = CircuitBreaker("edge", clock=clock, wall_clock=clock.wall)
    store.attach([breaker])
    breaker.isolate("x")
    row = store.load("edge")
    assert row is not None
    assert row.saved_at_wall == clock.wall()
    assert store.path == tmp_path / STATE_FILE_NAME
    store.close()


def test_quarantine_warns_exactly_and_removes_the_old_journals(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database" * 100)
    for suffix in ("-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).write_bytes(b"old")
    store = BreakerStateStore(path)
    assert store.load("edge") is None
    aside = path.with_name(path.name + ".corrupt")
    assert store_warnings(caplog)[0] == (
        f"breaker state: {path} is not a usable database (file is not a database); moved to "
        f"{aside} and starting a new one, breakers start CLOSED"
    )
    for suffix in ("-journal",):
        assert not path.with_name(path.name + suffix).exists()
    assert path.with_name(path.name + "-shm").read_bytes() != b"old"
    store.close()


def test_a_newer_file_is_refused_with_an_exact_warning(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 7")
    db.close()
    store = BreakerStateStore(path)
    assert store.load("edge") is None
    assert store_warnings(caplog) == [
        f"breaker state: {path} has schema version 7, newer than this release's 2; leaving "
        "it untouched (nothing is saved), breakers start CLOSED"
    ]
    store.close()


def test_an_unrecognised_table_is_renamed_with_an_exact_warning(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE breaker_state (name TEXT, colour TEXT)")
        db.execute("PRAGMA user_version = 1")
    db.close()
    store = BreakerStateStore(path)
    assert store.load("edge") is None
    assert store_warnings(caplog) == [
        f"breaker state: {path} has a table of schema version 1 with columns ['name', "
        "'colour'], expected ['name', 'state', 'open_until_wall', 'cooldown', 'trips', "
        "'consecutive_trips', 'saved_at_wall', 'cooldown_level', 'calm_since_wall', 'version', "
        "'reason', 'tripped_by']; kept as breaker_state_unrecognised_1, breakers start CLOSED"
    ]
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (2,)
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    assert {"breaker_state", "breaker_state_unrecognised_1"} <= tables


async def test_a_v2_table_at_version_0_gets_its_version(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    breaker.isolate("x")
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 0")
    db.close()
    _, store, outcome = start(path, rebooted(clock, after=1))
    assert outcome is RestoreOutcome.MODE
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (2,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


async def test_a_locked_file_is_named_in_its_warnings(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    await trip(breaker, Downstream())
    other.execute("ROLLBACK")
    other.close()
    assert store_warnings(caplog)[0] == f"breaker state: {path} failed: database is locked"
    store.close()


def test_an_unusable_row_is_named_when_loaded(
    path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BreakerStateStore(path)
    monkeypatch.setattr(store, "_select", lambda name: [("garbage",)])
    assert store.load("edge") is None
    record = store_warnings(caplog)
    assert record == ["breaker state: stored row for 'edge' is unusable"]
    assert isinstance(caplog.records[-1].exc_info, tuple)  # the traceback, not just a flag
    monkeypatch.undo()
    store.close()


async def test_drain_survives_a_cancelled_listener() -> None:
    import asyncio

    breaker = CircuitBreaker("edge")

    async def forever(event: TransitionEvent) -> None:
        await asyncio.Event().wait()

    breaker.add_listener(forever)
    breaker.isolate("x")
    await asyncio.sleep(0)
    for task in list(breaker._listeners._tasks):
        task.cancel()
    await breaker.drain_listeners()
    assert not breaker._listeners._tasks


def test_force_open_exactly() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("edge", CircuitBreakerConfig(), clock, wall_clock=clock.wall)
    breaker.record_failure(breaker.acquire(), "x")
    breaker.force_open("maintenance", duration=90)
    assert breaker.export_state() == DurableState(
        version=1, state=CircuitState.OPEN, reason="maintenance", opened_at=clock.wall(),
        open_until=clock.wall() + 90, cooldown=90.0, cooldown_level=0, calm_since=None,
        trips=1, consecutive_trips=0,
        tripped_by=TripFigures(TripCause.FORCED, 1, 1.0, 0.0, 1, 1, 0),
    )  # fmt: skip
    breaker.force_open("longer")
    assert breaker.export_state().trips == 2
    assert breaker.export_state().tripped_by == TripFigures(TripCause.FORCED, 1, 1.0, 0.0, 1, 1, 0)


def test_restore_open_when_the_whole_cooldown_is_left() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("edge", CircuitBreakerConfig(), clock, wall_clock=clock.wall)
    breaker.restore_open(60.0, 60.0, 1)
    assert breaker.export_state().opened_at == clock.wall()
    assert breaker._machine.transitions == []  # published
    assert breaker._machine.last_transition is not None
    assert breaker._machine.last_transition.at == clock()


async def test_async_with_bookkeeping_is_exact() -> None:
    breaker = CircuitBreaker("edge")
    async with breaker:
        assert (breaker._shared, breaker._tagged_count) == (1, 0)
        first = breaker._entered
        async with breaker:
            assert (breaker._shared, breaker._tagged_count) == (2, 0)
    assert (breaker._shared, breaker._tagged_count) == (0, 0)
    async with breaker:
        assert breaker._entered is first
        breaker.reset("new generation")
        async with breaker:
            assert (breaker._shared, breaker._tagged_count) == (1, 1)
        assert (breaker._shared, breaker._tagged_count) == (1, 0)
    assert (breaker._shared, breaker._tagged_count) == (0, 0)
    breaker.metrics_only("m")
    async with breaker:
        assert (breaker._shared, breaker._tagged_count) == (0, 1)
    assert breaker._tagged == {}


def test_snapshot_dicts_are_plain_and_ignore_the_record() -> None:
    breaker = CircuitBreaker("edge")
    breaker.isolate("x")
    data = breaker.snapshot()
    assert type(data["state"]) is str
    back = BreakerSnapshot.from_dict({**data, "durable": "ignored"})
    assert back.durable is None
    assert back.state is CircuitState.FORCED_OPEN
    figures = TripFigures(TripCause.SLOW_CALL_RATE, 0, 0.0, 0.5, 4, 0, 2)
    assert TripFigures.from_dict(figures.as_dict()) == figures
    with pytest.raises(ValueError, match=r"^window_calls -1$"):
        TripFigures.from_dict({**figures.as_dict(), "window_calls": -1})
    with pytest.raises(ValueError, match=r"^slow_call_rate 2$"):
        TripFigures.from_dict({**figures.as_dict(), "slow_call_rate": 2})


@pytest.mark.parametrize(
    ("column", "value", "why"),
    [
        ("cooldown", 0.0, "cooldown 0.0"),
        ("reason", b"\x00\xff", "reason b'\\x00\\xff'"),
    ],
)
async def test_more_rows_that_say_what_is_wrong(
    path: Path, caplog: pytest.LogCaptureFixture, column: str, value: object, why: str
) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    store.close()
    with sqlite3.connect(path) as db:
        db.execute(f"UPDATE breaker_state SET {column} = ?", (value,))
    db.close()
    _, store, outcome = start(path, rebooted(clock, after=1))
    assert outcome is RestoreOutcome.DISCARDED
    assert f"stored row is unusable ({why})" in store_warnings(caplog)[0]
    store.close()


async def test_the_outage_end_bound_is_exact(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE breaker_state SET open_until_wall = saved_at_wall + 62, cooldown = 60")
    db.close()
    _, store, outcome = start(path, rebooted(clock, after=1))
    assert outcome is RestoreOutcome.OPEN  # 60 s + 2 s of tolerance: still believed
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE breaker_state SET open_until_wall = saved_at_wall + 100")
    db.close()
    _, store, outcome = start(path, rebooted(clock, after=2))
    assert outcome is RestoreOutcome.DISCARDED
    assert (
        "stored row is unusable (outage ends 100s after it was saved, longer than its "
        "cooldown of 60s)" in store_warnings(caplog)[0]
    )
    store.close()


async def test_a_late_save_keeps_the_calm_start(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    clock.advance(60)
    await breaker.call(Downstream().ok)
    calm = clock.wall()
    clock.advance(50)
    store.save(breaker)
    row = store.load("edge")
    assert row is not None
    assert (row.name, row.calm_since_wall, row.saved_at_wall) == ("edge", calm, calm + 50)
    store.close()
    breaker, store, _ = start(path, rebooted(clock, after=15))
    assert breaker.typed_snapshot().cooldown_level == 0  # 65 s calm since it closed
    store.close()


async def test_two_services_are_both_attached(path: Path) -> None:
    clock = FakeClock()

    class Group:
        def __init__(self, name: str) -> None:
            self.breakers = [CircuitBreaker(name, clock=clock, wall_clock=clock.wall)]

        def add_listener(self, listener: object) -> None:
            for breaker in self.breakers:
                breaker.add_listener(listener)  # type: ignore[arg-type]

    store = BreakerStateStore(path, wall_clock=clock.wall)
    first, second = Group("a"), Group("b")
    assert store.attach_service(first) == {"a": RestoreOutcome.NOTHING_STORED}
    assert store.attach_service(second) == {"b": RestoreOutcome.NOTHING_STORED}
    assert store.attach_service(first) == {}
    store.close()


def test_a_corrupt_file_that_can_be_neither_moved_nor_deleted(
    path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from edge_voice.core.breaker import store_db

    db = store_db.StateDatabase(path)
    error = sqlite3.DatabaseError("file is not a database")
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(PermissionError("ro")))
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: (_ for _ in ()).throw(
        PermissionError("ro")))  # fmt: skip
    db._quarantine(error)
    assert store_warnings(caplog)[-1] == (
        f"breaker state: cannot move {path} aside (ro); deleting it"
    )
    db.close()


async def test_restores_of_open_rows_exactly(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    breaker.force_open("maintenance", duration=60)  # level 0, no trip in a row
    store.close()
    now = rebooted(clock, after=0)
    breaker, store, outcome = start(path, now)
    assert outcome is RestoreOutcome.OPEN
    record = breaker.export_state()
    assert (record.opened_at, record.cooldown, record.cooldown_level, record.consecutive_trips) == (
        now.wall(), 60.0, 1, 1
    )  # fmt: skip
    store.close()
    _, store, outcome = start(path, rebooted(clock, after=59.5))
    assert outcome is RestoreOutcome.OPEN  # half a second left is still an outage
    store.close()


async def test_a_row_from_just_ahead_of_the_clock_is_believed(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    breaker.isolate("x")
    store.close()
    _, store, outcome = start(path, rebooted(clock, after=-2.0))
    assert outcome is RestoreOutcome.MODE
    store.close()


async def test_a_row_from_the_future_is_named_exactly(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    breaker.isolate("x")
    store.close()
    _, store, outcome = start(path, rebooted(clock, after=-100))
    assert outcome is RestoreOutcome.DISCARDED
    assert store_warnings(caplog)[0] == (
        f"breaker state: ignoring the stored state of 'edge' in {path}: it was saved 100s in "
        "the future (the wall clock went backwards); it starts CLOSED"
    )
    store.close()


async def test_closed_rows_keep_their_reason_and_trips(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    breaker.reset("reset by @root")
    store.close()
    breaker, store, outcome = start(path, rebooted(clock, after=1))
    assert outcome is RestoreOutcome.CLOSED
    record = breaker.export_state()
    assert (record.reason, record.trips, record.version) == ("reset by @root", 1, 2)
    store.close()


async def test_attach_and_close_wire_and_unwire_every_breaker(path: Path) -> None:
    clock = FakeClock()
    store = BreakerStateStore(path, wall_clock=clock.wall)
    assert store.closed is False
    a = CircuitBreaker("a", clock=clock, wall_clock=clock.wall)
    b = CircuitBreaker("b", clock=clock, wall_clock=clock.wall)
    assert set(store.attach([a, a, b])) == {"a", "b"}
    assert len(b._listeners._listeners) == 1
    store.close()
    assert store.closed is True
    assert a._listeners._listeners == [] == b._listeners._listeners
    with sqlite3.connect(path) as db:
        db.execute("SELECT 1")
    db.close()


async def test_rows_of_modes_store_no_outage_end(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    breaker.disable("x")
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT state, open_until_wall FROM breaker_state").fetchone() == (
            "DISABLED", None
        )  # fmt: skip
    db.close()


async def test_a_failed_restore_and_migration_are_logged_exactly(
    path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BreakerStateStore(path)
    monkeypatch.setattr(store, "_restore", lambda b: 1 / 0)
    assert store.restore(CircuitBreaker("edge")) is RestoreOutcome.UNAVAILABLE
    assert caplog.records[-1].getMessage() == (
        "breaker state: could not restore 'edge'; it starts CLOSED"
    )
    monkeypatch.undo()
    store.close()


async def test_a_locked_write_gives_up_quickly(path: Path) -> None:
    import time

    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    breaker.isolate("x")
    assert time.monotonic() - started < 1.0  # BUSY_TIMEOUT, not sqlite's 5 s
    other.execute("ROLLBACK")
    other.close()
    store.close()


def test_a_trip_offset_survives_rows_that_cannot_be_read(path: Path) -> None:
    clock = FakeClock()
    for bad in ("state = 'BANANA'", 'tripped_by = \'{"cause": "forced"}\''):
        breaker, store, _ = start(path, clock)
        breaker.isolate("x")
        store.close()
        with sqlite3.connect(path) as db:
            db.execute(f"UPDATE breaker_state SET {bad}")
        db.close()
        store = BreakerStateStore(path, wall_clock=clock.wall)
        late = CircuitBreaker("edge", clock=clock, wall_clock=clock.wall)
        late.add_listener(store._on_transition)  # as a breaker created after attach_service
        late.isolate("y")
        row = store.load("edge")
        assert row is not None
        assert row.trips == 0
        store.close()

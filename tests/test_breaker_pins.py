"""Pins for details mutation testing showed no other test held: return values, defaults,
bounds of the config's checks, the log lines of the state file's failures."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from dataclasses import fields
from pathlib import Path

import pytest

from edge_voice.core.breaker import (
    BreakerStateMachine,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    Permit,
    TransitionEvent,
    TripCause,
)
from edge_voice.core.breaker.config import config_problems
from edge_voice.core.breaker.store import STATE_FILE_NAME, BreakerStateStore, RestoreOutcome
from edge_voice.core.clock import FakeClock
from tests.breaker_store_support import Downstream, rebooted, start, store_warnings, trip

DEFAULTS = {f.name: f.default for f in fields(CircuitBreakerConfig)}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / STATE_FILE_NAME


def test_an_invalid_cooldown_does_not_drag_its_maximum_down_with_it() -> None:
    assert [k for k, _, _ in config_problems({**DEFAULTS, "cooldown_period": 700_000.0})] == [
        "cooldown_period"
    ]
    assert [
        k
        for k, _, _ in config_problems(
            {**DEFAULTS, "cooldown_period": 0.0, "max_cooldown_period": 0.5}
        )
    ] == ["cooldown_period"]
    with pytest.raises(ValueError) as info:  # noqa: PT011 - checked whole below
        CircuitBreakerConfig(window_size=0, success_threshold=0)
    assert str(info.value) == (
        "invalid CircuitBreakerConfig: window_size must be an integer from 1 to 10000, got 0; "
        "success_threshold must be an integer from 1 to 1000, got 0"
    )


def machine(**settings: object) -> BreakerStateMachine:
    config = CircuitBreakerConfig(**settings)  # type: ignore[arg-type]
    return BreakerStateMachine("edge", config, lambda: 0.0)


def test_the_machine_says_when_nothing_changed() -> None:
    m = machine(consecutive_failures=1, success_threshold=2, slow_call_duration=5.0)
    stale = m.acquire(0.0)
    m.on_failure(m.acquire(0.0), 0.0, "x")
    assert m.on_success(stale, 1.0) is False
    trial = m.acquire(60.0)
    assert m.on_success(trial, 61.0) is False  # one of two trials
    assert m.last_success_at == 61.0
    m.disable(70.0, "off")
    assert m.on_success(m.acquire(70.0), 71.0) is False
    with pytest.raises(CircuitOpenError) as info:
        _rejected()
    assert info.value.name == "edge"


def _rejected() -> None:
    m = machine(consecutive_failures=1)
    m.on_failure(m.acquire(0.0), 0.0, "x")
    m.acquire(1.0)


def test_a_rejection_after_the_clock_went_back_quotes_at_most_the_cooldown() -> None:
    m = machine(consecutive_failures=1)
    m.on_failure(m.acquire(1000.0), 1000.0, "x")
    with pytest.raises(CircuitOpenError) as info:
        m.acquire(10.0)
    assert info.value.retry_after == 60.0


def test_a_timed_success_checks_rates_only_when_calls_left_the_window() -> None:
    m = machine(consecutive_failures=0, slow_call_duration=5.0, window_type="count",
                window_size=2, minimum_calls=2)  # fmt: skip
    m.on_failure(m.acquire(0.0), 0.0, "x")
    m.on_success(m.acquire(0.0), 1.0)  # 1 failure of 2 calls: a success does not trip
    assert m.state is CircuitState.CLOSED
    for metrics_only in (False, True):
        t = machine(consecutive_failures=0, failure_threshold=0.7, slow_call_duration=5.0,
                    minimum_calls=2, window_duration=10.0)  # fmt: skip
        if metrics_only:
            t.metrics_only(0.0, "m")
        for _ in range(3):
            t.on_success(t.acquire(0.0), 0.0)
        for _ in range(3):
            t.on_failure(t.acquire(5.0), 5.0, "x")
        t.on_success(t.acquire(10.5), 10.5)  # the successes left: 3 failures of 4
        if metrics_only:
            assert t.state is CircuitState.METRICS_ONLY
        else:
            assert t.state is CircuitState.OPEN
            assert t.transitions[-1].reason == "failure rate 75% over the last 4 calls in 10s"


def test_an_isolated_circuit_says_when_and_a_restored_outage_why() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("edge", clock=clock, wall_clock=clock.wall)
    breaker.isolate("x")
    assert breaker.typed_snapshot().opened_at is not None
    m = machine()
    m.restore_open(0.0, 0.0, 60.0, 1)
    m.on_failure(m.acquire(0.0), 0.0, "still down")
    assert m.tripped_by is not None
    assert m.tripped_by.cause is TripCause.TRIAL_FAILED


def test_a_failed_trial_never_shortens_a_long_forced_cooldown() -> None:
    m = machine(cooldown_jitter=0.0)
    m.force_open(0.0, "maintenance", duration=250)
    m.on_failure(m.acquire(250.0), 250.0, "x")
    assert m.cooldown == 250.0


async def test_call_times_failures_from_their_start() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("edge", CircuitBreakerConfig(slow_call_duration=2.0), clock)

    async def fails_fast() -> None:
        clock.advance(0.5)
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await breaker.call(fails_fast)
    assert breaker.typed_snapshot().window_slow_calls == 0


async def test_futures_are_made_once_and_shared_exits_are_counted() -> None:
    breaker = CircuitBreaker("edge", CircuitBreakerConfig(slow_call_duration=1.0))
    async with breaker:
        entered = breaker._entered
    async with breaker:
        assert breaker._entered is entered
    plain = CircuitBreaker("plain")
    gate, inside = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with plain:
            inside.set()
            await gate.wait()

    task = asyncio.create_task(hold())
    await inside.wait()
    plain.reset("new generation")
    async with plain:  # tagged: the shared entry holds an older permit
        gate.set()
        await task  # the shared entry leaves while a tagged one is open
        assert plain._shared == 0
    assert (plain._shared, plain._tagged_count) == (0, 0)


def test_the_operator_methods_default_reasons() -> None:
    breaker = CircuitBreaker("edge")
    seen: list[str] = []
    breaker.add_listener(lambda event: seen.append(event.reason))
    breaker.disable()
    breaker.metrics_only()
    breaker.reset()
    assert seen == ["disabled", "metrics only", "manual reset"]


async def test_a_capped_restore_keeps_the_capped_cooldown(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    breaker.force_open("maintenance", duration=500)
    store.close()
    lowered = CircuitBreakerConfig(consecutive_failures=2, max_cooldown_period=100)
    breaker, store, _ = start(path, rebooted(clock, after=10), config=lowered)
    assert breaker.export_state().cooldown == 100.0
    store.close()


async def test_a_short_but_positive_cooldown_is_a_valid_row(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    breaker.force_open("blip", duration=0.5)
    store.close()
    _, store, outcome = start(path, rebooted(clock, after=0.1))
    assert outcome is RestoreOutcome.OPEN
    store.close()


def test_saves_from_another_thread_reach_the_file(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    worker = threading.Thread(target=breaker.isolate, args=("from a thread",))
    worker.start()
    worker.join()
    row = store.load("edge")
    assert row is not None
    assert row.reason == "from a thread"
    store.close()


async def test_state_file_failures_are_logged_exactly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "blocker").write_text("a file where the directory should be")
    path = tmp_path / "blocker" / "d" / STATE_FILE_NAME
    store = BreakerStateStore(path)
    assert store.load("edge") is None
    message = store_warnings(caplog)[0]
    assert message.startswith(f"breaker state: cannot create {path.parent}: [Errno 20]")
    store.close()

    caplog.clear()
    locked = tmp_path / "locked" / STATE_FILE_NAME
    locked.parent.mkdir()
    other = sqlite3.connect(locked, isolation_level=None)
    other.execute("CREATE TABLE x (y)")
    other.execute("BEGIN EXCLUSIVE")
    store = BreakerStateStore(locked)
    assert store.load("edge") is None
    assert store_warnings(caplog) == [
        f"breaker state: cannot use {locked} (database is locked); breakers start CLOSED"
    ]
    other.execute("COMMIT")
    other.close()
    store.close()


def test_a_newer_file_is_refused_once_and_for_good(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 9")
    db.close()
    store = BreakerStateStore(path)
    assert store.load("edge") is None
    assert store.load("edge") is None
    assert len(store_warnings(caplog)) == 1
    store.close()


async def test_a_failed_save_is_logged_exactly(
    path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)

    def broken(row: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store._db, "upsert", broken)
    with caplog.at_level(logging.ERROR):
        await trip(breaker, Downstream())
    assert caplog.records[-1].getMessage() == "breaker state: could not save 'edge'"
    store.close()


def test_listener_event_types_are_unchanged() -> None:
    assert TransitionEvent.__dataclass_fields__.keys() == {
        "breaker", "old", "new", "reason", "at", "snapshot"
    }  # fmt: skip
    assert Permit(1, False).started is None

"""Exact values mutation testing found no other test holding: initial values, reasons,
the top cooldown level, decay by whole periods, the snapshot's window fields."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from edge_voice.core.breaker import (
    BreakerStateMachine,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    store_db,
)
from edge_voice.core.breaker.cooldown import MAX_LEVEL, CooldownSchedule
from edge_voice.core.breaker.record import DurableState
from edge_voice.core.breaker.store import STATE_FILE_NAME
from edge_voice.core.clock import FakeClock
from tests.breaker_store_support import rebooted, start

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def machine(**settings: object) -> BreakerStateMachine:
    config = CircuitBreakerConfig(**settings)  # type: ignore[arg-type]
    return BreakerStateMachine("edge", config, lambda: 0.0)


def test_a_fresh_breaker_has_no_reasons_and_an_empty_record() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("edge", clock=clock, wall_clock=clock.wall)
    snapshot = breaker.typed_snapshot()
    assert snapshot.last_failure_reason is None
    assert snapshot.last_transition_reason is None
    assert snapshot.durable is not None
    assert snapshot.durable.reason == ""
    assert snapshot.durable.open_until is None


def test_the_snapshot_names_the_configured_window() -> None:
    clock = FakeClock()
    counted = CircuitBreaker(
        "edge", CircuitBreakerConfig(window_type="count", window_size=7, minimum_calls=3), clock
    )
    timed = CircuitBreaker("edge", CircuitBreakerConfig(window_duration=33.0), clock)
    assert (counted.typed_snapshot().window_size, counted.typed_snapshot().window) == (7, "7 calls")
    assert (timed.typed_snapshot().window_duration, timed.typed_snapshot().window) == (33.0, "33 s")


def test_the_breakers_own_rejection_names_it() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("edge", CircuitBreakerConfig(consecutive_failures=1), clock)
    breaker.record_failure(breaker.acquire(), "down")
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert (info.value.name, info.value.state, info.value.retry_after) == ("edge", OPEN, 60.0)


def test_the_half_open_transition_says_the_cooldown_is_over() -> None:
    m = machine(consecutive_failures=1, cooldown_period=45.0, max_cooldown_period=45.0)
    m.on_failure(m.acquire(0.0), 0.0, "down")
    m.acquire(45.0)
    assert m.state is HALF_OPEN
    assert m.transitions[-1].reason == "cooldown of 45s elapsed"


def test_a_rate_trip_by_a_failure_names_the_failure() -> None:
    m = machine(consecutive_failures=0, minimum_calls=2, window_type="count", window_size=2)
    m.on_success(m.acquire(0.0), 0.0)
    m.on_failure(m.acquire(1.0), 1.0, "ConnectionError: down")
    assert m.state is OPEN
    assert m.transitions[-1].reason == (
        "failure rate 50% over the last 2 calls, last: ConnectionError: down"
    )


def test_successes_that_expire_calls_but_trip_nothing_say_so() -> None:
    m = machine(consecutive_failures=0, minimum_calls=3, window_duration=10.0)
    m.on_failure(m.acquire(0.0), 0.0, "x")
    m.on_failure(m.acquire(0.0), 0.0, "x")
    assert m.on_success(m.acquire(11.0), 11.0) is False  # below the minimum
    assert m.on_success(m.acquire(11.0), 11.0) is False  # not past the edge
    assert m.on_success(m.acquire(11.0), 11.0, slow=True) is False
    assert m.state is CLOSED


def test_repeated_trial_failures_count_consecutive_trips() -> None:
    m = machine(consecutive_failures=1, cooldown_jitter=0.0)
    m.on_failure(m.acquire(0.0), 0.0, "down")
    now = 0.0
    for _ in range(2):
        now += m.cooldown
        m.on_failure(m.acquire(now), now, "still down")
    assert (m.consecutive_trips, m.trips, m.cooldown_level) == (3, 3, 3)


def test_a_reset_while_closed_starts_the_calm_now() -> None:
    m = machine()
    m.reset(500.0)
    assert m.export_state().calm_since == 500.0


def test_an_open_record_without_an_end_admits_a_trial_at_once() -> None:
    m = machine()
    record = DurableState(
        version=5, state=OPEN, reason="elsewhere", opened_at=10.0, open_until=None,
        cooldown=60.0, cooldown_level=1, calm_since=None, trips=1, consecutive_trips=1,
        tripped_by=None,
    )  # fmt: skip
    assert m.adopt_state(record, 20.0) is True
    assert m.retry_after(20.0) == 0.0
    assert m.would_admit(20.0) is True
    assert m.acquire(20.0).trial is True


def test_a_slowly_growing_cooldown_stops_at_the_top_level() -> None:
    config = CircuitBreakerConfig(
        cooldown_period=1.0, max_cooldown_period=604_800.0, cooldown_multiplier=1.01
    )
    schedule = CooldownSchedule(config, lambda: 0.0)
    assert schedule.top == MAX_LEVEL
    assert schedule.plain(MAX_LEVEL) == pytest.approx(1.01**64)


def test_a_cooldown_under_a_second_is_kept_exactly() -> None:
    m = machine(consecutive_failures=1, cooldown_period=0.25, max_cooldown_period=10.0)
    m.on_failure(m.acquire(0.0), 0.0, "down")
    assert m.cooldown == 0.25
    assert m.retry_after(0.0) == 0.25


def test_levels_step_down_only_per_whole_calm_period() -> None:
    schedule = CooldownSchedule(CircuitBreakerConfig(cooldown_period=10.0), lambda: 0.0)
    assert schedule.decayed(3, 100.0, 115.0) == 2  # one and a half periods: one step
    assert schedule.decayed(3, 100.0, 129.9) == 1
    assert schedule.decayed(3, 100.0, 130.0) == 0
    assert schedule.decayed(3, 100.0, 90.0) == 3  # the clock went back: no step
    assert schedule.decayed(2, 100.0, 1000.0) == 0
    assert schedule.decayed(2, None, 1000.0) == 2
    short = CooldownSchedule(CircuitBreakerConfig(cooldown_period=0.5), lambda: 0.0)
    assert short.decayed(2, 100.0, 100.2) == 2
    assert short.decayed(2, 100.0, 100.5) == 1


def test_a_timed_manual_call_is_judged_by_its_admission_in_every_admitting_state() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "edge", CircuitBreakerConfig(slow_call_duration=2.0, minimum_calls=100), clock
    )
    breaker.metrics_only("shadow")
    permit = breaker.acquire()
    clock.advance(2.0)
    breaker.record_success(permit)
    assert breaker.typed_snapshot().window_slow_calls == 1
    m = machine(consecutive_failures=1, slow_call_duration=2.0, success_threshold=1)
    m.on_failure(m.acquire(0.0), 0.0, "down")
    trial = m.acquire(60.0)
    assert m.on_success(trial, 62.0) is True  # judged slow: reopened
    assert (m.state, m.transitions[-1].reason) == (OPEN, "trial call was slow")


def test_a_look_at_the_very_end_of_the_newest_bucket_drops_the_oldest() -> None:
    clock = FakeClock(1000.5)
    breaker = CircuitBreaker(
        "edge", CircuitBreakerConfig(window_duration=10.0), clock, wall_clock=clock.wall
    )
    breaker.record_success(breaker.acquire())  # bucket 1000
    clock.now = 1009.5
    breaker.record_success(breaker.acquire())  # bucket 1009, which ends at 1010.0
    assert breaker.typed_snapshot().window_calls == 2
    clock.now = 1010.0  # bucket 1010 begins: bucket 1000 leaves
    assert breaker.typed_snapshot().window_calls == 1


def test_a_bucket_leaving_takes_all_its_calls_with_it() -> None:
    m = machine(consecutive_failures=0, failure_threshold=0, slow_call_rate_threshold=0,
                window_duration=10.0)  # fmt: skip
    for slow in (True, True, False):
        m.on_failure(m.acquire(0.5), 0.5, "x", slow=slow)
    m.on_success(m.acquire(0.5), 0.5, slow=True)
    m.on_success(m.acquire(0.5), 0.5, slow=True)
    m.on_success(m.acquire(1.5), 1.5)
    assert (m.window_calls, m.window_failures, m.window_slow_calls) == (6, 3, 4)
    m.advance(10.6)  # bucket 0 leaves, bucket 1 stays
    assert (m.window_calls, m.window_failures, m.window_slow_calls) == (1, 0, 0)


def test_a_trial_success_frees_exactly_its_own_permit() -> None:
    clock = FakeClock(1000.0)
    breaker = CircuitBreaker(
        "edge",
        CircuitBreakerConfig(consecutive_failures=1, half_open_max_calls=2, success_threshold=3),
        clock,
        wall_clock=clock.wall,
    )
    breaker.record_failure(breaker.acquire(), "down")
    clock.advance(60.0)
    first, _second = breaker.acquire(), breaker.acquire()
    breaker.record_success(first)
    snapshot = breaker.typed_snapshot()
    assert (snapshot.half_open_in_flight, snapshot.half_open_successes) == (1, 1)
    assert breaker.acquire().trial is True  # the freed permit, and no more
    with pytest.raises(CircuitOpenError):
        breaker.acquire()


async def test_a_stored_cooldown_at_the_maximum_is_not_capped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / STATE_FILE_NAME
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    breaker.force_open("maintenance", duration=100)
    store.close()
    same = CircuitBreakerConfig(consecutive_failures=2, max_cooldown_period=100)
    with caplog.at_level(logging.INFO, logger="edge_voice.core.breaker.store"):
        restored, store, _ = start(path, rebooted(clock, after=10), config=same)
    assert not [m for m in caplog.messages if "capped" in m]
    assert restored.typed_snapshot().cooldown == 100.0
    store.close()


def _not_a_database() -> sqlite3.DatabaseError:
    error = sqlite3.DatabaseError("file is not a database")
    error.sqlite_errorcode = sqlite3.SQLITE_NOTADB  # as sqlite3 sets it
    return error


def test_an_error_made_by_hand_is_not_taken_for_corruption() -> None:
    assert store_db._is_corrupt(sqlite3.DatabaseError("no code")) is False
    assert store_db._is_corrupt(_not_a_database()) is True


def test_a_corrupt_file_that_cannot_be_recreated_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = store_db.StateDatabase(tmp_path / STATE_FILE_NAME)
    failures = iter([_not_a_database(), OSError("disk gone")])

    def fails() -> sqlite3.Connection:
        raise next(failures)

    monkeypatch.setattr(db, "_open", fails)
    with caplog.at_level(logging.WARNING, logger="edge_voice.core.breaker.store"):
        assert db._connection() is None
    assert caplog.messages[-1] == (
        f"breaker state: cannot recreate {tmp_path / STATE_FILE_NAME}: disk gone"
    )

"""Operator modes, the durable record (export/adopt), and the typed snapshot."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from edge_voice.core.breaker import (
    BreakerSnapshot,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    TransitionEvent,
    TripCause,
    TripFigures,
)
from edge_voice.core.clock import FakeClock

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
FORCED_OPEN, DISABLED, METRICS_ONLY = (
    CircuitState.FORCED_OPEN,
    CircuitState.DISABLED,
    CircuitState.METRICS_ONLY,
)
CONFIG = CircuitBreakerConfig(
    consecutive_failures=5, cooldown_period=60, success_threshold=1, cooldown_jitter=0.0
)


def make(clock: FakeClock, config: CircuitBreakerConfig = CONFIG) -> CircuitBreaker:
    return CircuitBreaker("edge", config, clock, wall_clock=clock.wall, jitter=lambda: 0.0)


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.record_failure(breaker.acquire(), "NoAudioReceived")


def recorder(breaker: CircuitBreaker) -> list[TransitionEvent]:
    events: list[TransitionEvent] = []
    breaker.add_listener(events.append)
    return events


async def ok() -> str:
    return "ok"


# -- the snapshot defect: OPEN must say why ---------------------------------------


def test_open_snapshot_keeps_the_figures_that_tripped_it() -> None:
    clock = FakeClock()
    breaker = make(clock)
    breaker.record_success(breaker.acquire())
    fail(breaker, 5)
    snap = breaker.typed_snapshot()
    assert snap.state is OPEN
    assert snap.consecutive_failures == 5
    assert snap.failure_rate == pytest.approx(5 / 6)
    assert (snap.window_calls, snap.window_failures) == (6, 5)
    assert snap.tripped_by == TripFigures(
        TripCause.CONSECUTIVE_FAILURES, 5, pytest.approx(5 / 6), 0.0, 6, 5, 0
    )
    assert snap.tripped_by is not None
    assert snap.tripped_by.describe() == "5 consecutive failures"
    assert breaker.snapshot()["consecutive_failures"] == 5
    clock.advance(60)
    breaker.acquire()  # HALF_OPEN: still what opened it
    assert breaker.typed_snapshot().consecutive_failures == 5


def test_closed_snapshot_shows_the_live_window() -> None:
    clock = FakeClock()
    breaker = make(clock)
    fail(breaker, 5)
    clock.advance(60)
    breaker.record_success(breaker.acquire())
    snap = breaker.typed_snapshot()
    assert snap.state is CLOSED
    assert (snap.consecutive_failures, snap.window_calls, snap.tripped_by) == (0, 0, None)
    assert snap.cooldown == 120.0  # the next trip would start one level up
    assert snap.cooldown_level == 1


@pytest.mark.parametrize(
    ("figures", "text"),
    [
        (TripFigures(TripCause.FAILURE_RATE, failure_rate=0.6, window_calls=10),
         "failure rate 60% of 10 calls"),
        (TripFigures(TripCause.SLOW_CALL_RATE, slow_call_rate=0.8, window_calls=5),
         "slow-call rate 80% of 5 calls"),
        (TripFigures(TripCause.FORCED), "opened by an operator"),
        (TripFigures(TripCause.ISOLATED), "isolated by an operator"),
        (TripFigures(TripCause.TRIAL_FAILED), "a failed trial call"),
    ],
)  # fmt: skip
def test_trip_figures_describe_themselves(figures: TripFigures, text: str) -> None:
    assert figures.describe() == text
    assert TripFigures.from_dict(figures.as_dict()) == figures


@pytest.mark.parametrize(
    "bad",
    [{"window_calls": -1}, {"failure_rate": 1.5}, {"window_calls": True}, {"cause": "gremlins"},
     {"slow_call_rate": "x"}],
)  # fmt: skip
def test_trip_figures_from_bad_data_raise(bad: dict[str, object]) -> None:
    data = {**TripFigures(TripCause.FORCED).as_dict(), **bad}
    with pytest.raises(ValueError):  # noqa: PT011 - the message names the key
        TripFigures.from_dict(data)


def test_snapshot_dict_round_trips_and_keeps_every_seed_key() -> None:
    clock = FakeClock()
    breaker = make(clock)
    fail(breaker, 5)
    data = breaker.snapshot()
    seed_keys = {
        "name", "state", "circuit_open", "half_open", "consecutive_failures", "failure_rate",
        "window_calls", "window_failures", "window_size", "last_failure",
        "last_failure_reason", "last_success", "opened_at", "retry_after", "cooldown",
        "trips", "consecutive_trips", "half_open_in_flight", "half_open_successes",
        "last_transition_reason",
    }  # fmt: skip
    assert seed_keys <= set(data)
    assert data["state"] == "OPEN"
    assert data["circuit_open"] is True
    back = BreakerSnapshot.from_dict(data)
    assert back == replace(breaker.typed_snapshot(), durable=None)
    assert BreakerSnapshot.from_dict({"name": "x", "state": OPEN}).state is OPEN
    minimal = BreakerSnapshot.from_dict({"name": "x", "state": "CLOSED", "tripped_by": None})
    assert (minimal.window, minimal.circuit_open, minimal.half_open) == ("10 calls", False, False)
    timed = BreakerSnapshot("t", FORCED_OPEN, window_type="time", window_duration=30.0)
    assert (timed.window, timed.circuit_open) == ("30 s", True)


# -- modes --------------------------------------------------------------------------


async def test_isolate_rejects_until_reset_with_no_trials() -> None:
    clock = FakeClock()
    breaker = make(clock)
    events = recorder(breaker)
    breaker.isolate("isolated by @root via /tts mode")
    assert events[-1].reason == "isolated by @root via /tts mode"
    assert events[-1].new is FORCED_OPEN
    clock.advance(10 * 86400)
    assert not breaker.would_admit()
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(ok)
    assert info.value.state is FORCED_OPEN
    assert info.value.retry_after == 60.0
    assert breaker.retry_after == 60.0
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    snap = breaker.typed_snapshot()
    assert snap.rejected_calls == 2
    assert snap.tripped_by == TripFigures(TripCause.ISOLATED)
    assert snap.last_transition_reason == "isolated by @root via /tts mode"
    breaker.isolate("again")  # already isolated: nothing happens
    assert len(events) == 1
    breaker.reset("reset by @root")
    assert breaker.state is CLOSED
    assert events[-1].reason == "reset by @root"
    assert await breaker.call(ok) == "ok"


def test_isolating_an_open_circuit_keeps_what_tripped_it() -> None:
    breaker = make(FakeClock())
    fail(breaker, 5)
    breaker.isolate("hold it")
    snap = breaker.typed_snapshot()
    assert snap.state is FORCED_OPEN
    assert snap.tripped_by is not None
    assert snap.tripped_by.cause is TripCause.CONSECUTIVE_FAILURES
    assert snap.consecutive_failures == 5


async def test_disabled_admits_everything_and_records_nothing() -> None:
    clock = FakeClock()
    breaker = make(clock)
    fail(breaker, 5)
    breaker.disable("disabled by @root")
    assert breaker.state is DISABLED
    assert breaker.would_admit()

    async def down() -> None:
        raise ConnectionError("down")

    for _ in range(20):
        with pytest.raises(ConnectionError):
            await breaker.call(down)
        async with breaker:
            pass
    permit = breaker.acquire()
    breaker.record_success(permit)
    breaker.record_failure(breaker.acquire(), "x")
    snap = breaker.typed_snapshot()
    assert snap.state is DISABLED
    assert (snap.window_calls, snap.consecutive_failures, snap.tripped_by) == (0, 0, None)
    assert snap.last_success is None
    assert snap.last_failure == datetime.fromtimestamp(clock.wall(), tz=UTC)  # from before
    breaker.reset()
    assert breaker.state is CLOSED


async def test_metrics_only_records_but_never_trips() -> None:
    clock = FakeClock()
    breaker = make(clock)
    breaker.metrics_only("shadow mode by @root")

    async def down() -> None:
        raise ConnectionError("down")

    for _ in range(30):
        with pytest.raises(ConnectionError):
            await breaker.call(down)
    assert await breaker.call(ok) == "ok"
    breaker.record_failure(breaker.acquire(), "by hand")
    snap = breaker.typed_snapshot()
    assert snap.state is METRICS_ONLY
    assert snap.consecutive_failures == 1
    assert snap.window_calls == 32
    assert snap.failure_rate == pytest.approx(31 / 32)
    clock.advance(61)
    assert await breaker.call(ok) == "ok"  # a success that empties old buckets: no trip
    assert breaker.state is METRICS_ONLY
    breaker.metrics_only("again")
    assert breaker.typed_snapshot().window_calls == 1


def test_a_permit_from_before_a_mode_change_changes_nothing() -> None:
    breaker = make(FakeClock())
    permit = breaker.acquire()
    breaker.metrics_only("shadow")
    for _ in range(10):
        breaker.record_failure(permit, "late")
    assert breaker.typed_snapshot().window_calls == 0


def test_modes_leave_every_other_state() -> None:
    clock = FakeClock()
    breaker = make(clock)
    fail(breaker, 5)
    clock.advance(60)
    breaker.acquire()
    assert breaker.state is HALF_OPEN
    breaker.metrics_only("m")
    breaker.disable("d")
    breaker.isolate("i")
    breaker.force_open("f", duration=5)
    assert breaker.state is OPEN
    breaker.reset()
    assert [CircuitState(s).is_mode for s in CircuitState] == [
        False, False, False, True, True, True
    ]  # fmt: skip


# -- the durable record ----------------------------------------------------------------


def test_export_and_adopt_carry_an_outage_to_another_breaker() -> None:
    clock = FakeClock()
    first = make(clock)
    fail(first, 5)
    clock.advance(10)
    record = first.export_state()
    assert record.state is OPEN
    assert record.version == 1
    assert record.open_until == pytest.approx(clock.wall() + 50)
    assert record.tripped_by is not None

    other_clock = FakeClock(start=5.0, epoch=clock.wall() - 5.0)
    second = make(other_clock)
    events = recorder(second)
    assert second.adopt_state(record, "shared") is True
    assert second.state is OPEN
    assert second.retry_after == pytest.approx(50)
    assert events[-1].reason == "shared"
    assert second.typed_snapshot().consecutive_failures == 5
    assert second.export_state() == replace(record, reason="shared")

    stale = replace(record, version=0, state=CLOSED)
    assert second.adopt_state(stale) is False
    assert second.state is OPEN


def test_adopting_half_open_and_a_closed_level() -> None:
    clock = FakeClock()
    breaker = make(clock)
    fail(breaker, 5)
    clock.advance(60)
    breaker.acquire()
    record = breaker.export_state()
    assert record.state is HALF_OPEN
    fresh = make(clock)
    fresh.adopt_state(record)
    assert fresh.state is HALF_OPEN
    assert fresh.typed_snapshot().half_open_in_flight == 0
    closed = replace(record, state=CLOSED, version=9, cooldown_level=99, calm_since=None)
    assert fresh.adopt_state(closed)
    assert fresh.state is CLOSED
    assert fresh.export_state().cooldown_level == 3  # clamped to the top level
    assert fresh.export_state().calm_since == pytest.approx(clock.wall())
    assert fresh.adopt_state(replace(closed, trips=7))  # same state: no transition
    assert fresh.typed_snapshot().trips == 7


def test_reset_of_a_closed_circuit_that_remembers_a_level_is_a_transition() -> None:
    clock = FakeClock()
    breaker = make(clock)
    fail(breaker, 5)
    clock.advance(60)
    breaker.record_success(breaker.acquire())
    events = recorder(breaker)
    breaker.reset("forget the flapping")
    assert [(e.old, e.new, e.reason) for e in events] == [(CLOSED, CLOSED, "forget the flapping")]
    assert breaker.typed_snapshot().cooldown_level == 0
    breaker.reset("again")
    assert len(events) == 1


async def test_async_listener_sees_the_typed_snapshot() -> None:
    breaker = make(FakeClock())
    seen: list[BreakerSnapshot] = []

    async def listener(event: TransitionEvent) -> None:
        await asyncio.sleep(0)
        seen.append(event.snapshot)

    breaker.add_listener(listener)
    fail(breaker, 5)
    await breaker.drain_listeners()
    assert seen[0].durable is not None
    assert seen[0].durable.state is OPEN

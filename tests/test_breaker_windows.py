"""Count and time windows, slow calls, and the config's bounds and 0-means-off spelling."""

from __future__ import annotations

import math

import pytest

from edge_voice.core.breaker import (
    BreakerStateMachine,
    CircuitBreakerConfig,
    CircuitState,
    Permit,
    TripCause,
)
from edge_voice.core.breaker.config import MAX_WINDOW_SIZE
from edge_voice.core.breaker.window import CountWindow, TimeWindow

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN

RATE_ONLY = {"consecutive_failures": 0, "failure_threshold": 0.5, "minimum_calls": 4}


def machine(**settings: object) -> BreakerStateMachine:
    config = CircuitBreakerConfig(**settings)  # type: ignore[arg-type]
    return BreakerStateMachine("edge", config, lambda: 0.0)


def call(m: BreakerStateMachine, now: float, outcome: str) -> None:
    """s = success, f = failure, S = slow success, F = slow failure."""
    permit = m.acquire(now)
    if outcome in "sS":
        m.on_success(permit, now, slow=outcome == "S")
    else:
        m.on_failure(permit, now, "boom", slow=outcome == "F")


# -- time window ---------------------------------------------------------------


def test_time_window_forgets_a_nights_stale_failures() -> None:
    m = machine(window_type="time", window_duration=60.0, **RATE_ONLY)
    for hour in range(3):  # quiet hours: one failure an hour
        call(m, hour * 3600.0, "f")
    call(m, 3 * 3600.0, "f")  # morning: one more failure, then traffic
    for second in range(1, 4):
        call(m, 3 * 3600.0 + second, "s")
    assert m.state is CLOSED
    assert (m.window_calls, m.window_failures) == (4, 1)


def test_count_window_keeps_them_and_trips_in_the_morning() -> None:
    m = machine(window_type="count", window_size=4, **RATE_ONLY)
    for hour in range(3):
        call(m, hour * 3600.0, "f")
    call(m, 3 * 3600.0, "s")
    assert m.state is CLOSED
    call(m, 3 * 3600.0 + 1, "f")  # one morning failure: 3 of the last 4
    assert m.state is OPEN
    assert m.tripped_by is not None
    assert m.tripped_by.cause is TripCause.FAILURE_RATE


def test_minimum_calls_counts_only_calls_inside_the_time_window() -> None:
    m = machine(window_type="time", window_duration=10.0, window_buckets=10, **RATE_ONLY)
    call(m, 0.0, "f")
    call(m, 1.0, "f")
    call(m, 12.0, "f")  # the first two have left
    call(m, 12.5, "f")
    assert m.state is CLOSED
    assert m.window_calls == 2
    call(m, 13.0, "f")
    call(m, 13.5, "f")
    assert m.state is OPEN
    assert "over the last 4 calls in 10s" in m.transitions[-1].reason


def test_calls_leave_a_time_window_a_bucket_at_a_time() -> None:
    w = TimeWindow(10.0, 5)  # buckets of 2 s
    w.add(0.5, True, False)
    w.add(3.0, False, True)
    w.advance(9.9)
    assert (w.calls, w.failures, w.slow) == (2, 1, 1)
    w.advance(10.0)  # bucket [0, 2) is now too old
    assert (w.calls, w.failures, w.slow) == (1, 0, 1)
    w.advance(100.0)
    assert (w.calls, w.failures, w.slow) == (0, 0, 0)


def test_a_time_window_records_a_clock_gone_backwards_into_its_newest_bucket() -> None:
    w = TimeWindow(10.0, 10)
    w.add(50.0, True, False)
    assert w.add_success(20.0) is False
    w.advance(59.9)
    assert (w.calls, w.failures) == (2, 1)
    w.advance(60.0)
    assert w.calls == 0


def test_a_success_that_expires_old_calls_can_trip_the_rate() -> None:
    m = machine(window_type="time", window_duration=10.0, window_buckets=10, **RATE_ONLY)
    for t in (0.0, 0.1, 0.2, 0.3):
        call(m, t, "s")
    for t in (5.0, 5.1, 5.2):
        call(m, t, "f")  # 3 of 7: below half
    assert m.state is CLOSED
    call(m, 10.5, "s")  # the four early successes leave: 3 failures of 4
    assert m.state is OPEN
    assert m.tripped_by is not None
    assert m.tripped_by.window_calls == 4


def test_a_success_into_a_new_bucket_of_an_all_good_window_does_not_trip() -> None:
    w = TimeWindow(10.0, 10)
    w.add_success(0.0)
    assert w.add_success(1.0) is False
    assert w.add_success(10.5) is True  # the first call left on the way
    assert w.calls == 2


def test_count_window_overwrites_oldest_and_clears_in_place() -> None:
    w = CountWindow(3)
    for failed, slow in ((True, True), (False, False), (True, False)):
        w.add(0.0, failed, slow)
    assert (w.calls, w.failures, w.slow) == (3, 2, 1)
    w.add_success(0.0)  # the slow failure leaves
    assert (w.calls, w.failures, w.slow) == (3, 1, 0)
    for _ in range(3):
        w.add_success(0.0)
    assert (w.calls, w.failures, w.slow) == (3, 0, 0)
    w.add_success(0.0)
    w.clear()
    assert (w.calls, w.failures, w.slow) == (0, 0, 0)
    w.add(0.0, True, False)
    assert (w.calls, w.failures) == (1, 1)


# -- slow calls ------------------------------------------------------------------


def test_slow_calls_open_the_circuit_whether_they_succeed_or_fail() -> None:
    m = machine(consecutive_failures=0, failure_threshold=0, slow_call_rate_threshold=0.75,
                minimum_calls=4, window_type="count", window_size=4)  # fmt: skip
    for outcome in "SsF":
        call(m, 0.0, outcome)
    assert m.state is CLOSED
    assert m.slow_call_rate == pytest.approx(2 / 3)
    call(m, 0.0, "S")
    assert m.state is OPEN
    assert m.tripped_by is not None
    assert m.tripped_by.cause is TripCause.SLOW_CALL_RATE
    assert m.tripped_by.slow_call_rate == 0.75
    assert m.transitions[-1].reason == "slow-call rate 75% over the last 4 calls, last call slow"


def test_slow_rate_threshold_zero_never_trips_on_slowness() -> None:
    m = machine(slow_call_rate_threshold=0, minimum_calls=2, window_type="count", window_size=2)
    for _ in range(5):
        call(m, 0.0, "S")
    assert m.state is CLOSED
    assert m.window_slow_calls == 2


def test_a_timed_breaker_judges_slowness_by_its_clock() -> None:
    m = machine(slow_call_duration=2.0, slow_call_rate_threshold=1.0, minimum_calls=2,
                window_type="count", window_size=2)  # fmt: skip
    fast = m.acquire(10.0)
    assert fast.started == 10.0
    m.on_success(fast, 11.9)
    assert m.window_slow_calls == 0
    m.on_success(m.acquire(20.0), 22.0)
    assert (m.window_calls, m.window_slow_calls) == (2, 1)
    m.on_failure(m.acquire(30.0), 32.5, "late")
    assert m.state is OPEN
    assert m.tripped_by is not None
    assert m.tripped_by.window_slow_calls == 2


def test_an_untimed_breaker_ignores_start_times() -> None:
    m = machine(minimum_calls=1, window_type="count", window_size=1)
    m.on_success(Permit(m.closed_permit.generation, False, 0.0), 999.0)
    assert m.window_slow_calls == 0
    assert m.closed_permit.started is None


def test_a_slow_trial_reopens_and_a_fast_one_counts_towards_closing() -> None:
    m = machine(consecutive_failures=1, success_threshold=2, cooldown_jitter=0.0)
    call(m, 0.0, "f")
    trial = m.acquire(60.0)
    assert m.on_success(trial, 60.0, slow=True) is True
    assert m.state is OPEN
    assert m.transitions[-1].reason == "trial call was slow"
    assert m.cooldown == 120.0
    assert m.tripped_by is not None
    assert m.tripped_by.cause is TripCause.CONSECUTIVE_FAILURES  # what first tripped it
    m.on_success(m.acquire(180.0), 180.0)
    assert m.state is HALF_OPEN
    assert m.half_open_successes == 1


def test_a_slow_trial_succeeds_when_slowness_never_trips() -> None:
    m = machine(consecutive_failures=1, success_threshold=1, slow_call_rate_threshold=0)
    call(m, 0.0, "f")
    assert m.on_success(m.acquire(60.0), 60.0, slow=True) is True
    assert m.state is CLOSED


# -- config: bounds and the one spelling for "off" --------------------------------


@pytest.mark.parametrize(
    "field", ["consecutive_failures", "failure_threshold", "slow_call_duration",
              "slow_call_rate_threshold"],
)  # fmt: skip
def test_none_is_refused_with_the_spelling_to_use(field: str) -> None:
    with pytest.raises(ValueError, match=f"{field} must be .*use 0 to switch it off"):
        CircuitBreakerConfig(**{field: None})  # type: ignore[arg-type]


def test_zero_switches_the_streak_and_rate_policies_off() -> None:
    m = machine(consecutive_failures=0, failure_threshold=0, minimum_calls=1)
    for t in range(50):
        call(m, float(t), "f")
    assert m.state is CLOSED
    assert m.consecutive_failures == 50


@pytest.mark.parametrize(
    ("settings", "field", "expected"),
    [
        ({"window_size": MAX_WINDOW_SIZE + 1}, "window_size", "from 1 to 10000"),
        ({"window_size": 10**9}, "window_size", "from 1 to 10000"),
        ({"window_size": 2.5}, "window_size", "an integer"),
        ({"window_type": "sliding"}, "window_type", "'count' or 'time'"),
        ({"window_duration": 0}, "window_duration", "(0, 86400]"),
        ({"window_duration": 86_401.0}, "window_duration", "(0, 86400]"),
        ({"window_buckets": 0}, "window_buckets", "from 1 to 1000"),
        ({"window_buckets": 1001}, "window_buckets", "from 1 to 1000"),
        ({"minimum_calls": 10_001}, "minimum_calls", "between 1 and 10000"),
        ({"minimum_calls": 0}, "minimum_calls", "between 1 and 10000"),
        ({"window_type": "count", "minimum_calls": 11}, "minimum_calls", "window_size (10)"),
        ({"slow_call_duration": -1.0}, "slow_call_duration", "(0, 3600]"),
        ({"slow_call_duration": 3601.0}, "slow_call_duration", "(0, 3600]"),
        ({"slow_call_rate_threshold": 1.01}, "slow_call_rate_threshold", "in (0, 1]"),
        ({"cooldown_period": float("inf")}, "cooldown_period", "(0, 604800]"),
        ({"max_cooldown_period": 604_801.0}, "max_cooldown_period", "<= 604800"),
        ({"cooldown_multiplier": 0.5}, "cooldown_multiplier", "[1, 100]"),
        ({"cooldown_multiplier": 101.0}, "cooldown_multiplier", "[1, 100]"),
        ({"cooldown_jitter": -0.1}, "cooldown_jitter", "[0, 1]"),
        ({"success_threshold": 1001}, "success_threshold", "from 1 to 1000"),
        ({"half_open_max_calls": 1001}, "half_open_max_calls", "from 1 to 1000"),
        ({"failure_threshold": True}, "failure_threshold", "in (0, 1]"),
        ({"consecutive_failures": 2.0}, "consecutive_failures", "an integer"),
    ],
)
def test_every_bound_has_a_clear_error(
    settings: dict[str, object], field: str, expected: str
) -> None:
    with pytest.raises(ValueError, match=field) as info:
        CircuitBreakerConfig(**settings)  # type: ignore[arg-type]
    assert expected in str(info.value)


@pytest.mark.parametrize(
    "settings",
    [
        {"window_size": MAX_WINDOW_SIZE, "window_type": "count", "minimum_calls": 10_000},
        {"window_duration": 86_400.0, "window_buckets": 1000},
        {"slow_call_duration": 3600.0, "slow_call_rate_threshold": 1.0},
        {"cooldown_period": 604_800.0, "max_cooldown_period": 604_800.0},
        {"cooldown_multiplier": 100.0, "cooldown_jitter": 1.0},
        {"cooldown_multiplier": 1.0, "cooldown_jitter": 0.0},
        {"success_threshold": 1000, "half_open_max_calls": 1000, "consecutive_failures": 10_000},
        {"failure_threshold": 1.0, "minimum_calls": 1},
    ],
)
def test_the_bounds_themselves_are_accepted(settings: dict[str, object]) -> None:
    CircuitBreakerConfig(**settings)  # type: ignore[arg-type]


def test_bucket_edges_agree_with_floor_division_even_where_products_round_low() -> None:
    w = TimeWindow(1.0, 10)  # 0.1 s buckets: 5 * 0.1 rounds below 0.5
    for number in range(200):
        edge = w._bucket_end(float(number))
        assert edge // 0.1 > number
        assert math.nextafter(edge, -math.inf) // 0.1 <= number

"""Transition tests for the pure state machine: time is a number we pass in."""

from __future__ import annotations

import itertools

import pytest

from edge_voice.core.breaker import (
    BreakerStateMachine,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
)

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN

FIRST_DESIGN = CircuitBreakerConfig(
    consecutive_failures=5,
    failure_threshold=0,
    cooldown_period=300,
    max_cooldown_period=300,
    success_threshold=1,
)
SECOND_DESIGN = CircuitBreakerConfig(
    consecutive_failures=0,
    window_type="count",
    failure_threshold=0.5,
    window_size=10,
    minimum_calls=10,
    cooldown_period=60,
    max_cooldown_period=60,
    success_threshold=3,
)


def machine(config: CircuitBreakerConfig | None = None, jitter: float = 0.0) -> BreakerStateMachine:
    return BreakerStateMachine("edge", config or CircuitBreakerConfig(), lambda: jitter)


def run(m: BreakerStateMachine, script: str, now: float = 0.0) -> float:
    """Drive ``m`` with one letter per call: s = success, f = failure."""
    for step in script:
        permit = m.acquire(now)
        if step == "s":
            m.on_success(permit, now)
        else:
            m.on_failure(permit, now, "boom")
    return now


# (config, script, expected state, expected trip reason fragment)
TRIP_TABLE = [
    pytest.param(FIRST_DESIGN, "ffff", CLOSED, None, id="first-4-failures-stays-closed"),
    pytest.param(FIRST_DESIGN, "fffff", OPEN, "5 consecutive failures", id="first-5-failures"),
    pytest.param(FIRST_DESIGN, "ffffsffff", CLOSED, None, id="first-success-resets-streak"),
    pytest.param(SECOND_DESIGN, "fffff", CLOSED, None, id="second-below-minimum-calls"),
    pytest.param(SECOND_DESIGN, "sssssfffff", OPEN, "failure rate 50%", id="second-50pct-of-10"),
    pytest.param(SECOND_DESIGN, "ssssssffff", CLOSED, None, id="second-40pct-stays"),
    pytest.param(SECOND_DESIGN, "ffffssssss" + "s", CLOSED, None, id="second-window-slides"),
    pytest.param(
        SECOND_DESIGN, "ffffssssss" + "sf", CLOSED, None, id="second-oldest-failure-leaves"
    ),
    pytest.param(
        CircuitBreakerConfig(), "sfsfsfsfsf", OPEN, "failure rate", id="default-rate-policy"
    ),
    pytest.param(CircuitBreakerConfig(), "sssfffff", OPEN, "consecutive", id="default-streak"),
]


@pytest.mark.parametrize(("config", "script", "state", "reason"), TRIP_TABLE)
def test_trip_policies(
    config: CircuitBreakerConfig, script: str, state: CircuitState, reason: str | None
) -> None:
    m = machine(config)
    run(m, script)
    assert m.state is state
    if reason:
        assert m.last_transition is not None
        assert reason in m.last_transition.reason
        assert m.trips == 1


def test_open_rejects_until_cooldown_then_half_open() -> None:
    m = machine(CircuitBreakerConfig(consecutive_failures=1, cooldown_period=60))
    run(m, "f", now=100.0)
    assert m.state is OPEN
    with pytest.raises(CircuitOpenError) as info:
        m.acquire(100.0 + 59.5)
    assert info.value.retry_after == pytest.approx(0.5)
    assert info.value.state is OPEN
    assert m.retry_after(130.0) == pytest.approx(30.0)
    permit = m.acquire(160.0)
    assert permit.trial
    assert m.state is HALF_OPEN
    assert [t.new for t in m.transitions] == [OPEN, HALF_OPEN]


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_half_open_admits_at_most_limit(limit: int) -> None:
    m = machine(CircuitBreakerConfig(consecutive_failures=1, half_open_max_calls=limit))
    run(m, "f")
    permits = [m.acquire(60.0) for _ in range(limit)]
    assert all(p.trial for p in permits)
    with pytest.raises(CircuitOpenError) as info:
        m.acquire(60.0)
    assert info.value.state is HALF_OPEN
    assert info.value.retry_after == 0.0


def test_success_threshold_closes_and_resets_cooldown() -> None:
    m = machine(CircuitBreakerConfig(consecutive_failures=1, success_threshold=3))
    run(m, "f")
    for i in range(3):
        assert m.state is (HALF_OPEN if i else OPEN)
        permit = m.acquire(60.0)
        m.on_success(permit, 60.0)
    assert m.state is CLOSED
    assert m.last_transition is not None
    assert "3 trial calls succeeded" in m.last_transition.reason
    assert m.consecutive_trips == 0
    assert m.next_cooldown(60.0) == 120.0  # the trip is remembered...
    assert m.next_cooldown(120.0) == 60.0  # ...for one cooldown_period of calm


def test_trial_failure_reopens_with_longer_cooldown() -> None:
    cfg = CircuitBreakerConfig(consecutive_failures=1, success_threshold=2, cooldown_jitter=0.0)
    m = machine(cfg)
    run(m, "f", now=0.0)
    assert m.cooldown == 60.0
    ok = m.acquire(60.0)
    m.on_success(ok, 60.0)
    failing = m.acquire(61.0)
    m.on_failure(failing, 61.0, "still down")
    assert m.state is OPEN
    assert m.cooldown == 120.0
    assert m.open_until == 181.0
    assert m.last_transition is not None
    assert m.last_transition.reason == "trial call failed: still down"


@pytest.mark.parametrize("jitter", [0.0, 0.5, 1.0])
def test_cooldowns_grow_exactly_first_then_never_shrink(jitter: float) -> None:
    cfg = CircuitBreakerConfig(consecutive_failures=1, cooldown_period=60, max_cooldown_period=300)
    m = machine(cfg, jitter=jitter)
    now = 0.0
    run(m, "f", now)
    cooldowns = [m.cooldown]
    for _ in range(6):
        now = m.open_until
        m.on_failure(m.acquire(now), now, "down")
        cooldowns.append(m.cooldown)
    assert cooldowns[0] == 60.0
    assert cooldowns[1] >= 120.0
    assert cooldowns[1] <= 120.0 * (1 + 0.1 * jitter) + 1e-9
    assert all(b >= a for a, b in itertools.pairwise(cooldowns))
    assert cooldowns[-1] == 300.0
    assert m.trips == 7


def test_closing_steps_the_cooldown_down_one_level_per_calm_cooldown_period() -> None:
    cfg = CircuitBreakerConfig(consecutive_failures=1, success_threshold=1, cooldown_jitter=0)
    m = machine(cfg)
    run(m, "f", 0.0)
    m.on_failure(m.acquire(60.0), 60.0, "x")
    assert m.cooldown == 120.0
    m.on_success(m.acquire(180.0), 180.0)
    assert m.state is CLOSED
    assert m.level(180.0) == 2
    assert m.level(239.9) == 2
    assert m.level(240.0) == 1
    run(m, "f", 250.0)  # flapping: opens at the remembered level
    assert m.cooldown == 120.0
    m.on_success(m.acquire(370.0), 370.0)
    run(m, "f", 370.0 + 2 * 60.0)  # two calm periods: back to the base cooldown
    assert m.cooldown == 60.0


def test_a_flapping_service_is_probed_less_and_less_often() -> None:
    cfg = CircuitBreakerConfig(consecutive_failures=1, success_threshold=1, cooldown_jitter=0)
    m = machine(cfg)
    now, cooldowns = 0.0, []
    for _ in range(5):
        run(m, "f", now)
        cooldowns.append(m.cooldown)
        now = m.open_until
        m.on_success(m.acquire(now), now)
        now += 10.0  # it fails again soon after each recovery
    assert cooldowns == [60.0, 120.0, 240.0, 300.0, 300.0]
    m.reset(now)
    assert m.level(now) == 0
    run(m, "f", now)
    assert m.cooldown == 60.0


def test_release_returns_trial_permit_without_counting() -> None:
    m = machine(CircuitBreakerConfig(consecutive_failures=1, success_threshold=1))
    run(m, "f")
    permit = m.acquire(60.0)
    with pytest.raises(CircuitOpenError):
        m.acquire(60.0)
    m.release(permit)
    assert m.state is HALF_OPEN
    assert m.half_open_successes == 0
    again = m.acquire(60.0)
    m.on_success(again, 60.0)
    assert m.state is CLOSED


def test_stale_permits_never_move_state() -> None:
    m = machine(CircuitBreakerConfig(consecutive_failures=2))
    slow = m.acquire(0.0)
    run(m, "ff", 0.0)
    assert m.state is OPEN
    m.on_failure(slow, 1.0, "late")
    m.on_success(slow, 2.0)
    assert m.state is OPEN
    assert m.trips == 1
    assert m.last_failure_at == 1.0


def test_reset_closes_and_forgets() -> None:
    m = machine(CircuitBreakerConfig(consecutive_failures=1, cooldown_jitter=0))
    run(m, "f", 0.0)
    m.on_failure(m.acquire(60.0), 60.0, "x")
    in_flight_before_reset = m.acquire(200.0)
    m.reset(200.0)
    assert m.state is CLOSED
    assert m.cooldown == 60.0
    assert m.consecutive_failures == 0
    assert m.window_calls == 0
    m.on_failure(in_flight_before_reset, 201.0, "late")
    assert m.consecutive_failures == 0
    assert m.last_transition is not None
    assert m.last_transition.reason == "manual reset"


def test_reset_while_closed_records_no_transition() -> None:
    m = machine()
    run(m, "ff")
    m.reset(0.0)
    assert m.transitions == []
    assert m.consecutive_failures == 0


def test_force_open() -> None:
    m = machine()
    m.force_open(10.0, "operator: maintenance", duration=600)
    assert m.state is OPEN
    assert m.retry_after(10.0) == 600
    with pytest.raises(CircuitOpenError):
        m.acquire(609.0)
    assert m.acquire(610.0).trial


def test_retry_after_bounded_when_clock_goes_backwards() -> None:
    m = machine(CircuitBreakerConfig(consecutive_failures=1))
    run(m, "f", now=1000.0)
    assert m.retry_after(10.0) == 60.0


def test_would_admit_changes_nothing() -> None:
    m = machine(CircuitBreakerConfig(consecutive_failures=1))
    run(m, "f")
    assert not m.would_admit(30.0)
    assert m.would_admit(60.0)
    assert m.state is OPEN


def test_restore_open_resumes_remaining_cooldown() -> None:
    m = machine()
    m.restore_open(500.0, remaining=42.0, cooldown=120.0, trips=3)
    assert m.state is OPEN
    assert m.retry_after(500.0) == 42.0
    assert m.trips == 3
    assert m.transitions[-1].reason == "restored after restart, 42s left"
    m.on_failure(m.acquire(542.0), 542.0, "x")
    assert m.cooldown >= 240.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("failure_threshold", -0.1),
        ("failure_threshold", 1.5),
        ("window_size", 0),
        ("window_size", 10_001),
        ("consecutive_failures", -1),
        ("consecutive_failures", 10_001),
        ("cooldown_period", 0),
        ("max_cooldown_period", 10),
        ("success_threshold", 0),
        ("half_open_max_calls", 0),
        ("cooldown_jitter", 2.0),
    ],
)
def test_config_rejects_nonsense(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        CircuitBreakerConfig(**{field: value})  # type: ignore[arg-type]

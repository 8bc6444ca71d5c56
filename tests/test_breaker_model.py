"""Hypothesis drives the breaker at random and compares it with a small reference model.

The model is written from the specification, separately from the state machine:
lists instead of a ring, a set of live calls instead of generations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from edge_voice.core.breaker import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError, Permit
from edge_voice.core.clock import FakeClock

JITTER = 0.5


@dataclass
class Model:
    """The specification, spelled out as plainly as possible."""

    cfg: CircuitBreakerConfig
    state: str = "CLOSED"
    streak: int = 0
    window: list[bool] = field(default_factory=list)
    cooldown: float = 0.0
    repeated: int = 0
    open_until: float = 0.0
    trips: int = 0
    trials_in_flight: int = 0
    trial_successes: int = 0
    live: set[int] = field(default_factory=set)
    trial_calls: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.cooldown = self.cfg.cooldown_period

    def change(self, state: str) -> None:
        self.state = state
        self.live.clear()
        self.trial_calls.clear()
        self.streak = 0
        self.window = []
        self.trials_in_flight = 0
        self.trial_successes = 0

    def open(self, now: float) -> None:
        if self.repeated:
            grown = self.cooldown * self.cfg.cooldown_multiplier
            grown *= 1 + self.cfg.cooldown_jitter * JITTER
            self.cooldown = min(self.cfg.max_cooldown_period, max(self.cooldown, grown))
        self.repeated += 1
        self.trips += 1
        self.open_until = now + self.cooldown
        self.change("OPEN")

    def close(self) -> None:
        self.repeated = 0
        self.cooldown = self.cfg.cooldown_period
        self.change("CLOSED")

    def admit(self, call: int, now: float) -> float | None:
        """None when admitted, else the retry_after of the rejection."""
        if self.state == "OPEN":
            if now < self.open_until:
                return min(self.cooldown, self.open_until - now)
            self.change("HALF_OPEN")
        if self.state == "HALF_OPEN":
            if self.trials_in_flight >= self.cfg.half_open_max_calls:
                return 0.0
            self.trials_in_flight += 1
            self.trial_calls.add(call)
        self.live.add(call)
        return None

    def succeed(self, call: int) -> None:
        if call not in self.live:
            return
        self.live.discard(call)
        if call in self.trial_calls:
            self.trials_in_flight -= 1
            self.trial_successes += 1
            if self.trial_successes >= self.cfg.success_threshold:
                self.close()
            return
        self.streak = 0
        self.window = [*self.window, False][-self.cfg.window_size :]

    def fail(self, call: int, now: float) -> None:
        if call not in self.live:
            return
        self.live.discard(call)
        if call in self.trial_calls:
            self.open(now)
            return
        self.streak += 1
        self.window = [*self.window, True][-self.cfg.window_size :]
        limit, rate = self.cfg.consecutive_failures, self.cfg.failure_threshold
        streak_trips = limit is not None and self.streak >= limit
        rate_trips = (
            rate is not None
            and len(self.window) >= self.cfg.minimum_calls
            and sum(self.window) / len(self.window) >= rate
        )
        if streak_trips or rate_trips:
            self.open(now)

    def cancel(self, call: int) -> None:
        if call in self.live:
            self.live.discard(call)
            if call in self.trial_calls:
                self.trials_in_flight -= 1
                self.trial_calls.discard(call)

    def reset(self) -> None:
        self.close()


@st.composite
def configs(draw: st.DrawFn) -> CircuitBreakerConfig:
    window = draw(st.integers(1, 8))
    cooldown = draw(st.sampled_from([1.0, 10.0, 60.0]))
    return CircuitBreakerConfig(
        consecutive_failures=draw(st.one_of(st.none(), st.integers(1, 6))),
        failure_threshold=draw(st.one_of(st.none(), st.sampled_from([0.25, 0.5, 1.0]))),
        window_size=window,
        minimum_calls=draw(st.integers(1, window)),
        cooldown_period=cooldown,
        max_cooldown_period=cooldown * draw(st.sampled_from([1, 3, 10])),
        cooldown_multiplier=draw(st.sampled_from([1.0, 2.0, 3.0])),
        cooldown_jitter=draw(st.sampled_from([0.0, 0.1, 1.0])),
        success_threshold=draw(st.integers(1, 4)),
        half_open_max_calls=draw(st.integers(1, 3)),
    )


class BreakerVersusModel(RuleBasedStateMachine):
    calls = Bundle("calls")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.next_call = 0

    @initialize(cfg=configs())
    def start(self, cfg: CircuitBreakerConfig) -> None:
        self.breaker = CircuitBreaker(
            "model", cfg, self.clock, wall_clock=self.clock.wall, jitter=lambda: JITTER
        )
        self.model = Model(cfg)

    @rule(target=calls)
    def admit(self) -> tuple[int, Permit | None]:
        call = self.next_call
        self.next_call += 1
        expected = self.model.admit(call, self.clock())
        if expected is not None:
            with pytest.raises(CircuitOpenError) as rejected:
                self.breaker.acquire()
            assert rejected.value.retry_after == pytest.approx(expected)
            return call, None
        return call, self.breaker.acquire()

    @rule(call=consumes(calls))
    def succeed(self, call: tuple[int, Permit | None]) -> None:
        if call[1] is not None:
            self.model.succeed(call[0])
            self.breaker.record_success(call[1])

    @rule(call=consumes(calls))
    def fail(self, call: tuple[int, Permit | None]) -> None:
        if call[1] is not None:
            self.model.fail(call[0], self.clock())
            self.breaker.record_failure(call[1], "boom")

    @rule(call=consumes(calls))
    def cancel(self, call: tuple[int, Permit | None]) -> None:
        if call[1] is not None:
            self.model.cancel(call[0])
            self.breaker.release(call[1])

    @rule(seconds=st.sampled_from([0.5, 1.0, 9.0, 10.0, 59.0, 60.0, 200.0, 1000.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def reset(self) -> None:
        self.model.reset()
        self.breaker.reset()

    @invariant()
    def agrees_with_model(self) -> None:
        if not hasattr(self, "breaker"):
            return
        snap = self.breaker.snapshot()
        model = self.model
        assert snap["state"] == model.state
        assert snap["trips"] == model.trips
        assert snap["cooldown"] == pytest.approx(model.cooldown)
        assert snap["half_open_in_flight"] == model.trials_in_flight
        assert snap["half_open_successes"] == model.trial_successes
        if model.state == "CLOSED":
            assert snap["consecutive_failures"] == model.streak
            assert snap["window_calls"] == len(model.window)
            assert snap["window_failures"] == sum(model.window)
        if model.state == "OPEN":
            assert snap["retry_after"] == pytest.approx(
                min(model.cooldown, max(0.0, model.open_until - self.clock()))
            )


TestBreakerAgainstModel = BreakerVersusModel.TestCase
TestBreakerAgainstModel.settings = settings(
    max_examples=300,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

"""The breaker's specification as a small reference model, for tests/test_breaker_model.py.

Written from the specification, separately from the state machine: plain lists
instead of a ring and buckets, a dict of live calls instead of generations, the
cooldown of each level computed from its formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from edge_voice.core.breaker import CircuitBreakerConfig, TripCause, TripFigures

JITTER = 0.5


@dataclass
class ModelWindow:
    """The window: every call ever recorded, with the bucket it fell in."""

    cfg: CircuitBreakerConfig
    entries: list[tuple[float, bool, bool]] = field(default_factory=list)
    current: float = -math.inf

    def view(self) -> list[tuple[float, bool, bool]]:
        """The calls that count now."""
        if self.cfg.window_type == "count":
            return self.entries[-self.cfg.window_size :]
        return [e for e in self.entries if e[0] > self.current - self.cfg.window_buckets]

    def look(self, now: float) -> list[tuple[float, bool, bool]]:
        """The window at ``now`` (time moves the newest bucket, never back)."""
        if self.cfg.window_type == "time":
            span = self.cfg.window_duration / self.cfg.window_buckets
            self.current = max(self.current, now // span)
        return self.view()

    def add(self, now: float, failed: bool, slow: bool) -> bool:
        """Record a call; True if older calls left the window on the way."""
        before = len(self.view())
        after = len(self.look(now))
        self.entries.append((self.current, failed, slow))
        return after < before


@dataclass
class Model:
    """The specification, spelled out as plainly as possible."""

    cfg: CircuitBreakerConfig
    state: str = "CLOSED"
    streak: int = 0
    window: ModelWindow = field(init=False)
    cooldown: float = 0.0
    level: int = 0
    calm_since: float | None = None
    repeated: int = 0
    open_until: float = 0.0
    trips: int = 0
    version: int = 0
    rejected: int = 0
    trials_in_flight: int = 0
    trial_successes: int = 0
    tripped: TripFigures | None = None
    live: dict[int, tuple[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cooldown = self.cfg.cooldown_period
        self.window = ModelWindow(self.cfg)

    # -- cooldown levels -------------------------------------------------------

    def plain(self, level: int) -> float:
        return min(
            self.cfg.max_cooldown_period,
            self.cfg.cooldown_period * self.cfg.cooldown_multiplier**level,
        )

    def top(self) -> int:
        if self.cfg.cooldown_multiplier == 1.0:
            return 1
        level = 1
        while level < 64 and self.plain(level) < self.cfg.max_cooldown_period:
            level += 1
        return level

    def decayed(self, now: float) -> int:
        if self.calm_since is None:
            return self.level
        steps = math.floor(max(0.0, now - self.calm_since) / self.cfg.cooldown_period)
        return max(0, self.level - steps)

    def draw(self, level: int, floor: float) -> float:
        cfg = self.cfg
        grown = cfg.cooldown_period
        if level:
            grown = cfg.cooldown_period * cfg.cooldown_multiplier**level
            grown *= 1 + cfg.cooldown_jitter * JITTER
        return min(cfg.max_cooldown_period, max(floor, grown))

    # -- transitions -------------------------------------------------------------

    def figures(self, cause: TripCause) -> TripFigures:
        view = self.window.view()
        calls = len(view)
        failures = sum(e[1] for e in view)
        slow = sum(e[2] for e in view)
        return TripFigures(
            cause,
            self.streak,
            failures / calls if calls else 0.0,
            slow / calls if calls else 0.0,
            calls,
            failures,
            slow,
        )

    def change(self, state: str) -> None:
        self.state = state
        self.version += 1
        self.live.clear()
        self.streak = 0
        self.window = ModelWindow(self.cfg)
        self.trials_in_flight = 0
        self.trial_successes = 0

    def leave(self, state: str, now: float) -> None:
        """Any transition out of CLOSED ends the calm stretch: the level takes its decay."""
        self.level = self.decayed(now)
        self.calm_since = None
        self.change(state)

    def open(self, now: float, from_trial: bool) -> None:
        level = self.level if from_trial else self.decayed(now)
        self.cooldown = self.draw(level, self.cooldown if from_trial else 0.0)
        self.level = min(self.top(), level + 1)
        self.calm_since = None
        self.repeated += 1
        self.trips += 1
        self.open_until = now + self.cooldown
        self.change("OPEN")

    def trip(self, cause: TripCause, now: float) -> None:
        self.tripped = self.figures(cause)
        self.open(now, from_trial=False)

    def reopen(self, now: float) -> None:
        self.tripped = self.tripped or TripFigures(TripCause.TRIAL_FAILED)
        self.open(now, from_trial=True)

    def close(self, now: float) -> None:
        self.repeated = 0
        self.tripped = None
        self.calm_since = now
        self.change("CLOSED")

    def check_rates(self, now: float) -> None:
        view = self.window.view()
        calls = len(view)
        if calls < self.cfg.minimum_calls:
            return
        if (
            self.cfg.failure_threshold
            and sum(e[1] for e in view) / calls >= self.cfg.failure_threshold
        ):
            self.trip(TripCause.FAILURE_RATE, now)
        elif self.cfg.slow_call_rate_threshold and (
            sum(e[2] for e in view) / calls >= self.cfg.slow_call_rate_threshold
        ):
            self.trip(TripCause.SLOW_CALL_RATE, now)

    # -- calls -------------------------------------------------------------------

    def admit(self, call: int, now: float) -> float | None:
        """None when admitted, else the retry_after of the rejection."""
        if self.state == "FORCED_OPEN":
            self.rejected += 1
            return self.cfg.cooldown_period
        if self.state == "OPEN":
            if now < self.open_until:
                self.rejected += 1
                return min(self.cooldown, self.open_until - now)
            self.leave("HALF_OPEN", now)
        if self.state == "HALF_OPEN":
            if self.trials_in_flight >= self.cfg.half_open_max_calls:
                self.rejected += 1
                return 0.0
            self.trials_in_flight += 1
            self.live[call] = ("trial", now)
        elif self.state == "DISABLED":
            self.live[call] = ("none", now)
        else:
            self.live[call] = ("recorded", now)
        return None

    def is_slow(self, call: int, now: float, slow: bool | None) -> bool:
        if slow is not None:
            return slow
        started = self.live[call][1]
        return self.cfg.slow_call_duration > 0 and now - started >= self.cfg.slow_call_duration

    def succeed(self, call: int, now: float, slow: bool | None) -> None:
        if self.state == "DISABLED" or call not in self.live:
            return
        slow = self.is_slow(call, now, slow)
        kind = self.live.pop(call)[0]
        if kind == "trial":
            self.trials_in_flight -= 1
            if slow and self.cfg.slow_call_rate_threshold:
                self.reopen(now)
                return
            self.trial_successes += 1
            if self.trial_successes >= self.cfg.success_threshold:
                self.close(now)
            return
        self.streak = 0
        expired = self.window.add(now, False, slow)
        if self.state == "CLOSED" and (slow or expired):
            self.check_rates(now)

    def fail(self, call: int, now: float, slow: bool | None) -> None:
        if self.state == "DISABLED" or call not in self.live:
            return
        slow = self.is_slow(call, now, slow)
        kind = self.live.pop(call)[0]
        if kind == "trial":
            self.trials_in_flight -= 1
            self.reopen(now)
            return
        self.streak += 1
        self.window.add(now, True, slow)
        if self.state != "CLOSED":
            return
        limit = self.cfg.consecutive_failures
        if limit and self.streak >= limit:
            self.trip(TripCause.CONSECUTIVE_FAILURES, now)
        else:
            self.check_rates(now)

    def cancel(self, call: int) -> None:
        if call in self.live and self.live.pop(call)[0] == "trial":
            self.trials_in_flight -= 1

    # -- operators -------------------------------------------------------------------

    def reset(self, now: float) -> None:
        forgot = self.decayed(now) > 0
        self.level = 0
        self.cooldown = self.cfg.cooldown_period
        if self.state != "CLOSED":
            self.close(now)
            return
        self.calm_since = now
        self.live.clear()
        self.streak = 0
        self.window = ModelWindow(self.cfg)
        self.version += forgot

    def mode(self, mode: str, now: float) -> None:
        if self.state == mode:
            return
        if mode == "FORCED_OPEN":
            self.tripped = self.tripped or self.figures(TripCause.ISOLATED)
        else:
            self.tripped = None
        self.leave(mode, now)

    # -- what the snapshot must show ---------------------------------------------------

    def shown_cooldown(self, now: float) -> float:
        return (
            self.cooldown if self.state in ("OPEN", "HALF_OPEN") else self.plain(self.decayed(now))
        )

    def retry_after(self, now: float) -> float:
        if self.state == "FORCED_OPEN":
            return self.cfg.cooldown_period
        if self.state != "OPEN":
            return 0.0
        return min(self.cooldown, max(0.0, self.open_until - now))

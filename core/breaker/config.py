"""How a breaker trips and recovers: :class:`CircuitBreakerConfig` and its bounds.

Every switchable policy is switched off with 0, the one spelling TOML can write
too (it has no null); ``None`` is refused with a message that says so. Every
size has an upper bound, so a typo cannot allocate gigabytes or make each
transition take milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal

MAX_WINDOW_SIZE = 10_000
"""Most calls a count window holds (one small int each)."""
MAX_WINDOW_DURATION = 86_400.0
"""Longest time window, in seconds: a day."""
MAX_WINDOW_BUCKETS = 1_000
"""Most buckets a time window is cut into."""
MAX_MINIMUM_CALLS = MAX_WINDOW_SIZE
"""Most calls the rate policies may wait for."""
MAX_CONSECUTIVE_FAILURES = 10_000
MAX_SLOW_CALL_DURATION = 3_600.0
"""Longest slow-call duration, in seconds: an hour."""
MAX_COOLDOWN_PERIOD = 7 * 86_400.0
"""Longest cooldown, in seconds: a week."""
MAX_COOLDOWN_MULTIPLIER = 100.0
MAX_TRIAL_CALLS = 1_000
"""Most trial calls for ``success_threshold`` and ``half_open_max_calls``."""

WindowType = Literal["count", "time"]
_OFF = "use 0 to switch it off"


@dataclass(frozen=True, slots=True)
class CircuitBreakerConfig:
    """How a breaker trips and recovers.

    Three trip policies, each switched off with 0: ``consecutive_failures``,
    ``failure_threshold`` (a share of the window), and ``slow_call_rate_threshold``
    (a share of the window that was slow). The window is the last
    ``window_size`` calls (``window_type="count"``) or the calls of the last
    ``window_duration`` seconds (``"time"``).
    """

    failure_threshold: float = 0.5
    """Open when the failure rate over the window reaches this share (0 < x <= 1; 0: off)."""
    window_size: int = 10
    """A count window's length: the most recent calls the rates are computed over."""
    minimum_calls: int = 10
    """The rate policies wait until the window holds at least this many calls."""
    consecutive_failures: int = 5
    """Open after this many failures in a row (0: off)."""
    cooldown_period: float = 60.0
    """Seconds the first trip stays OPEN; also how long healthy operation takes to
    step a grown cooldown back down one level."""
    max_cooldown_period: float = 300.0
    """Cap for the cooldown of repeated trips."""
    cooldown_multiplier: float = 2.0
    """Each cooldown level is the previous one times this, plus jitter."""
    cooldown_jitter: float = 0.1
    """Up to this share of a grown cooldown is added at random (never subtracted)."""
    success_threshold: int = 3
    """Consecutive successful trial calls in HALF_OPEN that close the circuit."""
    half_open_max_calls: int = 1
    """Trial calls admitted at once in HALF_OPEN."""
    window_type: WindowType = "time"
    """``"time"``: the calls of the last ``window_duration`` seconds; ``"count"``: the
    last ``window_size`` calls. bench/outage.py's bursty-traffic part picked "time"."""
    window_duration: float = 60.0
    """A time window's length in seconds."""
    window_buckets: int = 10
    """A time window is kept in this many buckets: calls leave it a bucket at a time."""
    slow_call_duration: float = 0.0
    """A call that takes at least this many seconds on the breaker's clock is slow
    (0: the breaker never times calls; a caller can still report ``slow=True``)."""
    slow_call_rate_threshold: float = 0.8
    """Open when the share of slow calls over the window reaches this (0: off)."""

    def __post_init__(self) -> None:
        problems = config_problems({f.name: getattr(self, f.name) for f in fields(self)})
        if problems:
            raise ValueError(
                "invalid CircuitBreakerConfig: "
                + "; ".join(
                    f"{key} must be {expected}, got {got!r}" for key, expected, got in problems
                )
            )

    @property
    def timed(self) -> bool:
        """Whether the breaker reads the clock around each call to spot slow ones."""
        return self.slow_call_duration > 0


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _within(value: Any, low: float, high: float, *, low_open: bool = False) -> bool:
    if not _number(value):
        return False
    number = float(value)
    return (low < number if low_open else low <= number) and number <= high


def _switchable(ok: bool, value: Any, expected: str) -> tuple[bool, str]:
    """``ok``: the value is ``expected`` or 0, which switches the policy off (the
    callers check the closed range from 0). None is refused with the spelling to use."""
    if value is None:
        return False, f"{expected}, or 0 to switch it off (None is not accepted: {_OFF})"
    return ok, f"{expected}, or 0 to switch it off"


def config_problems(values: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """Check a complete set of :class:`CircuitBreakerConfig` field values.

    Returns ``(field, expected, got)`` for each problem, so a config loader can
    name the key without parsing messages.
    """
    v = values
    size_ok = _integer(v["window_size"]) and 1 <= v["window_size"] <= MAX_WINDOW_SIZE
    count = v["window_type"] == "count"
    calls_limit = v["window_size"] if count and size_ok else MAX_MINIMUM_CALLS
    cooldown_ok = _within(v["cooldown_period"], 0.0, MAX_COOLDOWN_PERIOD, low_open=True)
    floor = v["cooldown_period"] if cooldown_ok else 0.0
    checks: list[tuple[str, bool, str]] = [
        ("failure_threshold", *_switchable(
            _within(v["failure_threshold"], 0.0, 1.0), v["failure_threshold"], "in (0, 1]",
        )),
        ("window_type", v["window_type"] in ("count", "time"), "'count' or 'time'"),
        ("window_size", size_ok, f"an integer from 1 to {MAX_WINDOW_SIZE}"),
        (
            "window_duration",
            _within(v["window_duration"], 0.0, MAX_WINDOW_DURATION, low_open=True),
            f"seconds in (0, {MAX_WINDOW_DURATION:g}]",
        ),
        (
            "window_buckets",
            _integer(v["window_buckets"]) and 1 <= v["window_buckets"] <= MAX_WINDOW_BUCKETS,
            f"an integer from 1 to {MAX_WINDOW_BUCKETS}",
        ),
        (
            "minimum_calls",
            _integer(v["minimum_calls"]) and 1 <= v["minimum_calls"] <= calls_limit,
            f"between 1 and window_size ({v['window_size']})"
            if count
            else f"between 1 and {MAX_MINIMUM_CALLS}",
        ),
        ("consecutive_failures", *_switchable(
            _integer(v["consecutive_failures"])
            and 0 <= v["consecutive_failures"] <= MAX_CONSECUTIVE_FAILURES,
            v["consecutive_failures"], f"an integer from 1 to {MAX_CONSECUTIVE_FAILURES}",
        )),
        ("slow_call_duration", *_switchable(
            _within(v["slow_call_duration"], 0.0, MAX_SLOW_CALL_DURATION),
            v["slow_call_duration"], f"seconds in (0, {MAX_SLOW_CALL_DURATION:g}]",
        )),
        ("slow_call_rate_threshold", *_switchable(
            _within(v["slow_call_rate_threshold"], 0.0, 1.0),
            v["slow_call_rate_threshold"], "in (0, 1]",
        )),
        ("cooldown_period", cooldown_ok, f"seconds in (0, {MAX_COOLDOWN_PERIOD:g}]"),
        (
            "max_cooldown_period",
            _within(v["max_cooldown_period"], floor, MAX_COOLDOWN_PERIOD),
            f">= cooldown_period ({v['cooldown_period']}) and <= {MAX_COOLDOWN_PERIOD:g}",
        ),
        (
            "cooldown_multiplier",
            _within(v["cooldown_multiplier"], 1.0, MAX_COOLDOWN_MULTIPLIER),
            f"in [1, {MAX_COOLDOWN_MULTIPLIER:g}]",
        ),
        ("cooldown_jitter", _within(v["cooldown_jitter"], 0.0, 1.0), "in [0, 1]"),
        (
            "success_threshold",
            _integer(v["success_threshold"]) and 1 <= v["success_threshold"] <= MAX_TRIAL_CALLS,
            f"an integer from 1 to {MAX_TRIAL_CALLS}",
        ),
        (
            "half_open_max_calls",
            _integer(v["half_open_max_calls"])
            and 1 <= v["half_open_max_calls"] <= MAX_TRIAL_CALLS,
            f"an integer from 1 to {MAX_TRIAL_CALLS}",
        ),
    ]  # fmt: skip
    return [(key, expected, v[key]) for key, ok, expected in checks if not ok]

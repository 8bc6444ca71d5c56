"""Bursty traffic: which window tells a brownout from a night's sporadic failures.

Run ``.venv/bin/python bench/outage_windows.py`` (``bench/outage.py`` prints it too).
The service breaker's view of a bot's day, one call per message: quiet hours
with sporadic failures, then busy hours with a brownout in the middle. Each
configuration sees exactly the same days (seeded), and nothing waits: the
breaker's clock is a FakeClock set to each message's arrival.

A count window of 10 calls spans the whole night at night's traffic, so three
stale failures plus two in the morning read as "50 % of the last 10 calls"; a
time window only counts what happened in its last ``window_duration`` seconds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_voice.core.breaker import (  # noqa: E402
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
)
from edge_voice.core.breaker.states import CircuitState  # noqa: E402
from edge_voice.core.clock import FakeClock  # noqa: E402
from edge_voice.core.config import Config  # noqa: E402

HOUR = 3600.0
QUIET_HOURS, BUSY_HOURS = 7.0, 3.0
QUIET_GAP, BUSY_GAP = 900.0, 3.0
"""Mean seconds between messages: one every 15 min at night, every 3 s when busy."""
QUIET_FAILURES, BUSY_FAILURES = 0.25, 0.02
"""Share of messages that fail outside the brownout."""
BROWNOUT_START, BROWNOUT_LENGTH, BROWNOUT_FAILURES = 8.5 * HOUR, 600.0, 0.6
CALL_SECONDS = 0.5

DETECT_WITHIN = 90.0
"""Target: the brownout opens the circuit within this many seconds, every day..."""
FALSE_TRIPS_PER_DAY = 0.1
"""...and trips outside it stay below this many per day (on average)."""


@dataclass
class Day:
    """One day's messages: (arrival, fails) pairs, the same for every configuration."""

    messages: list[tuple[float, bool]] = field(default_factory=list)

    @classmethod
    def generate(cls, seed: int) -> Day:
        rng = random.Random(seed)
        day, t = cls(), 0.0
        while True:
            busy = t >= QUIET_HOURS * HOUR
            t += max(CALL_SECONDS, rng.expovariate(1 / (BUSY_GAP if busy else QUIET_GAP)))
            if t >= (QUIET_HOURS + BUSY_HOURS) * HOUR:
                return day
            share = QUIET_FAILURES if not busy else BUSY_FAILURES
            if BROWNOUT_START <= t < BROWNOUT_START + BROWNOUT_LENGTH:
                share = BROWNOUT_FAILURES
            day.messages.append((t, rng.random() < share))


@dataclass
class Outcome:
    """What one configuration did on one day."""

    false_trips: int = 0
    turned_away_by_false_trips: int = 0
    detected_after: float | None = None
    brownout_attempts: int = 0


def in_brownout(t: float) -> bool:
    return BROWNOUT_START <= t < BROWNOUT_START + BROWNOUT_LENGTH


def run_day(config: CircuitBreakerConfig, day: Day) -> Outcome:
    """Every message of ``day`` through one fresh breaker with ``config``."""
    clock = FakeClock(start=0.0)
    breaker = CircuitBreaker("edge", config, clock, wall_clock=clock.wall, jitter=lambda: 0.5)
    outcome = Outcome()
    false_open = False  # open because of a false trip, until it closes again
    for arrival, fails in day.messages:
        clock.now = arrival
        was_closed = breaker.state is CircuitState.CLOSED
        false_open = false_open and not was_closed
        try:
            permit = breaker.acquire()
        except CircuitOpenError:
            outcome.turned_away_by_false_trips += false_open
            continue
        outcome.brownout_attempts += in_brownout(arrival)
        clock.now = arrival + CALL_SECONDS
        if fails:
            breaker.record_failure(permit, "simulated")
        else:
            breaker.record_success(permit)
        if was_closed and breaker.state is CircuitState.OPEN:
            if in_brownout(arrival):
                if outcome.detected_after is None:
                    outcome.detected_after = clock.now - BROWNOUT_START
            else:
                outcome.false_trips += 1
                false_open = True
    return outcome


@dataclass
class Row:
    """One configuration over every day."""

    name: str
    config: CircuitBreakerConfig
    days: list[Outcome] = field(default_factory=list)

    @property
    def false_trips(self) -> float:
        return statistics.mean(d.false_trips for d in self.days)

    @property
    def turned_away(self) -> float:
        return statistics.mean(d.turned_away_by_false_trips for d in self.days)

    @property
    def detected(self) -> list[float]:
        return [d.detected_after for d in self.days if d.detected_after is not None]

    @property
    def meets_target(self) -> bool:
        detected = self.detected
        return (
            len(detected) == len(self.days)
            and max(detected) <= DETECT_WITHIN
            and self.false_trips < FALSE_TRIPS_PER_DAY
        )


def rows() -> list[Row]:
    """The windows compared: the seed's count window, and time windows of three lengths."""
    base = Config().breaker
    return [
        Row("count, last 10 calls", replace(base, window_type="count", window_size=10)),
        Row("time, last 30 s", replace(base, window_type="time", window_duration=30.0)),
        Row("time, last 60 s", replace(base, window_type="time", window_duration=60.0)),
        Row("time, last 300 s", replace(base, window_type="time", window_duration=300.0)),
    ]


def report(days: int, seed: int) -> bool:
    """Print both windows side by side; True if the default configuration meets the target."""
    schedule = [Day.generate(seed + n) for n in range(days)]
    default = Config().breaker
    table = rows()
    for row in table:
        row.days = [run_day(row.config, day) for day in schedule]
    messages = statistics.mean(len(day.messages) for day in schedule)
    print(
        f"\n## Bursty traffic: count window versus time window\n\n"
        f"{days} simulated days (seeds {seed}..{seed + days - 1}), {messages:.0f} messages a day "
        f"on average, one service-breaker call each ({CALL_SECONDS} s). Quiet hours "
        f"00:00-07:00: a message every {QUIET_GAP / 60:.0f} min on average, "
        f"{QUIET_FAILURES:.0%} of them fail. Busy hours 07:00-10:00: one every {BUSY_GAP:g} s, "
        f"{BUSY_FAILURES:.0%} fail, except a brownout at 08:30 for {BROWNOUT_LENGTH / 60:.0f} "
        f"min in which {BROWNOUT_FAILURES:.0%} fail. Every other setting is the default "
        f"([breaker]: {default.consecutive_failures} in a row or "
        f"{default.failure_threshold:.0%} of at least {default.minimum_calls} calls; "
        f"cooldown {default.cooldown_period:g} s)."
    )
    print(
        "\n| window | false trips / day | messages turned away by them / day "
        "| brownout opened after (s): median, worst | attempts during brownout / day "
        "| meets target |\n|---|---:|---:|---:|---:|---|"
    )
    for row in table:
        detected = row.detected
        opened = (
            f"{statistics.median(detected):.0f}, {max(detected):.0f}"
            + (f" (missed {len(row.days) - len(detected)} days)" if len(detected) < days else "")
            if detected
            else "never"
        )
        attempts = statistics.mean(d.brownout_attempts for d in row.days)
        print(
            f"| {row.name} | {row.false_trips:.2f} | {row.turned_away:.1f} | {opened} "
            f"| {attempts:.0f} | {'yes' if row.meets_target else 'no'} |"
        )
    chosen = next(
        row
        for row in table
        if (row.config.window_type, row.config.window_duration, row.config.window_size)
        == (default.window_type, default.window_duration, default.window_size)
    )
    ok = Row("default", default, [run_day(default, day) for day in schedule]).meets_target
    print(
        f"\ntarget: the default window ({chosen.name}) opens on the brownout within "
        f"{DETECT_WITHIN:g} s every day and trips less than {FALSE_TRIPS_PER_DAY:g} times a day "
        f"outside it: {'met' if ok else 'MISSED'}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    return 0 if report(args.days, args.seed) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Injectable clocks.

Everything in :mod:`core` that needs the time takes a ``Clock`` (monotonic seconds,
for durations and deadlines) and, where it shows times to people, a ``WallClock``
(seconds since the epoch). Tests pass a :class:`FakeClock` and move time by hand
instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]
"""A callable returning monotonic seconds."""

WallClock = Callable[[], float]
"""A callable returning seconds since the Unix epoch."""

monotonic: Clock = time.monotonic
wall_time: WallClock = time.time


class FakeClock:
    """A manually driven clock for tests; usable as both ``Clock`` and ``WallClock``.

    ``now`` is the monotonic reading; ``wall()`` returns ``epoch + now`` so the two
    stay consistent when time advances.
    """

    def __init__(self, start: float = 1000.0, epoch: float = 1_700_000_000.0) -> None:
        self.now = start
        self.epoch = epoch

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        """Seconds since the Unix epoch that correspond to ``now``."""
        return self.epoch + self.now

    def advance(self, seconds: float) -> None:
        """Move time forward (or backward, for clock-jump tests) by ``seconds``."""
        self.now += seconds


def at_datetime(monotonic_at: float, clock: Clock, wall: WallClock) -> datetime:
    """Convert a monotonic reading taken earlier into an aware UTC datetime."""
    return datetime.fromtimestamp(wall() - (clock() - monotonic_at), tz=UTC)


def to_datetime(monotonic_at: float | None, clock: Clock, wall: WallClock) -> datetime | None:
    """Like :func:`at_datetime`, passing ``None`` through."""
    return None if monotonic_at is None else at_datetime(monotonic_at, clock, wall)

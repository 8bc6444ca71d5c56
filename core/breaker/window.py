"""The windows the rate policies look at: the last N calls, or the last T seconds.

Both keep running totals of calls, failures and slow calls, so every read and
every record is O(1) (a time window's record after a quiet spell clears at most
``buckets`` buckets once). Both share one interface, so the state machine never
asks which kind it has.

``add_success`` is the hot path: it returns True only when old calls left the
window on the way, the one case in which a success can raise a rate.
"""

from __future__ import annotations

import math

from edge_voice.core.breaker.config import CircuitBreakerConfig


class CountWindow:
    """The outcomes of the last ``size`` calls, in a ring."""

    __slots__ = ("_next", "_ring", "calls", "failures", "label", "size", "slow")

    def __init__(self, size: int) -> None:
        self.size = size
        self.label = ""
        """How reasons name the window after "over the last N calls"."""
        # One int per call: bit 0 failed, bit 1 slow.
        self._ring = [0] * size
        self.clear()

    def clear(self) -> None:
        """Forget every call. O(1): slots are only read back after being rewritten."""
        self._next = 0
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def add_success(self, now: float) -> bool:
        """Record a fast success; never raises a rate, so always False."""
        # A full window of fast successes stays alike: nothing to write.
        if self.failures or self.slow or self.calls < self.size:
            self.add(now, False, False)
        return False

    def add(self, now: float, failed: bool, slow: bool) -> None:
        """Record one call's outcome."""
        index = self._next
        if self.calls == self.size:
            evicted = self._ring[index]
            self.failures -= evicted & 1
            self.slow -= evicted >> 1
        else:
            self.calls += 1
        self._ring[index] = failed | slow << 1
        self.failures += failed
        self.slow += slow
        self._next = index + 1 if index + 1 < self.size else 0

    def advance(self, now: float) -> None:
        """Let time pass: a count window keeps its calls however old they are."""


class TimeWindow:
    """The outcomes of the calls of the last ``duration`` seconds, in ``buckets`` buckets.

    Bucket ``n`` holds the calls made while ``now // (duration / buckets) == n``;
    the window is the newest bucket and the ``buckets - 1`` before it, so a call
    counts for between ``duration * (1 - 1/buckets)`` and ``duration`` seconds.
    A clock that goes backwards records into the newest bucket.
    """

    __slots__ = (
        "_calls",
        "_failures",
        "_index",
        "_number",
        "_slow",
        "_span",
        "buckets",
        "calls",
        "failures",
        "label",
        "slow",
    )

    def __init__(self, duration: float, buckets: int) -> None:
        self.buckets = buckets
        self._span = duration / buckets
        self.label = f" in {duration:g}s"
        self._calls = [0] * buckets
        self._failures = [0] * buckets
        self._slow = [0] * buckets
        self.clear()

    def clear(self) -> None:
        """Forget every call."""
        for column in (self._calls, self._failures, self._slow):
            column[:] = [0] * self.buckets
        self._index = 0
        self._number = -math.inf
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def add_success(self, now: float) -> bool:
        """Record a fast success; True if older calls left the window first."""
        if now // self._span <= self._number:
            self._calls[self._index] += 1
            self.calls += 1
            return False
        expired = self._roll(now)
        self._calls[self._index] += 1
        self.calls += 1
        return expired

    def add(self, now: float, failed: bool, slow: bool) -> None:
        """Record one call's outcome."""
        self.advance(now)
        index = self._index
        self._calls[index] += 1
        self.calls += 1
        if failed:
            self._failures[index] += 1
            self.failures += 1
        if slow:
            self._slow[index] += 1
            self.slow += 1

    def advance(self, now: float) -> None:
        """Drop the buckets that are older than the window at ``now``."""
        if now // self._span > self._number:
            self._roll(now)

    def _roll(self, now: float) -> bool:
        number = now // self._span
        steps = number - self._number
        before = self.calls
        if steps >= self.buckets:
            self.clear()
        else:
            index = self._index
            for _ in range(int(steps)):
                index = index + 1 if index + 1 < self.buckets else 0
                self.calls -= self._calls[index]
                self.failures -= self._failures[index]
                self.slow -= self._slow[index]
                self._calls[index] = self._failures[index] = self._slow[index] = 0
            self._index = index
        self._number = number
        return self.calls < before


Window = CountWindow | TimeWindow


def make_window(config: CircuitBreakerConfig) -> Window:
    """The window ``config`` asks for."""
    if config.window_type == "count":
        return CountWindow(config.window_size)
    return TimeWindow(config.window_duration, config.window_buckets)

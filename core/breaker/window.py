"""The windows the rate policies look at: the last N calls, or the last T seconds.

Both keep running totals of calls, failures and slow calls, so every read and
every record is O(1) (a time window's record after a quiet spell clears at most
``buckets`` buckets once). Both share one interface, so the state machine never
asks which kind it has.

The hot path is a fast CLOSED success, and the asyncio wrapper
(core/breaker/breaker.py) spends no function call on it while ``now < window.edge``:
it only adds one to ``window.pending``. A time
window's edge is the end of its newest bucket (the pending successes are that
bucket's, folded in before anything reads or expires it); a count window's is
+inf while it is full of fast successes (one more changes nothing) and -inf
otherwise. Past the edge the machine calls ``add_success``, which returns True
only when old calls left the window on the way, the one case in which a success
can raise a rate.
"""

from __future__ import annotations

import math

from edge_voice.core.breaker.config import CircuitBreakerConfig


class CountWindow:
    """The outcomes of the last ``size`` calls, in a ring."""

    __slots__ = ("_next", "_ring", "calls", "edge", "failures", "label", "pending", "size", "slow")

    def __init__(self, size: int) -> None:
        self.size = size
        self.label = ""
        """How reasons name the window after "over the last N calls"."""
        # One byte per call: bit 0 failed, bit 1 slow (zeros until written over).
        self._ring = bytearray(size)
        self.clear()

    def clear(self) -> None:
        """Forget every call. O(1): slots are only read back after being rewritten."""
        self._next = 0
        self.calls = 0
        self.failures = 0
        self.slow = 0
        self.edge = -math.inf
        self.pending = 0
        """Fast successes counted past nobody: a full window of them is all alike."""

    def add_success(self, now: float) -> bool:
        """Record a fast success; never raises a rate, so always False."""
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
        self.edge = self._edge()

    def _edge(self) -> float:
        # Full of fast successes, one more changes nothing: the hot path may only count it.
        if self.calls == self.size and not (self.failures or self.slow):
            return math.inf
        return -math.inf

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
        "_total",
        "buckets",
        "edge",
        "failures",
        "label",
        "pending",
        "slow",
    )

    def __init__(self, duration: float, buckets: int) -> None:
        self.buckets = buckets
        self._span = duration / buckets
        self.label = f" in {duration:g}s"
        # Filled with zeros by clear().
        self._calls: list[int] = []
        self._failures: list[int] = []
        self._slow: list[int] = []
        self.clear()

    @property
    def calls(self) -> int:
        """Calls in the window, the pending fast successes included."""
        return self._total + self.pending

    def clear(self) -> None:
        """Forget every call."""
        for column in (self._calls, self._failures, self._slow):
            column[:] = [0] * self.buckets
        self._index = 0
        self._number = -math.inf
        self.edge = -math.inf
        self.pending = 0
        self._total = 0
        self.failures = 0
        self.slow = 0

    def add_success(self, now: float) -> bool:
        """Record a fast success; True if older calls left the window first."""
        expired = self._roll(now) if now >= self.edge else False
        self._calls[self._index] += 1
        self._total += 1
        return expired

    def add(self, now: float, failed: bool, slow: bool) -> None:
        """Record one call's outcome."""
        self.advance(now)
        index = self._index
        self._calls[index] += 1
        self._total += 1
        if failed:
            self._failures[index] += 1
            self.failures += 1
        if slow:
            self._slow[index] += 1
            self.slow += 1

    def advance(self, now: float) -> None:
        """Drop the buckets that are older than the window at ``now``."""
        if now >= self.edge:
            self._roll(now)

    def _roll(self, now: float) -> bool:
        # The pending successes belong to the newest bucket, which is about to age.
        self._calls[self._index] += self.pending
        self._total += self.pending
        self.pending = 0
        number = now // self._span
        before = self._total
        index = self._index
        # A quiet spell longer than the window empties every bucket once.
        for _ in range(int(min(number - self._number, self.buckets))):
            index = index + 1 if index + 1 < self.buckets else 0
            self._total -= self._calls[index]
            self.failures -= self._failures[index]
            self.slow -= self._slow[index]
            self._calls[index] = self._failures[index] = self._slow[index] = 0
        self._index = index
        self._number = number
        self.edge = self._bucket_end(number)
        return self._total < before

    def _bucket_end(self, number: float) -> float:
        # The first time whose bucket is later than ``number``: then ``now < edge`` says
        # exactly what ``now // span <= number`` does, without a division per call.
        span = self._span
        edge = (number + 1) * span
        while edge // span <= number:
            edge = math.nextafter(edge, math.inf)
        # Never too late: the product is within half an ulp of the bucket's true end,
        # so the float below it lies below that end, and floor division (exact, by
        # fmod) puts it in bucket ``number`` or earlier. Only the step up is needed,
        # where the product rounded low (tests/test_breaker_windows.py checks both).
        return edge


Window = CountWindow | TimeWindow


def make_window(config: CircuitBreakerConfig) -> Window:
    """The window ``config`` asks for."""
    if config.window_type == "count":
        return CountWindow(config.window_size)
    return TimeWindow(config.window_duration, config.window_buckets)

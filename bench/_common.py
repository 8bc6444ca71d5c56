"""Helpers shared by the benchmarks: simulated time and percentiles."""

from __future__ import annotations

import asyncio
import math
import selectors
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from core.clock import FakeClock

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    """Polls without blocking; when nothing is ready, jumps the clock to the next timer."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[Any]:
        ready: list[Any] = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("simulation stalled: no task is ready and no timer is set")
        self._clock.advance(timeout)
        return []


class _SimulatedLoop(asyncio.SelectorEventLoop):
    """An event loop whose time is ``clock.now``."""

    def __init__(self, clock: FakeClock) -> None:
        self._fake_clock = clock
        super().__init__(_JumpingSelector(clock))

    def time(self) -> float:
        return self._fake_clock.now


def run_simulated(clock: FakeClock, main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on an event loop whose time is ``clock``, with no real waiting.

    Whenever no task is ready the loop moves ``clock`` straight to its next timer,
    so ``asyncio.sleep`` and ``asyncio.timeout`` run in simulated seconds while
    concurrent tasks still interleave exactly as they would in real time. No
    real I/O may be pending (there is none to wait for in a simulation).
    """
    loop = _SimulatedLoop(clock)
    try:
        result = loop.run_until_complete(main)
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    return result


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in (0, 1]) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]

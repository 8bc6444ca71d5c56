"""Helpers shared by the benchmarks: simulated time and percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import math
import selectors
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterator,
    Sequence,
)
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar, TypeVarTuple

from edge_voice.core.clock import FakeClock
from edge_voice.core.tts.provider import AudioFormat, SynthesisRequest

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_REAL_WAIT_SLICE = 1.0
"""Longest real wait in one select while a worker thread is busy (the loop then checks again)."""


class _JumpingSelector(selectors.DefaultSelector):
    """Polls without blocking; when nothing is ready, jumps the clock to the next timer.

    While work on another thread is pending (``busy()``), it never jumps: it waits
    in real time for that thread to wake the loop, so simulated time stands still
    while real work runs and no timer fires early because of it.
    """

    def __init__(self, clock: FakeClock, busy: Callable[[], bool]) -> None:
        super().__init__()
        self._clock = clock
        self._busy = busy

    def select(self, timeout: float | None = None) -> list[Any]:
        ready: list[Any] = super().select(0)
        if ready or timeout == 0:
            return ready
        if self._busy():
            return list(super().select(_REAL_WAIT_SLICE))
        if timeout is None:
            raise RuntimeError("simulation stalled: no task is ready and no timer is set")
        self._clock.advance(timeout)
        return []


class _SimulatedLoop(asyncio.SelectorEventLoop):
    """An event loop whose time is ``clock.now``, aware of work pending on other threads."""

    def __init__(self, clock: FakeClock) -> None:
        self._fake_clock = clock
        self.threads_pending = 0
        super().__init__(_JumpingSelector(clock, lambda: self.threads_pending > 0))

    def time(self) -> float:
        return self._fake_clock.now

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[*Ts], T], *args: *Ts
    ) -> asyncio.Future[T]:
        # asyncio.to_thread lands here: the clock must wait for the thread's answer.
        future = super().run_in_executor(executor, func, *args)
        self.threads_pending += 1
        future.add_done_callback(self._thread_done)
        return future

    def _thread_done(self, _future: asyncio.Future[Any]) -> None:
        self.threads_pending -= 1


@contextlib.contextmanager
def awaiting_thread() -> Iterator[None]:
    """Mark that the current task awaits a result another thread will deliver.

    On a simulated loop the clock then stands still until that result arrives
    (``asyncio.to_thread`` is tracked without this). Elsewhere it does nothing.
    """
    loop = asyncio.get_running_loop()
    if not isinstance(loop, _SimulatedLoop):
        yield
        return
    loop.threads_pending += 1
    try:
        yield
    finally:
        loop.threads_pending -= 1


class _StreamingProvider(Protocol):
    # Like TTSProvider, but EspeakProvider.stream is declared as an AsyncIterator.
    name: str
    audio_format: AudioFormat

    def stream(self, request: SynthesisRequest) -> AsyncIterator[bytes]: ...


class ThreadAwareProvider:
    """Wraps a ``TTSProvider`` whose audio comes from a worker thread (such as eSpeak),
    so that a simulated clock stands still while it works."""

    def __init__(self, inner: _StreamingProvider) -> None:
        self.inner = inner
        self.name, self.audio_format = inner.name, inner.audio_format

    async def stream(self, request: SynthesisRequest) -> AsyncGenerator[bytes, None]:
        """The inner provider's chunks, each awaited inside :func:`awaiting_thread`."""
        chunks = aiter(self.inner.stream(request))
        try:
            while True:
                with awaiting_thread():
                    try:
                        chunk = await anext(chunks)
                    except StopAsyncIteration:
                        return
                yield chunk
        finally:
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()


def run_simulated(clock: FakeClock, main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on an event loop whose time is ``clock``, with no real waiting.

    Whenever no task is ready the loop moves ``clock`` straight to its next timer,
    so ``asyncio.sleep`` and ``asyncio.timeout`` run in simulated seconds while
    concurrent tasks still interleave exactly as they would in real time. Work on
    other threads (``asyncio.to_thread``, or code inside :func:`awaiting_thread`)
    runs in real time and takes no simulated time: the clock never moves while
    such a result is pending. No other real I/O may be pending.
    """
    loop = _SimulatedLoop(clock)
    executor = ThreadPoolExecutor(thread_name_prefix="simulated-loop")
    loop.set_default_executor(executor)
    try:
        result = loop.run_until_complete(main)
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
        executor.shutdown(wait=True)
    return result


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in (0, 1]) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]

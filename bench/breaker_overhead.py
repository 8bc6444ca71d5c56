"""Per-call cost of our circuit breaker next to a bare await and four Python peers.

Run with ``make bench`` (installs the peers into .bench-peers/ first), or
``.venv/bin/python bench/breaker_overhead.py`` once they are there. Every figure is the best
of many short rounds of ns per call, measured in this one process, rounds
interleaved so that drift hits every contender alike. Best, not median, and CPU
time of this thread, not wall time: on the shared machine the other engineers'
jobs only ever add time to a round (timeit's rule), and they added up to half
again to medians of wall time from one run to the next.

Our breaker has rows for ``async with`` and for each window and slow-call
tracking, and one with every feature on: a time window, slow-call tracking
(the clock read around every call), a result predicate.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / ".bench-peers"))

from edge_voice.core.breaker import (  # noqa: E402
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
)

# Each contender's loops are spelled out rather than built by one helper: a shared
# wrapper (a lambda or a partial) would add its own call to every iteration timed.
CALLS_PER_ROUND = 10_000
ROUNDS = 25


class Down(Exception):
    pass


async def noop() -> int:
    return 1


async def failing() -> int:
    raise Down


async def rejecting() -> int:
    raise CircuitOpenError("open", CircuitState.OPEN, 60.0)


Loop = Callable[[int], Awaitable[None]]


def bare_loops() -> dict[str, Loop]:
    async def bare(n: int) -> None:
        for _ in range(n):
            await noop()

    async def bare_raise(n: int) -> None:
        for _ in range(n):
            try:
                await failing()
            except Down:
                pass

    async def bare_raise_open(n: int) -> None:
        for _ in range(n):
            try:
                await rejecting()
            except CircuitOpenError:
                pass

    return {
        "bare await": bare,
        "bare await + raise/catch": bare_raise,
        "bare await + raise/catch CircuitOpenError": bare_raise_open,
    }


class _EmptyGuard:
    """The cheapest shapes the two protocols allow: an ``async with`` whose methods hand
    back done futures, and a ``call()`` that only awaits. Neither guards anything."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self._entered: asyncio.Future[None] = loop.create_future()
        self._entered.set_result(None)
        self._exited: asyncio.Future[None] = loop.create_future()
        self._exited.set_result(None)

    def __aenter__(self) -> Awaitable[None]:
        return self._entered

    def __aexit__(self, *exc: object) -> Awaitable[None]:
        return self._exited

    async def call(self, fn: Callable[[], Awaitable[int]]) -> int:
        return await fn()


async def floor_loops() -> dict[str, Loop]:
    """What ``async with`` and ``call()`` cost with nothing in them: the interpreter's own
    floor under the ratio the ``async with`` target compares."""
    empty = _EmptyGuard()

    async def with_floor(n: int) -> None:
        for _ in range(n):
            async with empty:
                await noop()

    async def call_floor(n: int) -> None:
        for _ in range(n):
            await empty.call(noop)

    return {"floor: empty async with": with_floor, "floor: empty call()": call_floor}


async def ours() -> tuple[Loop, Loop]:
    closed = CircuitBreaker("closed", CircuitBreakerConfig())
    opened = CircuitBreaker(
        "open", CircuitBreakerConfig(cooldown_period=3600, max_cooldown_period=3600)
    )
    opened.force_open("benchmark")

    async def closed_loop(n: int) -> None:
        call = closed.call
        for _ in range(n):
            await call(noop)

    async def open_loop(n: int) -> None:
        call = opened.call
        for _ in range(n):
            try:
                await call(noop)
            except CircuitOpenError:
                pass

    return closed_loop, open_loop


EVERY_FEATURE = CircuitBreakerConfig(
    window_type="time", slow_call_duration=10.0, slow_call_rate_threshold=0.5
)


def our_variants() -> dict[str, Loop]:
    """CLOSED rows of ours: the context manager, each window, slow calls, everything."""
    count = CircuitBreaker("count", CircuitBreakerConfig(window_type="count"))
    time_window = CircuitBreaker("time", CircuitBreakerConfig(window_type="time"))
    timed = CircuitBreaker("timed", CircuitBreakerConfig(slow_call_duration=10.0))
    every = CircuitBreaker("every", EVERY_FEATURE, is_failure_result=lambda r: r is None)
    guarded = CircuitBreaker("with", CircuitBreakerConfig())

    async def async_with(n: int) -> None:
        for _ in range(n):
            async with guarded:
                await noop()

    async def count_loop(n: int) -> None:
        call = count.call
        for _ in range(n):
            await call(noop)

    async def time_loop(n: int) -> None:
        call = time_window.call
        for _ in range(n):
            await call(noop)

    async def timed_loop(n: int) -> None:
        call = timed.call
        for _ in range(n):
            await call(noop)

    async def every_loop(n: int) -> None:
        call = every.call
        for _ in range(n):
            await call(noop)

    return {
        "ours, async with": async_with,
        "ours, count window": count_loop,
        "ours, time window": time_loop,
        "ours, slow-call tracking": timed_loop,
        "ours, every feature on": every_loop,
    }


async def peer_circuitbreaker() -> tuple[Loop, Loop]:
    from circuitbreaker import CircuitBreaker as PeerBreaker
    from circuitbreaker import CircuitBreakerError

    closed_fn = PeerBreaker(failure_threshold=5, recovery_timeout=3600)(noop)
    open_fn = PeerBreaker(failure_threshold=5, recovery_timeout=3600, expected_exception=Down)(
        failing
    )
    for _ in range(5):
        try:
            await open_fn()
        except Down:
            pass

    async def closed_loop(n: int) -> None:
        for _ in range(n):
            await closed_fn()

    async def open_loop(n: int) -> None:
        for _ in range(n):
            try:
                await open_fn()
            except CircuitBreakerError:
                pass

    return closed_loop, open_loop


async def peer_aiobreaker() -> tuple[Loop, Loop]:
    from aiobreaker import CircuitBreaker as PeerBreaker
    from aiobreaker import CircuitBreakerError

    closed = PeerBreaker(fail_max=5, timeout_duration=timedelta(hours=1))
    opened = PeerBreaker(fail_max=5, timeout_duration=timedelta(hours=1))
    for _ in range(5):
        try:
            await opened.call_async(failing)
        except (Down, CircuitBreakerError):
            pass

    async def closed_loop(n: int) -> None:
        call = closed.call_async
        for _ in range(n):
            await call(noop)

    async def open_loop(n: int) -> None:
        call = opened.call_async
        for _ in range(n):
            try:
                await call(noop)
            except CircuitBreakerError:
                pass

    return closed_loop, open_loop


async def peer_purgatory() -> tuple[Loop, Loop]:
    from purgatory import AsyncCircuitBreakerFactory
    from purgatory.domain.model import OpenedState

    factory = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=3600)
    await factory.initialize()
    closed_fn = factory("closed")(noop)
    open_fn = factory("open")(failing)
    for _ in range(5):
        try:
            await open_fn()
        except Down:
            pass

    async def closed_loop(n: int) -> None:
        for _ in range(n):
            await closed_fn()

    async def open_loop(n: int) -> None:
        for _ in range(n):
            try:
                await open_fn()
            except OpenedState:
                pass

    return closed_loop, open_loop


async def peer_interlock() -> tuple[Loop, Loop]:
    from interlock import CircuitBreaker as PeerBreaker
    from interlock import CircuitOpenError as PeerOpenError

    closed = PeerBreaker(name="closed")
    opened = PeerBreaker(name="open")
    opened.force_open()

    async def closed_loop(n: int) -> None:
        call = closed.call_async
        for _ in range(n):
            await call(noop)

    async def open_loop(n: int) -> None:
        call = opened.call_async
        for _ in range(n):
            try:
                await call(noop)
            except PeerOpenError:
                pass

    return closed_loop, open_loop


PEERS = {
    "interlock-cb 2.8.2": peer_interlock,
    "circuitbreaker 2.1.3": peer_circuitbreaker,
    "aiobreaker 1.2.0": peer_aiobreaker,
    "purgatory 3.0.1": peer_purgatory,
}


async def measure(loops: dict[str, Loop]) -> dict[str, float]:
    """Best ns per call (thread CPU time) of each loop, rounds interleaved."""
    samples: dict[str, list[float]] = {name: [] for name in loops}
    for loop in loops.values():
        await loop(CALLS_PER_ROUND // 10)
    for _ in range(ROUNDS):
        for name, loop in loops.items():
            start = time.thread_time_ns()
            await loop(CALLS_PER_ROUND)
            samples[name].append((time.thread_time_ns() - start) / CALLS_PER_ROUND)
    return {name: min(values) for name, values in samples.items()}


async def main() -> int:
    loops: dict[str, Loop] = dict(bare_loops())
    contenders = {"ours": ours}
    missing = []
    for name, factory in PEERS.items():
        try:
            __import__(name.split()[0].removesuffix("-cb"))
        except ImportError:
            missing.append(name)
            continue
        contenders[name] = factory
    for name, factory in contenders.items():
        closed_loop, open_loop = await factory()
        loops[f"{name} CLOSED"] = closed_loop
        loops[f"{name} OPEN"] = open_loop
    variants = our_variants()
    loops |= variants
    floors = await floor_loops()
    loops |= floors

    ns = await measure(loops)
    bare = ns["bare await"]
    raise_cost = ns["bare await + raise/catch"] - bare
    raise_open_cost = ns["bare await + raise/catch CircuitOpenError"] - bare

    print(
        f"Python {sys.version.split()[0]}, {CALLS_PER_ROUND} calls x {ROUNDS} rounds, "
        "best round, thread CPU time"
    )
    print()
    print("| breaker | CLOSED ns/call | CLOSED overhead | OPEN (reject) ns/call |")
    print("|---|---:|---:|---:|")
    print(f"| bare await (no breaker) | {bare:.0f} | - | - |")
    for name in contenders:
        closed, opened = ns[f"{name} CLOSED"], ns[f"{name} OPEN"]
        print(f"| {name} | {closed:.0f} | {closed - bare:+.0f} | {opened:.0f} |")
        if name == "ours":
            for variant in variants:
                print(f"| {variant} | {ns[variant]:.0f} | {ns[variant] - bare:+.0f} | - |")
    print()
    print(
        f"raising and catching over a bare await: a bare exception {raise_cost:.0f} ns, "
        f"a CircuitOpenError(name, state, retry_after) {raise_open_cost:.0f} ns"
    )
    if missing:
        print(f"not installed (run `make bench`): {', '.join(missing)}")

    every_overhead = ns["ours, every feature on"] - bare
    peer_overheads = {n: ns[f"{n} CLOSED"] - bare for n in contenders if n != "ours"}
    verdicts = []
    if peer_overheads:
        fastest = min(peer_overheads, key=lambda n: peer_overheads[n])
        for label, overhead in (
            ("ours", ns["ours CLOSED"] - bare),
            ("ours, every feature on", every_overhead),
        ):
            ratio = overhead / peer_overheads[fastest]
            print(
                f"{label} / fastest peer ({fastest}) CLOSED overhead: {ratio:.2f} "
                f"(target <= 0.50): {'met' if ratio <= 0.5 else 'MISSED'}"
            )
            verdicts.append(ratio <= 0.5)
    with_ratio = ns["ours, async with"] / ns["ours CLOSED"]
    print(
        f"ours async with / ours call(): {ns['ours, async with']:.0f} / "
        f"{ns['ours CLOSED']:.0f} ns = {with_ratio:.2f} (target <= 1.20): "
        f"{'met' if with_ratio <= 1.2 else 'MISSED'}"
    )
    verdicts.append(with_ratio <= 1.2)
    floor_ratio = ns["floor: empty async with"] / ns["floor: empty call()"]
    print(
        f"  the protocols' floor: an empty async with {ns['floor: empty async with']:.0f} ns, "
        f"an empty call() {ns['floor: empty call()']:.0f} ns = {floor_ratio:.2f}; what the "
        f"breaker adds: async with {ns['ours, async with'] - ns['floor: empty async with']:+.0f}"
        f" ns, call() {ns['ours CLOSED'] - ns['floor: empty call()']:+.0f} ns"
    )
    # A rejection must raise its CircuitOpenError; the target is that the breaker adds
    # nothing beyond a CLOSED call's cost to that.
    reject_budget = ns["ours CLOSED"] + raise_open_cost
    reject_ok = ns["ours OPEN"] <= reject_budget
    print(
        f"ours OPEN {ns['ours OPEN']:.0f} ns vs ours CLOSED + raising a CircuitOpenError "
        f"{reject_budget:.0f} ns: {'met' if reject_ok else 'MISSED'} "
        f"(vs CLOSED + a bare exception: {ns['ours CLOSED'] + raise_cost:.0f} ns)"
    )
    verdicts.append(reject_ok)
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

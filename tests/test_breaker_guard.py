"""``async with`` bookkeeping under nesting and concurrency; timing and results in ``call()``."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from edge_voice.core.breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
)
from edge_voice.core.clock import FakeClock

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def make(clock: FakeClock, **settings: object) -> CircuitBreaker:
    base: dict[str, object] = {
        "consecutive_failures": 2,
        "cooldown_period": 60,
        "success_threshold": 1,
        "cooldown_jitter": 0.0,
    }
    config = CircuitBreakerConfig(**{**base, **settings})  # type: ignore[arg-type]
    return CircuitBreaker("edge", config, clock, wall_clock=clock.wall)


async def test_async_with_returns_the_breaker_and_counts_nested_entries() -> None:
    breaker = make(FakeClock())
    async with breaker as outer:
        assert outer is breaker
        with pytest.raises(KeyError):
            async with breaker:
                raise KeyError("inner")
        async with breaker:
            pass
    assert breaker.typed_snapshot().consecutive_failures == 0
    assert breaker.typed_snapshot().window_calls == 3


async def test_entries_across_a_trip_settle_with_their_own_permits() -> None:
    clock = FakeClock()
    breaker = make(clock)
    inside = asyncio.Event()
    release = asyncio.Event()

    async def slow_closed_call() -> None:
        async with breaker:  # admitted while CLOSED, finishes after the trip
            inside.set()
            await release.wait()
            raise ConnectionError("late")

    early = asyncio.create_task(slow_closed_call())
    await inside.wait()
    for _ in range(2):
        with pytest.raises(ConnectionError):
            async with breaker:
                raise ConnectionError("down")
    assert breaker.state is OPEN
    clock.advance(60)
    trial_inside, trial_done = asyncio.Event(), asyncio.Event()

    async def trial() -> None:
        async with breaker:
            trial_inside.set()
            await trial_done.wait()

    trial_task = asyncio.create_task(trial())
    await trial_inside.wait()
    assert breaker.state is HALF_OPEN
    release.set()
    with pytest.raises(ConnectionError):
        await early  # a stale permit: its failure must not reopen the circuit
    assert breaker.state is HALF_OPEN
    trial_done.set()
    await trial_task
    assert breaker.state is CLOSED


async def test_entries_of_two_generations_in_two_tasks_exit_in_any_order() -> None:
    clock = FakeClock()
    breaker = make(clock)
    gates = [asyncio.Event(), asyncio.Event()]
    entered = [asyncio.Event(), asyncio.Event()]

    async def hold(index: int, fail: bool) -> None:
        async with breaker:
            entered[index].set()
            await gates[index].wait()
            if fail:
                raise ConnectionError("down")

    first = asyncio.create_task(hold(0, fail=True))
    await entered[0].wait()
    breaker.reset()  # a new generation: the next entry holds another permit
    second = asyncio.create_task(hold(1, fail=False))
    await entered[1].wait()
    gates[0].set()
    with pytest.raises(ConnectionError):
        await first
    gates[1].set()
    await second
    snap = breaker.typed_snapshot()
    assert (snap.window_calls, snap.consecutive_failures) == (1, 0)


async def test_exit_stack_and_cancellation_inside_async_with() -> None:
    clock = FakeClock()
    breaker = make(clock)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(breaker)
    started = asyncio.Event()

    async def cancelled() -> None:
        async with breaker:
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(cancelled())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.typed_snapshot().window_calls == 1
    with pytest.raises(RuntimeError, match="without a matching enter"):
        await breaker.__aexit__(None, None, None)


async def test_a_timed_async_with_measures_each_entry_on_its_own() -> None:
    clock = FakeClock()
    breaker = make(clock, slow_call_duration=5.0, slow_call_rate_threshold=1.0,
                   window_type="count", window_size=10, minimum_calls=10)  # fmt: skip
    async with breaker:
        clock.advance(6)
    async with breaker:
        async with breaker:
            clock.advance(1)
        clock.advance(4)
    snap = breaker.typed_snapshot()
    assert (snap.window_calls, snap.window_slow_calls) == (3, 2)

    async def slow_failure() -> None:
        async with breaker:
            clock.advance(5)
            raise ConnectionError("slow and failed")

    with pytest.raises(ConnectionError):
        await slow_failure()
    assert breaker.typed_snapshot().window_slow_calls == 3


async def test_async_with_while_open_and_half_open() -> None:
    clock = FakeClock()
    breaker = make(clock, half_open_max_calls=1)
    for _ in range(2):
        with pytest.raises(ValueError, match="x"):
            async with breaker:
                raise ValueError("x")
    with pytest.raises(CircuitOpenError):
        async with breaker:
            pass
    clock.advance(60)
    async with breaker:
        with pytest.raises(CircuitOpenError) as info:
            async with breaker:
                pass
        assert info.value.state is HALF_OPEN
    assert breaker.state is CLOSED


async def test_call_times_calls_only_when_asked() -> None:
    clock = FakeClock()
    breaker = make(clock, slow_call_duration=2.0, slow_call_rate_threshold=0.5,
                   failure_threshold=0, window_type="count", window_size=2,
                   minimum_calls=2)  # fmt: skip

    async def takes(seconds: float, fail: bool = False) -> str:
        clock.advance(seconds)
        if fail:
            raise ConnectionError("down")
        return "ok"

    assert await breaker.call(takes, 1.0) == "ok"
    assert breaker.typed_snapshot().window_slow_calls == 0
    with pytest.raises(ConnectionError):
        await breaker.call(takes, 3.0, fail=True)
    assert breaker.state is OPEN
    assert breaker.typed_snapshot().tripped_by is not None
    assert breaker.typed_snapshot().window_slow_calls == 1
    assert "slow-call rate 50%" in str(breaker.typed_snapshot().last_transition_reason)


async def test_a_slow_trial_through_call_reopens() -> None:
    clock = FakeClock()
    breaker = make(clock, slow_call_duration=2.0)

    async def takes(seconds: float) -> str:
        clock.advance(seconds)
        return "ok"

    breaker.force_open("test", duration=1)
    clock.advance(1)
    assert await breaker.call(takes, 3.0) == "ok"
    assert breaker.state is OPEN
    assert breaker.typed_snapshot().last_transition_reason == "trial call was slow"


async def test_returned_values_can_count_as_failures() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "edge",
        CircuitBreakerConfig(consecutive_failures=2),
        clock,
        is_failure_result=lambda result: result == b"",
    )

    async def empty() -> bytes:
        return b""

    async def audio() -> bytes:
        return b"mp3"

    assert await breaker.call(audio) == b"mp3"
    assert await breaker.call(empty) == b""
    assert breaker.typed_snapshot().last_failure_reason == "result counted as a failure: b''"
    assert await breaker.call(empty) == b""
    assert breaker.state is OPEN


async def test_manual_permits_of_a_timed_breaker_carry_their_start() -> None:
    clock = FakeClock()
    breaker = make(clock, slow_call_duration=2.0, slow_call_rate_threshold=1.0,
                   consecutive_failures=0, window_type="count", window_size=2,
                   minimum_calls=2)  # fmt: skip
    first = breaker.acquire()
    clock.advance(3)
    breaker.record_success(first)
    breaker.record_success(breaker.acquire(), slow=True)
    assert breaker.state is OPEN

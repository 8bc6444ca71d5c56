"""The asyncio wrapper: guarded calls, cancellation, concurrency, listeners, snapshots."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from edge_voice.core.breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    TransitionEvent,
    TTSCircuitOpenError,
)
from edge_voice.core.clock import FakeClock


class Downstream:
    """A guarded coroutine that can be told to fail or to wait for a signal."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def ok(self) -> str:
        self.calls += 1
        return "ok"

    async def fail(self) -> str:
        self.calls += 1
        raise ConnectionError("down")

    async def blocked(self) -> str:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        return "late"


def make_breaker(clock: FakeClock, **overrides: object) -> CircuitBreaker:
    settings: dict[str, object] = {
        "consecutive_failures": 2,
        "cooldown_period": 60,
        "success_threshold": 2,
        "cooldown_jitter": 0.0,
    }
    settings.update(overrides)
    config = CircuitBreakerConfig(**settings)  # type: ignore[arg-type]
    return CircuitBreaker("edge", config=config, clock=clock, wall_clock=clock.wall)


async def trip(breaker: CircuitBreaker, down: Downstream) -> None:
    for _ in range(breaker.config.consecutive_failures or 1):
        with pytest.raises(ConnectionError):
            await breaker.call(down.fail)
    assert breaker.state is CircuitState.OPEN


async def test_call_passes_results_and_arguments() -> None:
    breaker = make_breaker(FakeClock())

    async def add(a: int, b: int, *, scale: int) -> int:
        return (a + b) * scale

    assert await breaker.call(add, 1, 2, scale=10) == 30
    assert breaker.snapshot()["last_success"] is not None


async def test_open_rejects_without_touching_downstream() -> None:
    clock, down = FakeClock(), Downstream()
    breaker = make_breaker(clock)
    await trip(breaker, down)
    calls = down.calls
    with pytest.raises(TTSCircuitOpenError) as info:
        await breaker.call(down.ok)
    assert info.value.retry_after == 60.0
    assert down.calls == calls
    clock.advance(30)
    with pytest.raises(CircuitOpenError) as info:
        async with breaker:
            down.calls += 1000
    assert info.value.retry_after == 30.0
    assert down.calls == calls


async def test_async_with_counts_outcomes() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    for _ in range(2):
        with pytest.raises(KeyError):
            async with breaker:
                raise KeyError("x")
    assert breaker.state is CircuitState.OPEN
    clock.advance(60)
    for _ in range(2):
        async with breaker:
            pass
    assert breaker.state is CircuitState.CLOSED


async def test_nested_async_with_pairs_permits_per_breaker() -> None:
    clock = FakeClock()
    outer, inner = make_breaker(clock), make_breaker(clock)

    async def fail_inside_both() -> None:
        async with outer, inner:
            raise ValueError("inner")

    with pytest.raises(ValueError, match="inner"):
        await fail_inside_both()
    assert inner.snapshot()["consecutive_failures"] == 1
    assert outer.snapshot()["consecutive_failures"] == 1


async def test_exit_without_enter_is_an_error() -> None:
    breaker = make_breaker(FakeClock())
    with pytest.raises(RuntimeError, match="without a matching enter"):
        await breaker.__aexit__(None, None, None)


async def test_predicate_decides_what_counts() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        "edge",
        CircuitBreakerConfig(consecutive_failures=1),
        clock,
        is_failure=lambda exc: isinstance(exc, ConnectionError),
    )

    async def bad_input() -> None:
        raise ValueError("user typed nothing")

    for _ in range(5):
        with pytest.raises(ValueError, match="user typed nothing"):
            await breaker.call(bad_input)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.snapshot()["window_calls"] == 0


async def test_uncounted_error_in_half_open_returns_the_permit() -> None:
    clock, down = FakeClock(), Downstream()
    breaker = CircuitBreaker(
        "edge",
        CircuitBreakerConfig(consecutive_failures=1, success_threshold=1),
        clock,
        is_failure=lambda exc: isinstance(exc, ConnectionError),
    )
    with pytest.raises(ConnectionError):
        await breaker.call(down.fail)
    clock.advance(60)

    async def bad_input() -> None:
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        await breaker.call(bad_input)
    assert breaker.state is CircuitState.HALF_OPEN
    assert await breaker.call(down.ok) == "ok"
    assert breaker.state is CircuitState.CLOSED


# -- cancellation: neither success nor failure, in every state -------------


async def _cancel_in_flight(breaker: CircuitBreaker, down: Downstream) -> None:
    task = asyncio.create_task(breaker.call(down.blocked))
    await down.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    down.started.clear()


async def test_cancel_while_closed_counts_nothing() -> None:
    clock, down = FakeClock(), Downstream()
    breaker = make_breaker(clock)
    with pytest.raises(ConnectionError):
        await breaker.call(down.fail)
    for _ in range(5):
        await _cancel_in_flight(breaker, down)
    snap = breaker.snapshot()
    assert breaker.state is CircuitState.CLOSED
    assert snap["consecutive_failures"] == 1
    assert snap["window_calls"] == 1
    assert snap["last_success"] is None


async def test_cancel_while_half_open_returns_permit_and_stays_half_open() -> None:
    clock, down = FakeClock(), Downstream()
    breaker = make_breaker(clock)
    await trip(breaker, down)
    clock.advance(60)
    await _cancel_in_flight(breaker, down)
    snap = breaker.snapshot()
    assert snap["state"] == "HALF_OPEN"
    assert snap["half_open_in_flight"] == 0
    assert snap["half_open_successes"] == 0
    assert await breaker.call(down.ok) == "ok"
    assert await breaker.call(down.ok) == "ok"
    assert breaker.state is CircuitState.CLOSED


async def test_cancel_of_call_admitted_before_the_circuit_opened() -> None:
    clock, down = FakeClock(), Downstream()
    breaker = make_breaker(clock)
    task = asyncio.create_task(breaker.call(down.blocked))
    await down.started.wait()
    await trip(breaker, down)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after == 60.0
    assert breaker.snapshot()["trips"] == 1


async def test_cancel_while_waiting_to_be_rejected_is_impossible_open_is_immediate() -> None:
    clock, down = FakeClock(), Downstream()
    breaker = make_breaker(clock)
    await trip(breaker, down)
    task = asyncio.create_task(breaker.call(down.ok))
    await asyncio.sleep(0)
    assert task.done()
    assert isinstance(task.exception(), CircuitOpenError)


# -- concurrency -------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3])
async def test_thousand_concurrent_callers_in_half_open(limit: int) -> None:
    clock, down = FakeClock(), Downstream()
    breaker = make_breaker(clock, half_open_max_calls=limit, success_threshold=limit)
    await trip(breaker, down)
    clock.advance(60)
    down.calls = 0
    tasks = [asyncio.create_task(breaker.call(down.blocked)) for _ in range(1000)]
    for _ in range(3):
        await asyncio.sleep(0)
    rejected = [t for t in tasks if t.done()]
    assert len(rejected) == 1000 - limit
    assert all(isinstance(t.exception(), CircuitOpenError) for t in rejected)
    assert down.calls == limit
    down.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results.count("late") == limit
    assert breaker.state is CircuitState.CLOSED


async def test_no_lock_is_held_across_the_guarded_call() -> None:
    clock, down = FakeClock(), Downstream()
    breaker = make_breaker(clock)
    slow = asyncio.create_task(breaker.call(down.blocked))
    await down.started.wait()
    assert await asyncio.wait_for(breaker.call(down.ok), timeout=1) == "ok"
    down.release.set()
    assert await slow == "late"


# -- listeners and observation -----------------------------------------------


async def test_listeners_see_every_transition_and_never_break_calls(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, down = FakeClock(), Downstream()
    breaker = make_breaker(clock)
    seen: list[TransitionEvent] = []
    async_seen: list[str] = []

    def broken(event: TransitionEvent) -> None:
        raise RuntimeError("listener bug")

    async def async_listener(event: TransitionEvent) -> None:
        await asyncio.sleep(0)
        async_seen.append(event.new.value)

    async def async_broken(event: TransitionEvent) -> None:
        raise RuntimeError("async listener bug")

    breaker.add_listener(broken)
    breaker.add_listener(seen.append)
    breaker.add_listener(async_listener)
    breaker.add_listener(async_broken)
    with caplog.at_level(logging.ERROR):
        await trip(breaker, down)
        clock.advance(60)
        assert await breaker.call(down.ok) == "ok"
        assert await breaker.call(down.ok) == "ok"
        breaker.force_open("operator says so")
        breaker.reset()
        await breaker.drain_listeners()
    assert [(e.old.value, e.new.value) for e in seen] == [
        ("CLOSED", "OPEN"),
        ("OPEN", "HALF_OPEN"),
        ("HALF_OPEN", "CLOSED"),
        ("CLOSED", "OPEN"),
        ("OPEN", "CLOSED"),
    ]
    assert async_seen == ["OPEN", "HALF_OPEN", "CLOSED", "OPEN", "CLOSED"]
    assert "2 consecutive failures" in seen[0].reason
    assert seen[3].reason == "operator says so"
    assert seen[0].at == datetime.fromtimestamp(clock.epoch + 1000, tz=UTC)
    assert seen[0].snapshot.state is CircuitState.OPEN
    assert seen[0].snapshot.tripped_by is not None
    assert caplog.text.count("listener bug") >= 5


async def test_snapshot_contents() -> None:
    clock, down = FakeClock(), Downstream()
    breaker = make_breaker(clock)
    await breaker.call(down.ok)
    clock.advance(5)
    await trip(breaker, down)
    clock.advance(20)
    snap = breaker.snapshot()
    assert snap["state"] == "OPEN"
    assert snap["circuit_open"] is True
    assert snap["half_open"] is False
    # While OPEN the figures that tripped it stay (the seed showed "OPEN, 0 failures").
    assert snap["consecutive_failures"] == 2
    assert snap["tripped_by"]["cause"] == "consecutive_failures"
    assert snap["window_calls"] == 3
    assert snap["failure_rate"] == pytest.approx(2 / 3)
    assert snap["retry_after"] == 40.0
    assert snap["cooldown"] == 60.0
    assert snap["trips"] == 1
    assert snap["opened_at"] == datetime.fromtimestamp(clock.epoch + 1005, tz=UTC)
    assert snap["last_failure"] == snap["opened_at"]
    assert snap["last_success"] == datetime.fromtimestamp(clock.epoch + 1000, tz=UTC)
    assert "ConnectionError: down" in snap["last_failure_reason"]
    for key in ("failure_rate", "window_calls", "half_open_in_flight", "last_transition_reason"):
        assert key in snap


async def test_remove_listener() -> None:
    clock, down = FakeClock(), Downstream()
    breaker = make_breaker(clock)
    seen: list[TransitionEvent] = []
    breaker.add_listener(seen.append)
    breaker.remove_listener(seen.append)
    await trip(breaker, down)
    assert seen == []


def test_async_listener_without_loop_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    breaker = CircuitBreaker("edge")

    async def listener(event: TransitionEvent) -> None:
        raise AssertionError("never runs")

    breaker.add_listener(listener)
    with caplog.at_level(logging.WARNING):
        breaker.force_open("sync caller")
    assert "no running loop" in caplog.text

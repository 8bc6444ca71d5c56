"""Slow calls in the service: first audio, or any later chunk, at least the breakers'
``slow_call_duration`` in coming, on the breakers' clock.

A provider here moves a fake clock while it "waits on Edge"; a consumer can move it
while it holds a chunk (a player applying backpressure), which must not count. The
same against the real edge-tts client and the fake Edge server is at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence

import pytest

from edge_voice.core.breaker import CircuitBreakerConfig, CircuitOpenError, CircuitState
from edge_voice.core.clock import FakeClock
from edge_voice.core.tts.breakers import ServiceBreakers, SlowWatch
from edge_voice.core.tts.edge import EdgeProvider
from edge_voice.core.tts.errors import ErrorKind, TTSError
from edge_voice.core.tts.outcomes import SynthesisFailed
from edge_voice.core.tts.policy import Backoff, RetryPolicy
from edge_voice.core.tts.provider import EDGE_MP3, SynthesisRequest
from edge_voice.core.tts.service import TTSService
from tests.fakes.edge_server import FakeEdgeServer, FaultMode, FaultPlan, Pacing

KILLIAN = "de-DE-KillianNeural"
SLOW = 2.0


class PacedProvider:
    """Each request waits ``waits[i]`` seconds of fake time before chunk ``i``; a
    ``fail_after`` wait ends in ``kind`` instead of a chunk."""

    name = "edge"
    audio_format = EDGE_MP3

    def __init__(
        self,
        clock: FakeClock,
        waits: Sequence[float],
        *,
        fail_after: float | None = None,
        kind: ErrorKind = ErrorKind.UNAVAILABLE,
    ) -> None:
        self.clock = clock
        self.waits = list(waits)
        self.fail_after = fail_after
        self.kind = kind

    async def stream(self, request: SynthesisRequest) -> AsyncGenerator[bytes, None]:
        for index, wait in enumerate(self.waits):
            self.clock.advance(wait)
            yield f"chunk-{index}".encode()
        if self.fail_after is not None:
            self.clock.advance(self.fail_after)
            raise TTSError(self.kind, "scripted", voice=request.settings.voice)


def make_service(
    provider: PacedProvider, clock: FakeClock, **breaker: float | int | str
) -> TTSService:
    config = CircuitBreakerConfig(
        **{"slow_call_duration": SLOW, "cooldown_jitter": 0.0, **breaker}  # type: ignore[arg-type]
    )
    return TTSService(
        provider,
        voices=[KILLIAN],
        breakers=ServiceBreakers("edge", config, clock=clock, wall_clock=clock.wall),
        retry=RetryPolicy(1, Backoff(0, 0), total_deadline=30),
    )


async def listen(service: TTSService, clock: FakeClock, hold: float = 0.0) -> int:
    """Pull every chunk, holding each ``hold`` seconds of fake time; the count."""
    count = 0
    async with contextlib.aclosing(service.stream("Hallo zusammen")) as chunks:
        async for _ in chunks:
            count += 1
            clock.advance(hold)
    return count


def slow_calls(service: TTSService) -> tuple[int, int]:
    health = service.health()
    return health["window_slow_calls"], health["voices"][KILLIAN]["window_slow_calls"]


@pytest.mark.parametrize(
    ("waits", "slow"),
    [
        pytest.param([0.5, 0.5, 0.5], False, id="quick"),
        pytest.param([1.99, 1.99, 1.99], False, id="just-under-each-time"),
        pytest.param([SLOW, 0.1, 0.1], True, id="first-audio-at-the-limit"),
        pytest.param([0.1, 0.1, 2.5], True, id="one-late-gap"),
    ],
)
async def test_first_audio_or_a_gap_makes_a_success_slow(waits: list[float], slow: bool) -> None:
    clock = FakeClock()
    service = make_service(PacedProvider(clock, waits), clock)
    assert await listen(service, clock) == 3
    assert service.health()["window_calls"] == 1
    assert slow_calls(service) == ((1, 1) if slow else (0, 0))


async def test_the_listeners_time_with_a_chunk_is_not_edges_slowness() -> None:
    # Ten seconds of playback per chunk: a breaker timing the whole call would call
    # every long utterance slow.
    clock = FakeClock()
    service = make_service(PacedProvider(clock, [0.5, 0.5, 0.5]), clock)
    assert await listen(service, clock, hold=10.0) == 3
    assert slow_calls(service) == (0, 0)


async def test_a_failure_after_a_long_wait_is_slow() -> None:
    clock = FakeClock()
    provider = PacedProvider(clock, [], fail_after=3.0)
    service = make_service(provider, clock)
    with pytest.raises(SynthesisFailed):
        await listen(service, clock)
    health = service.health()
    assert (health["window_failures"], health["window_slow_calls"]) == (1, 1)

    quick = make_service(PacedProvider(clock, [], fail_after=0.5), clock)
    with pytest.raises(SynthesisFailed):
        await listen(quick, clock)
    health = quick.health()
    assert (health["window_failures"], health["window_slow_calls"]) == (1, 0)


async def test_a_voice_scoped_failure_is_slow_on_the_voice_breaker_too() -> None:
    clock = FakeClock()
    provider = PacedProvider(clock, [], fail_after=3.0, kind=ErrorKind.NO_AUDIO)
    service = make_service(provider, clock)
    with pytest.raises(SynthesisFailed):
        await listen(service, clock)
    voice = service.health()["voices"][KILLIAN]
    assert (voice["window_failures"], voice["window_slow_calls"]) == (1, 1)


async def test_slow_syntheses_open_the_service_breaker() -> None:
    clock = FakeClock()
    service = make_service(
        PacedProvider(clock, [0.1, 3.0]),
        clock,
        slow_call_rate_threshold=0.5,
        minimum_calls=4,
        consecutive_failures=0,
        failure_threshold=0,
    )
    for _ in range(4):
        await listen(service, clock)
    assert service.service_breaker.state is CircuitState.OPEN
    assert service.health()["tripped_by"]["cause"] == "slow_call_rate"
    with pytest.raises(CircuitOpenError):
        await listen(service, clock)


async def test_tracking_off_calls_nothing_slow() -> None:
    clock = FakeClock()
    service = make_service(PacedProvider(clock, [10.0, 10.0]), clock, slow_call_duration=0.0)
    await listen(service, clock)
    assert slow_calls(service) == (0, 0)


def test_slow_watch_counts_waits_only() -> None:
    clock = FakeClock()
    watch = SlowWatch(clock, 1.0)
    clock.advance(0.9)
    watch.arrived()
    clock.advance(50)  # held by the consumer
    watch.waiting()
    clock.advance(0.9)
    watch.arrived()
    assert not watch.slow
    watch.waiting()
    clock.advance(1.0)
    assert watch.ended_in_failure()


# -- against the real client and the fake Edge server --------------------------


def edge_service(slow_call_duration: float) -> TTSService:
    config = CircuitBreakerConfig(slow_call_duration=slow_call_duration)
    return TTSService(
        EdgeProvider(connect_timeout=2, read_timeout=2),
        voices=[KILLIAN],
        breakers=ServiceBreakers("edge", config),
        retry=RetryPolicy(1, Backoff(0, 0), total_deadline=5),
    )


@pytest.mark.parametrize(
    ("plan", "pacing", "slow"),
    [
        pytest.param(FaultPlan(), Pacing(chunk_bytes=2880), 0, id="healthy"),
        pytest.param(
            FaultPlan(FaultMode.SLOW_TRICKLE, trickle_gap=0.4),
            Pacing(chunk_bytes=2880),
            1,
            id="trickle",
        ),
        pytest.param(
            FaultPlan(), Pacing(chunk_bytes=2880, first_chunk_delay=0.4), 1, id="late-first-audio"
        ),
    ],
)
async def test_edge_trickle_and_late_first_audio_are_slow(
    edge_server: FakeEdgeServer, plan: FaultPlan, pacing: Pacing, slow: int
) -> None:
    edge_server.plan = plan
    edge_server.pacing = pacing
    service = edge_service(slow_call_duration=0.3)
    assert await service.synthesize("Hallo zusammen") == edge_server.audio
    health = service.health()
    assert (health["window_calls"], health["window_failures"]) == (1, 0)
    assert health["window_slow_calls"] == slow
    assert health["voices"][KILLIAN]["window_slow_calls"] == slow


async def test_slowness_is_judged_on_the_breakers_clock() -> None:
    # Slow on the breakers' (fake) clock, though the loop's clock hardly moved.
    clock = FakeClock()
    service = make_service(PacedProvider(clock, [100.0]), clock)
    started = asyncio.get_running_loop().time()
    assert await listen(service, clock) == 1
    assert asyncio.get_running_loop().time() - started < 5
    assert slow_calls(service) == (1, 1)

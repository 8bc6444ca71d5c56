"""Canary probes with the real client and the fake Edge server, on a fake clock.

Sleeping is replaced by advancing the fake clock, so cooldowns pass at once and
the tests count exactly which requests reached the server, and why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from edge_voice.core.breaker import CircuitBreakerConfig, CircuitOpenError
from edge_voice.core.clock import FakeClock
from edge_voice.core.config import CanaryConfig
from edge_voice.core.tts.breakers import ServiceBreakers
from edge_voice.core.tts.edge import EdgeProvider
from edge_voice.core.tts.outcomes import SynthesisFailed
from edge_voice.core.tts.policy import Backoff, RetryPolicy
from edge_voice.core.tts.service import TTSService
from tests.fakes.edge_server import FakeEdgeServer, FaultMode, FaultPlan

CANARY = "Kanarienvogel."
KILLIAN, CONRAD = "de-DE-KillianNeural", "de-DE-ConradNeural"


def make_service(clock: FakeClock, idle_stop_after: float = 900.0) -> TTSService:
    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    return TTSService(
        EdgeProvider(connect_timeout=1, read_timeout=1),
        voices=[KILLIAN, CONRAD],
        breakers=ServiceBreakers(
            "edge",
            CircuitBreakerConfig(consecutive_failures=2, success_threshold=2, cooldown_jitter=0),
            clock=clock,
            wall_clock=clock.wall,
        ),
        retry=RetryPolicy(1, Backoff(0, 0), total_deadline=5),
        sleep=sleep,
        canary=CanaryConfig(text=CANARY, idle_stop_after=idle_stop_after),
    )


async def until(condition: Callable[[], bool], *, steps: int = 2000) -> None:
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


def canaries(server: FakeEdgeServer) -> int:
    return sum(1 for r in server.requests if r.text == CANARY)


def listener_requests(server: FakeEdgeServer) -> int:
    return sum(1 for r in server.requests if r.text not in (None, CANARY))


async def trip(service: TTSService, server: FakeEdgeServer) -> None:
    # NO_AUDIO answers after the SSML, so the server records which text each request carried.
    server.plan = FaultPlan(FaultMode.NO_AUDIO)
    for _ in range(2):
        with pytest.raises(SynthesisFailed, match="no_audio"):
            await service.synthesize("Hallo")
    assert service.service_breaker.state.value == "OPEN"


async def test_listeners_are_never_the_trial_and_canaries_close_the_circuit(
    edge_server: FakeEdgeServer,
) -> None:
    clock = FakeClock()
    service = make_service(clock)
    await trip(service, edge_server)
    listener_before = listener_requests(edge_server)
    # Edge is still down: canaries fail and re-open the circuit with a grown cooldown...
    await until(lambda: service.service_breaker.snapshot()["trips"] >= 2)
    assert service.service_breaker.snapshot()["cooldown"] > 60.0
    assert canaries(edge_server) >= 1
    # ...and listeners are answered at once, never used as the trial, cooldown over or not.
    for _ in range(3):
        clock.advance(500)
        with pytest.raises(CircuitOpenError):
            await service.synthesize("Bitte sprechen")
    edge_server.plan = FaultPlan()
    # The wave opened each voice's breaker too: the service first, then every voice.
    await until(lambda: all(b.state.value == "CLOSED" for b in service.breakers))
    assert listener_requests(edge_server) == listener_before
    assert "Bitte sprechen" not in {r.text for r in edge_server.requests}
    assert await service.synthesize("Wieder da") == edge_server.audio
    await service.close()


async def test_probing_stops_when_idle_and_resumes_on_request(
    edge_server: FakeEdgeServer,
) -> None:
    clock = FakeClock()
    service = make_service(clock, idle_stop_after=300)
    await trip(service, edge_server)
    assert service.canary is not None
    await until(lambda: service.canary is not None and service.canary.stopped_idle)
    sent = canaries(edge_server)
    # Cooldowns of 60, 120, 240 s: only the first few fit in 300 s without a request.
    assert 1 <= sent <= 3
    assert not service.canary.running
    clock.advance(10_000)
    for _ in range(20):
        await asyncio.sleep(0)
    assert canaries(edge_server) == sent
    edge_server.plan = FaultPlan()
    with pytest.raises(CircuitOpenError):
        await service.synthesize("Ist jemand da?")
    await until(lambda: service.service_breaker.state.value == "CLOSED")
    assert canaries(edge_server) > sent
    assert service.health()["canary"]["enabled"]
    await service.close()


async def test_a_blocked_voice_is_probed_with_that_voice(edge_server: FakeEdgeServer) -> None:
    clock = FakeClock()
    service = make_service(clock)
    edge_server.plan = FaultPlan.fail_voice(KILLIAN)
    for _ in range(2):
        assert await service.synthesize("Hallo") == edge_server.audio
    killian = service.breakers.voice(KILLIAN)
    assert killian.state.value != "CLOSED"
    assert service.service_breaker.state.value == "CLOSED"
    edge_server.plan = FaultPlan()
    await until(lambda: killian.state.value == "CLOSED")
    probes = [r for r in edge_server.requests if r.text == CANARY]
    assert probes
    assert {r.short_voice for r in probes} == {KILLIAN}
    await service.close()


async def test_traffic_mode_has_no_prober(edge_server: FakeEdgeServer) -> None:
    service = TTSService(EdgeProvider(connect_timeout=1, read_timeout=1), voices=[KILLIAN])
    assert service.canary is None
    assert service.health()["canary"] == {
        "enabled": False,
        "running": False,
        "sent": 0,
        "paused_idle": False,
        "config_error": None,
    }

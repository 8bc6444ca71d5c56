"""Canary probes with the real client and the fake Edge server, on a fake clock.

Sleeping is replaced by advancing the fake clock, so cooldowns pass at once and
the tests count exactly which requests reached the server, and why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from edge_voice.cogs.tts_context import TTSContext
from edge_voice.core.alerts import Alert
from edge_voice.core.breaker import CircuitBreakerConfig, CircuitOpenError
from edge_voice.core.clock import FakeClock
from edge_voice.core.config import CanaryConfig, Config
from edge_voice.core.tts.breakers import ServiceBreakers
from edge_voice.core.tts.edge import EdgeProvider
from edge_voice.core.tts.errors import InvalidVoiceSettings
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


# -- a canary that cannot be spoken is a configuration error ------------------------


def unspeakable_service(clock: FakeClock, text: str, voices: list[str]) -> TTSService:
    """A service built in code, past the config check: its canary cannot be spoken."""

    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    return TTSService(
        EdgeProvider(connect_timeout=1, read_timeout=1),
        voices=voices,
        breakers=ServiceBreakers(
            "edge",
            CircuitBreakerConfig(consecutive_failures=2, success_threshold=1, cooldown_jitter=0),
            clock=clock,
            wall_clock=clock.wall,
        ),
        retry=RetryPolicy(1, Backoff(0, 0), total_deadline=5),
        sleep=sleep,
        canary=CanaryConfig(text=text),
    )


@pytest.mark.parametrize(
    ("text", "voices", "why"),
    [
        pytest.param("...", [KILLIAN], "no letter or digit", id="punctuation-only-text"),
        pytest.param("", [KILLIAN], "empty", id="empty-text"),
        pytest.param(CANARY, ["Katja"], "Katja", id="voice-edge-tts-refuses"),
    ],
)
async def test_an_unspeakable_canary_is_never_a_failure_and_is_reported_once(
    edge_server: FakeEdgeServer,
    caplog: pytest.LogCaptureFixture,
    text: str,
    voices: list[str],
    why: str,
) -> None:
    clock = FakeClock()
    service = unspeakable_service(clock, text, voices)
    warnings: list[str] = []

    async def warn(message: str) -> None:
        warnings.append(message)

    assert service.canary is not None
    service.canary.warn = warn
    breaker = service.service_breaker
    breaker.force_open("outage", duration=60)
    before = breaker.snapshot()
    await until(lambda: service.canary is not None and service.canary.config_error is not None)
    await until(lambda: not (service.canary and service.canary.running))

    after = breaker.snapshot()
    # The canary took the trial permit once the cooldown was over and handed it back:
    # no failed trial re-opened the circuit, so a listener may be the trial now.
    assert breaker.state.value == "HALF_OPEN"
    assert after["half_open_in_flight"] == 0
    assert (after["trips"], after["window_failures"]) == (before["trips"], 0)
    assert after["cooldown"] == before["cooldown"]  # no grown cooldown either
    assert service.canary.canaries_sent == 1
    assert len(warnings) == 1
    assert why in warnings[0]
    assert "cannot be spoken" in warnings[0]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert why in errors[0]
    assert service.health()["canary"]["config_error"] is not None
    # No canary probes again, and listeners are the trial calls meanwhile.
    clock.advance(1000)
    service.canary.note_request()
    for _ in range(20):
        await asyncio.sleep(0)
    assert service.canary.canaries_sent == 1
    assert not service.canary.running
    assert service.canary.takes_trials is False
    await service.close()


async def test_listeners_close_the_breaker_when_the_canary_cannot(
    edge_server: FakeEdgeServer,
) -> None:
    clock = FakeClock()
    service = unspeakable_service(clock, "...", [KILLIAN])
    service.service_breaker.force_open("outage", duration=60)
    await until(lambda: service.canary is not None and service.canary.config_error is not None)
    clock.advance(61)
    assert await service.synthesize("Wieder da") == edge_server.audio
    assert service.service_breaker.state.value == "CLOSED"
    await service.close()


async def test_a_voice_the_provider_refuses_counts_nowhere(edge_server: FakeEdgeServer) -> None:
    clock = FakeClock()
    service = unspeakable_service(clock, CANARY, ["Katja"])
    for _ in range(5):
        with pytest.raises(InvalidVoiceSettings):
            await service.synthesize("Hallo")
    health = service.health()
    assert (health["window_calls"], health["state"]) == (0, "CLOSED")
    assert health["voices"]["Katja"]["window_calls"] == 0
    await service.close()


async def test_the_context_reports_canary_config_errors_to_the_operators(
    edge_server: FakeEdgeServer,
) -> None:
    clock = FakeClock()
    service = unspeakable_service(clock, "...", [KILLIAN])
    context = TTSContext(Config(), service)
    posted: list[Alert] = []

    async def post(alert: Alert) -> None:
        posted.append(alert)

    context.operator_log.connect(post)
    service.service_breaker.force_open("outage", duration=60)
    await until(lambda: len(posted) == 1)
    assert "[canary] text" in posted[0].description
    await service.close()

"""What a fleet plugs into TTSService: the trial gate, the outcome observer, and no
retries once the circuit opened meanwhile (scripted provider, fake clock)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from edge_voice.core.breaker import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError
from edge_voice.core.clock import FakeClock
from edge_voice.core.tts.breakers import ServiceBreakers
from edge_voice.core.tts.errors import ErrorKind
from edge_voice.core.tts.outcomes import SynthesisFailed
from edge_voice.core.tts.policy import Backoff, RetryPolicy
from edge_voice.core.tts.service import TTSService
from tests.test_service import KILLIAN, ScriptedProvider


def service_for(
    provider: ScriptedProvider,
    clock: FakeClock,
    *,
    attempts: int = 3,
    during_sleep: Callable[[], None] | None = None,
) -> TTSService:
    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        if during_sleep is not None:
            during_sleep()

    return TTSService(
        provider,
        voices=[KILLIAN],
        breakers=ServiceBreakers(
            provider.name,
            CircuitBreakerConfig(cooldown_jitter=0.0, consecutive_failures=2),
            clock=clock,
            wall_clock=clock.wall,
            jitter=lambda: 0.0,
        ),
        retry=RetryPolicy(attempts, Backoff(base=0.5, cap=4.0), 45.0, lambda: 0.0),
        sleep=sleep,
    )


class RecordingObserver:
    def __init__(self) -> None:
        self.failures: list[tuple[str, float]] = []
        self.successes: list[str] = []

    def attempt_failed(self, breaker: CircuitBreaker, share: float) -> None:
        self.failures.append((breaker.name, share))

    def succeeded(self, breaker: CircuitBreaker) -> None:
        self.successes.append(breaker.name)


async def test_no_retry_once_the_circuit_opened_during_the_backoff() -> None:
    clock = FakeClock()
    provider = ScriptedProvider(de_DE_KillianNeural=[ErrorKind.UNAVAILABLE] * 3)
    holder: dict[str, TTSService] = {}
    service = service_for(
        provider,
        clock,
        during_sleep=lambda: holder["service"].service_breaker.force_open("elsewhere", 60),
    )
    holder["service"] = service
    with pytest.raises(SynthesisFailed):
        await service.synthesize("Hallo")
    assert provider.calls[KILLIAN] == 1  # without the open circuit: 3 attempts


async def test_the_observer_hears_each_service_wide_failed_attempt_and_each_success() -> None:
    clock = FakeClock()
    provider = ScriptedProvider(
        de_DE_KillianNeural=[ErrorKind.UNAVAILABLE, ErrorKind.NO_AUDIO, "ok"]
    )
    service = service_for(provider, clock)
    observer = RecordingObserver()
    service.outcomes = observer
    await service.synthesize("Hallo")
    # The 503 counts for the service; no_audio is the voice's business, not the fleet run's.
    assert observer.failures == [("edge", pytest.approx(1 / 3))]
    assert observer.successes == [f"edge:{KILLIAN}", "edge"]


async def test_input_errors_are_never_reported_as_failures() -> None:
    clock = FakeClock()
    service = service_for(ScriptedProvider(), clock)
    observer = RecordingObserver()
    service.outcomes = observer
    with pytest.raises(Exception, match="input"):
        await service.synthesize("   ")
    assert observer.failures == []


async def test_a_trial_needs_the_gate_and_gives_it_back() -> None:
    clock = FakeClock()
    provider = ScriptedProvider(de_DE_KillianNeural=[ErrorKind.UNAVAILABLE] * 2)
    service = service_for(provider, clock, attempts=1)
    for _ in range(2):
        with pytest.raises(SynthesisFailed):
            await service.synthesize("Hallo")
    clock.advance(120)
    asked: list[str] = []
    answer = {"granted": False}
    returned: list[str] = []

    @contextlib.asynccontextmanager
    async def gate(breaker: CircuitBreaker) -> AsyncIterator[bool]:
        asked.append(breaker.name)
        try:
            yield answer["granted"]
        finally:
            returned.append(breaker.name)

    service.trial_gate = gate
    calls = provider.calls[KILLIAN]
    with pytest.raises(CircuitOpenError):
        await service.synthesize("Hallo")  # refused: the fleet's trial is elsewhere
    assert provider.calls[KILLIAN] == calls
    answer["granted"] = True
    await service.synthesize("Hallo")  # the trial itself
    assert provider.calls[KILLIAN] == calls + 1
    # Only the OPEN service breaker needs a trial (a 503 does not charge the voice).
    assert asked == ["edge", "edge"]
    assert returned == ["edge", "edge"]

"""TTSService logic with a scripted provider: breakers, retries, fallback, deadlines.

The provider here is our own interface played by a script, with a fake clock and
a fake sleep, so every retry and cooldown is exact and nothing waits. The same
behaviour against the real edge-tts client is in test_service_edge.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from edge_voice.core.breaker import CircuitBreakerConfig, CircuitOpenError, TransitionEvent
from edge_voice.core.clock import FakeClock
from edge_voice.core.tts.audio_file import synthesize_to_file
from edge_voice.core.tts.breakers import ServiceBreakers
from edge_voice.core.tts.errors import ErrorKind, InvalidText, InvalidVoiceSettings, TTSError
from edge_voice.core.tts.outcomes import SynthesisFailed
from edge_voice.core.tts.policy import Backoff, RetryPolicy
from edge_voice.core.tts.provider import EDGE_MP3, SynthesisRequest, VoiceSettings
from edge_voice.core.tts.service import TTSService

KILLIAN, CONRAD = "de-DE-KillianNeural", "de-DE-ConradNeural"
AUDIO = [b"chunk-1", b"chunk-2", b"chunk-3"]
HANG = "hang"
PARTIAL = "partial"
SLOW_TIMEOUT = "slow-timeout"


class ScriptedProvider:
    """Answers each request for a voice with the next scripted outcome for it.

    An outcome is "ok", an :class:`ErrorKind`, ``HANG`` (never answers) or
    ``PARTIAL`` (one chunk, then a protocol error). Past the script's end: "ok".
    """

    name = "edge"
    audio_format = EDGE_MP3

    def __init__(self, **scripts: list[object]) -> None:
        self.scripts = {voice.replace("_", "-"): list(s) for voice, s in scripts.items()}
        self.calls: dict[str, int] = defaultdict(int)
        self.closed = 0

    def script(self, voice: str, *outcomes: object) -> None:
        self.scripts[voice] = list(outcomes)

    async def stream(self, request: SynthesisRequest) -> AsyncGenerator[bytes, None]:
        voice = request.settings.voice
        self.calls[voice] += 1
        queue = self.scripts.get(voice, [])
        outcome = queue.pop(0) if queue else "ok"
        try:
            if outcome == HANG:
                await asyncio.Event().wait()
            if outcome == SLOW_TIMEOUT:  # a silent server: the provider's read deadline ends it
                await asyncio.sleep(0.3)
                raise TTSError(ErrorKind.TIMEOUT, "silent for 0.3 s", voice=voice)
            if outcome == PARTIAL:
                yield AUDIO[0]
                raise TTSError(ErrorKind.PROTOCOL, "stream cut", voice=voice)
            if isinstance(outcome, ErrorKind):
                raise TTSError(outcome, f"scripted {outcome.value}", voice=voice)
            for chunk in AUDIO:
                yield chunk
        finally:
            self.closed += 1


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_service(
    provider: ScriptedProvider,
    clock: FakeClock,
    sleeps: list[float] | None = None,
    *,
    breaker_config: CircuitBreakerConfig | None = None,
    attempts: int = 3,
    backoff: Backoff | None = None,
    total_deadline: float = 45.0,
    **kw: object,
) -> TTSService:
    async def fake_sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)
        clock.advance(seconds)

    breakers = ServiceBreakers(
        provider.name,
        breaker_config or CircuitBreakerConfig(cooldown_jitter=0.0),
        clock=clock,
        wall_clock=clock.wall,
        jitter=lambda: 0.0,
    )
    retry = RetryPolicy(
        attempts, backoff or Backoff(base=0.5, cap=4.0), total_deadline, lambda: 0.0
    )
    options: dict[str, object] = {"voices": [KILLIAN, CONRAD], "sleep": fake_sleep}
    options.update(kw)
    return TTSService(provider, breakers=breakers, retry=retry, **options)  # type: ignore[arg-type]


async def collect(service: TTSService, text: str = "Hallo zusammen") -> bytes:
    return await service.synthesize(text)


async def test_success_streams_chunks_and_records_both_breakers(clock: FakeClock) -> None:
    provider = ScriptedProvider()
    service = make_service(provider, clock)
    chunks = [c async for c in service.stream("Hallo")]
    assert chunks == AUDIO
    health = service.health()
    assert health["state"] == "CLOSED"
    assert health["last_success"] is not None
    assert health["voices"][KILLIAN]["last_success"] is not None
    assert provider.calls == {KILLIAN: 1}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "empty"),
        ("   \n\t ", "whitespace"),
        ("......", "no letter or digit"),
        ("🎉🎉🎉", "no letter or digit"),
        ("a" * 301, "over the limit"),
        ("\u200b\u200d", "invisible"),
    ],
)
async def test_bad_input_never_reaches_provider_or_breakers(
    clock: FakeClock, text: str, error: str
) -> None:
    provider = ScriptedProvider()
    service = make_service(
        provider, clock, breaker_config=CircuitBreakerConfig(consecutive_failures=1)
    )
    for _ in range(10):
        with pytest.raises(InvalidText, match=error):
            await collect(service, text)
    assert provider.calls == {}
    assert service.health()["window_calls"] == 0
    assert service.service_breaker.state.value == "CLOSED"


async def test_invalid_voice_settings_are_input_errors(clock: FakeClock) -> None:
    def validate(settings: VoiceSettings) -> None:
        if not settings.rate.endswith("%"):
            raise InvalidVoiceSettings(f"bad rate {settings.rate}")

    provider = ScriptedProvider()
    service = make_service(provider, clock, validate=validate)
    with pytest.raises(InvalidVoiceSettings):
        await service.synthesize("Hallo", VoiceSettings(KILLIAN, rate="fast"))
    assert provider.calls == {}
    assert service.health()["window_calls"] == 0


async def test_voice_scoped_failure_retries_then_falls_back(clock: FakeClock) -> None:
    sleeps: list[float] = []
    provider = ScriptedProvider(de_DE_KillianNeural=[ErrorKind.NO_AUDIO] * 3)
    service = make_service(provider, clock, sleeps)
    assert await collect(service) == b"".join(AUDIO)
    assert provider.calls == {KILLIAN: 3, CONRAD: 1}
    assert sleeps == [0.25, 0.5]  # 0.5 * 2**(n-1), scaled by 0.5 at jitter 0
    health = service.health()
    assert health["voices"][KILLIAN]["consecutive_failures"] == 1
    assert health["voices"][CONRAD]["consecutive_failures"] == 0
    assert health["consecutive_failures"] == 0


async def test_blocked_voice_opens_only_its_own_breaker(clock: FakeClock) -> None:
    provider = ScriptedProvider(de_DE_KillianNeural=[ErrorKind.NO_AUDIO] * 100)
    service = make_service(provider, clock)
    for _ in range(5):
        await collect(service)
    assert service.breakers.voice(KILLIAN).state.value == "OPEN"
    assert service.service_breaker.state.value == "CLOSED"
    killian_calls = provider.calls[KILLIAN]
    await collect(service)
    assert provider.calls[KILLIAN] == killian_calls
    assert provider.calls[CONRAD] == 6


async def test_chain_wide_no_audio_wave_opens_the_service_breaker(clock: FakeClock) -> None:
    provider = ScriptedProvider(
        de_DE_KillianNeural=[ErrorKind.NO_AUDIO] * 100,
        de_DE_ConradNeural=[ErrorKind.NO_AUDIO] * 100,
    )
    service = make_service(provider, clock, attempts=1)
    for _ in range(5):
        with pytest.raises(SynthesisFailed) as info:
            await collect(service)
        assert info.value.kind is ErrorKind.NO_AUDIO
    assert service.service_breaker.state.value == "OPEN"
    calls = dict(provider.calls)
    with pytest.raises(CircuitOpenError) as rejected:
        await collect(service)
    assert rejected.value.name == "edge"
    assert provider.calls == calls


@pytest.mark.parametrize("kind", [ErrorKind.NETWORK, ErrorKind.TIMEOUT, ErrorKind.UNAVAILABLE])
async def test_service_wide_failure_retries_but_spares_voices(
    clock: FakeClock, kind: ErrorKind
) -> None:
    provider = ScriptedProvider(de_DE_KillianNeural=[kind] * 3)
    service = make_service(provider, clock)
    with pytest.raises(SynthesisFailed) as info:
        await collect(service)
    assert info.value.kind is kind
    assert [a.number for a in info.value.attempts] == [1, 2, 3]
    assert provider.calls == {KILLIAN: 3}
    health = service.health()
    assert health["consecutive_failures"] == 1
    assert health["voices"][KILLIAN]["consecutive_failures"] == 0


@pytest.mark.parametrize("kind", [ErrorKind.REJECTED, ErrorKind.RATE_LIMITED])
async def test_hopeless_failures_are_not_retried(clock: FakeClock, kind: ErrorKind) -> None:
    provider = ScriptedProvider(de_DE_KillianNeural=[kind] * 3)
    sleeps: list[float] = []
    service = make_service(provider, clock, sleeps)
    with pytest.raises(SynthesisFailed):
        await collect(service)
    assert provider.calls == {KILLIAN: 1}
    assert sleeps == []


async def test_transient_failure_then_success_is_one_success(clock: FakeClock) -> None:
    provider = ScriptedProvider(de_DE_KillianNeural=[ErrorKind.NETWORK, ErrorKind.UNAVAILABLE])
    service = make_service(provider, clock)
    assert await collect(service) == b"".join(AUDIO)
    assert provider.calls == {KILLIAN: 3}
    assert service.health()["window_failures"] == 0


async def test_no_retry_after_audio_was_heard(clock: FakeClock) -> None:
    provider = ScriptedProvider(de_DE_KillianNeural=[PARTIAL])
    service = make_service(provider, clock)
    got: list[bytes] = []

    async def listen() -> None:
        async for chunk in service.stream("Hallo"):
            got.append(chunk)

    with pytest.raises(SynthesisFailed) as info:
        await listen()
    assert got == [AUDIO[0]]
    assert info.value.kind is ErrorKind.PROTOCOL
    assert provider.calls == {KILLIAN: 1}
    assert service.health()["voices"][KILLIAN]["consecutive_failures"] == 1
    assert service.health()["consecutive_failures"] == 1


async def test_backoff_that_would_overrun_the_deadline_is_not_slept(clock: FakeClock) -> None:
    provider = ScriptedProvider(de_DE_KillianNeural=[ErrorKind.NETWORK] * 3)
    sleeps: list[float] = []
    service = make_service(
        provider, clock, sleeps, total_deadline=0.6, backoff=Backoff(base=1.0, cap=4.0)
    )
    with pytest.raises(SynthesisFailed):
        await collect(service)
    assert sleeps == [0.5]
    assert provider.calls == {KILLIAN: 2}


async def test_total_deadline_bounds_a_hanging_provider() -> None:
    provider = ScriptedProvider(de_DE_KillianNeural=[HANG] * 3)
    service = TTSService(provider, voices=[KILLIAN], retry=RetryPolicy(3, total_deadline=0.2))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(SynthesisFailed) as info:
        await collect(service)
    assert loop.time() - started < 1.0
    assert info.value.kind is ErrorKind.TIMEOUT
    assert "total deadline of 0.2s" in str(info.value)
    assert provider.closed == provider.calls[KILLIAN]


async def test_no_retry_that_the_total_deadline_would_cut_short() -> None:
    provider = ScriptedProvider(de_DE_KillianNeural=[SLOW_TIMEOUT] * 3)
    service = TTSService(
        provider, voices=[KILLIAN], retry=RetryPolicy(backoff=Backoff(0, 0), total_deadline=0.5)
    )
    with pytest.raises(SynthesisFailed) as info:
        await collect(service)
    assert info.value.kind is ErrorKind.TIMEOUT
    # 0.2 s would be left after a 0.3 s silence: a retry could not wait as long again.
    assert provider.calls == {KILLIAN: 1}
    roomy = ScriptedProvider(de_DE_KillianNeural=[SLOW_TIMEOUT, "ok"])
    service = TTSService(
        roomy, voices=[KILLIAN], retry=RetryPolicy(backoff=Backoff(0, 0), total_deadline=2.0)
    )
    assert await collect(service) == b"".join(AUDIO)
    assert roomy.calls == {KILLIAN: 2}


async def test_cancellation_releases_permits_and_counts_nothing(clock: FakeClock) -> None:
    provider = ScriptedProvider(de_DE_KillianNeural=[HANG])
    service = make_service(
        provider, clock, breaker_config=CircuitBreakerConfig(consecutive_failures=1)
    )
    service.service_breaker.force_open("test", duration=1)
    clock.advance(1)
    task = asyncio.create_task(collect(service))
    for _ in range(5):
        await asyncio.sleep(0)
    assert service.health()["half_open_in_flight"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    health = service.health()
    assert health["state"] == "HALF_OPEN"
    assert health["half_open_in_flight"] == 0
    assert health["voices"][KILLIAN]["window_calls"] == 0
    assert provider.closed == 1
    assert await collect(service) == b"".join(AUDIO)


async def test_closing_the_stream_early_counts_nothing(clock: FakeClock) -> None:
    provider = ScriptedProvider()
    service = make_service(provider, clock)
    async with contextlib.aclosing(service.stream("Hallo")) as chunks:
        async for _ in chunks:
            break
    assert provider.closed == 1
    assert service.health()["window_calls"] == 0
    assert service.health()["last_success"] is None


async def test_all_voices_open_is_a_rejection_not_a_failure(clock: FakeClock) -> None:
    provider = ScriptedProvider()
    service = make_service(provider, clock)
    service.breakers.voice(KILLIAN).force_open("blocked", duration=30)
    service.breakers.voice(CONRAD).force_open("blocked", duration=20)
    with pytest.raises(CircuitOpenError) as info:
        await collect(service)
    assert info.value.retry_after == 20
    assert provider.calls == {}
    assert service.health()["window_calls"] == 0


async def test_listeners_reach_voice_breakers_made_later(clock: FakeClock) -> None:
    provider = ScriptedProvider(de_DE_KillianNeural=[ErrorKind.NO_AUDIO] * 100)
    service = make_service(provider, clock, attempts=1)
    events: list[TransitionEvent] = []
    service.breakers.add_listener(events.append)
    for _ in range(5):
        await collect(service)
    assert [(e.breaker, e.new.value) for e in events] == [(f"edge:{KILLIAN}", "OPEN")]
    service.breakers.reset("admin reset")
    assert (events[-1].breaker, events[-1].new.value, events[-1].reason) == (
        f"edge:{KILLIAN}",
        "CLOSED",
        "admin reset",
    )


async def test_health_lists_every_configured_voice(clock: FakeClock) -> None:
    service = make_service(ScriptedProvider(), clock)
    health = service.health()
    assert health["provider"] == "edge"
    assert set(health["voices"]) == {KILLIAN, CONRAD}
    assert health["state"] == "CLOSED"


async def test_synthesize_to_file_is_atomic(clock: FakeClock, tmp_path: Path) -> None:
    provider = ScriptedProvider(de_DE_KillianNeural=[PARTIAL])
    service = make_service(provider, clock)
    target = tmp_path / "out.mp3"
    with pytest.raises(SynthesisFailed):
        await synthesize_to_file(service, "Hallo", target)
    assert list(tmp_path.iterdir()) == []
    assert await synthesize_to_file(service, "Hallo", target) == target
    assert target.read_bytes() == b"".join(AUDIO)

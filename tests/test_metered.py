"""core.metered: each attempt at the provider counted once, by result; cancelled and
abandoned attempts not at all; first audio timed on the injected clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import pytest

from edge_voice.core.metered import MeteredProvider
from edge_voice.core.metrics import TTSMetrics
from edge_voice.core.tts.errors import ErrorKind, TTSError
from edge_voice.core.tts.provider import EDGE_MP3, SynthesisRequest, VoiceSettings

REQUEST = SynthesisRequest("Hallo", VoiceSettings("de-DE-KillianNeural"))


class ScriptedProvider:
    """Yields ``chunks``, then raises ``error`` if one is given; ``gate`` holds it before
    the first chunk until set."""

    name = "edge"
    audio_format = EDGE_MP3

    def __init__(self, chunks: int, error: TTSError | None = None) -> None:
        self.chunks = chunks
        self.error = error
        self.gate = asyncio.Event()
        self.gate.set()
        self.closed = False

    async def stream(self, request: SynthesisRequest) -> AsyncGenerator[bytes, None]:
        try:
            await self.gate.wait()
            for _ in range(self.chunks):
                yield b"\xff\xf3"
            if self.error is not None:
                raise self.error
        finally:
            self.closed = True


class SteppingClock:
    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def sample(metrics: TTSMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels or None)


async def drain(provider: MeteredProvider) -> int:
    chunks = 0
    async with contextlib.aclosing(provider.stream(REQUEST)) as stream:
        async for _ in stream:
            chunks += 1
    return chunks


async def test_a_complete_stream_is_one_ok_attempt_with_its_first_audio_time() -> None:
    metrics = TTSMetrics()
    provider = MeteredProvider(ScriptedProvider(3), metrics, clock=SteppingClock(0.25))

    assert await drain(provider) == 3

    assert sample(metrics, "tts_synthesis_attempts_total", result="ok") == 1
    assert sample(metrics, "tts_first_audio_seconds_count") == 1
    assert sample(metrics, "tts_first_audio_seconds_sum") == pytest.approx(0.25)
    assert provider.name == "edge"
    assert provider.audio_format is EDGE_MP3


async def test_a_failed_attempt_is_counted_by_its_error_kind() -> None:
    metrics = TTSMetrics()
    inner = ScriptedProvider(0, TTSError(ErrorKind.NO_AUDIO, "no audio"))
    provider = MeteredProvider(inner, metrics)

    with pytest.raises(TTSError):
        await drain(provider)

    assert sample(metrics, "tts_synthesis_attempts_total", result="no_audio") == 1
    assert sample(metrics, "tts_synthesis_attempts_total", result="ok") is None
    assert sample(metrics, "tts_first_audio_seconds_count") == 0
    assert inner.closed


async def test_an_abandoned_or_cancelled_attempt_is_not_counted() -> None:
    metrics = TTSMetrics()
    inner = ScriptedProvider(5)
    provider = MeteredProvider(inner, metrics)

    async with contextlib.aclosing(provider.stream(REQUEST)) as stream:
        await anext(stream)  # the caller stops listening after one chunk
    assert inner.closed

    inner = ScriptedProvider(5)
    inner.gate.clear()
    provider = MeteredProvider(inner, metrics)
    task = asyncio.create_task(drain(provider))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert inner.closed

    attempts = [
        s
        for family in metrics.registry.collect()
        if family.name == "tts_synthesis_attempts"
        for s in family.samples
        if s.name.endswith("_total")
    ]
    assert attempts == []
    assert sample(metrics, "tts_first_audio_seconds_count") == 1  # the abandoned one's

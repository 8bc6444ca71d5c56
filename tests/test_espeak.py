"""EspeakProvider against the real libespeak-ng from the espeakng-loader wheel."""

from __future__ import annotations

import array
import asyncio
import itertools
import math
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from edge_voice.core.tts.errors import ErrorKind, InvalidText, InvalidVoiceSettings, TTSError
from edge_voice.core.tts.espeak import (
    EspeakProsody,
    EspeakProvider,
    available_espeak_languages,
    espeak_prosody,
    espeak_voice_for,
)
from edge_voice.core.tts.espeak_library import ESPEAK_PCM
from edge_voice.core.tts.provider import SynthesisRequest, TTSProvider, VoiceSettings

GERMAN = "de-DE-KillianNeural"
ENGLISH = "en-US-AriaNeural"
BYTES_PER_SECOND = ESPEAK_PCM.sample_rate * 2
# Synthesizing this in full takes seconds (about 3.5 s here); aborted, a few milliseconds.
LONG_TEXT = "Hallo " * 12_000


@pytest.fixture
def provider() -> Iterator[EspeakProvider]:
    engine = EspeakProvider()
    yield engine
    engine.close()


async def speak(
    provider: EspeakProvider,
    text: str,
    voice: str = GERMAN,
    rate: str = "+0%",
    volume: str = "+0%",
) -> bytes:
    request = SynthesisRequest(text, VoiceSettings(voice=voice, rate=rate, volume=volume))
    async with asyncio.timeout(20):
        return b"".join([chunk async for chunk in provider.stream(request)])


async def drain(stream: AsyncIterator[bytes]) -> None:
    async with asyncio.timeout(5):
        async for _chunk in stream:
            pass


def seconds(pcm: bytes) -> float:
    return len(pcm) / BYTES_PER_SECOND


def rms(pcm: bytes) -> float:
    samples = array.array("h", pcm)
    return math.sqrt(sum(sample * sample for sample in samples) / len(samples))


def test_declares_the_protocol_and_format() -> None:
    engine = EspeakProvider(library_path="/nonexistent/libespeak-ng.so")
    assert isinstance(engine, TTSProvider)
    assert engine.name == "espeak"
    assert engine.audio_format.codec == "pcm_s16le"
    assert (engine.audio_format.sample_rate, engine.audio_format.channels) == (22_050, 1)


@pytest.mark.parametrize(
    ("text", "voice"),
    [
        ("Guten Morgen, wie geht es euch?", GERMAN),
        ("Good morning, how are you all doing today?", ENGLISH),
        ("Good morning, how are you all doing today?", "en-GB-SoniaNeural"),
        ("Buenos días, ¿cómo estáis?", "es-MX-DaliaNeural"),
        ("早晨，你好嗎？", "zh-HK-HiuMaanNeural"),
    ],
)
async def test_speaks_plausible_non_silent_audio(
    provider: EspeakProvider, text: str, voice: str
) -> None:
    pcm = await speak(provider, text, voice)
    assert len(pcm) % 2 == 0
    assert 0.8 <= seconds(pcm) <= 6.0
    assert rms(pcm) > 1000


async def test_audio_streams_in_chunks(provider: EspeakProvider) -> None:
    request = SynthesisRequest("Guten Morgen, wie geht es euch?", VoiceSettings(GERMAN))
    chunks = [chunk async for chunk in provider.stream(request)]
    assert len(chunks) > 5
    assert max(len(chunk) for chunk in chunks) < BYTES_PER_SECOND // 4


async def test_faster_rate_gives_shorter_audio(provider: EspeakProvider) -> None:
    text = "Guten Morgen, wie geht es euch? Heute scheint die Sonne."
    fast = await speak(provider, text, rate="+50%")
    slow = await speak(provider, text, rate="-50%")
    assert seconds(fast) < 0.6 * seconds(slow)


async def test_volume_changes_loudness(provider: EspeakProvider) -> None:
    text = "Guten Morgen, wie geht es euch?"
    loud = await speak(provider, text, volume="+50%")
    quiet = await speak(provider, text, volume="-50%")
    assert rms(loud) > 2 * rms(quiet)


async def test_concurrent_requests_match_a_sequential_run(provider: EspeakProvider) -> None:
    words = ["eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun", "zehn"]
    texts = [" ".join(words[: count + 1]) + "." for count in range(10)]
    sequential = [await speak(provider, text) for text in texts]
    concurrent = await asyncio.gather(*(speak(provider, text) for text in texts))

    # eSpeak carries waveform state between utterances, so the same text varies by a few
    # milliseconds; the texts differ in length by far more, so a mix-up cannot hide.
    tolerance = 0.05
    lengths = sorted(seconds(pcm) for pcm in sequential)
    assert min(b - a for a, b in itertools.pairwise(lengths)) > 3 * tolerance
    for alone, together in zip(sequential, concurrent, strict=True):
        assert abs(seconds(alone) - seconds(together)) < tolerance
        assert rms(together) > 1000


async def test_cancelling_aborts_the_synthesis_and_the_worker_recovers(
    provider: EspeakProvider,
) -> None:
    before = await speak(provider, "Guten Abend.")  # also loads the library
    first_chunk = asyncio.Event()

    async def listen() -> None:
        request = SynthesisRequest(LONG_TEXT, VoiceSettings(GERMAN))
        async for _chunk in provider.stream(request):
            first_chunk.set()

    listener = asyncio.create_task(listen())
    async with asyncio.timeout(10):
        await first_chunk.wait()
    started = time.perf_counter()
    listener.cancel()
    with pytest.raises(asyncio.CancelledError):
        await listener
    after = await speak(provider, "Guten Abend.")
    assert time.perf_counter() - started < 0.5
    assert abs(seconds(after) - seconds(before)) < 0.05  # nothing of the long text left over
    assert rms(after) > 1000


async def test_close_aborts_a_running_stream_and_stops_the_thread() -> None:
    before = set(threading.enumerate())
    engine = EspeakProvider()
    stream = engine.stream(SynthesisRequest(LONG_TEXT, VoiceSettings(GERMAN)))
    async with asyncio.timeout(10):
        await anext(stream)
    workers = set(threading.enumerate()) - before
    assert [thread.name for thread in workers] == ["espeak_0"]

    started = time.perf_counter()
    engine.close()
    assert time.perf_counter() - started < 0.5
    with pytest.raises(TTSError) as raised:
        await drain(stream)
    assert raised.value.kind is ErrorKind.UNAVAILABLE
    assert set(threading.enumerate()) == before
    assert not any(thread.is_alive() for thread in workers)

    with pytest.raises(TTSError, match="closed"):
        await speak(engine, "Hallo.")
    engine.close()  # idempotent


def test_close_without_use_starts_nothing() -> None:
    before = set(threading.enumerate())
    EspeakProvider().close()
    assert set(threading.enumerate()) == before


async def test_ssml_is_spoken_literally(provider: EspeakProvider) -> None:
    plain = await speak(provider, "hello", ENGLISH)
    tagged = await speak(provider, "<speak>hello</speak>", ENGLISH)
    assert seconds(tagged) > 2 * seconds(plain)


async def test_embedded_commands_are_not_obeyed(provider: EspeakProvider) -> None:
    text = "80S hello world, this is a test"
    literal = await speak(provider, text, ENGLISH)
    # Obeyed, U+0001 "80S" would switch to 80 words per minute: about twice as long.
    smuggled = await speak(provider, "\x01" + text, ENGLISH)
    assert abs(seconds(smuggled) - seconds(literal)) < 0.1 * seconds(literal)


async def test_text_with_nothing_to_say(provider: EspeakProvider) -> None:
    with pytest.raises(InvalidText):
        await speak(provider, " \n ")
    with pytest.raises(TTSError) as raised:
        await speak(provider, "...")
    assert raised.value.kind is ErrorKind.NO_AUDIO


async def test_bad_settings_are_input_errors(provider: EspeakProvider) -> None:
    with pytest.raises(InvalidVoiceSettings, match="rate"):
        await speak(provider, "Hallo.", rate="fast")
    with pytest.raises(InvalidVoiceSettings, match="Edge voice"):
        await speak(provider, "Hallo.", voice="Killian")
    unknown = EspeakProvider({"de": "qq-no-such-voice"})
    try:
        with pytest.raises(InvalidVoiceSettings, match="qq-no-such-voice"):
            await speak(unknown, "Hallo.")
    finally:
        unknown.close()


@pytest.mark.parametrize("content", [None, b"not a shared library"])
async def test_unloadable_library_fails_clearly_at_first_use(
    tmp_path: Path, content: bytes | None
) -> None:
    library = tmp_path / "libespeak-ng.so"
    if content is not None:
        library.write_bytes(content)
    engine = EspeakProvider(library_path=str(library))
    try:
        with pytest.raises(TTSError) as raised:
            await speak(engine, "Hallo.")
    finally:
        engine.close()
    assert raised.value.kind is ErrorKind.UNAVAILABLE
    assert str(library) in raised.value.message


async def test_one_data_directory_per_library(provider: EspeakProvider, tmp_path: Path) -> None:
    await speak(provider, "Hallo.")
    other = EspeakProvider(data_path=str(tmp_path))
    try:
        with pytest.raises(TTSError, match="already initialised") as raised:
            await speak(other, "Hallo.")
    finally:
        other.close()
    assert raised.value.kind is ErrorKind.UNAVAILABLE


@pytest.mark.parametrize(
    ("edge_voice", "expected"),
    [
        ("de-DE-KillianNeural", "de"),
        ("de-AT-JonasNeural", "de"),
        ("en-US-AvaMultilingualNeural", "en-us"),
        ("en-GB-SoniaNeural", "en-gb"),
        ("en-AU-NatashaNeural", "en"),
        ("it-IT-DiegoNeural", "it"),
        ("fr-FR-DeniseNeural", "fr"),
        ("fr-CA-SylvieNeural", "fr"),
        ("pt-BR-FranciscaNeural", "pt-br"),
        ("pt-PT-RaquelNeural", "pt"),
        ("es-MX-DaliaNeural", "es-mx"),
        ("nb-NO-PernilleNeural", "nb"),
        ("zh-CN-XiaoxiaoNeural", "zh"),
        ("zh-CN-liaoning-XiaobeiNeural", "zh"),
        ("zh-HK-HiuMaanNeural", "yue"),
        ("sr-Latn-RS-NicholasNeural", "sr"),
        ("fil-PH-BlessicaNeural", "en"),
    ],
)
def test_edge_voices_map_to_espeak_languages(edge_voice: str, expected: str) -> None:
    assert espeak_voice_for(edge_voice, {}) == expected


def test_voice_overrides_win_most_specific_first() -> None:
    overrides = {"de-DE-KillianNeural": "de+m3", "DE-at": "gmw/de", "en": "en-gb-x-rp"}
    assert espeak_voice_for("de-DE-KillianNeural", overrides) == "de+m3"
    assert espeak_voice_for("de-AT-JonasNeural", overrides) == "gmw/de"
    assert espeak_voice_for("de-DE-ConradNeural", overrides) == "de"
    assert espeak_voice_for("en-US-AriaNeural", overrides) == "en-gb-x-rp"
    with pytest.raises(InvalidVoiceSettings):
        espeak_voice_for("de-DE-KillianNeural", {"de": " "})


def test_voice_mapping_follows_the_available_languages() -> None:
    assert espeak_voice_for("de-CH-JanNeural", {}, available={"de-ch", "de"}) == "de-ch"
    assert espeak_voice_for("de-CH-JanNeural", {}, available={"en"}) == "en"
    languages = available_espeak_languages()
    assert {"de", "en-us", "en-gb", "fr", "pt-br", "cmn", "yue"} <= languages


@pytest.mark.parametrize(
    ("rate", "volume", "pitch", "expected"),
    [
        ("+0%", "+0%", "+0Hz", EspeakProsody(175, 100, 50)),
        ("+10%", "-20%", "+20Hz", EspeakProsody(192, 80, 60)),
        ("-50%", "+50%", "-20Hz", EspeakProsody(88, 150, 40)),
        ("-100%", "-300%", "-500Hz", EspeakProsody(80, 0, 0)),
        ("+500%", "+300%", "+500Hz", EspeakProsody(450, 200, 100)),
    ],
)
def test_prosody_maps_and_clamps(rate: str, volume: str, pitch: str, expected: object) -> None:
    settings = VoiceSettings(GERMAN, rate=rate, volume=volume, pitch=pitch)
    assert espeak_prosody(settings) == expected


@pytest.mark.parametrize(
    "field_value",
    [
        ("rate", "10%"),
        ("rate", "+10"),
        ("rate", "+10Hz"),
        ("volume", "loud"),
        ("pitch", "+5%"),
        ("pitch", "+5 Hz"),
    ],
)
def test_malformed_prosody_is_rejected(field_value: tuple[str, str]) -> None:
    field, value = field_value
    settings = VoiceSettings(GERMAN, **{field: value})
    with pytest.raises(InvalidVoiceSettings, match=field):
        espeak_prosody(settings)

"""The player during an Edge outage: cached phrases, the offline voice, notices.

Real pieces throughout: edge-tts against the fake Edge server, eSpeak NG from its
wheel, PyAV for the packets, and the threaded voice double from test_player.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from edge_voice.core.audio import decode_opus_packets, rms
from edge_voice.core.cache import AudioCache
from edge_voice.core.player import (
    OFFLINE_VOICE_NOTICE,
    OFFLINE_VOICE_REASON,
    OUTAGE_NOTICE,
    RECOVERY_NOTICE,
    GuildPlayer,
    OfflineVoice,
)
from edge_voice.core.speech import SpeechOutcome, TextPostReason
from edge_voice.core.tts.espeak import EspeakProvider
from edge_voice.core.tts.provider import VoiceSettings
from tests.fakes.audio_samples import edge_like_mp3
from tests.fakes.edge_server import FakeEdgeServer, FaultMode, FaultPlan, Pacing
from tests.test_player import RecordingText, ThreadedVoice, make_service, utterance


@pytest.fixture(scope="module")
def espeak() -> Iterator[EspeakProvider]:
    provider = EspeakProvider()
    yield provider
    provider.close()


def heard(voice: ThreadedVoice, since: int = 0) -> tuple[float, float]:
    """Seconds and loudness of the audio the voice double played from packet ``since`` on."""
    pcm, seconds = decode_opus_packets(voice.audio(since))
    return seconds, rms(pcm)


async def test_cached_phrase_is_spoken_while_open(edge_server: FakeEdgeServer) -> None:
    edge_server.audio = edge_like_mp3(1.0)
    voice, text = ThreadedVoice(), RecordingText()
    service = make_service()
    cache = AudioCache(1 << 20)
    player = GuildPlayer(service, voice, text, cache=cache)
    assert (await player.speak(utterance("Willkommen im Kanal"))).spoken
    first_play, first_audio = len(voice.packets), voice.audio()
    service.service_breaker.force_open("outage", duration=600)
    result = await player.speak(utterance("Willkommen im Kanal"))
    assert (result.outcome, result.reason) == (SpeechOutcome.SPOKEN, "cached")
    assert voice.audio(first_play) == first_audio
    assert edge_server.connection_count == 1
    uncached = await player.speak(utterance("Etwas Neues"))
    assert uncached.reason == TextPostReason.VOICE_UNAVAILABLE.value
    assert cache.stats()["hits"] == 1
    assert text.posts == [OUTAGE_NOTICE, "🔇 Anna: Etwas Neues"]
    await player.close()


async def test_a_truncated_synthesis_is_never_cached(edge_server: FakeEdgeServer) -> None:
    edge_server.pacing = Pacing(chunk_bytes=288)
    edge_server.plan = FaultPlan.fail_first_n(1, FaultMode.CLOSE_MID_STREAM)
    voice, text = ThreadedVoice(), RecordingText()
    cache = AudioCache(1 << 20)
    player = GuildPlayer(make_service(), voice, text, cache=cache)
    cut = await player.speak(utterance("Guten Abend"))
    assert cut.reason == TextPostReason.CUT_OFF.value
    assert cache.stats()["entries"] == 0
    assert (await player.speak(utterance("Guten Abend"))).spoken
    assert edge_server.connection_count == 2
    assert cache.stats()["entries"] == 1
    await player.close()


async def test_skipped_utterance_is_not_cached(edge_server: FakeEdgeServer) -> None:
    edge_server.audio = edge_like_mp3(3.0)
    edge_server.pacing = Pacing(chunk_bytes=288, chunk_delay=0.05)
    voice, text = ThreadedVoice(), RecordingText()
    cache = AudioCache(1 << 20)
    player = GuildPlayer(make_service(), voice, text, cache=cache)
    pending = player.submit(utterance("Lang und langweilig"))
    while not voice.packets:
        await asyncio.sleep(0.01)
    player.skip()
    assert (await pending).spoken
    assert cache.stats()["entries"] == 0
    await player.close()


@pytest.mark.parametrize(
    ("text", "voice_name"),
    [
        ("Guten Morgen, wie geht es euch heute?", "de-DE-KillianNeural"),
        ("Good morning, how are you all today?", "en-US-AriaNeural"),
    ],
)
async def test_offline_voice_stands_in_while_open(
    edge_server: FakeEdgeServer, espeak: EspeakProvider, text: str, voice_name: str
) -> None:
    voice, posts = ThreadedVoice(), RecordingText()
    service = make_service()
    player = GuildPlayer(service, voice, posts, offline_voice=OfflineVoice(espeak))
    service.service_breaker.force_open("outage", duration=600)
    result = await player.speak(utterance(text), VoiceSettings(voice_name))
    assert (result.outcome, result.reason) == (SpeechOutcome.SPOKEN, OFFLINE_VOICE_REASON)
    seconds, loudness = heard(voice)
    assert 1.0 < seconds < 6.0
    assert loudness > 500
    assert posts.posts == [OFFLINE_VOICE_NOTICE]
    assert edge_server.connection_count == 0
    await player.close()


async def test_offline_voice_notices_once_per_outage_and_recovery(
    edge_server: FakeEdgeServer, espeak: EspeakProvider
) -> None:
    voice, posts = ThreadedVoice(), RecordingText()
    service = make_service()
    player = GuildPlayer(
        service, voice, posts, offline_voice=OfflineVoice(espeak, also_post_text=True)
    )
    edge_server.plan = FaultPlan(FaultMode.NO_AUDIO)
    for word in ("eins", "zwei", "drei"):
        result = await player.speak(utterance(f"Nummer {word}"))
        assert result.reason == OFFLINE_VOICE_REASON
    assert posts.posts == [
        OFFLINE_VOICE_NOTICE,
        "🔇 Anna: Nummer eins",
        "🔇 Anna: Nummer zwei",
        "🔇 Anna: Nummer drei",
    ]
    service.breakers.reset()
    edge_server.plan = FaultPlan()
    before = len(voice.packets)
    assert (await player.speak(utterance("Wieder da"))).reason == ""
    assert posts.posts[-1] == RECOVERY_NOTICE
    seconds, _ = heard(voice, before)
    assert seconds == pytest.approx(1.0, abs=0.1)  # the fake server's audio, not eSpeak's
    await player.close()

"""GuildPlayer with the real service, edge-tts client and fake Edge server.

The voice connection is a thread reading the PacketBuffer the way discord.py's
player thread reads an AudioSource; the text channel records its posts.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from edge_voice.core.audio import OPUS_SILENCE_FRAME, decode_opus_packets, rms
from edge_voice.core.breaker import CircuitBreakerConfig
from edge_voice.core.clock import FakeClock
from edge_voice.core.config import PlayerConfig
from edge_voice.core.player import (
    OUTAGE_NOTICE,
    RECOVERY_NOTICE,
    GuildPlayer,
    PlaybackError,
)
from edge_voice.core.posting import PostOutcome
from edge_voice.core.speech import SpeechOutcome, TextPostReason, Utterance
from edge_voice.core.tts.breakers import ServiceBreakers
from edge_voice.core.tts.edge import EdgeProvider
from edge_voice.core.tts.policy import Backoff, RetryPolicy
from edge_voice.core.tts.service import TTSService
from tests.fakes.audio_samples import edge_like_mp3
from tests.fakes.edge_server import FakeEdgeServer, FaultMode, FaultPlan, Pacing


class ThreadedVoice:
    """Plays a PacketBuffer on a thread, as discord.py's AudioPlayer would."""

    def __init__(self) -> None:
        self.connected = True
        self.packets: list[bytes] = []
        self.plays = 0
        self.fail_with: BaseException | None = None
        self.hold = threading.Event()
        self.hold.set()
        self._stop = threading.Event()

    def is_connected(self) -> bool:
        return self.connected

    async def play(self, buffer: object) -> None:
        from edge_voice.core.packet_buffer import PacketBuffer

        assert isinstance(buffer, PacketBuffer)
        self.plays += 1
        loop = asyncio.get_running_loop()
        done: asyncio.Future[BaseException | None] = loop.create_future()
        self._stop.clear()

        def run() -> None:
            error: BaseException | None = None
            try:
                self.hold.wait(5)
                while not self._stop.is_set():
                    if self.fail_with is not None:
                        raise self.fail_with
                    packet = buffer.read(0.02)
                    if not packet:
                        break
                    self.packets.append(packet)
            except BaseException as exc:
                error = exc
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(error))

        thread = threading.Thread(target=run, name="voice-double")
        thread.start()
        try:
            error = await done
        finally:
            thread.join(5)
        if error is not None:
            raise (
                error
                if isinstance(error, Exception) and not isinstance(error, OSError)
                else (PlaybackError(str(error)))
            )

    def stop(self) -> None:
        self._stop.set()

    def audio(self, since: int = 0) -> list[bytes]:
        """The packets played from ``since`` on, without the silence frames the buffer
        plays while its producer is late (as on a loaded machine): the audio itself."""
        return [p for p in self.packets[since:] if p != OPUS_SILENCE_FRAME]


class RecordingText:
    def __init__(self) -> None:
        self.posts: list[str] = []

    async def post(self, text: str) -> PostOutcome:
        self.posts.append(text)
        return PostOutcome(delivered=True, attempts=1)


def make_service(**breaker: object) -> TTSService:
    return TTSService(
        EdgeProvider(connect_timeout=1, read_timeout=1),
        voices=["de-DE-KillianNeural"],
        breakers=ServiceBreakers("edge", CircuitBreakerConfig(**breaker)),  # type: ignore[arg-type]
        retry=RetryPolicy(1, Backoff(0, 0), total_deadline=5),
    )


def utterance(
    text: str = "Hallo zusammen", at: float | None = None, name: str = "Anna"
) -> Utterance:
    requested_at = time.monotonic() if at is None else at
    return Utterance(text=text, author_id=1, author_name=name, requested_at=requested_at)


@pytest.fixture
def voice() -> ThreadedVoice:
    return ThreadedVoice()


@pytest.fixture
def text() -> RecordingText:
    return RecordingText()


async def test_spoken_audio_decodes_to_the_served_speech(
    edge_server: FakeEdgeServer, voice: ThreadedVoice, text: RecordingText
) -> None:
    edge_server.audio = edge_like_mp3(1.5)
    player = GuildPlayer(make_service(), voice, text)
    result = await player.speak(utterance())
    assert result.outcome is SpeechOutcome.SPOKEN
    pcm, seconds = decode_opus_packets(voice.audio())
    assert seconds == pytest.approx(1.5, abs=0.1)
    assert rms(pcm) > 500
    assert text.posts == []
    assert edge_server.requests[0].text == "Hallo zusammen"
    await player.close()


async def test_open_circuit_posts_text_with_one_notice_per_outage(
    edge_server: FakeEdgeServer, voice: ThreadedVoice, text: RecordingText
) -> None:
    service = make_service()
    player = GuildPlayer(service, voice, text)
    service.service_breaker.force_open("test outage", duration=600)
    first = await player.speak(utterance("Erste Nachricht"))
    second = await player.speak(utterance("Zweite Nachricht", name="Ben"))
    assert first.outcome is SpeechOutcome.POSTED_AS_TEXT
    assert first.reason == TextPostReason.VOICE_UNAVAILABLE.value
    assert second.outcome is SpeechOutcome.POSTED_AS_TEXT
    assert text.posts == [OUTAGE_NOTICE, "🔇 Anna: Erste Nachricht", "🔇 Ben: Zweite Nachricht"]
    assert edge_server.connection_count == 0
    assert voice.plays == 0
    service.breakers.reset()
    assert (await player.speak(utterance("Wieder da"))).spoken
    assert text.posts[-1] == RECOVERY_NOTICE
    await player.close()


async def test_failed_synthesis_falls_back_to_text(
    edge_server: FakeEdgeServer, voice: ThreadedVoice, text: RecordingText
) -> None:
    edge_server.plan = FaultPlan(FaultMode.NO_AUDIO)
    player = GuildPlayer(make_service(), voice, text)
    result = await player.speak(utterance())
    assert result.outcome is SpeechOutcome.POSTED_AS_TEXT
    assert result.reason == TextPostReason.SYNTHESIS_FAILED.value
    assert "no_audio" in result.detail
    assert text.posts == [OUTAGE_NOTICE, "🔇 Anna: Hallo zusammen"]
    assert voice.plays == 0
    await player.close()


async def test_stream_cut_after_playback_started_posts_text(
    edge_server: FakeEdgeServer, voice: ThreadedVoice, text: RecordingText
) -> None:
    edge_server.pacing = Pacing(chunk_bytes=288)
    edge_server.plan = FaultPlan(FaultMode.CLOSE_MID_STREAM)
    player = GuildPlayer(make_service(), voice, text)
    result = await player.speak(utterance())
    assert result.outcome is SpeechOutcome.POSTED_AS_TEXT
    assert result.reason == TextPostReason.CUT_OFF.value
    assert voice.plays == 1
    assert voice.packets
    assert text.posts[-1] == "🔇 Anna: Hallo zusammen"
    await player.close()


async def test_voice_connection_lost_mid_utterance_posts_text(
    edge_server: FakeEdgeServer, voice: ThreadedVoice, text: RecordingText
) -> None:
    voice.fail_with = ConnectionResetError("voice websocket closed")
    player = GuildPlayer(make_service(), voice, text)
    result = await player.speak(utterance())
    assert result.reason == TextPostReason.CUT_OFF.value
    assert "voice websocket closed" in result.detail
    assert text.posts[-1] == "🔇 Anna: Hallo zusammen"
    await player.close()


async def test_unspeakable_text_fails_quietly(
    edge_server: FakeEdgeServer, voice: ThreadedVoice, text: RecordingText
) -> None:
    service = make_service(consecutive_failures=1)
    player = GuildPlayer(service, voice, text)
    result = await player.speak(utterance("......"))
    assert (result.outcome, result.reason) == (SpeechOutcome.FAILED, "unspeakable")
    assert "no letter or digit" in result.detail
    assert text.posts == []
    assert service.service_breaker.state.value == "CLOSED"
    assert edge_server.connection_count == 0
    await player.close()


async def test_stale_and_unconnected_messages_become_text(
    edge_server: FakeEdgeServer, voice: ThreadedVoice, text: RecordingText
) -> None:
    clock = FakeClock(start=100.0)
    player = GuildPlayer(make_service(), voice, text, PlayerConfig(max_wait=30), clock=clock)
    stale = await player.speak(utterance("Alt", at=60.0))
    assert (stale.outcome, stale.reason) == (
        SpeechOutcome.POSTED_AS_TEXT,
        TextPostReason.WAITED_TOO_LONG.value,
    )
    voice.connected = False
    unconnected = await player.speak(utterance("Neu", at=100.0))
    assert unconnected.reason == TextPostReason.NOT_CONNECTED.value
    assert text.posts == ["🔇 Anna: Alt", "🔇 Anna: Neu"]
    assert edge_server.connection_count == 0
    await player.close()


async def test_fifo_order_and_full_queue(
    edge_server: FakeEdgeServer, voice: ThreadedVoice, text: RecordingText
) -> None:
    voice.hold.clear()
    player = GuildPlayer(make_service(), voice, text, PlayerConfig(queue_size=2))
    futures = [player.submit(utterance("Nachricht 0"))]
    while not player.speaking:
        await asyncio.sleep(0.01)
    futures += [player.submit(utterance(f"Nachricht {i}")) for i in range(1, 4)]
    overflow = await asyncio.wait_for(futures[3], 2)
    assert overflow.reason == TextPostReason.QUEUE_FULL.value
    assert player.pending == 2
    assert text.posts == ["🔇 Anna: Nachricht 3"]
    voice.hold.set()
    results = await asyncio.gather(*futures[:3])
    assert [r.outcome for r in results] == [SpeechOutcome.SPOKEN] * 3
    assert [r.text for r in edge_server.requests] == [f"Nachricht {i}" for i in range(3)]
    await player.close()


async def test_skip_stops_the_current_message(
    edge_server: FakeEdgeServer, voice: ThreadedVoice, text: RecordingText
) -> None:
    edge_server.audio = edge_like_mp3(3.0)
    edge_server.pacing = Pacing(chunk_bytes=288, chunk_delay=0.05)
    player = GuildPlayer(make_service(), voice, text)
    pending = player.submit(utterance())
    while not voice.packets:
        await asyncio.sleep(0.01)
    assert player.skip()
    result = await asyncio.wait_for(pending, 2)
    assert result.spoken
    _, seconds = decode_opus_packets(voice.audio())
    assert seconds < 2.0
    assert not player.skip()
    await player.close()


async def test_close_posts_what_was_still_queued(
    edge_server: FakeEdgeServer, voice: ThreadedVoice, text: RecordingText
) -> None:
    voice.hold.clear()
    player = GuildPlayer(make_service(), voice, text)
    futures = [player.submit(utterance(f"Nachricht {i}")) for i in range(3)]
    while not player.speaking:
        await asyncio.sleep(0.01)
    voice.hold.set()
    await player.close()
    results = [f.result() for f in futures]
    assert all(r.outcome is not None for r in results)
    shut = [r for r in results if r.reason == TextPostReason.SHUTTING_DOWN.value]
    assert len(shut) >= 2
    for i, r in enumerate(results):
        if r.reason == TextPostReason.SHUTTING_DOWN.value:
            assert f"🔇 Anna: Nachricht {i}" in text.posts
    late = await player.speak(utterance("Zu spät"))
    assert late.reason == TextPostReason.SHUTTING_DOWN.value


async def test_guilds_do_not_wait_on_each_other(edge_server: FakeEdgeServer) -> None:
    stuck_voice, free_voice = ThreadedVoice(), ThreadedVoice()
    stuck_voice.hold.clear()
    service = make_service()
    stuck = GuildPlayer(service, stuck_voice, RecordingText())
    free = GuildPlayer(service, free_voice, RecordingText())
    blocked = stuck.submit(utterance("Hängt"))
    result = await asyncio.wait_for(free.speak(utterance("Läuft")), 3)
    assert result.spoken
    assert not blocked.done()
    stuck_voice.hold.set()
    assert (await asyncio.wait_for(blocked, 3)).spoken
    await stuck.close()
    await free.close()

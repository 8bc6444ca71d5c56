"""Edge's WebM Opus on our own request path, passed to Discord without decoding.

Against the fake Edge, which speaks the real protocol and answers a speech.config that
asks for ``webm-24khz-16bit-mono-opus`` with WebM made by PyAV's FFmpeg.
"""

from __future__ import annotations

import io

import av
import pytest

from edge_voice.core.admission import AdmissionConfig, StreamAdmission
from edge_voice.core.audio import (
    Converter,
    decode_opus_packets,
    opus_frame_ms,
    opus_packets,
    rms,
)
from edge_voice.core.player import GuildPlayer
from edge_voice.core.tts.edge_webm import EDGE_WEBM, WEBM_OUTPUT, EdgeWebmProvider
from edge_voice.core.tts.errors import ErrorKind, TTSError
from edge_voice.core.tts.policy import RetryPolicy
from edge_voice.core.tts.provider import SynthesisRequest, VoiceSettings
from edge_voice.core.tts.service import TTSService
from edge_voice.core.webm import WebmError, WebmOpusReader
from tests.fakes.audio_samples import edge_like_webm
from tests.fakes.edge_server import FakeEdgeServer, FaultMode, FaultPlan, Pacing
from tests.test_player import RecordingText, ThreadedVoice, utterance

VOICE = VoiceSettings("de-DE-KillianNeural")


def demuxed(webm: bytes) -> list[bytes]:
    """The Opus packets PyAV's own demuxer finds."""
    with av.open(io.BytesIO(webm)) as container:
        stream = container.streams.audio[0]
        return [bytes(p) for p in container.demux(stream) if p.size]


@pytest.mark.parametrize("step", [1, 7, 333, 1 << 20])
def test_the_reader_finds_every_frame_however_the_bytes_are_split(step: int) -> None:
    webm = edge_like_webm(2.0)
    reader = WebmOpusReader()
    frames = [f for i in range(0, len(webm), step) for f in reader.feed(webm[i : i + step])]
    assert frames == demuxed(webm)
    assert {opus_frame_ms(f) for f in frames} == {20.0}
    assert reader.pending == 0


def test_the_reader_refuses_what_is_not_webm() -> None:
    with pytest.raises(WebmError, match="not WebM"):
        WebmOpusReader().feed(b"\xff\xf3\x64\xc4" + bytes(140))  # an MP3 frame


def provider() -> EdgeWebmProvider:
    return EdgeWebmProvider(connect_timeout=2, read_timeout=2)


async def test_the_provider_asks_for_webm_and_the_frames_pass_through(
    edge_server: FakeEdgeServer,
) -> None:
    request = SynthesisRequest("Hallo zusammen", VOICE)
    packets = [p async for p in opus_packets(provider().stream(request), EDGE_WEBM)]
    (recorded,) = edge_server.requests
    assert recorded.output_format == WEBM_OUTPUT
    assert recorded.text == "Hallo zusammen"
    assert packets == demuxed(edge_server.webm_audio)  # byte for byte: nothing re-encoded
    pcm, seconds = decode_opus_packets(packets)
    assert 0.9 < seconds < 1.1
    assert rms(pcm) > 500


@pytest.mark.parametrize(
    ("mode", "kind"),
    [(FaultMode.NO_AUDIO, ErrorKind.NO_AUDIO), (FaultMode.CLOSE_MID_STREAM, ErrorKind.PROTOCOL)],
)
async def test_a_stream_that_ends_badly_is_an_error(
    edge_server: FakeEdgeServer, mode: FaultMode, kind: ErrorKind
) -> None:
    edge_server.plan = FaultPlan.fail_first_n(1, mode)
    edge_server.pacing = Pacing(chunk_bytes=500)
    with pytest.raises(TTSError) as raised:
        _ = [p async for p in provider().stream(SynthesisRequest("Hallo", VOICE))]
    assert raised.value.kind is kind


async def test_a_guild_player_speaks_it_with_no_conversion(edge_server: FakeEdgeServer) -> None:
    service = TTSService(
        provider(), voices=[VOICE.voice], retry=RetryPolicy(attempts=1, total_deadline=5)
    )
    voice, converter = ThreadedVoice(), Converter()
    # Admitted at the cost of a stream needing no conversion (5), not a converted one (30).
    admission = StreamAdmission(AdmissionConfig(budget_ms=10, transcode_ms=30, replay_ms=5))
    player = GuildPlayer(service, voice, RecordingText(), converter=converter, admission=admission)
    assert (await player.speak(utterance("Guten Morgen"))).spoken
    assert admission.refused == 0
    await player.close()
    converter.close()
    assert voice.packets[: len(demuxed(edge_server.webm_audio))] == demuxed(edge_server.webm_audio)
    assert converter.jobs == 0

"""The fake Edge server itself: the real edge-tts client must get valid frames and audio."""

from __future__ import annotations

import math
import os
import time

import aiohttp
import edge_tts
import pytest
from edge_tts.drm import DRM

from tests.fakes.audio_samples import FRAME_BYTES, decode_mp3, edge_like_mp3, rms
from tests.fakes.edge_server import (
    FakeEdgeServer,
    FaultMode,
    FaultPlan,
    Pacing,
    edge_client_pointed_at,
    short_voice_name,
    synthesize_with_edge_tts,
)

VOICE = "de-DE-KillianNeural"
LONG_VOICE = "Microsoft Server Speech Text to Speech Voice (de-DE, KillianNeural)"


def test_samples_are_audible_edge_format_mp3() -> None:
    audio = edge_like_mp3(0.5)
    assert len(audio) % FRAME_BYTES == 0
    # Every 144-byte frame: MPEG-2 Layer III, 48 kbps, 24 kHz, mono.
    headers = {audio[i : i + 4] for i in range(0, len(audio), FRAME_BYTES)}
    assert headers == {bytes.fromhex("fff364c4")}
    rate, channels, samples = decode_mp3(audio)
    assert (rate, channels) == (24_000, 1)
    assert len(samples) >= 0.5 * rate
    assert rms(samples) > 0.1
    assert edge_like_mp3(0.5) is audio  # cached


async def test_real_client_gets_the_served_audio(edge_server: FakeEdgeServer) -> None:
    audio = b"".join([chunk async for chunk in synthesize_with_edge_tts("Guten Tag.", VOICE)])
    assert audio == edge_server.audio
    rate, channels, samples = decode_mp3(audio)
    assert (rate, channels) == (24_000, 1)
    assert rms(samples) > 0.1


async def test_frames_arrive_as_chunks_then_a_sentence_boundary(
    edge_server: FakeEdgeServer,
) -> None:
    edge_server.pacing = Pacing(chunk_bytes=1000)
    events = [event async for event in edge_tts.Communicate("Guten Tag.", VOICE).stream()]
    kinds = [event["type"] for event in events]
    chunks = math.ceil(len(edge_server.audio) / 1000)
    assert kinds == ["audio"] * chunks + ["SentenceBoundary"]
    assert events[-1]["text"] == "Guten Tag."


async def test_records_what_the_client_asked_for(edge_server: FakeEdgeServer) -> None:
    async for _ in synthesize_with_edge_tts("Fish & <chips>", VOICE):
        pass
    (served,) = edge_server.requests
    assert (served.voice, served.short_voice, served.text) == (LONG_VOICE, VOICE, "Fish & <chips>")
    assert served.status == 101
    assert served.turn_end_sent
    assert served.audio_bytes_sent == len(edge_server.audio)
    assert {"TrustedClientToken", "ConnectionId", "Sec-MS-GEC", "Sec-MS-GEC-Version"} <= set(
        served.query
    )
    assert served.headers["Cookie"].startswith("muid=")


async def test_pacing_delays_the_audio(edge_server: FakeEdgeServer) -> None:
    edge_server.pacing = Pacing(chunk_bytes=2000, chunk_delay=0.05, first_chunk_delay=0.1)
    started = time.monotonic()
    async for _ in synthesize_with_edge_tts("Hallo", VOICE):
        pass
    gaps = math.ceil(len(edge_server.audio) / 2000) - 1
    assert time.monotonic() - started >= 0.1 + gaps * 0.05


def test_faster_than_realtime_pacing() -> None:
    pacing = Pacing.faster_than_realtime(2.0, chunk_bytes=1440, first_chunk_delay=0.3)
    assert pacing.chunk_delay == pytest.approx(0.12)  # 240 ms of audio per chunk, at 2x
    assert (pacing.chunk_bytes, pacing.first_chunk_delay) == (1440, 0.3)


@pytest.mark.parametrize(
    ("plan", "nth", "voice", "expected"),
    [
        (FaultPlan(), 0, VOICE, FaultMode.OK),
        (FaultPlan(FaultMode.SILENT), 5, VOICE, FaultMode.SILENT),
        (FaultPlan(FaultMode.FORBIDDEN_ONCE), 0, None, FaultMode.FORBIDDEN_ONCE),
        (FaultPlan(FaultMode.FORBIDDEN_ONCE), 1, None, FaultMode.OK),
        (FaultPlan.fail_first_n(2, FaultMode.UNAVAILABLE), 1, None, FaultMode.UNAVAILABLE),
        (FaultPlan.fail_first_n(2, FaultMode.UNAVAILABLE), 2, None, FaultMode.OK),
        (FaultPlan.fail_voice(VOICE), 0, LONG_VOICE, FaultMode.NO_AUDIO),
        (FaultPlan.fail_voice(LONG_VOICE), 0, VOICE, FaultMode.NO_AUDIO),
        (FaultPlan.fail_voice(VOICE), 0, "en-US-AvaNeural", FaultMode.OK),
        (FaultPlan.fail_voice(VOICE), 0, None, FaultMode.OK),
    ],
)
def test_fault_plan_decides_per_connection(
    plan: FaultPlan, nth: int, voice: str | None, expected: FaultMode
) -> None:
    assert plan.mode_for(nth, voice) is expected


def test_fault_plan_rejects_a_voice_for_handshake_faults() -> None:
    with pytest.raises(ValueError, match="before the voice is known"):
        FaultPlan.fail_voice(VOICE, FaultMode.RATE_LIMITED)


def test_short_voice_name() -> None:
    assert short_voice_name(LONG_VOICE) == VOICE
    long_regional = "Microsoft Server Speech Text to Speech Voice (zh-CN-liaoning, XiaobeiNeural)"
    assert short_voice_name(long_regional) == "zh-CN-liaoning-XiaobeiNeural"


async def test_replacing_the_plan_restarts_its_count(edge_server: FakeEdgeServer) -> None:
    edge_server.plan = FaultPlan(FaultMode.FORBIDDEN_ONCE)
    async for _ in synthesize_with_edge_tts("Hallo", VOICE):
        pass
    edge_server.plan = FaultPlan(FaultMode.FORBIDDEN_ONCE)
    async for _ in synthesize_with_edge_tts("Hallo", VOICE):
        pass
    assert [served.status for served in edge_server.requests] == [403, 101, 403, 101]


async def test_pointing_the_client_is_undone_afterwards() -> None:
    saved_url, saved_proxy = edge_tts.communicate.WSS_URL, os.environ.get("NO_PROXY")
    with edge_client_pointed_at("ws://127.0.0.1:9/x?TrustedClientToken=x"):
        assert edge_tts.communicate.WSS_URL.startswith("ws://127.0.0.1:9/")
        assert os.environ["NO_PROXY"] == "127.0.0.1,localhost"
        DRM.clock_skew_seconds = 42.0
    restored_url = edge_tts.communicate.WSS_URL
    assert restored_url == saved_url
    assert os.environ.get("NO_PROXY") == saved_proxy
    assert DRM.clock_skew_seconds == 0.0


async def test_stopping_closes_a_connection_the_server_is_ignoring() -> None:
    async with FakeEdgeServer(plan=FaultPlan(FaultMode.SILENT)) as server:
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(server.url)
        await ws.send_str("X-RequestId:r1\r\nPath:ssml\r\n\r\n<speak>hi</speak>")
        started = time.monotonic()
    try:
        message = await ws.receive(timeout=2.0)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert time.monotonic() - started < 2.0
    finally:
        await ws.close()
        await session.close()

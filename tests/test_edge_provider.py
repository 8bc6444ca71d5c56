"""EdgeProvider driving the real edge-tts client against the local fake Edge server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from edge_tts.drm import DRM
from edge_tts.exceptions import (
    NoAudioReceived,
    SkewAdjustmentError,
    UnexpectedResponse,
    UnknownResponse,
    WebSocketError,
)
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from edge_voice.core.tts.edge import (
    EdgeProvider,
    edge_tts_version,
    handshake_request,
    translate_error,
    validate_settings,
)
from edge_voice.core.tts.errors import ErrorKind, InvalidText, InvalidVoiceSettings, TTSError
from edge_voice.core.tts.provider import EDGE_MP3, SynthesisRequest, TTSProvider, VoiceSettings
from tests.fakes.edge_server import FakeEdgeServer, FaultMode, FaultPlan, Pacing

VOICE = "de-DE-KillianNeural"
OTHER_VOICE = "en-US-AvaNeural"
READ = 0.3
CONNECT = 0.3


def request(text: str = "Hallo <Welt> & du", voice: str = VOICE) -> SynthesisRequest:
    return SynthesisRequest(text, VoiceSettings(voice))


def provider(read_timeout: float = READ, connect_timeout: float = CONNECT) -> EdgeProvider:
    return EdgeProvider(connect_timeout=connect_timeout, read_timeout=read_timeout)


async def synthesize(edge: EdgeProvider, req: SynthesisRequest) -> bytes:
    return b"".join([chunk async for chunk in edge.stream(req)])


async def failure(edge: EdgeProvider, req: SynthesisRequest) -> TTSError:
    with pytest.raises(TTSError) as caught:
        await synthesize(edge, req)
    return caught.value


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def eventually(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll until ``condition`` holds: closed transports are released a loop turn later."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def test_edge_provider_is_a_tts_provider() -> None:
    edge = provider()
    assert isinstance(edge, TTSProvider)
    assert (edge.name, edge.audio_format) == ("edge", EDGE_MP3)
    assert edge_tts_version() == "7.3.1"


async def test_ok_yields_exactly_the_served_mp3(edge_server: FakeEdgeServer) -> None:
    audio = await synthesize(provider(), request())
    assert audio == edge_server.audio
    assert edge_server.connection_count == 1
    served = edge_server.requests[0]
    assert (served.short_voice, served.text) == (VOICE, "Hallo <Welt> & du")
    assert served.turn_end_sent


async def test_handshake_request_is_what_edge_tts_sends(edge_server: FakeEdgeServer) -> None:
    await synthesize(provider(), request())
    sent = edge_server.requests[0]
    url, headers = handshake_request()
    assert url.startswith(f"{edge_server.url}&ConnectionId=")
    query = URL(url).query
    assert set(query) == set(sent.query)
    assert query["Sec-MS-GEC-Version"] == sent.query["Sec-MS-GEC-Version"]
    assert query["ConnectionId"] != sent.query["ConnectionId"]
    assert {name: sent.headers[name] for name in headers if name != "Cookie"} == {
        name: value for name, value in headers.items() if name != "Cookie"
    }
    assert headers["Cookie"].startswith("muid=")
    assert headers["Cookie"] != sent.headers["Cookie"]
    # What diagnostics does with it: a real handshake, upgraded by the server.
    async with aiohttp.ClientSession() as session, session.ws_connect(url, headers=headers) as ws:
        assert not ws.closed
    assert edge_server.requests[1].status == 101


FAULTS = [
    pytest.param(FaultPlan(FaultMode.NO_AUDIO), ErrorKind.NO_AUDIO, None, 1, id="no_audio"),
    pytest.param(
        FaultPlan(FaultMode.FORBIDDEN_ALWAYS), ErrorKind.REJECTED, 403, 2, id="forbidden_always"
    ),
    pytest.param(FaultPlan(FaultMode.RATE_LIMITED), ErrorKind.RATE_LIMITED, 429, 1, id="429"),
    pytest.param(FaultPlan(FaultMode.UNAVAILABLE), ErrorKind.UNAVAILABLE, 503, 1, id="503"),
    pytest.param(FaultPlan(FaultMode.SILENT), ErrorKind.TIMEOUT, None, 1, id="silent"),
    pytest.param(
        FaultPlan(FaultMode.CLOSE_MID_STREAM), ErrorKind.PROTOCOL, None, 1, id="close_mid_stream"
    ),
    pytest.param(
        FaultPlan(FaultMode.SLOW_TRICKLE, trickle_gap=1.0),
        ErrorKind.TIMEOUT,
        None,
        1,
        id="slow_trickle",
    ),
    pytest.param(FaultPlan(FaultMode.MALFORMED_FRAME), ErrorKind.PROTOCOL, None, 1, id="malformed"),
]


@pytest.mark.parametrize(("plan", "kind", "status", "connections"), FAULTS)
async def test_each_fault_maps_to_its_kind_in_bounded_time(
    edge_server: FakeEdgeServer,
    plan: FaultPlan,
    kind: ErrorKind,
    status: int | None,
    connections: int,
) -> None:
    edge_server.plan = plan
    started = time.monotonic()
    error = await failure(provider(), request())
    elapsed = time.monotonic() - started
    assert (error.kind, error.status, error.voice) == (kind, status, VOICE)
    assert edge_server.connection_count == connections
    # The first wait may include a handshake: connect + read is the longest allowed.
    assert elapsed < CONNECT + READ + 0.4
    assert "Sec-MS-GEC" not in str(error)


async def test_silent_server_times_out_after_the_read_deadline(
    edge_server: FakeEdgeServer,
) -> None:
    edge_server.plan = FaultPlan(FaultMode.SILENT)
    started = time.monotonic()
    error = await failure(provider(read_timeout=0.3, connect_timeout=0.2), request())
    elapsed = time.monotonic() - started
    assert error.kind is ErrorKind.TIMEOUT
    assert 0.3 <= elapsed < 0.5 + 0.3


async def test_read_deadline_is_per_frame_not_per_stream(edge_server: FakeEdgeServer) -> None:
    edge_server.plan = FaultPlan(FaultMode.SLOW_TRICKLE, trickle_gap=0.1)
    started = time.monotonic()
    audio = await synthesize(provider(read_timeout=0.3), request())
    assert audio == edge_server.audio
    assert time.monotonic() - started > 0.3  # longer than one read deadline in total


async def test_gaps_between_audio_frames_get_only_the_read_deadline(
    edge_server: FakeEdgeServer,
) -> None:
    # Longer than read_timeout, shorter than connect + read: only a handshake earns both.
    edge_server.plan = FaultPlan(FaultMode.SLOW_TRICKLE, trickle_gap=0.5)
    error = await failure(provider(read_timeout=0.3, connect_timeout=1.0), request())
    assert error.kind is ErrorKind.TIMEOUT
    assert edge_server.requests[0].audio_bytes_sent > 0


async def test_truncated_stream_is_a_protocol_error(edge_server: FakeEdgeServer) -> None:
    edge_server.plan = FaultPlan(FaultMode.CLOSE_MID_STREAM)
    error = await failure(provider(), request())
    assert error.kind is ErrorKind.PROTOCOL
    assert "truncated" in error.message
    assert 0 < edge_server.requests[0].audio_bytes_sent < len(edge_server.audio)


async def test_truncation_in_an_earlier_text_chunk_is_caught(edge_server: FakeEdgeServer) -> None:
    # More than 4096 bytes: edge-tts opens one socket per text chunk and forgets a cut one.
    long_text = "Wort " * 1000
    assert await synthesize(provider(), request(long_text)) == edge_server.audio * 2
    edge_server.plan = FaultPlan.fail_first_n(1, FaultMode.CLOSE_MID_STREAM)
    error = await failure(provider(), request(long_text))
    assert (error.kind, edge_server.connection_count) == (ErrorKind.PROTOCOL, 4)
    assert "truncated" in error.message


async def test_forbidden_once_succeeds_after_the_clock_skew_retry(
    edge_server: FakeEdgeServer,
) -> None:
    edge_server.plan = FaultPlan(FaultMode.FORBIDDEN_ONCE, skew_ahead=3600)
    assert await synthesize(provider(), request()) == edge_server.audio
    first, retry = edge_server.requests
    assert (first.status, retry.status) == (403, 101)
    assert DRM.clock_skew_seconds == pytest.approx(3600, abs=5)
    assert first.query["Sec-MS-GEC"] != retry.query["Sec-MS-GEC"]


async def test_refused_connection_is_a_network_error(refused_edge_url: str) -> None:
    started = time.monotonic()
    error = await failure(provider(), request())
    assert error.kind is ErrorKind.NETWORK
    assert isinstance(error.__cause__, aiohttp.ClientConnectorError)
    assert time.monotonic() - started < 1.0


async def test_fail_voice_fails_only_that_voice(edge_server: FakeEdgeServer) -> None:
    edge_server.plan = FaultPlan.fail_voice(VOICE)
    assert (await failure(provider(), request())).kind is ErrorKind.NO_AUDIO
    assert await synthesize(provider(), request(voice=OTHER_VOICE)) == edge_server.audio


async def test_fail_first_n_recovers(edge_server: FakeEdgeServer) -> None:
    edge_server.plan = FaultPlan.fail_first_n(2, FaultMode.UNAVAILABLE)
    kinds = [(await failure(provider(), request())).kind for _ in range(2)]
    assert kinds == [ErrorKind.UNAVAILABLE, ErrorKind.UNAVAILABLE]
    assert await synthesize(provider(), request()) == edge_server.audio
    assert edge_server.connection_count == 3


@pytest.mark.parametrize(
    "settings",
    [
        VoiceSettings("Killian"),
        VoiceSettings(VOICE, rate="10%"),
        VoiceSettings(VOICE, volume="+10"),
        VoiceSettings(VOICE, pitch="+5%"),
        VoiceSettings(123),  # type: ignore[arg-type]
    ],
)
async def test_bad_settings_are_rejected_before_connecting(
    edge_server: FakeEdgeServer, settings: VoiceSettings
) -> None:
    with pytest.raises(InvalidVoiceSettings):
        validate_settings(settings)
    error = await failure(provider(), SynthesisRequest("Hallo", settings))
    assert isinstance(error, InvalidVoiceSettings)
    assert edge_server.connection_count == 0


def test_good_settings_pass_validation() -> None:
    validate_settings(VoiceSettings(VOICE, rate="-10%", volume="+0%", pitch="+5Hz"))
    validate_settings(VoiceSettings("Microsoft Server Speech Text to Speech Voice (de-DE, Amala)"))


@pytest.mark.parametrize("text", ["   ", "\x01\x02", "\n\t"])
async def test_blank_text_is_invalid_without_a_request(
    edge_server: FakeEdgeServer, text: str
) -> None:
    error = await failure(provider(), request(text))
    assert isinstance(error, InvalidText)
    assert edge_server.connection_count == 0


@pytest.mark.parametrize(
    "plan",
    [FaultPlan(), FaultPlan(FaultMode.SILENT), FaultPlan(FaultMode.CLOSE_MID_STREAM)],
    ids=lambda plan: plan.mode.value,
)
async def test_no_task_or_descriptor_left_behind(
    edge_server: FakeEdgeServer, plan: FaultPlan
) -> None:
    await synthesize(provider(), request())  # warm up lazily created state
    await edge_server.wait_idle()
    fds, tasks = open_fds(), asyncio.all_tasks()
    edge_server.plan = plan
    with contextlib.suppress(TTSError):
        await synthesize(provider(), request())
    await edge_server.wait_idle()
    await eventually(lambda: open_fds() == fds and asyncio.all_tasks() == tasks)


async def test_refused_leaves_no_descriptor_behind(refused_edge_url: str) -> None:
    fds = open_fds()
    for _ in range(3):
        assert (await failure(provider(), request())).kind is ErrorKind.NETWORK
    await eventually(lambda: open_fds() == fds)


async def test_cancelling_the_consumer_closes_the_socket(edge_server: FakeEdgeServer) -> None:
    edge_server.pacing = Pacing(chunk_delay=0.2)
    first_chunk = asyncio.Event()

    async def consume() -> None:
        async for _ in provider(read_timeout=2.0).stream(request()):
            first_chunk.set()

    consumer = asyncio.create_task(consume())
    await asyncio.wait_for(first_chunk.wait(), 2.0)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    served = edge_server.requests[0]
    await asyncio.wait_for(served.closed.wait(), 1.0)
    assert not served.turn_end_sent
    assert served.audio_bytes_sent < len(edge_server.audio)


async def test_closing_the_stream_early_closes_the_socket(edge_server: FakeEdgeServer) -> None:
    edge_server.pacing = Pacing(chunk_delay=0.2)
    stream = provider(read_timeout=2.0).stream(request())
    assert await anext(stream)
    # Hold edge-tts's generator so garbage collection cannot close it for us.
    edge_events = stream.ag_frame.f_locals["events"]
    await stream.aclose()
    assert edge_events.ag_frame is None  # closed, not merely abandoned
    served = edge_server.requests[0]
    await asyncio.wait_for(served.closed.wait(), 1.0)
    assert not served.turn_end_sent


async def test_a_total_deadline_applied_by_the_caller_releases_the_socket(
    edge_server: FakeEdgeServer,
) -> None:
    edge_server.plan = FaultPlan(FaultMode.SILENT)
    fds = open_fds()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await synthesize(provider(read_timeout=30.0), request())
    await asyncio.wait_for(edge_server.requests[0].closed.wait(), 1.0)
    await eventually(lambda: open_fds() == fds)


def _request_info() -> aiohttp.RequestInfo:
    url = URL("wss://speech.example/edge/v1?Sec-MS-GEC=secret")
    return aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)


def _handshake(status: int) -> aiohttp.WSServerHandshakeError:
    return aiohttp.WSServerHandshakeError(_request_info(), (), status=status, message="refused")


_KEY = ConnectionKey("speech.example", 443, True, True, None, None, None, None)

TRANSLATIONS = [
    (NoAudioReceived("none"), ErrorKind.NO_AUDIO, None),
    (UnexpectedResponse("bad"), ErrorKind.PROTOCOL, None),
    (UnknownResponse("path"), ErrorKind.PROTOCOL, None),
    (WebSocketError("too big"), ErrorKind.PROTOCOL, None),
    (SkewAdjustmentError("no date"), ErrorKind.REJECTED, None),
    (_handshake(401), ErrorKind.REJECTED, 401),
    (_handshake(403), ErrorKind.REJECTED, 403),
    (_handshake(429), ErrorKind.RATE_LIMITED, 429),
    (_handshake(500), ErrorKind.UNAVAILABLE, 500),
    (_handshake(503), ErrorKind.UNAVAILABLE, 503),
    (_handshake(404), ErrorKind.PROTOCOL, 404),
    (_handshake(200), ErrorKind.PROTOCOL, 200),
    (aiohttp.ClientResponseError(_request_info(), (), status=502), ErrorKind.UNAVAILABLE, 502),
    (
        aiohttp.ClientConnectorError(_KEY, ConnectionRefusedError(111, "refused")),
        ErrorKind.NETWORK,
        None,
    ),
    (aiohttp.ClientOSError(104, "reset"), ErrorKind.NETWORK, None),
    (aiohttp.ServerDisconnectedError(), ErrorKind.NETWORK, None),
    (ConnectionResetError(104, "reset"), ErrorKind.NETWORK, None),
    (OSError(101, "unreachable"), ErrorKind.NETWORK, None),
    (aiohttp.ClientPayloadError("cut"), ErrorKind.NETWORK, None),
    (TimeoutError(), ErrorKind.TIMEOUT, None),
    (aiohttp.ServerTimeoutError("read"), ErrorKind.TIMEOUT, None),
    (aiohttp.ConnectionTimeoutError("connect"), ErrorKind.TIMEOUT, None),
    (ValueError("not enough values to unpack"), ErrorKind.PROTOCOL, None),
    (KeyError("Metadata"), ErrorKind.PROTOCOL, None),
    (json.JSONDecodeError("Expecting value", "{", 1), ErrorKind.PROTOCOL, None),
    (RuntimeError("Session is closed"), ErrorKind.PROTOCOL, None),
]


@pytest.mark.parametrize(
    ("exc", "kind", "status"), TRANSLATIONS, ids=lambda value: type(value).__name__
)
def test_translate_error(exc: Exception, kind: ErrorKind, status: int | None) -> None:
    error = translate_error(exc, VOICE)
    assert (error.kind, error.status, error.voice) == (kind, status, VOICE)
    assert "secret" not in str(error)


def test_translate_error_keeps_a_tts_error() -> None:
    original = TTSError(ErrorKind.TIMEOUT, "slow", voice=OTHER_VOICE)
    assert translate_error(original, VOICE) is original

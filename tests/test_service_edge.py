"""TTSService driving the real edge-tts client against the fake Edge server, per fault mode.

For each way the service fails: the caller gets audio or a classified error
within the total deadline, the right breaker records it, retries and voice
fallback happen as configured, and nothing is left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from edge_voice.core.breaker import CircuitOpenError
from edge_voice.core.tts.edge import EdgeProvider, validate_settings
from edge_voice.core.tts.errors import ErrorKind, InvalidText, TTSError
from edge_voice.core.tts.outcomes import SynthesisFailed
from edge_voice.core.tts.policy import Backoff, RetryPolicy
from edge_voice.core.tts.service import TTSService
from tests.fakes.edge_server import FakeEdgeServer, FaultMode, FaultPlan, Pacing

KILLIAN, CONRAD = "de-DE-KillianNeural", "de-DE-ConradNeural"
CONNECT, READ, TOTAL = 0.3, 0.3, 3.0
ATTEMPTS = 2


def make_service(total: float = TOTAL) -> TTSService:
    return TTSService(
        EdgeProvider(connect_timeout=CONNECT, read_timeout=READ),
        voices=[KILLIAN, CONRAD],
        retry=RetryPolicy(ATTEMPTS, Backoff(base=0.01, cap=0.02), total),
        validate=validate_settings,
    )


@dataclass(frozen=True)
class Expect:
    kind: ErrorKind | None
    """None: audio is delivered."""
    connections: int
    service_failures: int
    voice_failures: dict[str, int]


FAULT_TABLE = [
    pytest.param(FaultPlan(), Expect(None, 1, 0, {}), id="ok"),
    pytest.param(
        FaultPlan(FaultMode.NO_AUDIO),
        Expect(ErrorKind.NO_AUDIO, 2 * ATTEMPTS, 1, {KILLIAN: 1, CONRAD: 1}),
        id="no_audio-everywhere",
    ),
    pytest.param(FaultPlan(FaultMode.FORBIDDEN_ONCE), Expect(None, 2, 0, {}), id="403-once"),
    pytest.param(
        FaultPlan(FaultMode.FORBIDDEN_ALWAYS),
        Expect(ErrorKind.REJECTED, 2, 1, {}),
        id="403-always",
    ),
    pytest.param(
        FaultPlan(FaultMode.RATE_LIMITED), Expect(ErrorKind.RATE_LIMITED, 1, 1, {}), id="429"
    ),
    pytest.param(
        FaultPlan(FaultMode.UNAVAILABLE),
        Expect(ErrorKind.UNAVAILABLE, ATTEMPTS, 1, {}),
        id="503",
    ),
    pytest.param(
        FaultPlan(FaultMode.SILENT), Expect(ErrorKind.TIMEOUT, ATTEMPTS, 1, {}), id="silent"
    ),
    pytest.param(
        FaultPlan(FaultMode.CLOSE_MID_STREAM),
        Expect(ErrorKind.PROTOCOL, 1, 1, {KILLIAN: 1}),
        id="close-mid-stream",
    ),
    pytest.param(
        FaultPlan(FaultMode.SLOW_TRICKLE, trickle_gap=1.0),
        Expect(ErrorKind.TIMEOUT, 1, 1, {}),
        id="slow-trickle",
    ),
    pytest.param(
        FaultPlan(FaultMode.MALFORMED_FRAME),
        Expect(ErrorKind.PROTOCOL, 1, 1, {KILLIAN: 1}),
        id="malformed-frame",
    ),
    pytest.param(
        FaultPlan.fail_voice(KILLIAN),
        Expect(None, ATTEMPTS + 1, 0, {KILLIAN: 1}),
        id="one-voice-blocked",
    ),
    pytest.param(
        FaultPlan.fail_first_n(1, FaultMode.UNAVAILABLE), Expect(None, 2, 0, {}), id="recovers"
    ),
]


@pytest.mark.parametrize(("plan", "expect"), FAULT_TABLE)
async def test_fault_mode(edge_server: FakeEdgeServer, plan: FaultPlan, expect: Expect) -> None:
    # Small frames so that a cut stream has delivered audio before it breaks.
    edge_server.pacing = Pacing(chunk_bytes=288)
    edge_server.plan = plan
    service = make_service()
    started = time.monotonic()
    if expect.kind is None:
        assert await service.synthesize("Hallo zusammen") == edge_server.audio
    else:
        with pytest.raises(SynthesisFailed) as info:
            await service.synthesize("Hallo zusammen")
        assert info.value.kind is expect.kind
    assert time.monotonic() - started < TOTAL + 0.5
    assert edge_server.connection_count == expect.connections
    health = service.health()
    assert health["window_failures"] == expect.service_failures
    assert health["window_calls"] == 1
    for voice in (KILLIAN, CONRAD):
        assert health["voices"][voice]["window_failures"] == expect.voice_failures.get(voice, 0)


async def test_refused_connection_is_retried_then_fails_as_network(refused_edge_url: str) -> None:
    service = make_service()
    with pytest.raises(SynthesisFailed) as info:
        await service.synthesize("Hallo")
    assert info.value.kind is ErrorKind.NETWORK
    assert [(a.voice, a.number) for a in info.value.attempts] == [(KILLIAN, 1), (KILLIAN, 2)]
    assert service.health()["consecutive_failures"] == 1


async def test_total_deadline_holds_over_retries(edge_server: FakeEdgeServer) -> None:
    edge_server.plan = FaultPlan(FaultMode.SILENT)
    service = make_service(total=0.8)
    started = time.monotonic()
    with pytest.raises(SynthesisFailed) as info:
        await service.synthesize("Hallo")
    assert time.monotonic() - started < 0.8 + 0.4
    assert info.value.kind is ErrorKind.TIMEOUT


async def test_service_breaker_opens_in_a_wave_and_spares_the_server(
    edge_server: FakeEdgeServer,
) -> None:
    edge_server.plan = FaultPlan(FaultMode.UNAVAILABLE)
    service = make_service()
    for _ in range(5):
        with pytest.raises(SynthesisFailed):
            await service.synthesize("Hallo")
    assert service.service_breaker.state.value == "OPEN"
    reached = edge_server.connection_count
    for _ in range(20):
        with pytest.raises(CircuitOpenError):
            await service.synthesize("Hallo")
    assert edge_server.connection_count == reached


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _eventually(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    "mode",
    [FaultMode.OK, FaultMode.SILENT, FaultMode.CLOSE_MID_STREAM, FaultMode.UNAVAILABLE],
    ids=lambda m: m.value,
)
async def test_nothing_left_behind(edge_server: FakeEdgeServer, mode: FaultMode) -> None:
    service = make_service()
    await service.synthesize("Aufwärmen")
    await edge_server.wait_idle()
    fds, tasks = _open_fds(), asyncio.all_tasks()
    edge_server.plan = FaultPlan(mode)
    with contextlib.suppress(TTSError):
        await service.synthesize("Hallo")
    await edge_server.wait_idle()
    await _eventually(lambda: _open_fds() == fds and asyncio.all_tasks() == tasks)


async def test_cancelled_request_closes_the_socket_and_counts_nothing(
    edge_server: FakeEdgeServer,
) -> None:
    edge_server.pacing = Pacing(chunk_bytes=288, chunk_delay=0.1)
    service = make_service()
    got_audio = asyncio.Event()

    async def listen() -> None:
        async for _ in service.stream("Hallo"):
            got_audio.set()

    task = asyncio.create_task(listen())
    await asyncio.wait_for(got_audio.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(edge_server.requests[0].closed.wait(), 2)
    health = service.health()
    assert health["window_calls"] == 0
    assert health["voices"][KILLIAN]["window_calls"] == 0


NASTY_INPUTS = [
    pytest.param("", "empty", None, id="empty"),
    pytest.param("   \t\n ", "whitespace", None, id="spaces"),
    pytest.param("......", "no letter or digit", None, id="punctuation"),
    pytest.param("🎉🔥👍", "no letter or digit", None, id="emoji-only"),
    pytest.param("\u200b\u200c\u200d\ufeff", "invisible", None, id="zero-width-only"),
    pytest.param("x" * 100_000, "over the limit", None, id="100k-chars"),
    pytest.param("\x00\x07\x1b\x7f", "invisible", None, id="control-only"),
    pytest.param(
        "<speak><voice name='x'>pwned</voice></speak>",
        None,
        "<speak><voice name='x'>pwned</voice></speak>",
        id="ssml-injection",
    ),
    pytest.param("Hallo\x00 Welt\x1b", None, "Hallo Welt", id="control-chars-inside"),
    pytest.param("Hal\u200blo Welt", None, "Hallo Welt", id="zero-width-inside"),
    pytest.param("Hallo 世界 مرحبا", None, "Hallo 世界 مرحبا", id="mixed-scripts"),
    pytest.param("Tom & Jerry <3", None, "Tom & Jerry <3", id="xml-specials"),
]


@pytest.mark.parametrize(("text", "error", "server_saw"), NASTY_INPUTS)
async def test_nasty_input_is_refused_or_spoken_safely(
    edge_server: FakeEdgeServer, text: str, error: str | None, server_saw: str | None
) -> None:
    service = make_service()
    if error is not None:
        with pytest.raises(InvalidText, match=error):
            await service.synthesize(text)
        assert edge_server.connection_count == 0
        for breaker in service.breakers:
            assert breaker.snapshot()["window_calls"] == 0
        return
    assert await service.synthesize(text) == edge_server.audio
    # The fake server unescapes the SSML body: the text arrived as text, not as markup.
    assert edge_server.requests[0].text == server_saw
    assert service.health()["window_failures"] == 0

"""core.tts.edge.fetch_voice_list through the real edge-tts client against a local server."""

from __future__ import annotations

import asyncio

import edge_tts.constants
import pytest

from edge_voice.core.tts.edge import fetch_voice_list, voice_list_url
from edge_voice.core.tts.errors import ErrorKind, TTSError
from tests.fakes.edge_server import refused_endpoint
from tests.fakes.voice_list_server import (
    Answer,
    FakeVoiceListServer,
    edge_voice_list_pointed_at,
    voice_entry,
)

VOICES = [voice_entry("de-DE-KillianNeural", "Male"), voice_entry("en-US-AriaNeural")]


async def test_the_list_arrives_from_the_url_edge_tts_reads_at_call_time() -> None:
    async with FakeVoiceListServer(Answer(body=VOICES)) as server:
        with edge_voice_list_pointed_at(server.url):
            assert voice_list_url() == server.url
            voices = await fetch_voice_list(deadline=5.0)

    assert [v["ShortName"] for v in voices] == ["de-DE-KillianNeural", "en-US-AriaNeural"]
    assert len(server.requests) == 1
    assert "Sec-MS-GEC" in server.requests[0]


async def test_patching_the_constants_module_does_not_redirect_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with (
        FakeVoiceListServer(Answer(body=VOICES)) as read,
        FakeVoiceListServer(Answer(body=VOICES)) as ignored,
    ):
        monkeypatch.setattr(edge_tts.constants, "VOICE_LIST", ignored.url)
        with edge_voice_list_pointed_at(read.url):
            await fetch_voice_list(deadline=5.0)

    assert (len(read.requests), len(ignored.requests)) == (1, 0)


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (Answer(status=503), ErrorKind.UNAVAILABLE),
        (Answer(status=429), ErrorKind.RATE_LIMITED),
        (Answer(status=401), ErrorKind.REJECTED),
        (Answer(raw=b"<html>not json</html>"), ErrorKind.PROTOCOL),
        (Answer(body={"voices": []}), ErrorKind.PROTOCOL),
        (Answer(body=[1, 2, 3]), ErrorKind.PROTOCOL),
    ],
)
async def test_failures_become_our_error_kinds(answer: Answer, kind: ErrorKind) -> None:
    async with FakeVoiceListServer(answer) as server:
        with edge_voice_list_pointed_at(server.url), pytest.raises(TTSError) as caught:
            await fetch_voice_list(deadline=5.0)

    assert caught.value.kind is kind
    assert "trustedclienttoken" not in str(caught.value).lower()


async def test_a_403_is_retried_once_by_edge_tts_then_rejected() -> None:
    async with FakeVoiceListServer(Answer(status=403)) as server:
        with edge_voice_list_pointed_at(server.url), pytest.raises(TTSError) as caught:
            await fetch_voice_list(deadline=5.0)

    # aiohttp's answer carries a Date header: edge-tts corrects its clock and asks again.
    assert caught.value.kind is ErrorKind.REJECTED
    assert caught.value.status == 403
    assert len(server.requests) == 2


async def test_a_silent_server_is_cut_off_by_our_deadline() -> None:
    async with FakeVoiceListServer(Answer(silent=True)) as server:
        with edge_voice_list_pointed_at(server.url), pytest.raises(TTSError) as caught:
            await fetch_voice_list(deadline=0.2)

    assert caught.value.kind is ErrorKind.TIMEOUT
    assert "0.2 s" in str(caught.value)


async def test_a_refused_connection_is_a_network_error() -> None:
    with refused_endpoint() as ws_url:
        url = ws_url.replace("ws://", "http://")
        with edge_voice_list_pointed_at(url), pytest.raises(TTSError) as caught:
            await fetch_voice_list(deadline=5.0)

    assert caught.value.kind is ErrorKind.NETWORK


async def test_cancelling_the_fetch_is_not_an_error() -> None:
    async with FakeVoiceListServer(Answer(silent=True)) as server:
        with edge_voice_list_pointed_at(server.url):
            task = asyncio.create_task(fetch_voice_list(deadline=30.0))
            while not server.requests:
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

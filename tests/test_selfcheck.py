"""core.selfcheck (``make check``): the offline voice, the breakers, and the real cause."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from edge_voice.core import selfcheck
from edge_voice.core.config import Config, parse_config
from edge_voice.core.diagnostics.checks import CheckDeadlines
from edge_voice.core.tts.errors import ErrorKind, TTSError
from edge_voice.core.tts.provider import SynthesisRequest
from tests.fakes.edge_server import FakeEdgeServer

DEADLINES = CheckDeadlines(dns=2, tcp=2, tls=2, websocket=2, synthesis=5)


def config_for(url: str, **sections: dict[str, Any]) -> Config:
    port = urlsplit(url).port
    return parse_config(
        {
            "edge": {"host": "127.0.0.1", "port": port},
            "canary": {"enabled": False},
            "retry": {"attempts": 1},
            **sections,
        }
    )


async def test_a_bad_rate_is_named_not_blamed_on_the_network(refused_edge_url: str) -> None:
    valid = config_for(refused_edge_url)
    # A Config built in code skips the load-time checks; the check must still say why.
    config = dataclasses.replace(valid, speech=dataclasses.replace(valid.speech, rate="+500%"))

    report = await selfcheck.run_self_check(config, "test", deadlines=DEADLINES)

    assert not report.ok
    assert report.diagnosis.verdict.value != "healthy"  # the port refuses: a network problem
    assert report.speech.error_kind is ErrorKind.INPUT
    last = report.render().splitlines()[-1]
    assert last.startswith("RESULT: FAIL - the bot cannot speak: input")
    assert "+500%" in last
    assert "refused" not in last.lower()


async def test_a_network_failure_is_explained_by_the_diagnosis(refused_edge_url: str) -> None:
    report = await selfcheck.run_self_check(
        config_for(refused_edge_url), "test", deadlines=DEADLINES
    )
    assert report.speech.error_kind is ErrorKind.NETWORK
    assert report.render().splitlines()[-1] == (
        f"RESULT: FAIL - the bot cannot speak: {report.diagnosis.headline}"
    )


async def test_breakers_are_shown_after_the_speech_test(refused_edge_url: str) -> None:
    report = await selfcheck.run_self_check(
        config_for(refused_edge_url), "test", deadlines=DEADLINES
    )
    text = report.render()
    section = text[text.index("Breakers after the speech test:") :]
    assert [b.name for b in report.breakers] == [
        "edge",
        "edge:de-DE-KillianNeural",
        "edge:de-DE-ConradNeural",
    ]
    assert "  - edge: CLOSED, 1 consecutive failures" in section
    assert "  - edge:de-DE-KillianNeural: CLOSED" in section


async def test_the_offline_voice_is_tested_when_the_fallback_uses_it(
    refused_edge_url: str,
) -> None:
    config = config_for(refused_edge_url, fallback={"on_open": "offline_voice"})

    report = await selfcheck.run_self_check(config, "test", deadlines=DEADLINES)

    assert report.offline is not None
    assert report.offline.ok
    assert report.offline.packets > 10
    text = report.render()
    assert "Offline voice test (eSpeak NG -> Opus packets): OK: " in text
    assert text.splitlines()[-1].endswith("(meanwhile listeners hear the offline voice)")
    assert report.exit_code == 1


async def test_text_only_fallback_skips_the_offline_voice(edge_server: FakeEdgeServer) -> None:
    report = await selfcheck.run_self_check(config_for(edge_server.url), "test")
    assert report.offline is None
    assert "Offline voice test" not in report.render()
    assert report.ok


async def test_a_broken_offline_voice_fails_the_check_even_when_edge_speaks(
    edge_server: FakeEdgeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken:
        audio_format = selfcheck.EspeakProvider.audio_format

        def __init__(self, *_args: Any) -> None:
            pass

        async def stream(self, request: SynthesisRequest) -> AsyncIterator[bytes]:
            raise TTSError(ErrorKind.UNAVAILABLE, "the espeakng-loader package is missing")
            yield b""  # pragma: no cover

        def close(self) -> None:
            pass

    monkeypatch.setattr(selfcheck, "EspeakProvider", Broken)
    config = config_for(edge_server.url, fallback={"on_open": "offline_voice_and_text"})

    report = await selfcheck.run_self_check(config, "test")

    assert report.speech.ok
    assert not report.ok
    assert report.render().splitlines()[-1] == (
        "RESULT: FAIL - Edge speaks, but the offline voice ([fallback] on_open) does not: "
        "unavailable: the espeakng-loader package is missing"
    )

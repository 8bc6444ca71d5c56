"""A local stand-in for Edge's voice list endpoint, for the real edge-tts client.

edge-tts 7.3.1 fetches ``edge_tts.voices.VOICE_LIST`` (a copy made at import: patching
``edge_tts.constants.VOICE_LIST`` does nothing) plus ``&Sec-MS-GEC=...`` with a plain
GET and ``json.loads`` of the body. :class:`FakeVoiceListServer` answers that GET with
what its ``answer`` says; every request is recorded. Binds 127.0.0.1 only.

    async with FakeVoiceListServer(voices) as server:
        with edge_voice_list_pointed_at(server.url):
            ...  # edge_tts.list_voices() now asks the fake
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import edge_tts.voices
from aiohttp import web
from edge_tts.drm import DRM

PATH = "/consumer/speech/synthesize/readaloud/voices/list"


@dataclass
class Answer:
    """What the fake answers: a status and a body (JSON-encoded unless ``raw``)."""

    status: int = 200
    body: Any = field(default_factory=list)
    raw: bytes | None = None
    silent: bool = False
    """Accept the request and never answer (until the server stops)."""


def voice_entry(short_name: str, gender: str = "Female") -> dict[str, Any]:
    """One entry as Edge's list has it (more fields than we keep)."""
    locale = "-".join(short_name.split("-")[:2])
    return {
        "Name": f"Microsoft Server Speech Text to Speech Voice ({locale}, "
        f"{short_name.split('-', 2)[2]})",
        "ShortName": short_name,
        "Gender": gender,
        "Locale": locale,
        "SuggestedCodec": "audio-24khz-48kbitrate-mono-mp3",
        "FriendlyName": f"Microsoft {short_name.split('-', 2)[2][:-6]} Online (Natural) - Test",
        "Status": "GA",
        "VoiceTag": {"ContentCategories": ["General"], "VoicePersonalities": ["Friendly"]},
    }


class FakeVoiceListServer:
    """An aiohttp server on 127.0.0.1 answering the voice list GET."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.answer = answer or Answer()
        self.requests: list[dict[str, str]] = []
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()
        self.port = 0

    @property
    def url(self) -> str:
        """The voice list URL, with the query edge-tts extends with ``&...``."""
        return f"http://127.0.0.1:{self.port}{PATH}?trustedclienttoken=x"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.query))
        answer = self.answer
        if answer.silent:
            await self._release.wait()
        body = answer.raw if answer.raw is not None else json.dumps(answer.body).encode()
        return web.Response(status=answer.status, body=body, content_type="application/json")

    async def __aenter__(self) -> FakeVoiceListServer:
        app = web.Application()
        app.router.add_get(PATH, self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()


@contextlib.contextmanager
def edge_voice_list_pointed_at(url: str) -> Iterator[None]:
    """Point edge-tts's voice list at ``url``; bypass proxies for localhost; reset the
    client's global clock-skew correction afterwards (403 handling changes it)."""
    saved_url = edge_tts.voices.VOICE_LIST
    saved_env = {name: os.environ.get(name) for name in ("NO_PROXY", "no_proxy")}
    saved_skew = DRM.clock_skew_seconds
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    edge_tts.voices.VOICE_LIST = url
    try:
        yield
    finally:
        edge_tts.voices.VOICE_LIST = saved_url
        DRM.clock_skew_seconds = saved_skew
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

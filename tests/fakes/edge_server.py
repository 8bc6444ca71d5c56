"""A local stand-in for Microsoft's Edge read-aloud WebSocket, for the real edge-tts client.

Speaks the wire protocol edge-tts 7.3.1 accepts (see /work/shared/notes/edge-tts-7.3.1.md):
after the client's ``speech.config`` and ``ssml`` TEXT frames it answers ``turn.start``,
``response``, paced binary ``audio`` frames, one ``audio.metadata`` SentenceBoundary, the
empty end-of-stream binary frame and ``turn.end``. A :class:`FaultPlan` makes it
misbehave the ways the real service does; every connection is recorded.

    async with FakeEdgeServer(plan=FaultPlan(FaultMode.NO_AUDIO)) as server:
        with edge_client_pointed_at(server.url):
            ...  # edge_tts.Communicate now talks to the fake

Binds 127.0.0.1 on an ephemeral port only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from enum import Enum
from typing import Any
from xml.sax.saxutils import unescape

import edge_tts.communicate
from aiohttp import WSMsgType, web
from edge_tts.drm import DRM

from tests.fakes.audio_samples import BIT_RATE, WEBM_FORMAT, edge_like_mp3, edge_like_webm

PATH = "/consumer/speech/synthesize/readaloud/edge/v1"
_TICKS_PER_SECOND = 10_000_000
_REQUEST_READ_TIMEOUT = 5.0
_CLOSE_TIMEOUT = 2.0


class FaultMode(Enum):
    """How the fake answers a connection."""

    OK = "ok"
    NO_AUDIO = "no_audio"  # turn.start, response, turn.end: no audio at all
    FORBIDDEN_ONCE = "forbidden_once"  # 403 with a Date ahead of now, on the first connection
    FORBIDDEN_ALWAYS = "forbidden_always"  # 403 with a Date ahead of now, every time
    RATE_LIMITED = "rate_limited"  # 429 handshake
    UNAVAILABLE = "unavailable"  # 503 handshake
    SILENT = "silent"  # accept the socket and the request, then send nothing
    CLOSE_MID_STREAM = "close_mid_stream"  # half the audio, then close before turn.end
    SLOW_TRICKLE = "slow_trickle"  # audio chunks separated by FaultPlan.trickle_gap
    MALFORMED_FRAME = "malformed_frame"  # one audio chunk, then a binary frame with a bad length


HANDSHAKE_MODES = frozenset(
    {
        FaultMode.FORBIDDEN_ONCE,
        FaultMode.FORBIDDEN_ALWAYS,
        FaultMode.RATE_LIMITED,
        FaultMode.UNAVAILABLE,
    }
)
"""Modes decided before the voice is known (the SSML arrives after the handshake)."""


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Which connections get which :class:`FaultMode`; the rest are served normally.

    ``voice`` restricts the fault to requests for that voice (short ``de-DE-KillianNeural``
    or long SSML form); ``first_n`` restricts it to the first n connections counted from
    when the plan was set. A refused connection is not a plan: see :func:`refused_endpoint`.
    """

    mode: FaultMode = FaultMode.OK
    voice: str | None = None
    first_n: int | None = None
    trickle_gap: float = 1.0
    """Seconds between audio chunks in SLOW_TRICKLE."""
    skew_ahead: float = 3600.0
    """How far ahead of now the 403's ``Date`` header is."""

    def __post_init__(self) -> None:
        if self.voice is not None and self.mode in HANDSHAKE_MODES:
            raise ValueError(f"{self.mode.value} happens before the voice is known")
        if self.first_n is not None and self.first_n < 0:
            raise ValueError("first_n must be >= 0")

    @classmethod
    def fail_voice(cls, voice: str, mode: FaultMode = FaultMode.NO_AUDIO) -> FaultPlan:
        """Fail only requests for ``voice`` (with NO_AUDIO by default); serve the others."""
        return cls(mode=mode, voice=voice)

    @classmethod
    def fail_first_n(cls, n: int, mode: FaultMode) -> FaultPlan:
        """Fail the first ``n`` connections with ``mode``, then recover."""
        return cls(mode=mode, first_n=n)

    def mode_for(self, nth: int, voice: str | None) -> FaultMode:
        """The mode for the ``nth`` connection (0-based) under this plan.

        ``voice`` is None at the handshake, when only handshake modes are decided.
        """
        if self.first_n is not None and nth >= self.first_n:
            return FaultMode.OK
        if self.mode is FaultMode.FORBIDDEN_ONCE and nth > 0:
            return FaultMode.OK
        if self.voice is not None and (
            voice is None or short_voice_name(voice) != short_voice_name(self.voice)
        ):
            return FaultMode.OK
        return self.mode


@dataclass(frozen=True, slots=True)
class Pacing:
    """How audio is trickled out: the knobs a benchmark turns to look like the service."""

    chunk_bytes: int = 1440
    """Audio bytes per binary frame (1440 = 10 MP3 frames = 240 ms)."""
    chunk_delay: float = 0.0
    first_chunk_delay: float = 0.0
    """Delay between receiving the SSML and the first audio frame (synthesis latency)."""

    @classmethod
    def faster_than_realtime(
        cls, factor: float, *, chunk_bytes: int = 1440, first_chunk_delay: float = 0.0
    ) -> Pacing:
        """Deliver audio ``factor`` times faster than it plays (48 kbps CBR)."""
        chunk_seconds = chunk_bytes * 8 / BIT_RATE
        return cls(chunk_bytes, chunk_seconds / factor, first_chunk_delay)


@dataclass(eq=False)
class RecordedRequest:
    """One connection that reached the fake, and what it got."""

    index: int
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 101
    """101 once upgraded, else the handshake refusal."""
    mode: FaultMode = FaultMode.OK
    voice: str | None = None
    """The voice as sent in the SSML (long form)."""
    text: str | None = None
    """The SSML text, unescaped."""
    rate: str | None = None
    """The SSML prosody's rate, e.g. ``+10%``."""
    output_format: str | None = None
    """``outputFormat`` from the speech.config frame (edge-tts: always MP3)."""
    audio_bytes_sent: int = 0
    turn_end_sent: bool = False
    arrived: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` when the connection reached the server."""
    first_audio_at: float | None = None
    """``time.monotonic()`` just after the first audio frame was written."""
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the connection is gone (either side closed it)."""

    @property
    def short_voice(self) -> str | None:
        """The voice in edge-tts's short form, e.g. ``de-DE-KillianNeural``."""
        return None if self.voice is None else short_voice_name(self.voice)


def short_voice_name(voice: str) -> str:
    """``Microsoft Server Speech Text to Speech Voice (de-DE, KillianNeural)`` -> short form."""
    match = re.fullmatch(r"Microsoft Server Speech Text to Speech Voice \((.+), (.+)\)", voice)
    return f"{match[1]}-{match[2]}" if match else voice


class FakeEdgeServer:
    """The fake service; ``async with`` starts it on 127.0.0.1 and stops it.

    ``plan`` may be replaced between requests (its first-n count restarts then).
    ``audio`` defaults to :func:`edge_like_mp3` (1 s); every OK request gets all of it.
    """

    def __init__(
        self,
        *,
        plan: FaultPlan | None = None,
        pacing: Pacing | None = None,
        audio: bytes | None = None,
    ) -> None:
        self._plan = plan or FaultPlan()
        self._plan_connections = 0
        self.pacing = pacing or Pacing()
        self.audio = audio if audio is not None else edge_like_mp3(1.0)
        self.webm_audio = edge_like_webm(1.0)
        """Served instead of ``audio`` to a request whose speech.config asks for WebM."""
        self.requests: list[RecordedRequest] = []
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._sockets: set[web.WebSocketResponse] = set()
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def plan(self) -> FaultPlan:
        """The current fault plan."""
        return self._plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        self._plan = plan
        self._plan_connections = 0

    @property
    def url(self) -> str:
        """The ``ws://`` URL to patch into ``edge_tts.communicate.WSS_URL``."""
        if not self._port:
            raise RuntimeError("server not started")
        return f"ws://127.0.0.1:{self._port}{PATH}?TrustedClientToken=x"

    @property
    def connection_count(self) -> int:
        """Connections that reached the server, refused handshakes included."""
        return len(self.requests)

    async def start(self) -> None:
        """Listen on an ephemeral 127.0.0.1 port."""
        app = web.Application()
        app.router.add_get(PATH, self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=_CLOSE_TIMEOUT)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Close open sockets and stop listening."""
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeEdgeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until every connection handler has finished."""
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        nth = self._plan_connections
        self._plan_connections += 1
        plan = self._plan
        record = RecordedRequest(
            index=len(self.requests), query=dict(request.query), headers=dict(request.headers)
        )
        self.requests.append(record)
        self._active += 1
        self._idle.clear()
        try:
            record.mode = plan.mode_for(nth, voice=None)
            if record.mode in HANDSHAKE_MODES:
                return self._refuse(record, plan)
            return await self._serve(request, record, plan, nth)
        finally:
            record.closed.set()
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    def _refuse(self, record: RecordedRequest, plan: FaultPlan) -> web.Response:
        if record.mode is FaultMode.RATE_LIMITED:
            record.status = 429
            return web.Response(status=429, text="Too Many Requests")
        if record.mode is FaultMode.UNAVAILABLE:
            record.status = 503
            return web.Response(status=503, text="Service Unavailable")
        record.status = 403
        ahead = formatdate(time.time() + plan.skew_ahead, usegmt=True)
        return web.Response(status=403, text="Forbidden", headers={"Date": ahead})

    async def _serve(
        self, request: web.Request, record: RecordedRequest, plan: FaultPlan, nth: int
    ) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            request_id = await self._read_ssml(ws, record)
            if request_id is None:
                return ws
            record.mode = plan.mode_for(nth, record.voice)
            reply = asyncio.create_task(self._reply(ws, record, plan, request_id))
            # Keep reading so a client's close frame is answered at once, even mid-reply.
            async for _ in ws:
                pass
            if not reply.done():
                reply.cancel()
            await asyncio.wait([reply])
            if not reply.cancelled():
                reply.exception()  # a send to a vanished client fails; that is expected
            return ws
        finally:
            self._sockets.discard(ws)

    async def _read_ssml(self, ws: web.WebSocketResponse, record: RecordedRequest) -> str | None:
        """Read the client's frames up to the SSML; its X-RequestId, or None if it left."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_REQUEST_READ_TIMEOUT):
                async for message in ws:
                    if message.type is not WSMsgType.TEXT:
                        continue
                    headers, body = _split_text_frame(message.data)
                    if headers.get("Path") == "speech.config":
                        wanted = re.search(r'"outputFormat":"([^"]*)"', body)
                        record.output_format = wanted[1] if wanted else None
                    if headers.get("Path") != "ssml":
                        continue
                    voice = re.search(r"<voice name='([^']*)'>", body)
                    text = re.search(r"<prosody[^>]*>(.*)</prosody>", body, re.DOTALL)
                    rate = re.search(r"<prosody[^>]*\brate='([^']*)'", body)
                    record.voice = voice[1] if voice else None
                    record.text = unescape(text[1]) if text else None
                    record.rate = rate[1] if rate else None
                    return headers.get("X-RequestId", uuid.uuid4().hex)
        return None

    async def _reply(
        self, ws: web.WebSocketResponse, record: RecordedRequest, plan: FaultPlan, rid: str
    ) -> None:
        mode = record.mode
        if mode is FaultMode.SILENT:
            return
        await ws.send_str(_text_frame(rid, "turn.start", {"context": {"serviceTag": rid}}))
        await ws.send_str(_text_frame(rid, "response", {"audio": {"type": "inline"}}))
        if mode is FaultMode.NO_AUDIO:
            await ws.send_str(_text_frame(rid, "turn.end", {}))
            record.turn_end_sent = True
            return

        size = self.pacing.chunk_bytes
        webm = record.output_format == WEBM_FORMAT
        audio = self.webm_audio if webm else self.audio
        chunks = [audio[i : i + size] for i in range(0, len(audio), size)]
        gap = plan.trickle_gap if mode is FaultMode.SLOW_TRICKLE else self.pacing.chunk_delay
        if self.pacing.first_chunk_delay:
            await asyncio.sleep(self.pacing.first_chunk_delay)
        for position, chunk in enumerate(chunks):
            if position and gap:
                await asyncio.sleep(gap)
            if mode is FaultMode.CLOSE_MID_STREAM and position == max(1, len(chunks) // 2):
                await ws.close()
                return
            await ws.send_bytes(_audio_frame(rid, chunk, webm=webm))
            if record.first_audio_at is None:
                record.first_audio_at = time.monotonic()
            record.audio_bytes_sent += len(chunk)
            if mode is FaultMode.MALFORMED_FRAME:
                await ws.send_bytes(b"\xff\xff" + _audio_frame(rid, b"")[2:])
                return

        duration = len(self.audio) * 8 * _TICKS_PER_SECOND // BIT_RATE
        metadata = {
            "Metadata": [
                {
                    "Type": "SentenceBoundary",
                    "Data": {
                        "Offset": 1_000_000,
                        "Duration": duration,
                        "text": {
                            "Text": record.text or "",
                            "Length": len(record.text or ""),
                            "BoundaryType": "SentenceBoundary",
                        },
                    },
                }
            ]
        }
        await ws.send_str(_text_frame(rid, "audio.metadata", metadata))
        await ws.send_bytes(_audio_frame(rid, b""))
        await ws.send_str(_text_frame(rid, "turn.end", {}))
        record.turn_end_sent = True


def _split_text_frame(frame: str) -> tuple[dict[str, str], str]:
    head, _, body = frame.partition("\r\n\r\n")
    headers = dict(line.split(":", 1) for line in head.split("\r\n") if ":" in line)
    return headers, body


def _text_frame(request_id: str, path: str, body: dict[str, Any]) -> str:
    return (
        f"X-RequestId:{request_id}\r\n"
        "Content-Type:application/json; charset=utf-8\r\n"
        f"Path:{path}\r\n\r\n"
        f"{json.dumps(body)}"
    )


def _audio_frame(request_id: str, audio: bytes, *, webm: bool = False) -> bytes:
    """A binary frame: 2-byte big-endian header length, headers, audio.

    X-RequestId comes first because edge-tts parses the length bytes as part of the
    first header's name. The end-of-stream frame (no audio) has no Content-Type.
    """
    kind = "audio/webm; codec=opus" if webm else "audio/mpeg"
    content_type = f"Content-Type:{kind}\r\n" if audio else ""
    header = f"X-RequestId:{request_id}\r\n{content_type}Path:audio\r\n".encode()
    return len(header).to_bytes(2, "big") + header + audio


@contextlib.contextmanager
def edge_client_pointed_at(url: str) -> Iterator[None]:
    """Point the real edge-tts client at ``url`` for the duration; restore everything after.

    Patches ``edge_tts.communicate.WSS_URL`` (read on every connection), bypasses any
    proxy for localhost (the client uses ``trust_env=True``) and resets the client's
    global clock-skew correction, which 403 handling changes.
    """
    saved_url = edge_tts.communicate.WSS_URL
    saved_env = {name: os.environ.get(name) for name in ("NO_PROXY", "no_proxy")}
    saved_skew = DRM.clock_skew_seconds
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    DRM.clock_skew_seconds = 0.0
    edge_tts.communicate.WSS_URL = url
    try:
        yield
    finally:
        edge_tts.communicate.WSS_URL = saved_url
        DRM.clock_skew_seconds = saved_skew
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def refused_endpoint() -> Iterator[str]:
    """A ws URL on 127.0.0.1 where every connection is refused.

    Holds the port bound but not listening, so the kernel refuses connections and no
    other process can start listening there meanwhile.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        yield f"ws://127.0.0.1:{port}{PATH}?TrustedClientToken=x"


async def synthesize_with_edge_tts(text: str, voice: str) -> AsyncIterator[bytes]:
    """Audio bytes straight from ``edge_tts.Communicate`` (no provider in between)."""
    async for event in edge_tts.Communicate(text, voice).stream():
        if event["type"] == "audio":
            yield event["data"]

"""Edge voices as Opus in WebM, on a request path of our own (edge-tts asks for MP3 only).

edge-tts 7.3.1 hard-codes ``audio-24khz-48kbitrate-mono-mp3`` and refuses any other
Content-Type, so :class:`EdgeWebmProvider` speaks Edge's WebSocket protocol itself: the
handshake and the two request frames are edge-tts's own (:func:`core.tts.edge.handshake_request`,
:func:`core.tts.edge.request_frames`) with ``outputFormat`` set to ``[edge] output_format``;
the answer is read here. Its bytes are WebM whose Opus frames :func:`core.audio.opus_packets`
passes to Discord without decoding (``bench/opus_levers.py``: the cost of that, against
converting MP3). MP3 stays the default: only the protocol fake has been seen to answer
this format, not the real service.

Errors go through :func:`core.tts.edge.translate_error`, the one map of this boundary;
every wait has a deadline (``connect_timeout`` for the handshake, ``read_timeout``
between frames), and a socket closed before ``turn.end`` is a ``protocol`` error, never
a short success.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Final

import aiohttp

from edge_voice.core.config import Config
from edge_voice.core.tts.edge import handshake_request, request_frames, translate_error
from edge_voice.core.tts.errors import ErrorKind, TTSError
from edge_voice.core.tts.provider import AudioFormat, SynthesisRequest

WEBM_OUTPUT: Final = "webm-24khz-16bit-mono-opus"
EDGE_WEBM: Final = AudioFormat(codec="webm_opus", sample_rate=24_000, channels=1)


def provider_for(config: Config) -> EdgeWebmProvider | None:
    """The WebM provider when ``[edge] output_format`` asks for it; None: edge-tts's MP3."""
    if config.edge.output_format != WEBM_OUTPUT:
        return None
    deadlines = config.deadlines
    return EdgeWebmProvider(connect_timeout=deadlines.connect, read_timeout=deadlines.read)


class EdgeWebmProvider:
    """A :class:`core.tts.provider.TTSProvider` yielding Edge's WebM Opus bytes."""

    name = "edge"
    """The same voices as :class:`core.tts.edge.EdgeProvider` (the cache keys on it too,
    so a phrase cached as packets plays whichever way it was made)."""
    audio_format: AudioFormat = EDGE_WEBM

    def __init__(
        self, *, connect_timeout: float, read_timeout: float, output_format: str = WEBM_OUTPUT
    ) -> None:
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("connect_timeout and read_timeout must be positive")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.output_format = output_format

    async def stream(self, request: SynthesisRequest) -> AsyncGenerator[bytes, None]:
        """Yield WebM bytes for ``request`` as Edge sends them; raises :class:`TTSError`."""
        voice = request.settings.voice
        speech_config, ssml = request_frames(request, self.output_format)
        url, headers = handshake_request()
        try:
            async with aiohttp.ClientSession(trust_env=True) as session:
                async with asyncio.timeout(self.connect_timeout):
                    socket = await session.ws_connect(url, headers=headers, compress=15)
                try:
                    await socket.send_str(speech_config)
                    await socket.send_str(ssml)
                    async for data in self._audio(socket, voice):
                        yield data
                finally:
                    async with asyncio.timeout(self.connect_timeout):
                        await socket.close()
        except TTSError:
            raise
        except TimeoutError as exc:
            raise TTSError(
                ErrorKind.TIMEOUT,
                f"Edge did not answer within {self.connect_timeout:g} s",
                voice=voice,
            ) from exc
        except Exception as exc:
            raise translate_error(exc, voice) from exc

    async def _audio(
        self, socket: aiohttp.ClientWebSocketResponse, voice: str
    ) -> AsyncGenerator[bytes, None]:
        audio = 0
        while True:
            try:
                async with asyncio.timeout(self.read_timeout):
                    message = await socket.receive()
            except TimeoutError as exc:
                raise TTSError(
                    ErrorKind.TIMEOUT, f"Edge sent nothing for {self.read_timeout:g} s", voice=voice
                ) from exc
            if message.type is aiohttp.WSMsgType.TEXT:
                path = _headers(message.data.encode("utf-8").partition(b"\r\n\r\n")[0]).get(b"Path")
                if path == b"turn.end":
                    if not audio:
                        raise TTSError(ErrorKind.NO_AUDIO, "Edge sent no audio", voice=voice)
                    return
                if path not in (b"turn.start", b"response", b"audio.metadata"):
                    raise TTSError(ErrorKind.PROTOCOL, f"unknown path {path!r}", voice=voice)
            elif message.type is aiohttp.WSMsgType.BINARY:
                data = _audio_data(message.data, voice)
                if data:
                    audio += len(data)
                    yield data
            else:
                raise TTSError(
                    ErrorKind.NO_AUDIO if not audio else ErrorKind.PROTOCOL,
                    f"the socket ended ({message.type.name}) before turn.end",
                    voice=voice,
                )


def _headers(block: bytes) -> dict[bytes, bytes]:
    return dict(
        tuple(line.split(b":", 1))  # type: ignore[misc]
        for line in block.split(b"\r\n")
        if b":" in line
    )


def _audio_data(frame: bytes, voice: str) -> bytes:
    """The audio of a binary frame: 2-byte header length, headers, data."""
    if len(frame) < 2 or int.from_bytes(frame[:2], "big") > len(frame) - 2:
        raise TTSError(ErrorKind.PROTOCOL, "malformed binary frame", voice=voice)
    length = int.from_bytes(frame[:2], "big")
    headers = _headers(frame[2 : 2 + length])
    data = frame[2 + length :]
    if headers.get(b"Path") != b"audio":
        raise TTSError(ErrorKind.PROTOCOL, "binary frame that is not audio", voice=voice)
    content_type = headers.get(b"Content-Type")
    if content_type is None:
        if data:
            raise TTSError(ErrorKind.PROTOCOL, "audio without a Content-Type", voice=voice)
        return b""
    if not content_type.startswith(b"audio/webm"):
        raise TTSError(
            ErrorKind.PROTOCOL,
            f"asked for WebM, got {content_type.decode(errors='replace')}",
            voice=voice,
        )
    return data

"""Microsoft Edge voices through edge-tts 7.3.1.

The only module that imports ``edge_tts``: it owns the client's quirks (reads no
deadline of its own, reports a cut stream as success) and maps every exception
the client or the aiohttp it uses can raise to a :class:`TTSError` in
:func:`translate_error`. It also fetches Edge's voice list
(:func:`fetch_voice_list`) for :mod:`core.voices.refresh`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncGenerator
from typing import Any, Final
from xml.sax.saxutils import escape as xml_escape

import aiohttp
import edge_tts
from edge_tts import communicate as edge_communicate
from edge_tts import voices as edge_voices
from edge_tts.constants import SEC_MS_GEC_VERSION, WSS_HEADERS
from edge_tts.data_classes import TTSConfig
from edge_tts.drm import DRM
from edge_tts.exceptions import (
    NoAudioReceived,
    SkewAdjustmentError,
    UnexpectedResponse,
    UnknownResponse,
    WebSocketError,
)
from edge_tts.typing import CommunicateState, TTSChunk

from edge_voice.core.tts import prosody
from edge_voice.core.tts.errors import ErrorKind, InvalidText, InvalidVoiceSettings, TTSError
from edge_voice.core.tts.provider import EDGE_MP3, AudioFormat, SynthesisRequest, VoiceSettings

_BOUNDARY: Final = "SentenceBoundary"


def edge_tts_version() -> str:
    """The installed edge-tts version string (e.g. ``"7.3.1"``)."""
    return str(edge_tts.__version__)


def handshake_request() -> tuple[str, dict[str, str]]:
    """The URL and headers edge-tts would open its WebSocket with right now.

    Built the way ``Communicate`` builds them, reading ``edge_tts.communicate.WSS_URL``
    at call time (so a test that points the client at a fake server is honoured),
    with a fresh ConnectionId, a Sec-MS-GEC token that includes the current clock-skew
    correction, and a fresh MUID cookie. edge-tts connects with ``compress=15``.
    """
    # communicate.py copied WSS_URL at import and reads its own copy; so must we.
    base_url = str(vars(edge_communicate)["WSS_URL"])
    url = (
        f"{base_url}&ConnectionId={edge_communicate.connect_id()}"
        f"&Sec-MS-GEC={DRM.generate_sec_ms_gec()}"
        f"&Sec-MS-GEC-Version={SEC_MS_GEC_VERSION}"
    )
    return url, DRM.headers_with_muid(WSS_HEADERS)


MAX_SSML_TEXT_BYTES: Final = 4096
"""The most escaped UTF-8 text edge-tts sends in one request (it splits longer text)."""


def request_frames(request: SynthesisRequest, output_format: str) -> tuple[str, str]:
    """The two TEXT frames edge-tts sends for ``request`` (``speech.config``, ``ssml``),
    asking for ``output_format`` instead of its hard-coded MP3.

    For a request path of our own (:mod:`core.tts.edge_webm`): the same voice name
    expansion, escaping and prosody as edge-tts. Text over one request's limit raises
    :class:`InvalidText` (edge-tts would split it over several connections).
    """
    settings = request.settings
    validate_settings(settings)
    config = TTSConfig(settings.voice, settings.rate, settings.volume, settings.pitch, _BOUNDARY)
    text = edge_communicate.remove_incompatible_characters(request.text)
    escaped = xml_escape(text).encode("utf-8").strip()
    if not escaped:
        raise InvalidText("nothing to speak")
    if len(escaped) > MAX_SSML_TEXT_BYTES:
        raise InvalidText(f"text over {MAX_SSML_TEXT_BYTES} bytes for one request")
    speech_config = (
        f"X-Timestamp:{edge_communicate.date_to_string()}\r\n"
        "Content-Type:application/json; charset=utf-8\r\n"
        "Path:speech.config\r\n\r\n"
        '{"context":{"synthesis":{"audio":{"metadataoptions":{'
        '"sentenceBoundaryEnabled":"true","wordBoundaryEnabled":"false"},'
        f'"outputFormat":"{output_format}"'
        "}}}}\r\n"
    )
    ssml = edge_communicate.ssml_headers_plus_data(
        edge_communicate.connect_id(),
        edge_communicate.date_to_string(),
        edge_communicate.mkssml(config, escaped),
    )
    return speech_config, ssml


def validate_settings(settings: VoiceSettings) -> None:
    """Raise :class:`InvalidVoiceSettings` if edge-tts would refuse ``settings``.

    Checks the voice name form and the rate, volume and pitch strings exactly as
    edge-tts does before any request, and holds the prosody to its documented range
    (:mod:`core.tts.prosody`: Edge would clamp ``+500%`` silently); whether the voice
    exists is not checked.
    """
    try:
        TTSConfig(settings.voice, settings.rate, settings.volume, settings.pitch, _BOUNDARY)
    except (ValueError, TypeError) as exc:
        raise InvalidVoiceSettings(f"{settings.voice}: {exc}") from exc
    for spec, value in (
        (prosody.RATE, settings.rate),
        (prosody.VOLUME, settings.volume),
        (prosody.PITCH, settings.pitch),
    ):
        try:
            prosody.normalize(spec, value)
        except prosody.ProsodyError as exc:
            raise InvalidVoiceSettings(f"{settings.voice}: {exc}") from exc


def voice_list_url() -> str:
    """The URL edge-tts fetches the voice list from, as it reads it at call time.

    ``edge_tts.voices`` copied ``VOICE_LIST`` from ``edge_tts.constants`` at import and
    reads its own copy, so that is the one a test patches (and the one reported here).
    """
    return str(vars(edge_voices)["VOICE_LIST"])


async def fetch_voice_list(*, deadline: float) -> list[dict[str, Any]]:
    """Edge's voice list (the decoded JSON array), within ``deadline`` seconds in all.

    edge-tts's ``list_voices`` has no deadline of its own (and repeats the request once
    after a 403, adjusting its clock skew), so the whole call is bounded here. Raises
    :class:`TTSError`: TIMEOUT, NETWORK, REJECTED/UNAVAILABLE/... by HTTP status, and
    PROTOCOL for an answer that is not a JSON list of objects.
    """
    if deadline <= 0:
        raise ValueError("deadline must be positive")
    timer = asyncio.timeout(deadline)
    try:
        async with timer:
            data: object = await edge_tts.list_voices()
    except Exception as exc:
        if isinstance(exc, TimeoutError) and timer.expired():
            raise TTSError(
                ErrorKind.TIMEOUT, f"Edge's voice list did not arrive within {deadline:g} s"
            ) from exc
        if not isinstance(exc, aiohttp.ClientError | OSError) and isinstance(
            exc, ValueError | TypeError | KeyError | AttributeError
        ):
            # edge-tts decodes the body with json.loads and then indexes every entry.
            raise TTSError(
                ErrorKind.PROTOCOL, f"Edge's voice list is malformed: {type(exc).__name__}: {exc}"
            ) from exc
        raise translate_error(exc, None) from exc
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise TTSError(ErrorKind.PROTOCOL, "Edge's voice list is not a list of voices")
    return data


def translate_error(exc: BaseException, voice: str | None) -> TTSError:
    """Classify any exception raised while talking to Edge as a :class:`TTSError`.

    ``voice`` is the voice the failing attempt used. ``asyncio.CancelledError`` must
    never be passed here: cancellation is not a failure of the service.
    """
    if isinstance(exc, TTSError):
        return exc
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, NoAudioReceived):
        return TTSError(ErrorKind.NO_AUDIO, detail, voice=voice)
    if isinstance(exc, SkewAdjustmentError):
        return TTSError(ErrorKind.REJECTED, detail, voice=voice)
    if isinstance(exc, UnexpectedResponse | UnknownResponse | WebSocketError):
        return TTSError(ErrorKind.PROTOCOL, detail, voice=voice)
    if isinstance(exc, aiohttp.ClientResponseError):
        # str(exc) repeats the URL with its token; the status says what happened.
        refused = f"{type(exc).__name__}: HTTP {exc.status} {exc.message}"
        return TTSError(_kind_for_status(exc.status), refused, voice=voice, status=exc.status)
    # aiohttp's ServerTimeoutError is also an OSError and a ClientError: test timeouts first.
    if isinstance(exc, TimeoutError):
        return TTSError(ErrorKind.TIMEOUT, detail, voice=voice)
    if isinstance(exc, OSError | aiohttp.ClientError):
        return TTSError(ErrorKind.NETWORK, detail, voice=voice)
    # edge-tts parses frames with bare split/dict/json calls; their errors mean a bad frame.
    if isinstance(exc, ValueError | KeyError | json.JSONDecodeError | IndexError | TypeError):
        return TTSError(ErrorKind.PROTOCOL, f"malformed frame: {detail}", voice=voice)
    return TTSError(ErrorKind.PROTOCOL, f"unexpected error: {detail}", voice=voice)


def _kind_for_status(status: int) -> ErrorKind:
    if status in (401, 403):
        return ErrorKind.REJECTED
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if 500 <= status <= 599:
        return ErrorKind.UNAVAILABLE
    return ErrorKind.PROTOCOL


class EdgeProvider:
    """:class:`core.tts.provider.TTSProvider` for Edge voices, one request per stream.

    ``connect_timeout`` bounds the TCP connect plus WebSocket handshake;
    ``read_timeout`` is the longest silence allowed between two frames once the
    socket is open. A wait that may include a new handshake (the first frame, and
    the frame after a boundary event, where edge-tts may open the next text chunk's
    socket) gets both. The total deadline is the caller's: cancel the consuming task
    (or ``aclose()`` the stream) and the socket is released.
    """

    name = "edge"
    audio_format: AudioFormat = EDGE_MP3

    def __init__(self, *, connect_timeout: float, read_timeout: float) -> None:
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("connect_timeout and read_timeout must be positive")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    async def stream(self, request: SynthesisRequest) -> AsyncGenerator[bytes, None]:
        """Yield the MP3 bytes for ``request`` as Edge sends them.

        Raises :class:`TTSError` (``InvalidVoiceSettings`` / ``InvalidText`` for input
        edge-tts refuses or that leaves nothing to speak); a stream that ends normally
        delivered the whole utterance.
        """
        voice = request.settings.voice
        communicate = self._communicate(request)
        events = communicate.stream()
        audio_bytes = 0
        may_handshake = True
        try:
            while True:
                budget = self.read_timeout + (self.connect_timeout if may_handshake else 0.0)
                event = await _next_event(events, budget, voice)
                if event is None:
                    break
                if event["type"] == "audio":
                    data = event["data"]
                    audio_bytes += len(data)
                    may_handshake = False
                    yield data
                else:
                    may_handshake = True
        finally:
            await self._release(events)
        _check_complete(communicate.state, audio_bytes, voice)

    def _communicate(self, request: SynthesisRequest) -> edge_tts.Communicate:
        settings = request.settings
        validate_settings(settings)
        # edge-tts wants whole seconds; its own timeouts are only a backstop for ours.
        backstop = max(1, math.ceil(self.connect_timeout))
        try:
            communicate = edge_tts.Communicate(
                request.text,
                settings.voice,
                rate=settings.rate,
                volume=settings.volume,
                pitch=settings.pitch,
                boundary=_BOUNDARY,
                connect_timeout=backstop,
                receive_timeout=backstop,
            )
        except (ValueError, TypeError) as exc:
            raise InvalidVoiceSettings(f"{settings.voice}: {exc}") from exc
        return communicate

    async def _release(self, events: AsyncGenerator[TTSChunk, None]) -> None:
        # Closing a suspended edge-tts generator closes its WebSocket, which waits for
        # the peer's close frame; bound that wait. Errors while letting go of a socket
        # we no longer read from change nothing for the caller.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.connect_timeout):
                await events.aclose()


async def _next_event(
    events: AsyncGenerator[TTSChunk, None], budget: float, voice: str
) -> TTSChunk | None:
    """The next edge-tts event within ``budget`` seconds, or None at the end."""
    timer = asyncio.timeout(budget)
    try:
        async with timer:
            return await anext(events)
    except StopAsyncIteration:
        return None
    except Exception as exc:
        if isinstance(exc, TimeoutError) and timer.expired():
            raise TTSError(
                ErrorKind.TIMEOUT, f"Edge sent nothing for {budget:.2f} s", voice=voice
            ) from exc
        raise translate_error(exc, voice) from exc


def _check_complete(state: CommunicateState, audio_bytes: int, voice: str) -> None:
    """Reject a stream whose socket closed before ``turn.end``.

    edge-tts counts a chunk's bytes in ``chunk_audio_bytes`` and moves them to
    ``cumulative_audio_bytes`` only on ``turn.end``; it zeroes the chunk count when
    the next text chunk starts, so comparing the cumulative count with what was
    yielded also catches a cut in an earlier chunk.
    """
    if audio_bytes == 0:
        # edge-tts made no request at all: nothing was left after its cleanup.
        raise InvalidText("nothing to speak after edge-tts dropped blank text")
    confirmed = state["cumulative_audio_bytes"]
    if state["chunk_audio_bytes"] != 0 or confirmed != audio_bytes:
        raise TTSError(
            ErrorKind.PROTOCOL,
            f"stream truncated: socket closed before turn.end "
            f"({audio_bytes - confirmed} of {audio_bytes} bytes unconfirmed)",
            voice=voice,
        )

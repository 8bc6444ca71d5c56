"""Speaking one message: cache, service, offline voice, and the first packet before playback.

:class:`Playback` turns one utterance into audio on the guild's voice connection, or
says why it could not: the player then posts it as text. The *first* Opus packet is
pulled before playback starts, so an OPEN breaker or a failed synthesis never starts a
silent playback. Once playing, packets stream into a :class:`~core.packet_buffer.PacketBuffer`
that discord.py's player thread reads.

While Edge cannot speak, a cached phrase (any voice of the chain whose own breaker
admits nothing) or the offline voice speaks instead, with one notice per outage and one
when Edge's voice is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from edge_voice.core.admission import Refusal, StreamAdmission, StreamKind
from edge_voice.core.audio import WEBM_OPUS, Converter, opus_packets
from edge_voice.core.breaker import CircuitOpenError
from edge_voice.core.cache import AudioCache, CacheKey, PacketRecorder
from edge_voice.core.config import PlayerConfig
from edge_voice.core.packet_buffer import PacketBuffer, pump
from edge_voice.core.speech import (
    FailureReason,
    OutageNotice,
    SpeechOutcome,
    SpeechResult,
    TextPostReason,
    Utterance,
    text_post_for,
)
from edge_voice.core.tasks import cancel_and_wait
from edge_voice.core.tts.errors import ErrorKind, TTSError
from edge_voice.core.tts.outcomes import SynthesisReport
from edge_voice.core.tts.provider import SynthesisRequest, TTSProvider, VoiceSettings
from edge_voice.core.tts.service import TTSService

if TYPE_CHECKING:
    from edge_voice.core.player import TextOutput

log = logging.getLogger(__name__)

OUTAGE_NOTICE = "🔇 Voice is unavailable right now; showing messages as text until it recovers."
OFFLINE_VOICE_NOTICE = (
    "🔇 The usual voice is unavailable right now; "
    "a simpler offline voice stands in until it is back."
)
RECOVERY_NOTICE = "🔊 Voice is back."
OFFLINE_VOICE_REASON = "offline voice"
STALL_MARGIN = 2.0
"""Seconds the packet buffer waits beyond the service's stall limit before it gives up on
its own: the service's own stall error (which counts against Edge) arrives first."""


class PlaybackError(Exception):
    """The voice connection reported an error while playing (or was lost)."""


class VoiceConnectionLost(PlaybackError):
    """The voice connection stopped carrying audio: the utterance did not reach the
    listeners. Whoever watches the connection tells the guild, not the player."""


class VoiceOutput(Protocol):
    """The voice connection, as the player needs it."""

    def is_connected(self) -> bool:
        """Whether audio sent now would reach the channel."""
        ...

    async def play(self, buffer: PacketBuffer) -> None:
        """Play Opus packets from ``buffer`` until it ends; raise :class:`PlaybackError`
        (or the error the buffer delivered) if playback failed."""
        ...

    def stop(self) -> None:
        """Stop the current playback (it then ends normally)."""
        ...


@dataclass(frozen=True, slots=True)
class OfflineVoice:
    """A speech engine that needs no network, speaking while the service cannot."""

    provider: TTSProvider
    also_post_text: bool = False
    """Post the message as text as well (``on_open = "offline_voice_and_text"``)."""


@dataclass(frozen=True, slots=True)
class Heard:
    """What one attempt to speak a message came to.

    Either ``result`` is final (spoken, or failed as unspeakable), or
    ``text_post_reason`` says why it must be posted as text instead.
    """

    result: SpeechResult | None = None
    text_post_reason: TextPostReason | None = None
    detail: str = ""


class _End(Enum):
    FINISHED = "finished"
    STOPPED = "stopped"
    """Stopped from outside (/skip, or shutdown)."""


class Playback:
    """Speaks utterances on one voice connection; see the module docstring."""

    def __init__(
        self,
        service: TTSService,
        voice: VoiceOutput,
        text: TextOutput,
        settings: PlayerConfig,
        *,
        cache: AudioCache | None = None,
        offline_voice: OfflineVoice | None = None,
        admission: StreamAdmission | None = None,
        converter: Converter | None = None,
    ) -> None:
        self.service = service
        self.voice = voice
        self.text = text
        self.settings = settings
        self.cache = cache
        self.offline_voice = offline_voice
        self.admission = admission
        self.converter = converter
        self._notice = OutageNotice()
        self._stopped = False
        self._cut_for_shutdown = False

    def stop(self) -> None:
        """Stop what is playing (``/skip``): it counts as spoken, and is not cached."""
        self._stopped = True
        self.voice.stop()

    def cut_for_shutdown(self) -> None:
        """Stop what is playing because the bot is shutting down: it is posted as text."""
        self._cut_for_shutdown = True
        self.stop()

    async def speak(self, utterance: Utterance, settings: VoiceSettings | None) -> Heard:
        """Speak ``utterance`` with ``settings`` (default: the service's)."""
        self._stopped = False
        try:
            request = self.service.prepare(utterance.spoken_text, settings)
        except TTSError as exc:
            if exc.kind is not ErrorKind.INPUT:
                raise
            return Heard(SpeechResult.failed(FailureReason.UNSPEAKABLE, exc.message))
        cached = await self._cached(request)
        passes_through = self.service.provider.audio_format.codec == WEBM_OPUS
        kind = StreamKind.REPLAY if cached is not None or passes_through else StreamKind.TRANSCODE
        admission = self.admission
        ticket = None if admission is None else admission.admit(kind)
        if isinstance(ticket, Refusal):
            return Heard(text_post_reason=TextPostReason.AT_CAPACITY, detail=ticket.reason)
        try:
            if cached is None:
                return await self._speak_with_service(utterance, request)
            try:
                end = await self._play(_replay(cached))
            except PlaybackError as exc:
                return await self._cut_off(exc)
            return self._ended(end, "cached")
        finally:
            if admission is not None and ticket is not None:
                admission.release(ticket)

    async def _speak_with_service(self, utterance: Utterance, request: SynthesisRequest) -> Heard:
        report = SynthesisReport()
        chunks = self.service.stream(
            request.text, request.settings, report=report, stall_limit=self.settings.stall_limit
        )
        packets = opus_packets(
            chunks,
            self.service.provider.audio_format,
            bitrate=self.settings.bitrate,
            complexity=self.settings.opus_complexity,
            converter=self.converter,
        )
        recorder = None if self.cache is None else PacketRecorder(self.cache.max_bytes)
        if recorder is not None:
            packets = recorder.tee(packets)
        try:
            end = await self._play(packets)
        except CircuitOpenError as exc:
            return await self._outage(utterance, request, TextPostReason.VOICE_UNAVAILABLE, exc)
        except TTSError as exc:
            return await self._outage(utterance, request, TextPostReason.SYNTHESIS_FAILED, exc)
        except PlaybackError as exc:
            return await self._cut_off(exc)
        heard = self._ended(end, "")
        if heard.result is not None and end is _End.FINISHED:
            if self._notice.on_spoken():
                await self.text.post(RECOVERY_NOTICE)
            await self._remember(recorder, report)
        return heard

    def _ended(self, end: _End, reason: str) -> Heard:
        if end is _End.STOPPED and self._cut_for_shutdown:
            return Heard(text_post_reason=TextPostReason.CUT_OFF, detail="cut for shutdown")
        detail = "skipped" if end is _End.STOPPED else ""
        return Heard(SpeechResult(SpeechOutcome.SPOKEN, reason, detail))

    async def _cut_off(self, cause: BaseException) -> Heard:
        """Playback broke after it started: the listeners heard only the beginning."""
        if self._cut_for_shutdown:
            return Heard(text_post_reason=TextPostReason.CUT_OFF, detail="cut for shutdown")
        if isinstance(cause, VoiceConnectionLost):
            # Not Edge's outage: the voice link's supervisor gives the one notice.
            return Heard(text_post_reason=TextPostReason.CUT_OFF, detail=str(cause))
        if self._notice.on_fallback():
            await self.text.post(OUTAGE_NOTICE)
        return Heard(text_post_reason=TextPostReason.CUT_OFF, detail=str(cause))

    async def _play(self, packets: AsyncGenerator[bytes, None]) -> _End:
        """Play ``packets``. Errors before the first packet propagate as they are (nothing
        was heard); any later one, the synthesis's included, as :class:`PlaybackError`."""
        async with contextlib.aclosing(packets):
            try:
                first = await anext(packets)
            except StopAsyncIteration:
                raise TTSError(ErrorKind.NO_AUDIO, "the synthesis produced no audio") from None
            buffer = PacketBuffer(stall_limit=self.settings.stall_limit + STALL_MARGIN)
            buffer.put(first)
            feeder = asyncio.create_task(pump(packets, buffer), name="guild-player-pump")
            try:
                await self.voice.play(buffer)
            except TTSError as exc:
                raise PlaybackError(str(exc)) from exc
            finally:
                buffer.close()
                await cancel_and_wait(feeder)
        if buffer.stalled_out:
            raise PlaybackError(f"no audio for {buffer.stall_limit:g}s")
        return _End.STOPPED if self._stopped else _End.FINISHED

    # -- outages: the offline voice, the cache ------------------------------

    async def _outage(
        self,
        utterance: Utterance,
        request: SynthesisRequest,
        reason: TextPostReason,
        cause: BaseException,
    ) -> Heard:
        offline_voice = self.offline_voice
        if offline_voice is None:
            if self._notice.on_fallback():
                await self.text.post(OUTAGE_NOTICE)
            return Heard(text_post_reason=reason, detail=str(cause))
        if self._notice.on_fallback():
            await self.text.post(OFFLINE_VOICE_NOTICE)
        offline = opus_packets(
            offline_voice.provider.stream(request),
            offline_voice.provider.audio_format,
            bitrate=self.settings.bitrate,
            complexity=self.settings.opus_complexity,
            converter=self.converter,
        )
        try:
            end = await self._play(offline)
        except TTSError as exc:
            log.warning("the offline voice failed too: %s", exc)
            return Heard(text_post_reason=reason, detail=f"{cause}; offline voice: {exc}")
        except PlaybackError as exc:
            return await self._cut_off(exc)
        heard = self._ended(end, OFFLINE_VOICE_REASON)
        if heard.result is not None:
            heard = Heard(SpeechResult(SpeechOutcome.SPOKEN, OFFLINE_VOICE_REASON, str(cause)))
            if offline_voice.also_post_text:
                await self.text.post(text_post_for(utterance))
        return heard

    async def _cached(self, request: SynthesisRequest) -> list[bytes] | None:
        if self.cache is None:
            return None
        provider = self.service.provider.name
        for voice in self.service.cache_lookup_voices(request.settings):
            key = CacheKey.from_request(provider, request.with_voice(voice))
            packets = await self.cache.aget(key)
            if packets:
                return packets
        return None

    async def _remember(self, recorder: PacketRecorder | None, report: SynthesisReport) -> None:
        if self.cache is None or recorder is None or report.request is None or self._stopped:
            return
        packets = recorder.cacheable_packets()
        if packets:
            # Stored under the voice that spoke; found again through cache_lookup_voices.
            key = CacheKey.from_request(self.service.provider.name, report.request)
            await self.cache.aput(key, packets)


async def _replay(packets: list[bytes]) -> AsyncGenerator[bytes, None]:
    for packet in packets:
        yield packet

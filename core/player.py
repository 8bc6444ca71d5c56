"""One guild's speech queue: speak in order, or post as text, never drop.

A :class:`GuildPlayer` owns a bounded FIFO and one worker task. For each
message it asks the :class:`~core.tts.service.TTSService` for audio, turns it
into Opus packets, and pulls the *first* packet before it starts playback: so
an OPEN breaker or a failed synthesis becomes a text post without a silent
playback ever starting. Once playing, packets stream into a
:class:`~core.packet_buffer.PacketBuffer` that the voice connection reads from.

Discord stays outside: the cog supplies a :class:`VoiceOutput` (the voice
connection) and a :class:`TextOutput` (the bound text channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

from edge_voice.core.audio import opus_packets
from edge_voice.core.breaker import CircuitOpenError
from edge_voice.core.cache import AudioCache, CacheKey, PacketRecorder
from edge_voice.core.clock import Clock, monotonic
from edge_voice.core.config import PlayerConfig
from edge_voice.core.packet_buffer import PacketBuffer, pump
from edge_voice.core.speech import (
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

log = logging.getLogger(__name__)

OUTAGE_NOTICE = "🔇 Voice is unavailable right now; showing messages as text until it recovers."
OFFLINE_VOICE_NOTICE = (
    "🔇 The usual voice is unavailable right now; "
    "a simpler offline voice stands in until it is back."
)
RECOVERY_NOTICE = "🔊 Voice is back."
OFFLINE_VOICE_REASON = "offline voice"


class PlaybackError(Exception):
    """The voice connection reported an error while playing (or was lost)."""


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


class TextOutput(Protocol):
    """The bound text channel. Implementations must post without pinging anyone."""

    async def post(self, text: str) -> None:
        """Post ``text``; failures are the implementation's to log, never to raise."""
        ...


@dataclass(frozen=True, slots=True)
class OfflineVoice:
    """A speech engine that needs no network, speaking while the service cannot."""

    provider: TTSProvider
    also_post_text: bool = False
    """Post the message as text as well (``on_open = "offline_voice_and_text"``)."""


@dataclass
class _Job:
    utterance: Utterance
    settings: VoiceSettings | None
    result: asyncio.Future[SpeechResult]


class GuildPlayer:
    """Speaks one guild's messages in order; see the module docstring."""

    def __init__(
        self,
        service: TTSService,
        voice: VoiceOutput,
        text: TextOutput,
        settings: PlayerConfig | None = None,
        *,
        cache: AudioCache | None = None,
        offline_voice: OfflineVoice | None = None,
        clock: Clock = monotonic,
    ) -> None:
        self.service = service
        self.cache = cache
        self.offline_voice = offline_voice
        self.voice = voice
        self.text = text
        self.settings = settings or PlayerConfig()
        self._clock = clock
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(self.settings.queue_size)
        self._notice = OutageNotice()
        self._worker: asyncio.Task[None] | None = None
        self._current: _Job | None = None
        self._closed = False
        self._side_tasks: set[asyncio.Task[SpeechResult]] = set()
        self.last_activity = clock()

    @property
    def pending(self) -> int:
        """Messages waiting, not counting the one being spoken."""
        return self._queue.qsize()

    @property
    def speaking(self) -> bool:
        """Whether a message is being handled right now."""
        return self._current is not None

    def submit(
        self, utterance: Utterance, settings: VoiceSettings | None = None
    ) -> asyncio.Future[SpeechResult]:
        """Queue ``utterance``; the future resolves once it was spoken or posted."""
        loop = asyncio.get_running_loop()
        job = _Job(utterance, settings, loop.create_future())
        self.last_activity = self._clock()
        if self._closed:
            self._spawn_fallback(job, TextPostReason.SHUTTING_DOWN)
        else:
            try:
                self._queue.put_nowait(job)
            except asyncio.QueueFull:
                self._spawn_fallback(job, TextPostReason.QUEUE_FULL)
            else:
                self._ensure_worker()
        return job.result

    async def speak(
        self, utterance: Utterance, settings: VoiceSettings | None = None
    ) -> SpeechResult:
        """Queue ``utterance`` and wait for what became of it."""
        return await self.submit(utterance, settings)

    def skip(self) -> bool:
        """Stop the message being spoken; True if there was one."""
        if self._current is None:
            return False
        self.voice.stop()
        return True

    async def close(self) -> None:
        """Stop the worker; every message still queued is posted as text."""
        self._closed = True
        if self._current is not None:
            self.voice.stop()
        if self._worker is not None:
            await cancel_and_wait(self._worker)
            self._worker = None
        while not self._queue.empty():
            await self._fallback(self._queue.get_nowait(), TextPostReason.SHUTTING_DOWN)

    # -- worker ------------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="guild-player")

    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            self._current = job
            try:
                result = await self._handle(job)
            except asyncio.CancelledError:
                await asyncio.shield(self._fallback(job, TextPostReason.SHUTTING_DOWN))
                raise
            except Exception as exc:  # a bug must not kill the guild's queue
                log.exception("player failed on a message")
                result = await self._fallback(job, TextPostReason.SYNTHESIS_FAILED, repr(exc))
            finally:
                self._current = None
                self.last_activity = self._clock()
            if not job.result.done():
                job.result.set_result(result)

    async def _handle(self, job: _Job) -> SpeechResult:
        waited = self._clock() - job.utterance.requested_at
        if waited > self.settings.max_wait:
            return await self._fallback(
                job, TextPostReason.WAITED_TOO_LONG, f"waited {waited:.0f}s"
            )
        if not self.voice.is_connected():
            return await self._fallback(job, TextPostReason.NOT_CONNECTED)
        try:
            request = self.service.prepare(job.utterance.spoken_text, job.settings)
        except TTSError as exc:
            if exc.kind is ErrorKind.INPUT:
                return SpeechResult(SpeechOutcome.REJECTED, "unspeakable", exc.message)
            raise
        cached = await self._cached(request)
        if cached:
            result = await self._play(job, _replay(cached))
            return SpeechResult(result.outcome, result.reason or "cached", result.detail)
        return await self._speak_with_service(job, request)

    async def _speak_with_service(self, job: _Job, request: SynthesisRequest) -> SpeechResult:
        report = SynthesisReport()
        chunks = self.service.stream(request.text, request.settings, report=report)
        packets = opus_packets(
            chunks, self.service.provider.audio_format, bitrate=self.settings.bitrate
        )
        recorder = None if self.cache is None else PacketRecorder(self.cache.max_bytes)
        if recorder is not None:
            packets = recorder.tee(packets)
        try:
            result = await self._play(job, packets)
        except CircuitOpenError as exc:
            return await self._outage(job, request, TextPostReason.VOICE_UNAVAILABLE, exc)
        except TTSError as exc:
            return await self._outage(job, request, TextPostReason.SYNTHESIS_FAILED, exc)
        if result.spoken:
            if self._notice.on_spoken():
                await self.text.post(RECOVERY_NOTICE)
            await self._remember(recorder, report)
        return result

    async def _play(self, job: _Job, packets: AsyncGenerator[bytes, None]) -> SpeechResult:
        """Play ``packets``; errors before the first packet propagate (nothing was heard)."""
        async with contextlib.aclosing(packets):
            try:
                first = await anext(packets)
            except StopAsyncIteration:
                return await self._fallback(job, TextPostReason.SYNTHESIS_FAILED, "no audio")
            buffer = PacketBuffer(stall_limit=self.settings.stall_limit)
            buffer.put(first)
            feeder = asyncio.create_task(pump(packets, buffer), name="guild-player-pump")
            try:
                await self.voice.play(buffer)
            except (PlaybackError, TTSError) as exc:
                return await self._service_fallback(job, TextPostReason.CUT_OFF, exc)
            finally:
                buffer.close()
                await cancel_and_wait(feeder)
        if buffer.stalled_out:
            return await self._service_fallback(job, TextPostReason.CUT_OFF, "audio stalled")
        return SpeechResult(SpeechOutcome.SPOKEN)

    # -- outages: the offline voice, the cache ------------------------------

    async def _outage(
        self, job: _Job, request: SynthesisRequest, reason: TextPostReason, cause: BaseException
    ) -> SpeechResult:
        offline_voice = self.offline_voice
        if offline_voice is None:
            return await self._service_fallback(job, reason, cause)
        if self._notice.on_fallback():
            await self.text.post(OFFLINE_VOICE_NOTICE)
        offline = opus_packets(
            offline_voice.provider.stream(request),
            offline_voice.provider.audio_format,
            bitrate=self.settings.bitrate,
        )
        try:
            result = await self._play(job, offline)
        except TTSError as exc:
            log.warning("the offline voice failed too: %s", exc)
            return await self._fallback(job, reason, f"{cause}; offline voice: {exc}")
        if not result.spoken:
            return result
        if offline_voice.also_post_text:
            await self.text.post(text_post_for(job.utterance))
        return SpeechResult(SpeechOutcome.SPOKEN, OFFLINE_VOICE_REASON, str(cause))

    async def _cached(self, request: SynthesisRequest) -> list[bytes] | None:
        if self.cache is None:
            return None
        return await self.cache.aget(CacheKey.from_request(self.service.provider.name, request))

    async def _remember(self, recorder: PacketRecorder | None, report: SynthesisReport) -> None:
        if self.cache is None or recorder is None or report.request is None:
            return
        packets = recorder.cacheable_packets()
        if packets:
            key = CacheKey.from_request(self.service.provider.name, report.request)
            await self.cache.aput(key, packets)

    # -- text fallback -------------------------------------------------------

    async def _service_fallback(
        self, job: _Job, reason: TextPostReason, cause: BaseException | str
    ) -> SpeechResult:
        if self._notice.on_fallback():
            await self.text.post(OUTAGE_NOTICE)
        return await self._fallback(job, reason, str(cause))

    async def _fallback(self, job: _Job, reason: TextPostReason, detail: str = "") -> SpeechResult:
        await self.text.post(text_post_for(job.utterance))
        result = SpeechResult(SpeechOutcome.POSTED_AS_TEXT, reason.value, detail)
        if not job.result.done():
            job.result.set_result(result)
        return result

    def _spawn_fallback(self, job: _Job, reason: TextPostReason) -> None:
        task = asyncio.create_task(self._fallback(job, reason), name="guild-player-fallback")
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)


async def _replay(packets: list[bytes]) -> AsyncGenerator[bytes, None]:
    for packet in packets:
        yield packet

"""One guild's speech queue: speak in order, or post as text, never drop.

A :class:`GuildPlayer` owns a bounded FIFO and one worker task. For each
message it asks the :class:`~core.tts.service.TTSService` for audio, turns it
into Opus packets, and pulls the *first* packet before it starts playback: so
an OPEN breaker or a failed synthesis becomes a text post without a silent
playback ever starting. Once playing, packets stream into a
:class:`~core.audio.PacketBuffer` that the voice connection reads from.

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

from core.audio import DEFAULT_BITRATE, PacketBuffer, opus_packets, pump
from core.breaker import CircuitOpenError
from core.clock import Clock, monotonic
from core.speech import (
    FallbackReason,
    OutageNotice,
    SpeechOutcome,
    SpeechResult,
    Utterance,
    fallback_text,
)
from core.tasks import cancel_and_wait
from core.tts.errors import ErrorKind, TTSError
from core.tts.provider import VoiceSettings
from core.tts.service import TTSService

log = logging.getLogger(__name__)

OUTAGE_NOTICE = "🔇 Voice is unavailable right now; showing messages as text until it recovers."
RECOVERY_NOTICE = "🔊 Voice is back."


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
class PlayerSettings:
    """Knobs of one guild's player."""

    queue_size: int = 20
    max_wait: float = 30.0
    bitrate: int = DEFAULT_BITRATE
    stall_limit: float = 10.0
    """Seconds of no new audio after which a started playback gives up."""


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
        settings: PlayerSettings | None = None,
        *,
        clock: Clock = monotonic,
    ) -> None:
        self.service = service
        self.voice = voice
        self.text = text
        self.settings = settings or PlayerSettings()
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
            self._spawn_fallback(job, FallbackReason.SHUTTING_DOWN)
        else:
            try:
                self._queue.put_nowait(job)
            except asyncio.QueueFull:
                self._spawn_fallback(job, FallbackReason.QUEUE_FULL)
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
            await self._fallback(self._queue.get_nowait(), FallbackReason.SHUTTING_DOWN)

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
                await asyncio.shield(self._fallback(job, FallbackReason.SHUTTING_DOWN))
                raise
            except Exception as exc:  # a bug must not kill the guild's queue
                log.exception("player failed on a message")
                result = await self._fallback(job, FallbackReason.SYNTHESIS_FAILED, repr(exc))
            finally:
                self._current = None
                self.last_activity = self._clock()
            if not job.result.done():
                job.result.set_result(result)

    async def _handle(self, job: _Job) -> SpeechResult:
        waited = self._clock() - job.utterance.requested_at
        if waited > self.settings.max_wait:
            return await self._fallback(
                job, FallbackReason.WAITED_TOO_LONG, f"waited {waited:.0f}s"
            )
        if not self.voice.is_connected():
            return await self._fallback(job, FallbackReason.NOT_CONNECTED)
        stream = self.service.stream(job.utterance.spoken_text, job.settings)
        packets = opus_packets(
            stream, self.service.provider.audio_format, bitrate=self.settings.bitrate
        )
        async with contextlib.aclosing(packets):
            try:
                first = await anext(packets)
            except StopAsyncIteration:
                return await self._fallback(job, FallbackReason.SYNTHESIS_FAILED, "no audio")
            except CircuitOpenError as exc:
                return await self._service_fallback(job, FallbackReason.VOICE_UNAVAILABLE, exc)
            except TTSError as exc:
                if exc.kind is ErrorKind.INPUT:
                    return SpeechResult(SpeechOutcome.REJECTED, "unspeakable", exc.message)
                return await self._service_fallback(job, FallbackReason.SYNTHESIS_FAILED, exc)
            return await self._play(job, first, packets)

    async def _play(
        self, job: _Job, first: bytes, packets: AsyncGenerator[bytes, None]
    ) -> SpeechResult:
        buffer = PacketBuffer(stall_limit=self.settings.stall_limit)
        buffer.put(first)
        feeder = asyncio.create_task(pump(packets, buffer), name="guild-player-pump")
        try:
            await self.voice.play(buffer)
        except (PlaybackError, TTSError) as exc:
            return await self._service_fallback(job, FallbackReason.CUT_OFF, exc)
        finally:
            buffer.close()
            await cancel_and_wait(feeder)
        if buffer.stalled_out:
            return await self._service_fallback(job, FallbackReason.CUT_OFF, "audio stalled")
        if self._notice.on_spoken():
            await self.text.post(RECOVERY_NOTICE)
        return SpeechResult(SpeechOutcome.SPOKEN)

    # -- text fallback -------------------------------------------------------

    async def _service_fallback(
        self, job: _Job, reason: FallbackReason, cause: BaseException | str
    ) -> SpeechResult:
        if self._notice.on_fallback():
            await self.text.post(OUTAGE_NOTICE)
        return await self._fallback(job, reason, str(cause))

    async def _fallback(self, job: _Job, reason: FallbackReason, detail: str = "") -> SpeechResult:
        await self.text.post(fallback_text(job.utterance))
        result = SpeechResult(SpeechOutcome.POSTED_AS_TEXT, reason.value, detail)
        if not job.result.done():
            job.result.set_result(result)
        return result

    def _spawn_fallback(self, job: _Job, reason: FallbackReason) -> None:
        task = asyncio.create_task(self._fallback(job, reason), name="guild-player-fallback")
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

"""One guild's speech queue: every message is spoken, posted as text, or failed with a reason.

A :class:`GuildPlayer` owns a bounded FIFO and one worker task. The worker hands each
message to :class:`~core.playback.Playback` (cache, service, offline voice, the first
packet before playback starts) and resolves the message's future with exactly what
happened. Nothing a single message does can stop the worker: every error becomes that
message's outcome, and a worker that ends anyway is restarted with the queue intact.

Shutdown (:meth:`GuildPlayer.close`) stops taking messages (later ones are posted as
text), lets the current utterance finish for a moment and then cuts it, posts whatever
is still queued as text, in order, and gives up on what the deadline leaves: those
messages end as failed, never as silently dropped.

Discord stays outside: the cog supplies a :class:`~core.playback.VoiceOutput` (the voice
connection) and a :class:`TextOutput` (the bound text channel, through
:class:`core.posting.ChannelPoster`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edge_voice.core.admission import StreamAdmission
from edge_voice.core.audio import Converter
from edge_voice.core.cache import AudioCache
from edge_voice.core.clock import Clock, monotonic
from edge_voice.core.config import PlayerConfig
from edge_voice.core.playback import (
    OFFLINE_VOICE_NOTICE,
    OFFLINE_VOICE_REASON,
    OUTAGE_NOTICE,
    RECOVERY_NOTICE,
    OfflineVoice,
    Playback,
    PlaybackError,
    VoiceConnectionLost,
    VoiceOutput,
)
from edge_voice.core.posting import PostOutcome
from edge_voice.core.speech import (
    FailureReason,
    SpeechOutcome,
    SpeechResult,
    TextPostReason,
    Utterance,
    text_post_for,
)
from edge_voice.core.tasks import cancel_and_wait
from edge_voice.core.tts.provider import VoiceSettings
from edge_voice.core.tts.service import TTSService

__all__ = [
    "OFFLINE_VOICE_NOTICE",
    "OFFLINE_VOICE_REASON",
    "OUTAGE_NOTICE",
    "RECOVERY_NOTICE",
    "GuildPlayer",
    "OfflineVoice",
    "PlaybackError",
    "TextOutput",
    "VoiceConnectionLost",
    "VoiceOutput",
]

log = logging.getLogger(__name__)

SHUTDOWN_DEADLINE = 6.0
"""Seconds :meth:`GuildPlayer.close` may take: finish or cut, then post what is queued."""
FINISH_GRACE = 2.0
"""Seconds the utterance being spoken at shutdown may go on before it is cut."""


class TextOutput(Protocol):
    """The bound text channel. Implementations post without pinging anyone."""

    async def post(self, text: str) -> PostOutcome:
        """Post ``text``; report whether it went out. Never raises."""
        ...


@dataclass(eq=False)
class _Job:
    utterance: Utterance
    settings: VoiceSettings | None
    result: asyncio.Future[SpeechResult]

    def resolve(self, result: SpeechResult) -> None:
        if not self.result.done():
            self.result.set_result(result)


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
        admission: StreamAdmission | None = None,
        converter: Converter | None = None,
        clock: Clock = monotonic,
        shutdown_deadline: float = SHUTDOWN_DEADLINE,
        finish_grace: float = FINISH_GRACE,
        name: str = "player",
        on_outcome: Callable[[SpeechResult], object] | None = None,
    ) -> None:
        self.service = service
        self.name = name
        """Names the guild in the log line each message's outcome gets."""
        self.on_outcome = on_outcome
        """Called with every message's result once it is known (the metrics count them)."""
        self.voice = voice
        self.text = text
        self.settings = settings or PlayerConfig()
        self._clock = clock
        self.shutdown_deadline = shutdown_deadline
        self.finish_grace = finish_grace
        self.playback = Playback(
            service,
            voice,
            text,
            self.settings,
            cache=cache,
            offline_voice=offline_voice,
            admission=admission,
            converter=converter,
        )
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(self.settings.queue_size)
        self._worker: asyncio.Task[None] | None = None
        self._current: _Job | None = None
        self._closed = False
        self._side_tasks: set[asyncio.Task[None]] = set()
        self.worker_restarts = 0
        self.last_activity = clock()

    @property
    def cache(self) -> AudioCache | None:
        """The audio cache the player reads and fills."""
        return self.playback.cache

    @property
    def offline_voice(self) -> OfflineVoice | None:
        """The offline voice that speaks while Edge cannot."""
        return self.playback.offline_voice

    @property
    def pending(self) -> int:
        """Messages waiting, not counting the one being handled."""
        return self._queue.qsize()

    @property
    def speaking(self) -> bool:
        """Whether a message is being handled right now."""
        return self._current is not None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` began: new messages are posted as text."""
        return self._closed

    def submit(
        self, utterance: Utterance, settings: VoiceSettings | None = None
    ) -> asyncio.Future[SpeechResult]:
        """Queue ``utterance``; the future resolves with what became of it."""
        loop = asyncio.get_running_loop()
        job = _Job(utterance, settings, loop.create_future())
        job.result.add_done_callback(self._log_outcome)
        self.last_activity = self._clock()
        if self._closed:
            self._post_aside(job, TextPostReason.SHUTTING_DOWN)
            return job.result
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._post_aside(job, TextPostReason.QUEUE_FULL)
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
        self.playback.stop()
        return True

    def clear(self) -> list[Utterance]:
        """Drop every queued message (not the one being spoken) and return them.

        Each one ends as failed ("cleared from the queue"), so whoever waits on it hears
        what happened; the caller tells the channel how many were dropped.
        """
        cleared = []
        while not self._queue.empty():
            job = self._queue.get_nowait()
            job.resolve(SpeechResult.failed(FailureReason.CLEARED))
            cleared.append(job.utterance)
        return cleared

    async def close(self) -> None:
        """Stop taking messages, finish or cut the current one, post the queued ones as text.

        Bounded by ``shutdown_deadline``; whatever it leaves unposted ends as failed
        ("no time left"). Safe to call while the calling task is itself being cancelled.
        """
        if self._closed:
            await self._wait_side_tasks()
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.shutdown_deadline
        worker = self._worker
        if worker is not None and not worker.done():
            if self._current is None and self._queue.empty():
                await cancel_and_wait(worker)  # idle: nothing to finish
            else:
                await self._drain(worker, ends)
        self._fail_leftovers()
        await self._wait_side_tasks(max(0.0, ends - loop.time()))

    async def _drain(self, worker: asyncio.Task[None], ends: float) -> None:
        loop = asyncio.get_running_loop()
        done, _ = await asyncio.wait({worker}, timeout=min(self.finish_grace, ends - loop.time()))
        if not done:
            self.playback.cut_for_shutdown()
            done, _ = await asyncio.wait({worker}, timeout=max(0.0, ends - loop.time()))
        if not done:
            log.warning("player: shutdown deadline reached; giving up on what is left")
            await cancel_and_wait(worker)

    def _fail_leftovers(self) -> None:
        left = FailureReason.NO_TIME_LEFT
        if self._current is not None:
            self._current.resolve(SpeechResult.failed(left, "shutdown cut it off"))
            self._current = None
        while not self._queue.empty():
            self._queue.get_nowait().resolve(SpeechResult.failed(left, "still queued"))

    async def _wait_side_tasks(self, within: float | None = None) -> None:
        if not self._side_tasks:
            return
        pending = set(self._side_tasks)
        _, late = await asyncio.wait(pending, timeout=within)
        for task in late:
            await cancel_and_wait(task)

    def _log_outcome(self, future: asyncio.Future[SpeechResult]) -> None:
        # One line per message, in the words /say answers with: spoken, posted as text
        # or failed, and why.
        if future.cancelled():
            return
        result = future.result()
        if self.on_outcome is not None:
            self.on_outcome(result)
        why = ": ".join(part for part in (result.reason, result.detail) if part)
        level = logging.WARNING if result.outcome is SpeechOutcome.FAILED else logging.INFO
        log.log(
            level, "%s: message %s%s", self.name, result.outcome.value, f" ({why})" if why else ""
        )

    # -- worker ------------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="guild-player")
            self._worker.add_done_callback(self._worker_ended)

    def _worker_ended(self, worker: asyncio.Task[None]) -> None:
        if worker is not self._worker or self._closed:
            return
        if worker.cancelled():
            if self._current is None and self._queue.empty():
                return  # an idle worker cancelled (the loop shutting down): nothing lost
            log.warning("player: the worker was cancelled from outside; restarting it")
        elif worker.exception() is not None:
            log.error("player: the worker died; restarting it", exc_info=worker.exception())
        job, self._current = self._current, None
        if job is not None:
            job.resolve(SpeechResult.failed(FailureReason.INTERNAL_ERROR, "the player stopped"))
        if self._queue.empty():
            return
        self.worker_restarts += 1
        try:
            self._ensure_worker()
        except RuntimeError:  # the loop is closing; close() will not run either
            self._fail_leftovers()

    async def _run(self) -> None:
        while not (self._closed and self._queue.empty()):
            job = await self._queue.get()
            # Stays set if this iteration is cut short, so whoever cleans up (close(), or
            # the done callback after a crash) can still resolve the job.
            self._current = job
            try:
                result = await self._handle(job)
            except Exception as exc:  # a bug must never take the guild's queue down
                log.exception("player: handling a message failed")
                result = await self._post_as_text(job, TextPostReason.INTERNAL_ERROR, repr(exc))
            job.resolve(result)
            self._current = None
            self.last_activity = self._clock()

    async def _handle(self, job: _Job) -> SpeechResult:
        if self._closed:
            return await self._post_as_text(job, TextPostReason.SHUTTING_DOWN)
        waited = self._clock() - job.utterance.requested_at
        if waited > self.settings.max_wait:
            return await self._post_as_text(
                job, TextPostReason.WAITED_TOO_LONG, f"waited {waited:.0f}s"
            )
        if not self.voice.is_connected():
            return await self._post_as_text(job, TextPostReason.NOT_CONNECTED)
        heard = await self.playback.speak(job.utterance, job.settings)
        if heard.result is not None:
            return heard.result
        reason = heard.text_post_reason or TextPostReason.INTERNAL_ERROR
        if self._closed and reason is TextPostReason.CUT_OFF:
            reason = TextPostReason.SHUTTING_DOWN
        return await self._post_as_text(job, reason, heard.detail)

    async def _post_as_text(
        self, job: _Job, reason: TextPostReason, detail: str = ""
    ) -> SpeechResult:
        post = text_post_for(job.utterance)
        if reason is TextPostReason.AT_CAPACITY:
            # Said in the post itself: every message refused is told, not only the first.
            post += f"\n-# not spoken: {detail}"
        posted = await self.text.post(post)
        if posted.delivered:
            return SpeechResult(SpeechOutcome.POSTED_AS_TEXT, reason.value, detail)
        why = f"{reason.value}, and posting it as text failed: {posted.reason}"
        return SpeechResult.failed(FailureReason.TEXT_POST_FAILED, why)

    def _post_aside(self, job: _Job, reason: TextPostReason) -> None:
        async def post() -> None:
            try:
                job.resolve(await self._post_as_text(job, reason))
            except asyncio.CancelledError:
                job.resolve(SpeechResult.failed(FailureReason.NO_TIME_LEFT, reason.value))
                raise

        task = asyncio.get_running_loop().create_task(post(), name="guild-player-text-post")
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

"""Canary probes: the service tests Edge itself when a cooldown ends.

Without canaries, the first listener message after a cooldown is the trial
call: if Edge is still down, that listener waits on a failing request. With
them (``probe = "canary"``), listeners keep getting the fallback while a
background task spends each trial permit on a short fixed phrase. The breaker
closes after ``success_threshold`` canary successes; a failed canary re-opens it
with the grown cooldown, exactly as a failed trial call would.

While nobody asks for speech, probing an idle outage is traffic for nothing:
after ``idle_stop_after`` seconds without a request (counted from the later of
the last request and the start of the probing) the prober stops, and the next
request starts it again.

A canary our own input check refuses (``[canary] text`` that cannot be spoken, a voice
or prosody that cannot be used: :attr:`ErrorKind.INPUT`) is a configuration error, not
Edge's failure: its permit is handed back, the operators are told once, and the prober
stands down so that listeners' calls are the trials again (a breaker no canary can test
would otherwise stay open for good). ``[canary] text`` is refused at startup already
(:func:`core.config_checks.canary_problems`); this covers what only a request shows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from edge_voice.core.breaker import CircuitBreaker, CircuitOpenError, CircuitState, TransitionEvent
from edge_voice.core.clock import Clock
from edge_voice.core.tasks import cancel_and_wait
from edge_voice.core.tts.breakers import ServiceBreakers
from edge_voice.core.tts.errors import ErrorKind, TTSError
from edge_voice.core.tts.fleet import TrialGate
from edge_voice.core.tts.policy import is_voice_scoped

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Warn = Callable[[str], Awaitable[None]]

WARN_DEADLINE = 10.0
"""Seconds the operators' warning may take to post before the prober moves on."""

TRIAL_GAP_SECONDS = 1.0
"""Pause between two canaries while HALF_OPEN, and after an inconclusive one."""


class ProbedService(Protocol):
    """What the prober uses of the :class:`~core.tts.service.TTSService` it tests (a
    protocol, so that this module and the service's need not import each other)."""

    breakers: ServiceBreakers
    service_breaker: CircuitBreaker
    voices: tuple[str, ...]
    trial_gate: TrialGate

    async def synthesize_unguarded(self, text: str = ..., *, voice: str | None = None) -> bytes:
        """One synthesis outside every breaker."""
        ...


class CanaryProber:
    """Runs canaries for every breaker of one service that is not CLOSED."""

    def __init__(
        self,
        service: ProbedService,
        *,
        phrase: str,
        idle_stop_after: float,
        clock: Clock,
        sleep: Sleep,
    ) -> None:
        self.service = service
        self.phrase = phrase
        self.idle_stop_after = idle_stop_after
        self._clock = clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self._last_activity = clock()
        self.canaries_sent = 0
        self.stopped_idle = False
        self.config_error: str | None = None
        """Why canaries cannot be spoken (set once, by the first refused canary)."""
        self.warn: Warn | None = None
        """Where the operators hear of :attr:`config_error` (the cogs connect their
        ``OperatorLog.warn``); it is logged either way."""

    @property
    def takes_trials(self) -> bool:
        """Whether listeners are kept from the trial permits: not once a canary turned
        out to be unspeakable, since then nothing else could ever close a breaker."""
        return self.config_error is None

    @property
    def running(self) -> bool:
        """Whether the background task is alive."""
        return self._task is not None and not self._task.done()

    def note_request(self) -> None:
        """A listener asked for speech: count it as traffic and resume probing."""
        self._last_activity = self._clock()
        self.stopped_idle = False
        self._ensure_running()

    def on_transition(self, event: TransitionEvent) -> None:
        """Breaker listener: a circuit that opens needs canaries."""
        if event.new is CircuitState.OPEN:
            self._ensure_running()

    def _ensure_running(self) -> None:
        if self.running or self.config_error is not None or not self._needs_probing():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._task is None or self._task.done():
            self._last_activity = max(self._last_activity, self._clock())
        self._task = loop.create_task(self._run(), name="tts-canary")

    def _needs_probing(self) -> bool:
        return any(b.state.recovering for b in self.service.breakers)

    async def close(self) -> None:
        """Stop probing."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _run(self) -> None:
        while True:
            targets = self._targets()
            if not targets:
                return
            if self._clock() - self._last_activity > self.idle_stop_after:
                self.stopped_idle = True
                log.info("canaries paused: no speech requested for %.0fs", self.idle_stop_after)
                return
            due = [b for b in targets if b.would_admit()]
            if not due:
                wait = min(b.retry_after for b in targets)
                await self._sleep(max(wait, 0.001))
                continue
            for breaker in due:
                await self._probe(breaker)
                if self.config_error is not None:
                    await self._tell_operators(self.config_error)
                    return
            await self._sleep(TRIAL_GAP_SECONDS)

    def _targets(self) -> list[CircuitBreaker]:
        service_breaker = self.service.service_breaker
        if not service_breaker.state.admits_all:
            # Voices can't be judged while the service as a whole is down (or isolated).
            return [service_breaker] if service_breaker.state.recovering else []
        return [b for b in self.service.breakers if b.state.recovering]

    def _voice_for(self, breaker: CircuitBreaker) -> str:
        """The voice a canary for ``breaker`` uses: the voice itself, or, for the
        service breaker, the first voice of the chain whose own breaker is CLOSED."""
        breakers = self.service.breakers
        voice = breakers.voice_of(breaker)
        if voice is not None:
            return voice
        for voice in self.service.voices:
            if breakers.voice(voice).state.admits_all:
                return voice
        return self.service.voices[0]

    async def _probe(self, breaker: CircuitBreaker) -> None:
        # A fleet sharing its breakers runs one canary at a time across every process.
        async with self.service.trial_gate(breaker) as granted:
            if granted:
                await self._probe_granted(breaker)

    async def _probe_granted(self, breaker: CircuitBreaker) -> None:
        voice = self._voice_for(breaker)
        try:
            permit = breaker.acquire()
        except CircuitOpenError:
            return
        self.canaries_sent += 1
        try:
            await self.service.synthesize_unguarded(self.phrase, voice=voice)
        except TTSError as error:
            if error.kind is ErrorKind.INPUT:
                # Our phrase or voice, not Edge: neither a failure nor a success.
                breaker.release(permit)
                self.config_error = f"canary {self.phrase!r} with {voice} cannot be spoken: {error}"
            elif breaker is self.service.service_breaker or is_voice_scoped(error.kind):
                breaker.record_failure(permit, f"canary: {error}")
            else:
                breaker.release(permit)
            log.info("canary for %s failed: %s", breaker.name, error)
            return
        except BaseException:
            breaker.release(permit)
            raise
        breaker.record_success(permit)

    async def _tell_operators(self, problem: str) -> None:
        text = (
            f"{problem.rstrip('.')}. Canaries are off until the bot restarts with a [canary] "
            "text and voices that can be spoken; listeners' messages are the breakers' trial "
            "calls meanwhile."
        )
        log.error("configuration error: %s", text)
        if self.warn is None:
            return
        try:
            async with asyncio.timeout(WARN_DEADLINE):
                await self.warn(text)
        except TimeoutError:
            log.warning("the operators' warning took over %gs; given up", WARN_DEADLINE)

    def __repr__(self) -> str:
        return f"<CanaryProber running={self.running} sent={self.canaries_sent}>"

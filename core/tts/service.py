"""The guarded synthesis service: breakers, retries, voice fallback, deadlines.

One request walks the voice chain: the asked-for voice, then its backup voices
(the request's own, ``VoiceSettings.backups``, when the guild's or person's choice
gave some, else the configured ones). Each voice gets up to ``attempts`` tries with
backoff, all inside one total deadline. Two layers of breakers watch it:

* the **service breaker** (one per provider) sees one call per request: success
  if any voice spoke, failure if the whole chain failed, whatever the kinds, so a
  service-wide ``NoAudioReceived`` wave opens it;
* a **voice breaker** per voice sees one call per request that reached it, and
  counts only voice-scoped failures (see :mod:`core.tts.policy`), so a voice
  Microsoft stopped serving opens only its own breaker.

Input is checked before any breaker is asked, so bad text never counts.
Cancellation and an early ``aclose()`` settle nothing: permits are handed back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from edge_voice.core.breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    Permit,
)
from edge_voice.core.breaker.events import Listener
from edge_voice.core.clock import Clock, WallClock, monotonic, wall_time
from edge_voice.core.config import Config
from edge_voice.core.text.speakable import CheckedText, check_speakable
from edge_voice.core.tts.canary import CanaryProber
from edge_voice.core.tts.edge import EdgeProvider, validate_settings
from edge_voice.core.tts.errors import ErrorKind, TTSError
from edge_voice.core.tts.fleet import OutcomeObserver, TrialGate, local_trial_gate
from edge_voice.core.tts.outcomes import Attempt, SynthesisFailed, SynthesisReport
from edge_voice.core.tts.policy import Backoff, is_retryable, is_voice_scoped
from edge_voice.core.tts.provider import SynthesisRequest, TTSProvider, VoiceSettings

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class _Held:
    """A permit that must be settled exactly once: success, failure, or release."""

    def __init__(
        self, breaker: CircuitBreaker, permit: Permit, observer: OutcomeObserver | None = None
    ) -> None:
        self.breaker = breaker
        self.permit = permit
        self.settled = False
        self.observer = observer

    def succeed(self) -> None:
        if not self.settled:
            self.settled = True
            self.breaker.record_success(self.permit)
            if self.observer is not None:
                self.observer.succeeded(self.breaker)

    def fail(self, reason: str) -> None:
        if not self.settled:
            self.settled = True
            self.breaker.record_failure(self.permit, reason)

    def release(self) -> None:
        if not self.settled:
            self.settled = True
            self.breaker.release(self.permit)


class TTSService:
    """Text in, audio chunks out, through breakers, retries and backup voices."""

    def __init__(
        self,
        provider: TTSProvider,
        *,
        voices: Sequence[str],
        prosody: VoiceSettings | None = None,
        breaker_config: CircuitBreakerConfig | None = None,
        attempts: int = 3,
        backoff: Backoff | None = None,
        total_deadline: float = 45.0,
        max_chars: int = 300,
        validate: Callable[[VoiceSettings], None] | None = None,
        clock: Clock = monotonic,
        wall_clock: WallClock = wall_time,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        canaries: bool = False,
        canary_text: str = "Test.",
        canary_idle_stop_after: float = 900.0,
    ) -> None:
        if not voices:
            raise ValueError("at least one voice is needed")
        if attempts < 1 or total_deadline <= 0 or max_chars < 1:
            raise ValueError("attempts, total_deadline and max_chars must be positive")
        self.provider = provider
        self.voices = tuple(dict.fromkeys(voices))
        template = prosody or VoiceSettings(voice=self.voices[0])
        self.default_settings = template.with_voice(self.voices[0])
        self.breaker_config = breaker_config or CircuitBreakerConfig()
        self.attempts = attempts
        self.backoff = backoff or Backoff()
        self.total_deadline = total_deadline
        self.max_chars = max_chars
        self._validate = validate
        self._clock = clock
        self._wall = wall_clock
        self._sleep = sleep
        self._jitter = jitter
        self._listeners: list[Listener] = []
        self.service_breaker = self._new_breaker(provider.name)
        self._voice_breakers: dict[str, CircuitBreaker] = {}
        for voice in self.voices:
            self.voice_breaker(voice)
        self.trial_gate: TrialGate = local_trial_gate
        """Asked before every trial call and canary (a fleet sharing breakers leases them)."""
        self.outcomes: OutcomeObserver | None = None
        """Told of every guarded outcome (a fleet sharing breakers counts failures)."""
        self.canary: CanaryProber | None = None
        if canaries:
            self.canary = CanaryProber(
                self,
                phrase=canary_text,
                idle_stop_after=canary_idle_stop_after,
                clock=clock,
                sleep=sleep,
            )
            self.add_listener(self.canary.on_transition)

    @classmethod
    def from_config(
        cls, config: Config, provider: TTSProvider | None = None, **overrides: Any
    ) -> TTSService:
        """A service built from ``config``; Edge is the provider unless one is given."""
        if provider is None:
            provider = EdgeProvider(
                connect_timeout=config.deadlines.connect, read_timeout=config.deadlines.read
            )
        speech = config.speech
        # voice_chain resolves voice = "auto" to the default chain (no guild to match).
        chain = speech.voice_chain
        options: dict[str, Any] = {
            "voices": chain,
            "prosody": VoiceSettings(chain[0], speech.rate, speech.volume, speech.pitch),
            "breaker_config": config.breaker,
            "attempts": config.retry.attempts,
            "backoff": Backoff(config.retry.backoff_base, config.retry.backoff_max),
            "total_deadline": config.deadlines.total,
            "max_chars": config.text.max_chars,
            "validate": validate_settings if provider.name == "edge" else None,
            "canaries": config.canary.enabled,
            "canary_text": config.canary.text,
            "canary_idle_stop_after": config.canary.idle_stop_after,
        }
        options.update(overrides)
        return cls(provider, **options)

    # -- breakers ----------------------------------------------------------

    def _new_breaker(self, name: str) -> CircuitBreaker:
        breaker = CircuitBreaker(
            name, self.breaker_config, self._clock, wall_clock=self._wall, jitter=self._jitter
        )
        for listener in self._listeners:
            breaker.add_listener(listener)
        return breaker

    def voice_breaker(self, voice: str) -> CircuitBreaker:
        """The breaker for ``voice``, created on first use."""
        breaker = self._voice_breakers.get(voice)
        if breaker is None:
            breaker = self._new_breaker(f"{self.provider.name}:{voice}")
            self._voice_breakers[voice] = breaker
        return breaker

    @property
    def breakers(self) -> list[CircuitBreaker]:
        """The service breaker, then every voice breaker."""
        return [self.service_breaker, *self._voice_breakers.values()]

    def add_listener(self, listener: Listener) -> None:
        """Deliver transitions of every breaker, present and future, to ``listener``."""
        self._listeners.append(listener)
        for breaker in self.breakers:
            breaker.add_listener(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop delivering transitions to ``listener``."""
        if listener in self._listeners:
            self._listeners.remove(listener)
        for breaker in self.breakers:
            breaker.remove_listener(listener)

    def reset(self, reason: str = "manual reset") -> None:
        """Close every breaker and clear its counters."""
        for breaker in self.breakers:
            breaker.reset(reason)

    def health(self) -> dict[str, Any]:
        """The service breaker's snapshot at the top level, each voice's under ``voices``."""
        health = self.service_breaker.snapshot()
        health["provider"] = self.provider.name
        canary = self.canary
        health["canary"] = {
            "enabled": canary is not None,
            "running": canary is not None and canary.running,
            "sent": 0 if canary is None else canary.canaries_sent,
            "paused_idle": canary is not None and canary.stopped_idle,
        }
        health["voices"] = {v: b.snapshot() for v, b in self._voice_breakers.items()}
        return health

    def voice_for_breaker(self, breaker: CircuitBreaker) -> str:
        """The voice a canary for ``breaker`` should use: the voice itself, or, for the
        service breaker, the first voice of the chain whose own breaker is CLOSED."""
        for voice, voice_breaker in self._voice_breakers.items():
            if voice_breaker is breaker:
                return voice
        for voice in self.voices:
            if self.voice_breaker(voice).state.admits_all:
                return voice
        return self.voices[0]

    async def close(self) -> None:
        """Stop background work (the canary prober)."""
        if self.canary is not None:
            await self.canary.close()

    # -- requests ----------------------------------------------------------

    def prepare(self, text: str, settings: VoiceSettings | None = None) -> SynthesisRequest:
        """Check input; raise ``InvalidText`` / ``InvalidVoiceSettings`` before any request.

        A :class:`CheckedText` (the text policy's output) passed the text check already;
        only its length is held against this service's limit.
        """
        if isinstance(text, CheckedText) and len(text) <= self.max_chars:
            spoken: str = text
        else:
            spoken = check_speakable(text, max_chars=self.max_chars)
        chosen = settings or self.default_settings
        if self._validate is not None:
            for voice in self.chain_for(chosen):
                self._validate(chosen.with_voice(voice))
        return SynthesisRequest(spoken, chosen)

    def chain_for(self, settings: VoiceSettings) -> tuple[str, ...]:
        """The voice chain a request with ``settings`` walks: its voice, then its own
        backup voices if it carries some, else the configured ones; each voice once."""
        backups = self.voices if settings.backups is None else settings.backups
        return tuple(dict.fromkeys((settings.voice, *backups)))

    def cache_lookup_voices(self, settings: VoiceSettings) -> tuple[str, ...]:
        """The voices whose cached audio may stand in for ``settings.voice`` right now.

        The voice itself, and, while it (or the whole service) cannot be used, its
        backup voices, which speak in its place then: a phrase a backup voice spoke
        during an outage is found again during the same outage.
        """
        voice = settings.voice
        if self.service_breaker.state is CircuitState.CLOSED and (
            self.voice_breaker(voice).state is CircuitState.CLOSED
        ):
            return (voice,)
        return self.chain_for(settings)

    async def stream(
        self,
        text: str,
        settings: VoiceSettings | None = None,
        *,
        report: SynthesisReport | None = None,
        stall_limit: float | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """Yield audio chunks for ``text`` as the provider delivers them.

        Raises ``InvalidText``/``InvalidVoiceSettings`` for bad input,
        :class:`CircuitOpenError` when the service breaker rejects the request or
        every voice's breaker is open, and :class:`SynthesisFailed` when the chain
        failed. Once audio has been yielded a later failure is not retried (the
        listener has already heard the start); it is raised and counted.

        ``stall_limit`` bounds the wait for each chunk after the first: a stream that
        stalls that long while someone is listening fails as ``timeout``, and counts
        against the service like any other failure (the provider's read deadline is
        for the handshake and the first audio, and is longer).
        """
        request = self.prepare(text, settings)
        if self.canary is not None:
            self.canary.note_request()
            # Trial permits are the canaries' to take: a listener is never the trial.
            if not self.service_breaker.state.admits_all:
                raise CircuitOpenError(
                    self.service_breaker.name,
                    self.service_breaker.state,
                    self.service_breaker.retry_after,
                )
        # Trials (only without canaries: else the states above rejected) take the gate's
        # lease first; the CLOSED path never awaits it.
        trials = contextlib.AsyncExitStack()
        try:
            await self._gate_trial(trials, self.service_breaker)
            service = _Held(self.service_breaker, self.service_breaker.acquire(), self.outcomes)
        except BaseException:
            await trials.aclose()
            raise
        deadline = _loop_time() + self.total_deadline
        attempts: list[Attempt] = []
        last: TTSError | None = None
        try:
            chain = self.chain_for(request.settings)
            for voice in chain:
                breaker = self.voice_breaker(voice)
                try:
                    if self.canary is not None and not breaker.state.admits_all:
                        raise CircuitOpenError(breaker.name, breaker.state, breaker.retry_after)
                    await self._gate_trial(trials, breaker)
                    held = _Held(breaker, breaker.acquire(), self.outcomes)
                except CircuitOpenError as rejected:
                    attempts.append(Attempt(voice, 0, None, str(rejected)))
                    continue
                voiced = SynthesisRequest(request.text, request.settings.with_voice(voice))
                heard = False
                try:
                    async with contextlib.aclosing(
                        self._try_voice(voiced, deadline, attempts, stall_limit)
                    ) as chunks:
                        async for chunk in chunks:
                            heard = True
                            yield chunk
                except TTSError as error:
                    last = error
                    if is_voice_scoped(error.kind):
                        held.fail(str(error))
                    # Another voice cannot help a service-wide failure, and cannot
                    # unsay what the listener already heard.
                    if heard or not is_voice_scoped(error.kind):
                        break
                else:
                    held.succeed()
                    service.succeed()
                    if report is not None:
                        report.request = voiced
                    return
                finally:
                    held.release()
            if last is None:
                retry = min(self.voice_breaker(v).retry_after for v in chain)
                service.release()
                raise CircuitOpenError(f"{self.provider.name} voices", CircuitState.OPEN, retry)
            service.fail(str(last))
            raise SynthesisFailed(last, attempts)
        finally:
            service.release()
            await trials.aclose()

    async def _gate_trial(self, trials: contextlib.AsyncExitStack, breaker: CircuitBreaker) -> None:
        if breaker.state.admits_all:
            return
        if not await trials.enter_async_context(self.trial_gate(breaker)):
            raise CircuitOpenError(breaker.name, CircuitState.HALF_OPEN, 0.0)

    async def _try_voice(
        self,
        request: SynthesisRequest,
        deadline: float,
        attempts: list[Attempt],
        stall_limit: float | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """Up to ``self.attempts`` tries of one voice; raises the last error."""
        voice = request.settings.voice
        for number in range(1, self.attempts + 1):
            heard = False
            started = _loop_time()
            try:
                async with contextlib.aclosing(
                    self._attempt(request, deadline, stall_limit)
                ) as chunks:
                    async for chunk in chunks:
                        heard = True
                        yield chunk
                return
            except TTSError as error:
                attempts.append(Attempt(voice, number, error.kind, error.message))
                log.info("synthesis attempt %d with %s failed: %s", number, voice, error)
                if self.outcomes is not None and _service_wide(error.kind):
                    self.outcomes.attempt_failed(self.service_breaker, 1 / self.attempts)
                if heard or number == self.attempts or not is_retryable(error.kind):
                    raise
                delay = self.backoff.delay(number, self._jitter())
                # A retry left less time than the attempt that just failed took (a
                # silent server eats the read deadline) would only be cut off.
                if deadline - _loop_time() - delay < _loop_time() - started:
                    raise
                await self._sleep(delay)
                # Opened meanwhile (by other requests, or another process of a fleet):
                # the service is known to be down, and a retry would only add load.
                if self._opened(voice):
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _opened(self, voice: str) -> bool:
        rejecting = (CircuitState.OPEN, CircuitState.FORCED_OPEN)
        return (
            self.service_breaker.state in rejecting or self.voice_breaker(voice).state in rejecting
        )

    async def _attempt(
        self, request: SynthesisRequest, deadline: float, stall_limit: float | None = None
    ) -> AsyncGenerator[bytes, None]:
        """One provider stream, each wait bounded by what is left of the total deadline
        and, after the first chunk, by ``stall_limit``."""
        voice = request.settings.voice
        wait_until = deadline
        async with contextlib.aclosing(self.provider.stream(request)) as chunks:
            while True:
                try:
                    async with asyncio.timeout_at(wait_until):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if wait_until < deadline:
                        raise TTSError(
                            ErrorKind.TIMEOUT,
                            f"the audio stalled: nothing for {stall_limit:g}s",
                            voice=voice,
                        ) from None
                    raise _total_deadline_error(self.total_deadline, voice) from None
                yield chunk
                if stall_limit is not None:
                    wait_until = min(deadline, _loop_time() + stall_limit)

    async def synthesize_unguarded(self, text: str = "Test.", *, voice: str | None = None) -> bytes:
        """One direct synthesis (primary voice unless ``voice``): no breaker, no retry,
        no fallback.

        For diagnostics and canaries, which must reach the service even while its
        breaker is OPEN. Bounded by the total deadline; records nothing.
        """
        request = self.prepare(text)
        if voice is not None:
            request = SynthesisRequest(request.text, request.settings.with_voice(voice))
        deadline = _loop_time() + self.total_deadline
        parts = []
        async with contextlib.aclosing(self._attempt(request, deadline)) as chunks:
            async for chunk in chunks:
                parts.append(chunk)
        return b"".join(parts)

    async def synthesize(self, text: str, settings: VoiceSettings | None = None) -> bytes:
        """The whole utterance as one ``bytes`` in the provider's audio format."""
        parts = []
        async with contextlib.aclosing(self.stream(text, settings)) as chunks:
            async for chunk in chunks:
                parts.append(chunk)
        return b"".join(parts)

    async def synthesize_to_file(
        self, text: str, path: str | Path, settings: VoiceSettings | None = None
    ) -> Path:
        """Write the whole utterance to ``path`` (only once it is complete)."""
        audio = await self.synthesize(text, settings)
        target = Path(path)
        partial = target.with_name(target.name + ".partial")
        await asyncio.to_thread(partial.write_bytes, audio)
        await asyncio.to_thread(partial.replace, target)
        return target


def _service_wide(kind: ErrorKind) -> bool:
    # What the service breaker is charged for (bad input never counts).
    return kind is not ErrorKind.INPUT and not is_voice_scoped(kind)


def _loop_time() -> float:
    # Deadlines run on the event loop's clock, the one asyncio.timeout enforces them
    # with; the injected clock is the breakers' (a simulated loop can drive both).
    return asyncio.get_running_loop().time()


def _total_deadline_error(total: float, voice: str) -> TTSError:
    return TTSError(ErrorKind.TIMEOUT, f"total deadline of {total:g}s exceeded", voice=voice)

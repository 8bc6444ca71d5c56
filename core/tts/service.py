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
A request whose first audio, or any later chunk, took at least the breakers'
``slow_call_duration`` to arrive is reported slow, whether it succeeded or failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any

from edge_voice.core.breaker import CircuitBreaker, CircuitOpenError, CircuitState
from edge_voice.core.config import CanaryConfig
from edge_voice.core.text.speakable import CheckedText, check_speakable
from edge_voice.core.tts.breakers import ServiceBreakers
from edge_voice.core.tts.canary import CanaryProber
from edge_voice.core.tts.errors import ErrorKind, TTSError
from edge_voice.core.tts.fleet import OutcomeObserver, TrialGate, local_trial_gate
from edge_voice.core.tts.outcomes import Attempt, SynthesisFailed, SynthesisReport
from edge_voice.core.tts.policy import RetryPolicy, is_retryable, is_voice_scoped
from edge_voice.core.tts.provider import SynthesisRequest, TTSProvider, VoiceSettings

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class TTSService:
    """Text in, audio chunks out, through breakers, retries and backup voices.

    Built from a config by :func:`core.tts.service_from_config.service_from_config`;
    :func:`core.tts.audio_file.synthesize_to_file` writes an utterance to a file.
    """

    def __init__(
        self,
        provider: TTSProvider,
        *,
        voices: Sequence[str],
        prosody: VoiceSettings | None = None,
        breakers: ServiceBreakers | None = None,
        retry: RetryPolicy | None = None,
        max_chars: int = 300,
        validate: Callable[[VoiceSettings], None] | None = None,
        sleep: Sleep = asyncio.sleep,
        canary: CanaryConfig | None = None,
    ) -> None:
        """``breakers`` default to plain ones named after the provider, ``retry`` to
        :class:`RetryPolicy`'s defaults; ``canary`` (when ``enabled``) starts a
        :class:`CanaryProber` that takes the trial permits."""
        if not voices:
            raise ValueError("at least one voice is needed")
        if max_chars < 1:
            raise ValueError("max_chars must be positive")
        self.provider = provider
        self.voices = tuple(dict.fromkeys(voices))
        template = prosody or VoiceSettings(voice=self.voices[0])
        self.default_settings = template.with_voice(self.voices[0])
        self.retry = retry or RetryPolicy()
        self.max_chars = max_chars
        self._validate = validate
        self._sleep = sleep
        self.breakers = breakers or ServiceBreakers(provider.name)
        """Every breaker of this service, and their listeners."""
        self.service_breaker = self.breakers.service
        for voice in self.voices:
            self.breakers.voice(voice)
        self.trial_gate: TrialGate = local_trial_gate
        """Asked before every trial call and canary (a fleet sharing breakers leases them)."""
        self.outcomes: OutcomeObserver | None = None
        """Told of failed attempts and successes (a fleet sharing breakers counts runs)."""
        self.canary: CanaryProber | None = None
        if canary is not None and canary.enabled:
            self.canary = CanaryProber(
                self,
                phrase=canary.text,
                idle_stop_after=canary.idle_stop_after,
                clock=self.breakers.clock,
                sleep=sleep,
            )
            self.breakers.add_listener(self.canary.on_transition)

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
            "config_error": None if canary is None else canary.config_error,
        }
        health["voices"] = {v: b.snapshot() for v, b in self.breakers.by_voice().items()}
        return health

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
            self.breakers.voice(voice).state is CircuitState.CLOSED
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

        Raises ``InvalidText``/``InvalidVoiceSettings`` for bad input (also when the
        provider is the one to refuse it; nothing is counted then),
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
        canary = self.canary
        if canary is not None:
            canary.note_request()
            # Trial permits are the canaries' to take: a listener is never the trial.
            if canary.takes_trials and not self.service_breaker.state.admits_all:
                raise CircuitOpenError(
                    self.service_breaker.name,
                    self.service_breaker.state,
                    self.service_breaker.retry_after,
                )
        # Trials (only without canaries taking them: else the states above rejected) take
        # the gate's lease first; the CLOSED path never awaits it.
        trials = contextlib.AsyncExitStack()
        try:
            await self._gate_trial(trials, self.service_breaker)
            service = self.breakers.hold(self.service_breaker)
        except BaseException:
            await trials.aclose()
            raise
        deadline = _loop_time() + self.retry.total_deadline
        attempts: list[Attempt] = []
        last: TTSError | None = None
        try:
            chain = self.chain_for(request.settings)
            for voice in chain:
                breaker = self.breakers.voice(voice)
                try:
                    if canary is not None and canary.takes_trials and not breaker.state.admits_all:
                        raise CircuitOpenError(breaker.name, breaker.state, breaker.retry_after)
                    await self._gate_trial(trials, breaker)
                    held = self.breakers.hold(breaker)
                except CircuitOpenError as rejected:
                    attempts.append(Attempt(voice, 0, None, str(rejected)))
                    continue
                voiced = request.with_voice(voice)
                heard = False
                try:
                    async with contextlib.aclosing(
                        self._try_voice(voiced, deadline, attempts, stall_limit)
                    ) as chunks:
                        async for chunk in chunks:
                            heard = True
                            service.watch.arrived()
                            held.watch.arrived()
                            yield chunk
                            # The listener's time with a chunk is not Edge's slowness.
                            service.watch.waiting()
                            held.watch.waiting()
                except TTSError as error:
                    if error.kind is ErrorKind.INPUT:
                        # The provider refused our input (a voice or prosody it cannot
                        # use): the caller's to fix, nobody's failure; permits go back.
                        raise
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
                    if self.outcomes is not None:
                        self.outcomes.succeeded(breaker)
                        self.outcomes.succeeded(self.service_breaker)
                    if report is not None:
                        report.request = voiced
                    return
                finally:
                    held.release()
            if last is None:
                retry = min(self.breakers.voice(v).retry_after for v in chain)
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
        """Up to ``retry.attempts`` tries of one voice; raises the last error."""
        voice = request.settings.voice
        for number in range(1, self.retry.attempts + 1):
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
                    self.outcomes.attempt_failed(self.service_breaker, 1 / self.retry.attempts)
                if heard or number == self.retry.attempts or not is_retryable(error.kind):
                    raise
                delay = self.retry.delay(number)
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
            self.service_breaker.state in rejecting or self.breakers.voice(voice).state in rejecting
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
                    raise _total_deadline_error(self.retry.total_deadline, voice) from None
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
            request = request.with_voice(voice)
        deadline = _loop_time() + self.retry.total_deadline
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


def _service_wide(kind: ErrorKind) -> bool:
    # What the service breaker is charged for (bad input never counts).
    return kind is not ErrorKind.INPUT and not is_voice_scoped(kind)


def _loop_time() -> float:
    # Deadlines run on the event loop's clock, the one asyncio.timeout enforces them
    # with; the injected clock is the breakers' (a simulated loop can drive both).
    return asyncio.get_running_loop().time()


def _total_deadline_error(total: float, voice: str) -> TTSError:
    return TTSError(ErrorKind.TIMEOUT, f"total deadline of {total:g}s exceeded", voice=voice)

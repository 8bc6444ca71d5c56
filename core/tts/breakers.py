"""One provider's breakers: the service breaker, a breaker per voice, their listeners.

:class:`ServiceBreakers` makes every breaker of a :class:`~core.tts.service.TTSService`
with the same config and clocks, hands each listener to every breaker present and
future, and resets them together. :class:`HeldPermit` settles one permit exactly once,
with the slow-call verdict of :class:`SlowWatch`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from edge_voice.core.breaker import CircuitBreaker, CircuitBreakerConfig, Permit
from edge_voice.core.breaker.events import Listener
from edge_voice.core.clock import Clock, WallClock, monotonic, wall_time


class ServiceBreakers:
    """The service breaker (named after the provider) and one breaker per voice.

    Iterating gives the service breaker, then every voice breaker in creation order.
    """

    def __init__(
        self,
        provider_name: str,
        config: CircuitBreakerConfig | None = None,
        *,
        clock: Clock = monotonic,
        wall_clock: WallClock = wall_time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.provider_name = provider_name
        self.config = config or CircuitBreakerConfig()
        self.clock = clock
        """The breakers' clock: slow calls are judged on it."""
        self._wall = wall_clock
        self._jitter = jitter
        self._listeners: list[Listener] = []
        self.service = self._new(provider_name)
        self._voices: dict[str, CircuitBreaker] = {}

    def _new(self, name: str) -> CircuitBreaker:
        breaker = CircuitBreaker(
            name, self.config, self.clock, wall_clock=self._wall, jitter=self._jitter
        )
        for listener in self._listeners:
            breaker.add_listener(listener)
        return breaker

    def voice(self, voice: str) -> CircuitBreaker:
        """The breaker for ``voice``, created on first use."""
        breaker = self._voices.get(voice)
        if breaker is None:
            breaker = self._new(f"{self.provider_name}:{voice}")
            self._voices[voice] = breaker
        return breaker

    def voice_of(self, breaker: CircuitBreaker) -> str | None:
        """The voice ``breaker`` watches; None for the service breaker (or a stranger)."""
        for voice, voice_breaker in self._voices.items():
            if voice_breaker is breaker:
                return voice
        return None

    def by_voice(self) -> dict[str, CircuitBreaker]:
        """Every voice breaker made so far, by voice."""
        return dict(self._voices)

    def __iter__(self) -> Iterator[CircuitBreaker]:
        yield self.service
        yield from list(self._voices.values())

    def __len__(self) -> int:
        return 1 + len(self._voices)

    @property
    def breakers(self) -> list[CircuitBreaker]:
        """Every breaker there is now, the service breaker first (what the breaker
        store's ``BreakerGroup`` asks for)."""
        return list(self)

    def add_listener(self, listener: Listener) -> None:
        """Deliver transitions of every breaker, present and future, to ``listener``."""
        self._listeners.append(listener)
        for breaker in self:
            breaker.add_listener(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop delivering transitions to ``listener``."""
        if listener in self._listeners:
            self._listeners.remove(listener)
        for breaker in self:
            breaker.remove_listener(listener)

    def reset(self, reason: str = "manual reset") -> None:
        """Close every breaker and clear its counters."""
        for breaker in self:
            breaker.reset(reason)

    def hold(self, breaker: CircuitBreaker) -> HeldPermit:
        """A permit of ``breaker``, watched for slowness on the breakers' clock; raises
        :class:`~core.breaker.CircuitOpenError` as ``acquire`` does."""
        return HeldPermit(breaker, breaker.acquire(), self.clock)


class SlowWatch:
    """Whether a synthesis is slow: its first audio, or any wait for a later chunk,
    took at least ``limit`` seconds on ``clock`` (the breaker's; "at least", as the
    breaker's own ``slow_call_duration`` means it). A failure counts the wait it
    ended as well: audio that never came was slow in coming.

    Only waits on the provider count: the time a consumer spends with a chunk (a
    player applying backpressure) lies between :meth:`arrived` and :meth:`waiting`.
    ``limit`` 0 (slow-call tracking off) never calls anything slow.
    """

    def __init__(self, clock: Clock, limit: float) -> None:
        self._clock = clock
        self._limit = limit
        self._since: float | None = clock() if limit > 0 else None
        self.slow = False

    def arrived(self) -> None:
        """A chunk arrived now: judge the wait for it."""
        if self._since is not None:
            if self._clock() - self._since >= self._limit:
                self.slow = True
            self._since = None

    def waiting(self) -> None:
        """The next chunk is being waited for from now on."""
        if self._limit > 0:
            self._since = self._clock()

    def ended_in_failure(self) -> bool:
        """The verdict for a failure now: slow so far, or slow in the wait it ended."""
        self.arrived()
        return self.slow


class HeldPermit:
    """A permit that must be settled exactly once: success, failure, or release.

    Its :class:`SlowWatch` starts with the permit; the caller tells it when chunks
    arrive and when it waits again, and the verdict goes with the outcome (explicitly,
    so a timed breaker does not call a long utterance streamed in real time slow).
    """

    def __init__(self, breaker: CircuitBreaker, permit: Permit, clock: Clock) -> None:
        self.breaker = breaker
        self.permit = permit
        self.settled = False
        self.watch = SlowWatch(clock, breaker.config.slow_call_duration)

    def succeed(self) -> None:
        """The call succeeded (slow if its watch says so)."""
        if not self.settled:
            self.settled = True
            self.breaker.record_success(self.permit, slow=self.watch.slow)

    def fail(self, reason: str) -> None:
        """The call failed in a way that counts."""
        if not self.settled:
            self.settled = True
            self.breaker.record_failure(self.permit, reason, slow=self.watch.ended_in_failure())

    def release(self) -> None:
        """No outcome (cancelled, closed early, or not this breaker's business)."""
        if not self.settled:
            self.settled = True
            self.breaker.release(self.permit)

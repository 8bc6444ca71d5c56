"""Connecting :class:`~core.metrics.TTSMetrics` to the objects that produce the figures.

:class:`MeteredProvider` wraps the service's provider, so every attempt at Edge (a
listener's message, a retry, a backup voice, a canary) is counted once with its result
and its time to first audio, without the service knowing about metrics.
:func:`instrument_service` installs it and points the scrape-time figures at the
service's breakers and the audio cache.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable

from edge_voice.core.breaker.events import TransitionEvent
from edge_voice.core.cache import AudioCache
from edge_voice.core.metrics import TTSMetrics
from edge_voice.core.tts.errors import TTSError
from edge_voice.core.tts.provider import SynthesisRequest, TTSProvider
from edge_voice.core.tts.service import TTSService

OK = "ok"
"""The ``result`` label of an attempt that delivered its whole utterance."""


class MeteredProvider:
    """A :class:`~core.tts.provider.TTSProvider` that counts what ``inner`` does.

    An attempt ends as ``ok`` (the stream ended normally), as the :class:`TTSError`'s
    kind, or is not counted at all when it is cancelled or closed early (the caller
    stopped listening: neither the service's success nor its failure).
    """

    def __init__(
        self,
        inner: TTSProvider,
        metrics: TTSMetrics,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.audio_format = inner.audio_format
        self._metrics = metrics
        self._clock = clock

    async def stream(self, request: SynthesisRequest) -> AsyncGenerator[bytes, None]:
        """``inner.stream(request)``, counted."""
        started = self._clock()
        first = True
        chunks = self.inner.stream(request)
        try:
            async for chunk in chunks:
                if first:
                    first = False
                    self._metrics.first_audio_after(self._clock() - started)
                yield chunk
        except TTSError as error:
            self._metrics.synthesis_attempt(error.kind.value)
            raise
        finally:
            await chunks.aclose()
        self._metrics.synthesis_attempt(OK)

    def __getattr__(self, name: str) -> object:
        # Provider-specific extras (the Edge provider's deadlines, its close()) stay
        # reachable through the wrapper.
        return getattr(self.inner, name)


def instrument_service(
    metrics: TTSMetrics, service: TTSService, cache: AudioCache | None
) -> Callable[[], None]:
    """Count ``service``'s attempts and transitions and let scrapes read its breakers
    and ``cache``. Returns the function that undoes it (for a context closing)."""
    provider = service.provider
    if not isinstance(provider, MeteredProvider):
        service.provider = MeteredProvider(provider, metrics)

    def count(event: TransitionEvent) -> None:
        metrics.transition(event.breaker, event.old.value, event.new.value)

    service.breakers.add_listener(count)
    metrics.breaker_states = lambda: [(b.name, b.state.value) for b in service.breakers]
    if cache is not None:
        metrics.cache_stats = cache.stats

    def undo() -> None:
        service.breakers.remove_listener(count)

    return undo

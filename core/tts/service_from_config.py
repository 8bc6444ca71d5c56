"""A :class:`~core.tts.service.TTSService` as the config describes it.

The one place that reads ``[speech]``, ``[breaker]``, ``[retry]``, ``[deadlines]``,
``[text]`` and ``[canary]`` for the service, and that builds the Edge provider when
the caller brings none. The service itself knows nothing of config files.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from edge_voice.core.clock import Clock, WallClock, monotonic, wall_time
from edge_voice.core.config import Config
from edge_voice.core.tts.breakers import ServiceBreakers
from edge_voice.core.tts.edge import EdgeProvider, validate_settings
from edge_voice.core.tts.policy import Backoff, RetryPolicy
from edge_voice.core.tts.provider import TTSProvider, VoiceSettings
from edge_voice.core.tts.service import Sleep, TTSService


def service_from_config(
    config: Config,
    provider: TTSProvider | None = None,
    *,
    service_type: type[TTSService] = TTSService,
    clock: Clock = monotonic,
    wall_clock: WallClock = wall_time,
    jitter: Callable[[], float] = random.random,
    sleep: Sleep = asyncio.sleep,
    **overrides: Any,
) -> TTSService:
    """A service built from ``config``; Edge is the provider unless one is given.

    ``clock``, ``wall_clock``, ``jitter`` and ``sleep`` are for tests and benches that
    simulate time; ``overrides`` replace the service's own keyword arguments
    (``voices=``, ``retry=``, ...) after the config's. ``service_type`` builds a
    subclass (a bench's instrumented service).
    """
    if provider is None:
        provider = EdgeProvider(
            connect_timeout=config.deadlines.connect, read_timeout=config.deadlines.read
        )
    speech = config.speech
    # voice_chain resolves voice = "auto" to the default chain (no guild to match).
    chain = speech.voice_chain
    retry = config.retry
    options: dict[str, Any] = {
        "voices": chain,
        "prosody": VoiceSettings(chain[0], speech.rate, speech.volume, speech.pitch),
        "breakers": ServiceBreakers(
            provider.name, config.breaker, clock=clock, wall_clock=wall_clock, jitter=jitter
        ),
        "retry": RetryPolicy(
            retry.attempts,
            Backoff(retry.backoff_base, retry.backoff_max),
            config.deadlines.total,
            jitter,
        ),
        "max_chars": config.text.max_chars,
        "validate": validate_settings if provider.name == "edge" else None,
        "sleep": sleep,
        "canary": config.canary,
    }
    options.update(overrides)
    return service_type(provider, **options)

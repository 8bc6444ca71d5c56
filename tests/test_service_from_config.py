"""core/tts/service_from_config.py: each config section lands where the service reads it."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from edge_voice.core.clock import FakeClock
from edge_voice.core.config import parse_config
from edge_voice.core.tts.edge import EdgeProvider, validate_settings
from edge_voice.core.tts.policy import Backoff
from edge_voice.core.tts.provider import EDGE_MP3, SynthesisRequest
from edge_voice.core.tts.service import TTSService
from edge_voice.core.tts.service_from_config import service_from_config

CONFIG = parse_config(
    {
        "speech": {"voice": "en-US-AriaNeural", "rate": "+10%", "backup_voices": []},
        "breaker": {"consecutive_failures": 4, "slow_call_duration": 3.0},
        "retry": {"attempts": 2, "backoff_base": 0.25, "backoff_max": 1.0},
        "deadlines": {"connect": 1.5, "read": 2.5, "total": 7.0},
        "text": {"max_chars": 120},
        "canary": {"text": "Probe.", "idle_stop_after": 42.0},
    }
)


class Offline:
    name = "offline"
    audio_format = EDGE_MP3

    async def stream(self, request: SynthesisRequest) -> AsyncGenerator[bytes, None]:
        yield b"audio"


def test_every_section_reaches_the_service() -> None:
    clock = FakeClock()
    service = service_from_config(CONFIG, clock=clock, wall_clock=clock.wall, jitter=lambda: 0.25)
    assert isinstance(service.provider, EdgeProvider)
    assert (service.provider.connect_timeout, service.provider.read_timeout) == (1.5, 2.5)
    assert service.voices == ("en-US-AriaNeural",)
    assert service.default_settings.rate == "+10%"
    assert service.max_chars == 120
    assert service._validate is validate_settings
    assert (service.retry.attempts, service.retry.total_deadline) == (2, 7.0)
    assert service.retry.backoff == Backoff(0.25, 1.0)
    assert service.retry.delay(1) == 0.25 * (0.5 + 0.25 / 2)  # the jitter given
    assert service.breakers.config is CONFIG.breaker
    assert service.service_breaker.config.consecutive_failures == 4
    assert service.breakers.clock is clock
    assert service.canary is not None
    assert (service.canary.phrase, service.canary.idle_stop_after) == ("Probe.", 42.0)


def test_another_provider_is_not_validated_as_edge_and_overrides_win() -> None:
    service = service_from_config(CONFIG, Offline(), voices=["v1", "v2"], max_chars=50)
    assert service.provider.name == "offline"
    assert service._validate is None
    assert service.service_breaker.name == "offline"
    assert service.voices == ("v1", "v2")
    assert service.max_chars == 50


def test_canaries_off_in_the_config_make_no_prober() -> None:
    config = parse_config({"canary": {"enabled": False}})
    assert service_from_config(config, Offline()).canary is None


class Instrumented(TTSService):
    pass


def test_service_type_builds_a_subclass() -> None:
    assert type(service_from_config(CONFIG, Offline(), service_type=Instrumented)) is Instrumented

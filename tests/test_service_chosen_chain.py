"""TTSService with a voice chain chosen per request (``VoiceSettings.backups``).

A guild's or person's voice brings its own backup voices (other voices of its locale);
the service walks that chain instead of the configured one, with a breaker per voice
as before. Same scripted provider and fake clock as test_service.py.
"""

from __future__ import annotations

import pytest

from edge_voice.core.breaker import CircuitOpenError
from edge_voice.core.cache import CacheKey
from edge_voice.core.clock import FakeClock
from edge_voice.core.tts.errors import ErrorKind, InvalidVoiceSettings
from edge_voice.core.tts.outcomes import SynthesisFailed, SynthesisReport
from edge_voice.core.tts.provider import SynthesisRequest, VoiceSettings
from tests.test_service import AUDIO, CONRAD, KILLIAN, ScriptedProvider, make_service

ARIA, GUY, JENNY = "en-US-AriaNeural", "en-US-GuyNeural", "en-US-JennyNeural"
ENGLISH = VoiceSettings(ARIA, rate="+10%", backups=(GUY, JENNY))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_a_chosen_chain_replaces_the_configured_one(clock: FakeClock) -> None:
    provider = ScriptedProvider(en_US_AriaNeural=[ErrorKind.NO_AUDIO] * 3)
    service = make_service(provider, clock)
    report = SynthesisReport()
    chunks = [c async for c in service.stream("Hello", ENGLISH, report=report)]
    assert chunks == AUDIO
    assert provider.calls == {ARIA: 3, GUY: 1}
    assert report.request is not None
    assert (report.request.settings.voice, report.request.settings.rate) == (GUY, "+10%")
    # Each voice of the chosen chain has its breaker, beside the configured voices'.
    assert service.health()["voices"][ARIA]["consecutive_failures"] == 1
    assert set(service.health()["voices"]) == {KILLIAN, CONRAD, ARIA, GUY}


async def test_a_chain_that_fails_never_falls_back_to_the_configured_voices(
    clock: FakeClock,
) -> None:
    provider = ScriptedProvider(
        **{v.replace("-", "_"): [ErrorKind.NO_AUDIO] * 9 for v in (ARIA, GUY, JENNY)}
    )
    service = make_service(provider, clock)
    with pytest.raises(SynthesisFailed):
        await service.synthesize("Hello", ENGLISH)
    assert set(provider.calls) == {ARIA, GUY, JENNY}


async def test_no_backups_means_the_voice_alone_and_none_means_the_configured(
    clock: FakeClock,
) -> None:
    alone = VoiceSettings(ARIA, backups=())
    assert make_service(ScriptedProvider(), clock).chain_for(alone) == (ARIA,)
    configured = VoiceSettings(ARIA)
    assert make_service(ScriptedProvider(), clock).chain_for(configured) == (ARIA, KILLIAN, CONRAD)
    repeated = VoiceSettings(ARIA, backups=(ARIA, GUY, GUY))
    assert make_service(ScriptedProvider(), clock).chain_for(repeated) == (ARIA, GUY)


async def test_every_voice_of_the_chosen_chain_is_validated(clock: FakeClock) -> None:
    def validate(settings: VoiceSettings) -> None:
        if settings.voice == JENNY:
            raise InvalidVoiceSettings("no Jenny today")

    provider = ScriptedProvider()
    service = make_service(provider, clock, validate=validate)
    with pytest.raises(InvalidVoiceSettings):
        await service.synthesize("Hello", ENGLISH)
    assert provider.calls == {}


async def test_an_open_chosen_chain_is_a_rejection_with_its_own_retry_time(
    clock: FakeClock,
) -> None:
    service = make_service(ScriptedProvider(), clock)
    for voice, seconds in ((ARIA, 30), (GUY, 25), (JENNY, 40)):
        service.breakers.voice(voice).force_open("blocked", duration=seconds)
    with pytest.raises(CircuitOpenError) as info:
        await service.synthesize("Hello", ENGLISH)
    assert info.value.retry_after == 25


async def test_cached_audio_of_a_backup_voice_stands_in_while_the_voice_is_open(
    clock: FakeClock,
) -> None:
    service = make_service(ScriptedProvider(), clock)
    assert service.cache_lookup_voices(ENGLISH) == (ARIA,)
    service.breakers.voice(ARIA).force_open("blocked", duration=30)
    assert service.cache_lookup_voices(ENGLISH) == (ARIA, GUY, JENNY)
    # A cache key names the voice and prosody only: the chain does not split the cache.
    with_chain = SynthesisRequest("Hello", ENGLISH.with_voice(GUY))
    without = SynthesisRequest("Hello", VoiceSettings(GUY, rate="+10%"))
    assert CacheKey.from_request("edge", with_chain) == CacheKey.from_request("edge", without)

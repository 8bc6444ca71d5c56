"""core.voices.choice: member, then server, then the guild's locale, then the config."""

from __future__ import annotations

import discord
import pytest

from edge_voice.core.config import Config, SpeechConfig, parse_config
from edge_voice.core.tts.service_from_config import service_from_config
from edge_voice.core.voices.catalogue import VoiceCatalogue, VoiceInfo, shipped_catalogue
from edge_voice.core.voices.choice import (
    MAX_BACKUPS,
    VoiceChoice,
    VoiceSource,
    backup_voices_for,
    choose_voice_chain,
    locale_chain,
)
from edge_voice.core.voices.locales import AUTO, AUTO_DEFAULT_CHAIN, DISCORD_LOCALE_VOICES
from tests.fakes.edge_server import FakeEdgeServer

CATALOGUE = shipped_catalogue()
AUTO_SPEECH = SpeechConfig()
KILLIAN, CONRAD = "de-DE-KillianNeural", "de-DE-ConradNeural"


def choose(
    member: str | None = None,
    guild: str | None = None,
    locale: str | None = None,
    speech: SpeechConfig = AUTO_SPEECH,
    catalogue: VoiceCatalogue = CATALOGUE,
) -> VoiceChoice:
    return choose_voice_chain(member, guild, locale, speech, catalogue)


def test_auto_is_the_default_and_german_keeps_the_seed_voices() -> None:
    assert Config().speech.voice == AUTO
    choice = choose(locale="de")
    assert choice == VoiceChoice((KILLIAN, CONRAD), VoiceSource.LOCALE)
    assert choice.voice == KILLIAN


@pytest.mark.parametrize(
    ("locale", "first"),
    [
        ("en-US", "en-US-AriaNeural"),
        ("en-GB", "en-GB-SoniaNeural"),
        ("es-ES", "es-ES-ElviraNeural"),
        ("es-419", "es-MX-DaliaNeural"),
        ("fr", "fr-FR-DeniseNeural"),
        ("pt-BR", "pt-BR-FranciscaNeural"),
        ("ja", "ja-JP-NanamiNeural"),
        ("zh-CN", "zh-CN-XiaoxiaoNeural"),
        ("zh-TW", "zh-TW-HsiaoChenNeural"),
        ("no", "nb-NO-PernilleNeural"),
        ("EN-us", "en-US-AriaNeural"),
    ],
)
def test_the_guild_locale_picks_the_voice(locale: str, first: str) -> None:
    choice = choose(locale=locale)
    assert choice.source is VoiceSource.LOCALE
    assert choice.voice == first
    assert 1 <= len(choice.chain) <= 1 + MAX_BACKUPS


def test_every_discord_locale_is_mapped_to_voices_that_exist() -> None:
    assert set(DISCORD_LOCALE_VOICES) == {locale.value for locale in discord.Locale}
    for locale, chain in DISCORD_LOCALE_VOICES.items():
        assert all(voice in CATALOGUE for voice in chain), locale
        assert len(choose(locale=locale).chain) > 1, f"{locale} has no backup voice"


def test_a_chosen_voice_is_followed_by_other_voices_of_its_locale() -> None:
    # Same gender first, plain voices before multilingual ones, then by name.
    assert choose(member="en-US-GuyNeural").chain == (
        "en-US-GuyNeural",
        "en-US-AndrewNeural",
        "en-US-BrianNeural",
    )
    assert choose(member="de-AT-JonasNeural").chain == ("de-AT-JonasNeural", "de-AT-IngridNeural")
    jonas = CATALOGUE.get("de-AT-JonasNeural")
    assert jonas is not None
    assert backup_voices_for(jonas, CATALOGUE, limit=0) == ()


def test_member_beats_guild_beats_locale() -> None:
    assert choose(member="ja-JP-KeitaNeural", guild="fr-FR-HenriNeural", locale="de").source is (
        VoiceSource.MEMBER
    )
    guild = choose(guild="fr-FR-HenriNeural", locale="de")
    assert (guild.voice, guild.source) == ("fr-FR-HenriNeural", VoiceSource.GUILD)
    assert choose(member="ja-jp-keitaneural").voice == "ja-JP-KeitaNeural"


def test_a_voice_edge_retired_is_passed_over() -> None:
    small = VoiceCatalogue([VoiceInfo(KILLIAN, "de-DE", "Male")])
    choice = choose(
        member="en-US-AriaNeural", guild="fr-FR-HenriNeural", locale="de", catalogue=small
    )
    assert choice == VoiceChoice((KILLIAN,), VoiceSource.LOCALE)


def test_a_named_config_voice_keeps_its_backup_voices() -> None:
    speech = SpeechConfig(voice="en-US-AriaNeural", backup_voices=("en-US-JennyNeural",))
    assert choose(locale="de", speech=speech) == VoiceChoice(
        ("en-US-AriaNeural", "en-US-JennyNeural"), VoiceSource.CONFIG
    )
    assert choose(member="ja-JP-KeitaNeural", speech=speech).source is VoiceSource.MEMBER


def test_auto_without_a_match_speaks_the_documented_default() -> None:
    assert choose() == VoiceChoice(AUTO_DEFAULT_CHAIN, VoiceSource.DEFAULT)
    assert choose(locale="tlh") == VoiceChoice(AUTO_DEFAULT_CHAIN, VoiceSource.DEFAULT)
    assert AUTO_SPEECH.voice_chain == AUTO_DEFAULT_CHAIN == (KILLIAN, CONRAD)


def test_locales_discord_does_not_use_are_matched_in_the_catalogue() -> None:
    assert locale_chain("pt-PT", CATALOGUE)[0].startswith("pt-PT-")
    assert locale_chain("ca", CATALOGUE)[0].startswith("ca-ES-")
    assert locale_chain("", CATALOGUE) == ()


def test_from_config_speaks_the_default_chain_with_auto() -> None:
    service = service_from_config(Config())
    assert service.voices == (KILLIAN, CONRAD)
    assert service.default_settings.voice == KILLIAN
    named = service_from_config(parse_config({"speech": {"voice": "en-US-AriaNeural"}}))
    assert named.voices == ("en-US-AriaNeural",)


async def test_auto_speaks_end_to_end(edge_server: FakeEdgeServer) -> None:
    service = service_from_config(parse_config({"canary": {"enabled": False}}))
    audio = await service.synthesize("Hallo")
    assert audio
    assert edge_server.requests[-1].voice is not None
    assert "KillianNeural" in edge_server.requests[-1].voice

"""core.speaking and core.settings_changes: what settings make of a message, and what the
settings commands ask for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_voice.core.config import parse_config
from edge_voice.core.settings_changes import guild_changes, member_changes, unchanged_keys
from edge_voice.core.speaking import Refusal, reading_refusal, speaking_plan
from edge_voice.core.storage.store import IN_MEMORY, StateStore
from edge_voice.core.voices.choice import VoiceSource

GUILD, ALICE, ROLE = 111, 501, 777


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    config = parse_config(
        {"speech": {"volume": "-10%", "pitch": "+5Hz"}, "text": {"max_chars": 200}}
    )
    opened = await StateStore.open(config, path=IN_MEMORY)
    yield opened
    await opened.close()


async def test_the_plan_carries_the_chosen_chain_and_the_servers_prosody(store: StateStore) -> None:
    settings = store.settings
    plan = speaking_plan(settings, GUILD, ALICE, "de")
    assert plan.choice.source is VoiceSource.LOCALE
    assert plan.voice == plan.settings.voice == "de-DE-KillianNeural"
    assert plan.settings.backups == ("de-DE-ConradNeural",)
    assert (plan.settings.rate, plan.settings.volume, plan.settings.pitch) == (
        "+0%",
        "-10%",
        "+5Hz",
    )
    assert (plan.max_chars, plan.announce_speaker, plan.name) == (200, True, None)

    await settings.update_guild(
        GUILD, {"voice": "fr-FR-HenriNeural", "rate": "+20%", "max_chars": 80}
    )
    await settings.update_guild(GUILD, {"announce_speaker": False})
    server = speaking_plan(settings, GUILD, ALICE, "de")
    assert server.choice.source is VoiceSource.GUILD
    assert server.voice == "fr-FR-HenriNeural"
    assert server.settings.backups is not None
    assert all(v.startswith("fr-FR-") for v in server.settings.backups)
    assert (server.settings.rate, server.max_chars, server.announce_speaker) == ("+20%", 80, False)

    await settings.update_member(GUILD, ALICE, {"voice": "en-GB-SoniaNeural", "name": "Ally"})
    own = speaking_plan(settings, GUILD, ALICE, "de")
    assert (own.choice.source, own.voice, own.name) == (
        VoiceSource.MEMBER,
        "en-GB-SoniaNeural",
        "Ally",
    )
    assert own.settings.rate == "+20%"  # the rate is the server's
    # The bot's own announcements use the server's voice.
    assert speaking_plan(settings, GUILD, None, "de").voice == "fr-FR-HenriNeural"


async def test_who_is_read(store: StateStore) -> None:
    settings = store.settings
    assert reading_refusal(settings.effective(GUILD), "!play", ()) is Refusal.SKIP_PREFIX
    assert reading_refusal(settings.effective(GUILD), "hello", ()) is None
    await settings.update_guild(GUILD, {"skip_prefix": "", "required_role": ROLE})
    effective = settings.effective(GUILD)
    assert reading_refusal(effective, "!play", (ROLE,)) is None
    assert reading_refusal(effective, "hello", (GUILD,)) is Refusal.MISSING_ROLE


def test_slash_options_become_changes() -> None:
    given = {
        "voice": "AUTO",
        "rate": "+5%",
        "announce_speaker": None,
        "max_chars": 100,
        "autojoin": False,
        "required_role": GUILD,  # @everyone
        "skip_prefix": "None",
    }
    assert guild_changes(given, everyone_role_id=GUILD) == {
        "voice": None,
        "rate": "+5%",
        "max_chars": 100,
        "autojoin": False,
        "required_role": None,
        "skip_prefix": "",
    }
    assert guild_changes({"voice": "de-DE-KatjaNeural", "required_role": ROLE}, GUILD) == {
        "voice": "de-DE-KatjaNeural",
        "required_role": ROLE,
    }
    with pytest.raises(ValueError, match="not a server setting"):
        guild_changes({"volume": "+5%"}, GUILD)
    assert member_changes(None, None) == {}
    assert member_changes("default", "Ally") == {"voice": None, "name": "Ally"}


async def test_unchanged_keys_are_named(store: StateStore) -> None:
    await store.settings.update_guild(GUILD, {"rate": "+5%"})
    asked = {"rate": "+5%", "max_chars": 50}
    change = await store.settings.update_guild(GUILD, asked)
    assert change.changed == ("max_chars",)
    assert unchanged_keys(change, asked) == ("rate",)

"""core.storage.settings and sessions: validated, cached, written through, kept across restarts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_voice.core.clock import FakeClock
from edge_voice.core.config import Config, parse_config
from edge_voice.core.storage.database import FILE_NAME
from edge_voice.core.storage.rules import SettingError
from edge_voice.core.storage.settings import (
    EffectiveGuildSettings,
    GuildSettings,
    MemberSettings,
)
from edge_voice.core.storage.store import StateStore
from edge_voice.core.voices.choice import VoiceSource

GUILD, OTHER_GUILD, ALICE, BOB = 111, 222, 501, 502


def config_in(tmp_path: Path) -> Config:
    return parse_config(
        {"state": {"data_dir": str(tmp_path)}, "text": {"max_chars": 200, "skip_prefix": "!"}}
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    opened = await StateStore.open(config_in(tmp_path), wall_clock=FakeClock().wall)
    yield opened
    await opened.close()


async def restart(store: StateStore, tmp_path: Path) -> StateStore:
    await store.close()
    return await StateStore.open(config_in(tmp_path))


async def test_nothing_set_means_the_config_defaults(store: StateStore) -> None:
    settings = store.settings
    assert settings.guild(GUILD) == GuildSettings()
    assert settings.effective(GUILD) == EffectiveGuildSettings(
        voice=None,
        rate="+0%",
        announce_speaker=True,
        max_chars=200,
        autojoin=False,
        required_role=None,
        skip_prefix="!",
    )
    assert settings.member(GUILD, ALICE) == MemberSettings()


async def test_settings_and_sessions_survive_a_restart(store: StateStore, tmp_path: Path) -> None:
    await store.settings.update_guild(
        GUILD,
        {
            "voice": "fr-fr-henrineural",
            "rate": "15%",
            "announce_speaker": False,
            "max_chars": 120,
            "autojoin": True,
            "required_role": 987654321098765432,
            "skip_prefix": "",
        },
    )
    await store.settings.update_member(GUILD, ALICE, {"voice": "ja-JP-KeitaNeural", "name": "Ali"})
    await store.sessions.save(GUILD, voice_channel_id=333, text_channel_id=444)
    await store.sessions.save(OTHER_GUILD, voice_channel_id=555, text_channel_id=None)

    again = await restart(store, tmp_path)
    try:
        assert again.settings.guild(GUILD) == GuildSettings(
            voice="fr-FR-HenriNeural",
            rate="+15%",
            announce_speaker=False,
            max_chars=120,
            autojoin=True,
            required_role=987654321098765432,
            skip_prefix="",
        )
        # "" is a value (read every message), not "unset".
        assert again.settings.effective(GUILD).skip_prefix == ""
        assert again.settings.member(GUILD, ALICE) == MemberSettings("ja-JP-KeitaNeural", "Ali")
        assert again.settings.spoken_name(GUILD, ALICE, "alice_1990") == "Ali"
        assert again.settings.spoken_name(GUILD, BOB, "bob") == "bob"
        sessions = {s.guild_id: s for s in again.sessions.all()}
        assert (sessions[GUILD].voice_channel_id, sessions[GUILD].text_channel_id) == (333, 444)
        assert sessions[OTHER_GUILD].text_channel_id is None
    finally:
        await again.close()


async def test_an_update_changes_only_what_it_names_and_says_what_changed(
    store: StateStore,
) -> None:
    settings = store.settings
    await settings.update_guild(GUILD, {"rate": "+10%", "max_chars": 50})
    change = await settings.update_guild(GUILD, {"rate": "+10%", "autojoin": True})

    assert change.changed == ("autojoin",)
    assert change.before == GuildSettings(rate="+10%", max_chars=50)
    assert change.after == GuildSettings(rate="+10%", max_chars=50, autojoin=True)
    assert (await settings.update_guild(GUILD, {})).changed == ()


async def test_none_unsets_a_value_and_the_default_returns(
    store: StateStore, tmp_path: Path
) -> None:
    settings = store.settings
    await settings.update_guild(GUILD, {"rate": "+10%", "max_chars": 50})
    change = await settings.update_guild(GUILD, {"rate": None})
    assert change.changed == ("rate",)
    assert settings.effective(GUILD).rate == "+0%"
    await settings.update_guild(GUILD, {"max_chars": None})
    assert settings.guild(GUILD) == GuildSettings()

    again = await restart(store, tmp_path)
    try:
        assert again.settings.guild(GUILD) == GuildSettings()
        rows = await again.database.read(
            lambda conn: conn.execute("SELECT count(*) FROM guild_settings").fetchone()[0]
        )
        assert rows == 0  # a row with nothing set is removed
    finally:
        await again.close()


@pytest.mark.parametrize(
    ("changes", "key", "expected"),
    [
        ({"voice": "Katja"}, "voice", "a voice from Edge's voice list"),
        ({"voice": ""}, "voice", "a voice name"),
        ({"rate": "fast"}, "rate", 'from "-50%" to "+100%"'),
        ({"rate": "+500%"}, "rate", 'from "-50%" to "+100%"'),
        ({"rate": "+10Hz"}, "rate", "signed rate"),
        ({"max_chars": 5}, "max_chars", "from 10 to 200"),
        ({"max_chars": 201}, "max_chars", "from 10 to 200"),
        ({"max_chars": True}, "max_chars", "whole number"),
        ({"skip_prefix": "!!!!!!"}, "skip_prefix", "up to 5 characters"),
        ({"skip_prefix": "! "}, "skip_prefix", "without spaces"),
        ({"required_role": -3}, "required_role", "a Discord id"),
        ({"autojoin": "yes"}, "autojoin", "true or false"),
        ({"volume": "+1%"}, "volume", "one of voice, rate"),
    ],
)
async def test_every_value_is_validated_before_anything_is_written(
    store: StateStore, changes: dict[str, object], key: str, expected: str
) -> None:
    with pytest.raises(SettingError) as refused:
        await store.settings.update_guild(GUILD, {"autojoin": True, **changes})

    assert refused.value.key == key
    assert expected in refused.value.expected
    assert str(refused.value).startswith(f"{key}: expected ")
    assert store.settings.guild(GUILD) == GuildSettings()  # all or nothing


async def test_an_unknown_voice_is_refused_with_the_nearest_ones(store: StateStore) -> None:
    with pytest.raises(SettingError) as refused:
        await store.settings.update_member(GUILD, ALICE, {"voice": "Katja"})
    assert refused.value.suggestions[0] == "de-DE-KatjaNeural"
    assert "did you mean de-DE-KatjaNeural" in str(refused.value)


@pytest.mark.parametrize("name", ["", "   ", "x" * 33, "!!!", "a\u200bb"])
async def test_a_spoken_name_must_be_speakable_and_short(store: StateStore, name: str) -> None:
    with pytest.raises(SettingError, match=r"^name: expected 1 to 32 characters"):
        await store.settings.update_member(GUILD, ALICE, {"name": name})


async def test_user_input_is_only_ever_a_value(store: StateStore, tmp_path: Path) -> None:
    hostile = "x'); DROP TABLE guild_settings;--"[:32]
    await store.settings.update_member(GUILD, ALICE, {"name": hostile})
    again = await restart(store, tmp_path)
    try:
        assert again.settings.member(GUILD, ALICE).name == hostile
        assert again.settings.guild(GUILD) == GuildSettings()
    finally:
        await again.close()


async def test_reset_forgets_a_persons_settings(store: StateStore, tmp_path: Path) -> None:
    await store.settings.update_member(GUILD, ALICE, {"voice": "ja-JP-KeitaNeural", "name": "Ali"})
    await store.settings.update_member(OTHER_GUILD, ALICE, {"name": "A."})
    change = await store.settings.reset_member(GUILD, ALICE)
    assert set(change.changed) == {"voice", "name"}

    again = await restart(store, tmp_path)
    try:
        assert again.settings.member(GUILD, ALICE) == MemberSettings()
        assert again.settings.member(OTHER_GUILD, ALICE).name == "A."
    finally:
        await again.close()


async def test_forgetting_a_guild_removes_its_and_its_members_settings(store: StateStore) -> None:
    await store.settings.update_guild(GUILD, {"rate": "+5%"})
    await store.settings.update_member(GUILD, ALICE, {"name": "Ali"})
    await store.settings.update_member(OTHER_GUILD, ALICE, {"name": "A."})
    await store.settings.forget_guild(GUILD)
    assert store.settings.guild(GUILD) == GuildSettings()
    assert store.settings.member(GUILD, ALICE) == MemberSettings()
    assert store.settings.member(OTHER_GUILD, ALICE).name == "A."


async def test_the_voice_choice_uses_member_guild_and_locale(store: StateStore) -> None:
    settings = store.settings
    assert settings.voice_choice(GUILD, ALICE, "de").chain == (
        "de-DE-KillianNeural",
        "de-DE-ConradNeural",
    )
    await settings.update_guild(GUILD, {"voice": "fr-FR-HenriNeural"})
    assert settings.voice_choice(GUILD, ALICE, "de").source is VoiceSource.GUILD
    await settings.update_member(GUILD, ALICE, {"voice": "ja-JP-KeitaNeural"})
    assert settings.voice_choice(GUILD, ALICE, "de").voice == "ja-JP-KeitaNeural"
    assert settings.voice_choice(GUILD, BOB, "de").voice == "fr-FR-HenriNeural"
    assert settings.voice_choice(GUILD, None, "de").voice == "fr-FR-HenriNeural"


async def test_concurrent_updates_of_different_keys_both_land(
    store: StateStore, tmp_path: Path
) -> None:
    await asyncio.gather(
        store.settings.update_guild(GUILD, {"rate": "+10%"}),
        store.settings.update_guild(GUILD, {"max_chars": 99}),
        store.settings.update_member(GUILD, ALICE, {"name": "Ali"}),
        store.settings.update_member(GUILD, ALICE, {"voice": "ja-JP-KeitaNeural"}),
    )
    assert store.settings.guild(GUILD) == GuildSettings(rate="+10%", max_chars=99)
    again = await restart(store, tmp_path)
    try:
        assert again.settings.guild(GUILD) == GuildSettings(rate="+10%", max_chars=99)
        assert again.settings.member(GUILD, ALICE) == MemberSettings("ja-JP-KeitaNeural", "Ali")
    finally:
        await again.close()


async def test_a_cancelled_caller_does_not_lose_the_write(
    store: StateStore, tmp_path: Path
) -> None:
    update = asyncio.create_task(store.settings.update_guild(GUILD, {"rate": "+20%"}))
    await asyncio.sleep(0)  # the write is on the store's thread now
    update.cancel()
    with pytest.raises(asyncio.CancelledError):
        await update
    again = await restart(store, tmp_path)  # close() waits for the queued write
    try:
        assert again.settings.guild(GUILD).rate == "+20%"
    finally:
        await again.close()


async def test_values_edited_by_hand_into_nonsense_are_dropped_on_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await (await StateStore.open(config_in(tmp_path))).close()
    with contextlib.closing(sqlite3.connect(tmp_path / FILE_NAME)) as conn, conn:
        conn.execute(
            "INSERT INTO guild_settings (guild_id, rate, skip_prefix, max_chars, updated_at) "
            "VALUES (?, 'fast', 'toolongprefix', 150, 0)",
            (GUILD,),
        )
        conn.execute(
            "INSERT INTO member_settings (guild_id, user_id, name, updated_at) "
            "VALUES (?, ?, '', 0)",
            (GUILD, ALICE),
        )

    with caplog.at_level(logging.WARNING, logger="edge_voice.core.storage.settings"):
        store = await StateStore.open(config_in(tmp_path))
    try:
        assert store.settings.guild(GUILD) == GuildSettings(max_chars=150)
        assert store.settings.member(GUILD, ALICE) == MemberSettings()
        assert "ignoring the stored rate of guild 111" in caplog.text
    finally:
        await store.close()


async def test_an_operator_lowering_max_chars_caps_the_servers(tmp_path: Path) -> None:
    store = await StateStore.open(config_in(tmp_path))
    await store.settings.update_guild(GUILD, {"max_chars": 180})
    await store.close()
    lower = parse_config({"state": {"data_dir": str(tmp_path)}, "text": {"max_chars": 100}})
    store = await StateStore.open(lower)
    try:
        assert store.settings.effective(GUILD).max_chars == 100
    finally:
        await store.close()


async def test_sessions_are_saved_replaced_and_cleared(store: StateStore, tmp_path: Path) -> None:
    clock = FakeClock()
    store.sessions._wall = clock.wall  # the saved time is the injected wall clock's
    first = await store.sessions.save(GUILD, voice_channel_id=1, text_channel_id=2)
    clock.advance(60)
    second = await store.sessions.save(GUILD, voice_channel_id=3, text_channel_id=2)
    assert second.saved_at - first.saved_at == 60
    assert store.sessions.get(GUILD) == second
    with pytest.raises(SettingError, match="voice_channel: expected a Discord id"):
        await store.sessions.save(GUILD, voice_channel_id=0, text_channel_id=None)

    await store.sessions.save(OTHER_GUILD, voice_channel_id=5, text_channel_id=None)
    await store.sessions.clear(GUILD)
    again = await restart(store, tmp_path)
    try:
        assert [s.guild_id for s in again.sessions.all()] == [OTHER_GUILD]
        assert again.sessions.get(GUILD) is None
    finally:
        await again.close()


async def test_a_session_left_on_purpose_keeps_its_channels_but_is_not_rejoined(
    store: StateStore, tmp_path: Path
) -> None:
    assert await store.sessions.left(GUILD) is None  # nothing saved: nothing to mark
    saved = await store.sessions.save(GUILD, voice_channel_id=1, text_channel_id=2)
    assert saved.rejoin
    left = await store.sessions.left(GUILD)
    assert left is not None
    assert (left.voice_channel_id, left.text_channel_id, left.rejoin) == (1, 2, False)
    again = await restart(store, tmp_path)
    try:
        kept = again.sessions.get(GUILD)
        assert kept is not None
        assert (kept.text_channel_id, kept.rejoin) == (2, False)
        # Joining again makes it a session to rejoin.
        assert (await again.sessions.save(GUILD, 3, 2)).rejoin
    finally:
        await again.close()

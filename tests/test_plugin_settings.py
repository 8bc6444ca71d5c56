"""Server and personal settings through the fake Discord: /tts settings, /tts set, /myvoice,
/voices, autocomplete, and the voice the fake Edge is asked for."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.discord import FakeDiscord
from tests.fakes.edge_server import FakeEdgeServer
from tests.plugin_support import (
    SHORT_AUDIO,
    answer,
    build_world,
    join,
    plugin_bot,
    plugin_config,
    say,
    slash,
)

KATJA, HENRI = "de-DE-KatjaNeural", "fr-FR-HenriNeural"


async def test_server_and_member_voices_reach_edge(
    edge_server: FakeEdgeServer, tmp_path: Path
) -> None:
    edge_server.audio = SHORT_AUDIO
    async with FakeDiscord() as fake:
        world = build_world(fake, locale="en-US")
        async with plugin_bot(fake, plugin_config(tmp_path), [world.guild]):
            await join(world, world.alice)
            await fake.set_voice_state(world.manager, world.voice)
            assert await say(world, world.alice, "hello", edge_server) == "en-US-AriaNeural"

            changed = await slash(
                world, world.manager, "tts", "set", voice="de-de-katjaneural", rate="10%"
            )
            assert answer(changed).startswith("✅ Changed:")
            assert f"`{KATJA}` (was auto)" in answer(changed)
            assert "Speaking rate: `+10%` (was `+0%`)" in answer(changed)
            assert changed.allowed_mentions == {"parse": []}
            assert await say(world, world.alice, "hallo", edge_server) == KATJA
            assert edge_server.requests[-1].rate == "+10%"

            mine = await slash(world, world.alice, "myvoice", voice=HENRI)
            assert "✅ Changed your voice." in answer(mine)
            assert f"`{HENRI}` (your choice)" in answer(mine)
            assert await say(world, world.alice, "bonjour", edge_server) == HENRI
            assert await say(world, world.manager, "moin", edge_server) == KATJA  # the server's

            await slash(world, world.alice, "myvoice", reset=True)
            assert await say(world, world.alice, "wieder da", edge_server) == KATJA
            back = await slash(world, world.manager, "tts", "set", voice="auto")
            assert "auto: `en-US-AriaNeural` (the server's language, en-US)" in answer(back)
            assert await say(world, world.alice, "hi", edge_server) == "en-US-AriaNeural"


async def test_members_are_refused_the_server_settings(
    edge_server: FakeEdgeServer, tmp_path: Path
) -> None:
    async with FakeDiscord() as fake:
        world = build_world(fake)
        async with plugin_bot(fake, plugin_config(tmp_path), [world.guild]) as bot:
            for path in (("tts", "settings"), ("tts", "set")):
                refused = await slash(world, world.alice, *path, voice=KATJA)
                assert (
                    answer(refused)
                    == f"You need the **Manage Server** permission to use /{' '.join(path)}."
                )
            state = bot.tts_context.state  # type: ignore[attr-defined]
            assert state.settings.guild(world.guild.id).is_empty

            shown = await slash(world, world.manager, "tts", "settings")
            text = answer(shown)
            assert "Voice: auto: `en-US-AriaNeural` (the server's language, en-US)" in text
            assert "Skip prefix: `!` (default)" in text
            assert "Required role: none: everyone is read (default)" in text
            assert edge_server.connection_count == 0


async def test_invalid_values_are_refused_with_the_nearest_matches(
    edge_server: FakeEdgeServer, tmp_path: Path
) -> None:
    async with FakeDiscord() as fake:
        world = build_world(fake)
        async with plugin_bot(fake, plugin_config(tmp_path), [world.guild]) as bot:
            typo = await slash(world, world.manager, "tts", "set", voice="de-DE-Kilian", rate="+5%")
            assert answer(typo).startswith("⚠️ Nothing was changed. voice: expected a voice")
            assert "did you mean de-DE-KillianNeural" in answer(typo)
            fast = await slash(world, world.manager, "tts", "set", rate="fast")
            assert "rate: expected" in answer(fast)
            long = await slash(world, world.manager, "tts", "set", max_chars=5000)
            assert "max_chars: expected a whole number from 10 to 300, got 5000" in answer(long)
            nothing = await slash(world, world.manager, "tts", "set")
            assert "Give at least one setting" in answer(nothing)
            mine = await slash(world, world.alice, "myvoice", voice="Katja", name="Ally")
            assert "did you mean de-DE-KatjaNeural" in answer(mine)
            state = bot.tts_context.state  # type: ignore[attr-defined]
            assert state.settings.guild(world.guild.id).is_empty
            assert state.settings.member(world.guild.id, world.alice.id).is_empty  # all or nothing


async def test_voice_options_autocomplete_from_the_catalogue(
    edge_server: FakeEdgeServer, tmp_path: Path
) -> None:
    async with FakeDiscord() as fake:
        world = build_world(fake, locale="de")
        async with plugin_bot(fake, plugin_config(tmp_path), [world.guild]):
            mine = await fake.autocomplete(
                world.alice, world.text, "myvoice", focused="voice", voice="kil"
            )
            assert [c["value"] for c in mine.choices] == ["de-DE-KillianNeural"]
            assert mine.choices[0]["name"].startswith("de-DE-KillianNeural · Male")
            empty = await fake.autocomplete(
                world.manager, world.text, "tts", "set", focused="voice", voice=""
            )
            values = [c["value"] for c in empty.choices]
            assert len(values) == 25
            assert values[0] == "auto"
            assert all(v.startswith("de-") for v in values[1:11])  # the guild's language first
            languages = await fake.autocomplete(
                world.alice, world.text, "voices", focused="language", language="pt"
            )
            assert [c["value"] for c in languages.choices] == ["pt", "pt-BR", "pt-PT"]


async def test_the_guild_locale_picks_the_voice(
    edge_server: FakeEdgeServer, tmp_path: Path
) -> None:
    edge_server.audio = SHORT_AUDIO
    async with FakeDiscord() as fake:
        german = build_world(fake, locale="de", name="Stammtisch")
        french = build_world(fake, locale="fr", name="Café")
        async with plugin_bot(fake, plugin_config(tmp_path), [german.guild, french.guild]):
            await join(german, german.alice)
            await join(french, french.alice)
            assert (
                await say(german, german.alice, "Guten Tag", edge_server) == "de-DE-KillianNeural"
            )
            assert await say(french, french.alice, "Bonjour", edge_server) == "fr-FR-DeniseNeural"


async def test_voices_lists_a_language_within_discords_limits(
    edge_server: FakeEdgeServer, tmp_path: Path
) -> None:
    async with FakeDiscord() as fake:
        world = build_world(fake)
        async with plugin_bot(fake, plugin_config(tmp_path), [world.guild]):
            german = await slash(world, world.alice, "voices", language="de")
            (embed,) = german.embeds
            assert embed["title"] == "10 voices for de"
            assert "`de-DE-KillianNeural` · Male · German (Germany)" in embed["description"]
            assert "`de-AT-JonasNeural`" in embed["description"]
            every = await slash(world, world.alice, "voices")
            (embed,) = every.embeds
            assert embed["title"].endswith("languages")
            assert "de (10)" in embed["description"]
            english = (await slash(world, world.alice, "voices", language="en")).embeds[0]
            assert len(english["description"]) <= 4096
            unknown = (await slash(world, world.alice, "voices", language="xx")).embeds[0]
            assert unknown["title"] == "No voices for `xx`"

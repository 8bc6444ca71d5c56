"""Settings and sessions across restarts, and autojoin, through the fake Discord.

A restart is a second bot logging in over the same data directory after the first one
closed (the way ``bot.py`` closes on SIGTERM: the cogs unload, voice is left).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tests.fakes.discord import FakeDiscord
from tests.fakes.edge_server import FakeEdgeServer
from tests.plugin_support import (
    SHORT_AUDIO,
    World,
    answer,
    build_world,
    join,
    plugin_bot,
    plugin_config,
    say,
    slash,
    spoken,
)

KATJA, HENRI = "de-DE-KatjaNeural", "fr-FR-HenriNeural"
RESTORE_LOG = "edge_voice.cogs.voice_restore"


def notices(world: World) -> list[str]:
    return [m.content for m in world.fake.posted(world.text) if "Back after a restart" in m.content]


async def test_settings_and_the_session_survive_a_restart_and_it_says_so_once(
    edge_server: FakeEdgeServer, tmp_path: Path
) -> None:
    edge_server.audio = SHORT_AUDIO
    config = plugin_config(tmp_path)
    async with FakeDiscord() as fake:
        world = build_world(fake)
        async with plugin_bot(fake, config, [world.guild]):
            await join(world, world.alice)
            await slash(world, world.manager, "tts", "set", voice=KATJA, rate="-10%")
            await slash(world, world.alice, "myvoice", voice=HENRI)
        assert fake.bot_voice_channel(world.guild) is None  # the first bot left voice

        async with plugin_bot(fake, config, [world.guild]) as bot:
            await fake.wait_for(lambda: fake.bot_voice_channel(world.guild) == world.voice.id)
            await fake.wait_for(lambda: notices(world))
            assert notices(world) == [f"🔊 Back after a restart; reading <#{world.text.id}> again."]

            assert await say(world, world.alice, "encore", edge_server) == HENRI
            await fake.set_voice_state(world.manager, world.voice)
            assert await say(world, world.manager, "wieder da", edge_server) == KATJA
            assert edge_server.requests[-1].rate == "-10%"

            # Another READY (a new gateway session) and a guild coming back: no second notice.
            bot.dispatch("ready")
            bot.dispatch("guild_available", bot.get_guild(world.guild.id))
            await asyncio.sleep(0.2)
            assert len(notices(world)) == 1
            assert [r.channel_id for r in fake.voice_requests].count(world.voice.id) == 2


async def test_no_rejoin_where_nobody_listens_and_nothing_is_forgotten(
    edge_server: FakeEdgeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = plugin_config(tmp_path)
    async with FakeDiscord() as fake:
        world = build_world(fake)
        async with plugin_bot(fake, config, [world.guild]):
            await join(world, world.alice)
        await fake.set_voice_state(world.alice, None)  # left while the bot was down
        requests = len(fake.voice_requests)

        with caplog.at_level(logging.INFO, logger=RESTORE_LOG):
            async with plugin_bot(fake, config, [world.guild]):
                await fake.wait_for(lambda: "nobody is listening; not rejoined" in caplog.text)
        assert len(fake.voice_requests) == requests
        assert notices(world) == []

        await fake.set_voice_state(world.alice, world.voice)
        async with plugin_bot(fake, config, [world.guild]):
            await fake.wait_for(lambda: fake.bot_voice_channel(world.guild) == world.voice.id)
            await fake.wait_for(lambda: notices(world))


async def test_leave_is_not_undone_by_a_restart_and_autojoin_brings_the_bot_back(
    edge_server: FakeEdgeServer, tmp_path: Path
) -> None:
    edge_server.audio = SHORT_AUDIO
    config = plugin_config(tmp_path)
    async with FakeDiscord() as fake:
        world = build_world(fake)
        async with plugin_bot(fake, config, [world.guild]):
            await join(world, world.alice)
            assert "👋 Leaving voice." in answer(await slash(world, world.alice, "leave"))
            await fake.wait_for(lambda: fake.bot_voice_channel(world.guild) is None)
            await fake.send_message(world.alice, world.text, "autojoin is off")
            await asyncio.sleep(0.2)
            assert fake.bot_voice_channel(world.guild) is None
            changed = await slash(world, world.manager, "tts", "set", autojoin=True)
            assert "Autojoin: on (was off)" in answer(changed)

        await fake.set_voice_state(world.alice, world.other_voice)
        async with plugin_bot(fake, config, [world.guild]):
            await asyncio.sleep(0.2)
            assert fake.bot_voice_channel(world.guild) is None  # /leave stays left
            joins = len(fake.voice_requests)
            # Two messages while the bot is away: one join, both spoken, in order.
            await fake.send_message(world.alice, world.text, "come here")
            await fake.send_message(world.alice, world.text, "and stay")
            await fake.wait_for(lambda: fake.bot_voice_channel(world.guild) == world.other_voice.id)
            await spoken(world, edge_server, 2)
            assert [r.text for r in edge_server.requests] == ["come here", "and stay"]
            assert [r.channel_id for r in fake.voice_requests[joins:]] == [world.other_voice.id]
            assert notices(world) == []

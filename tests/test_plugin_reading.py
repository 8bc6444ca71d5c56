"""Who is read and how, through the fake Discord: required_role, skip_prefix,
"NAME said" with a chosen name, and /clear."""

from __future__ import annotations

from pathlib import Path

import discord

from tests.fakes.audio_samples import edge_like_mp3
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
    spoken,
)


def texts(edge: FakeEdgeServer) -> list[str | None]:
    return [request.text for request in edge.requests]


async def test_required_role_and_skip_prefix_decide_who_is_read(
    edge_server: FakeEdgeServer, tmp_path: Path
) -> None:
    edge_server.audio = SHORT_AUDIO
    async with FakeDiscord() as fake:
        world = build_world(fake)
        bob = fake.add_member(world.guild, "bob", roles=[world.readers])
        async with plugin_bot(fake, plugin_config(tmp_path), [world.guild]):
            await join(world, world.alice)
            await fake.set_voice_state(bob, world.voice)

            role = await slash(world, world.manager, "tts", "set", required_role=world.readers)
            assert f"Required role: <@&{world.readers.id}> (was none: everyone is read)" in answer(
                role
            )
            await fake.send_message(world.alice, world.text, "not read: no role")
            await say(world, bob, "read: has the role", edge_server)
            await slash(world, world.manager, "tts", "set", required_role=world.guild.everyone)
            await say(world, world.alice, "everyone again", edge_server)
            assert texts(edge_server) == ["read: has the role", "everyone again"]

            prefix = await slash(world, world.manager, "tts", "set", skip_prefix="%")
            assert "Skip prefix: `%` (was `!`)" in answer(prefix)
            await fake.send_message(world.alice, world.text, "%not read")
            await say(world, world.alice, "!read now", edge_server)
            await slash(world, world.manager, "tts", "set", skip_prefix="none")
            await say(world, world.alice, "%read too", edge_server)
            assert texts(edge_server)[2:] == ["!read now", "%read too"]


async def test_name_said_uses_the_chosen_name_once_the_server_switches_it_on(
    edge_server: FakeEdgeServer, tmp_path: Path
) -> None:
    edge_server.audio = SHORT_AUDIO
    async with FakeDiscord() as fake:
        world = build_world(fake)
        async with plugin_bot(fake, plugin_config(tmp_path), [world.guild]):
            await join(world, world.alice)
            await fake.set_voice_state(world.manager, world.voice)
            await say(world, world.alice, "plain", edge_server)
            await slash(world, world.manager, "tts", "set", announce_speaker=True)
            # Another speaker in between: "NAME said" is due for alice again.
            await say(world, world.manager, "me first", edge_server)
            named = await slash(world, world.alice, "myvoice", name="**Ally** <@1>")
            assert 'You are called "\\*\\*Ally\\*\\* <@1>".' in answer(named)
            assert named.allowed_mentions == {"parse": []}
            await say(world, world.alice, "with a name", edge_server)
            assert texts(edge_server) == [
                "plain",
                "manny said: me first",
                "Ally someone said: with a name",
            ]


async def test_clear_drops_the_queue_and_says_how_many(
    edge_server: FakeEdgeServer, tmp_path: Path
) -> None:
    edge_server.audio = edge_like_mp3(1.0)
    async with FakeDiscord() as fake:
        world = build_world(fake)
        carl = fake.add_member(world.guild, "carl")
        async with plugin_bot(fake, plugin_config(tmp_path), [world.guild]) as bot:
            await join(world, world.alice)
            for number in range(1, 5):
                await fake.send_message(world.alice, world.text, f"message {number}")
            player = bot.get_cog("Voice").player(discord.Object(id=world.guild.id))
            await fake.wait_for(lambda: player.speaking and player.pending == 3)

            outside = await slash(world, carl, "clear")
            assert answer(outside) == "Join **Lounge** to use /clear."
            cleared = await slash(world, world.alice, "clear")
            assert answer(cleared) == (
                f"🧹 Dropped 3 queued messages; they were not read, and stay in <#{world.text.id}>."
            )
            await fake.wait_for(
                lambda: any("dropped 3" in m.content for m in fake.posted(world.text))
            )
            (notice,) = [m for m in fake.posted(world.text) if "dropped" in m.content]
            assert (
                notice.content
                == f"🧹 <@{world.alice.id}> dropped 3 queued messages that had not been read yet."
            )
            assert notice.allowed_mentions == {"parse": []}
            empty = await slash(world, world.alice, "clear")
            assert answer(empty) == "Nothing is waiting to be spoken."

            await fake.send_message(world.alice, world.text, "after the clear")
            await spoken(world, edge_server, 2)
            assert texts(edge_server) == ["message 1", "after the clear"]

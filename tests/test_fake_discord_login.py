"""The real discord.py 2.7.1 logs in to the fake and sees what the fake dispatches."""

from __future__ import annotations

import asyncio
import socket

import discord
import pytest

from tests.fake_discord_support import build_scene, make_bot, scene_and_bot
from tests.fakes.discord import FakeDiscord, running_bot
from tests.fakes.discord.model import SEND_MESSAGES, Overwrite
from tests.fakes.discord.rest import MESSAGES


async def test_an_unmodified_bot_logs_in_and_sees_the_guild() -> None:
    async with FakeDiscord() as fake:
        scene = build_scene(fake)
        bot = make_bot(fake)
        ready = asyncio.Event()

        async def on_ready() -> None:
            ready.set()

        bot.add_listener(on_ready)
        async with running_bot(fake, bot):
            await asyncio.wait_for(ready.wait(), 2)
            guild = bot.get_guild(scene.guild.id)
            assert guild is not None
            assert guild.me is not None
            assert guild.me.id == fake.bot.id == bot.user.id
            assert {m.name for m in guild.members} == {"FakeBot", "alice", "root"}
            assert {c.name for c in guild.text_channels} == {"general"}
            assert {c.name for c in guild.voice_channels} == {"Lounge", "Stage left"}
            assert guild.get_member(scene.admin.id).guild_permissions.administrator

        login = fake.requests.matching("GET", "/users/@me")
        assert len(login) == 1
        (identify,) = fake.gateway.identifies
        assert identify["d"]["intents"] == bot.intents.value
        assert identify["d"]["token"] == "fake.discord.token"


async def test_message_create_reaches_on_message_and_the_reply_is_recorded() -> None:
    async with scene_and_bot() as (fake, scene, bot):
        seen: asyncio.Queue[discord.Message] = asyncio.Queue()

        async def on_message(message: discord.Message) -> None:
            if message.author != bot.user:
                await seen.put(message)
                await message.channel.send(
                    f"echo {message.content}", allowed_mentions=discord.AllowedMentions.none()
                )

        bot.add_listener(on_message)
        await fake.send_message(scene.alice, scene.text, "hello <@&1>")
        message = await asyncio.wait_for(seen.get(), 2)
        assert message.content == "hello <@&1>"
        assert message.author.id == scene.alice.id
        assert message.guild.id == scene.guild.id

        (posted,) = await fake.wait_for(lambda: fake.posted(scene.text))
        assert posted.content == "echo hello <@&1>"
        assert posted.request is not None
        assert posted.request["allowed_mentions"] == {"parse": []}
        assert len(fake.requests.matching("POST", MESSAGES, channel_id=scene.text.id)) == 1


async def test_without_the_message_content_intent_content_is_blank() -> None:
    async with FakeDiscord() as fake:
        scene = build_scene(fake)
        bot = make_bot(fake, intents=discord.Intents.default())
        seen: asyncio.Queue[discord.Message] = asyncio.Queue()
        bot.add_listener(seen.put, "on_message")
        async with running_bot(fake, bot):
            await fake.send_message(scene.alice, scene.text, "secret")
            await fake.send_message(scene.alice, scene.text, f"hey <@!{fake.bot.id}>")
            assert (await asyncio.wait_for(seen.get(), 2)).content == ""
            mentioned = await asyncio.wait_for(seen.get(), 2)
            assert mentioned.content.startswith("hey")
            assert bot.user in mentioned.mentions


async def test_attachments_stickers_and_member_events_reach_discord_py() -> None:
    async with scene_and_bot() as (fake, scene, bot):
        seen: asyncio.Queue[discord.Message] = asyncio.Queue()
        bot.add_listener(seen.put, "on_message")
        await fake.send_message(
            scene.alice,
            scene.text,
            "look",
            attachments=[{"filename": "a.png", "content_type": "image/png", "size": 10}],
            sticker_items=[{"name": "wave"}],
        )
        message = await asyncio.wait_for(seen.get(), 2)
        assert [a.filename for a in message.attachments] == ["a.png"]
        assert [s.name for s in message.stickers] == ["wave"]

        await fake.set_nickname(scene.alice, "Ali")
        await fake.wait_for(lambda: bot.get_guild(scene.guild.id).get_member(scene.alice.id).nick)
        assert bot.get_guild(scene.guild.id).get_member(scene.alice.id).display_name == "Ali"

        await fake.set_voice_state(scene.alice, scene.voice)
        member = bot.get_guild(scene.guild.id).get_member(scene.alice.id)
        await fake.wait_for(lambda: member.voice is not None)
        assert member.voice.channel.id == scene.voice.id
        await fake.set_voice_state(scene.alice, scene.other_voice)
        await fake.wait_for(lambda: member.voice.channel.id == scene.other_voice.id)
        await fake.set_voice_state(scene.alice, None)
        await fake.wait_for(lambda: member.voice is None)

        await fake.delete_channel(scene.other_voice)
        await fake.wait_for(lambda: bot.get_channel(scene.other_voice.id) is None)


async def test_a_guild_joined_later_arrives_with_its_preferred_locale() -> None:
    async with scene_and_bot() as (fake, _, bot):
        joined: asyncio.Queue[discord.Guild] = asyncio.Queue()
        bot.add_listener(joined.put, "on_guild_join")
        guild = fake.add_guild("Gilde", preferred_locale="de")
        fake.add_text_channel(guild, "allgemein")
        await fake.join_guild(guild)
        seen = await asyncio.wait_for(joined.get(), 2)
        assert seen.id == guild.id
        assert seen.preferred_locale is discord.Locale.german


async def test_the_fake_serves_on_a_fixed_port_too() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with FakeDiscord(port=port) as fake:
        assert fake.port == port
        assert fake.api_base == f"http://127.0.0.1:{port}/api/v10"
        assert fake.gateway_url == f"ws://127.0.0.1:{port}/gateway"
        build_scene(fake)
        async with running_bot(fake, make_bot(fake)) as bot:
            assert bot.user.id == fake.bot.id


async def test_unknown_routes_are_a_json_404_and_recorded() -> None:
    async with scene_and_bot() as (fake, _, bot):
        with pytest.raises(discord.NotFound) as raised:
            await bot.http.request(discord.http.Route("GET", "/nowhere/{x}", x=1))
        assert raised.value.status == 404
        assert [r.path for r in fake.requests.unknown] == ["/nowhere/1"]


async def test_the_bot_cannot_post_where_it_may_not_send() -> None:
    async with FakeDiscord() as fake:
        scene = build_scene(fake)
        muted = fake.add_text_channel(
            scene.guild, "read-only", overwrites=[Overwrite(scene.guild.id, 0, deny=SEND_MESSAGES)]
        )
        bot = make_bot(fake)
        async with running_bot(fake, bot):
            with pytest.raises(discord.Forbidden) as raised:
                await bot.get_channel(muted.id).send("hi")
            assert raised.value.code == 50013

"""Sharding: each shard's session gets only the guilds Discord routes to it."""

from __future__ import annotations

import asyncio

import discord

from tests.fake_discord_support import QuickShardedBot, make_bot
from tests.fakes.discord import FakeDiscord, running_bot
from tests.fakes.discord.model import guild_shard


async def test_an_auto_sharded_bot_with_two_shards_sees_each_guild_on_its_shard() -> None:
    async with FakeDiscord(shard_count=2) as fake:
        zero = fake.add_guild("zero", shard=(0, 2))
        one = fake.add_guild("one", shard=(1, 2))
        texts = {g.id: fake.add_text_channel(g, "general") for g in (zero, one)}
        members = {g.id: fake.add_member(g, f"member of {g.name}") for g in (zero, one)}
        bot = make_bot(fake, QuickShardedBot)
        seen: asyncio.Queue[discord.Message] = asyncio.Queue()
        bot.add_listener(seen.put, "on_message")
        async with running_bot(fake, bot):
            assert bot.shard_count == 2
            assert {g.id: g.shard_id for g in bot.guilds} == {zero.id: 0, one.id: 1}
            assert sorted(p["d"]["shard"] for p in fake.gateway.identifies) == [[0, 2], [1, 2]]
            assert len(fake.requests.matching("GET", "/gateway/bot")) == 1

            for guild in (zero, one):
                await fake.send_message(members[guild.id], texts[guild.id], guild.name)
                message = await asyncio.wait_for(seen.get(), 2)
                assert message.guild is not None
                assert message.guild.shard_id == guild_shard(guild.id, 2)
            for session in fake.gateway.live_sessions():
                assert session.shard is not None
                shard_id = session.shard[0]
                creates = [f for _, f in session.buffer if '"t":"GUILD_CREATE"' in f]
                assert len(creates) == 1
                assert str((zero, one)[shard_id].id) in creates[0]


async def test_a_plain_bot_with_shard_id_gets_only_its_guilds() -> None:
    async with FakeDiscord() as fake:
        fake.add_guild("zero", shard=(0, 2))
        one = fake.add_guild("one", shard=(1, 2))
        bot = make_bot(fake, shard_id=1, shard_count=2)
        async with running_bot(fake, bot):
            assert [g.id for g in bot.guilds] == [one.id]
            (identify,) = fake.gateway.identifies
            assert identify["d"]["shard"] == [1, 2]
        assert fake.requests.matching("GET", "/gateway/bot") == []

"""Proves tests/fakes/discord_harness.py: the bot and its guild, dpytest shims, message
capture, and closing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import discord
import discord.ext.test as dpytest
import pytest
from discord.ext.test import factories as dpy_factories

from tests.fakes.discord_harness import (
    TestBot,
    add_guild,
    add_member,
    add_role,
    add_text_channel,
    make_test_bot,
    running_test_bot,
    send_message,
)
from tests.harness_support import demo_cog, install_demo_extension


@pytest.fixture
def demo_extension(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    return install_demo_extension(tmp_path, monkeypatch)


@pytest.fixture
async def tb(demo_extension: str) -> AsyncIterator[TestBot]:
    async with running_test_bot([demo_extension]) as harness:
        yield harness


# ---------------------------------------------------------------- bot, guild, shims


async def test_bot_loads_extension_into_default_guild(tb: TestBot) -> None:
    assert tb.bot.is_ready()
    assert tb.guild.me is not None
    assert tb.text_channel.name == "general"
    assert tb.voice_channel.bitrate == 64000
    assert [c.qualified_name for c in tb.bot.tree.get_commands()] == ["demo"]
    assert demo_cog(tb).bot is tb.bot


async def test_voice_channel_and_role_creation_through_http(tb: TestBot) -> None:
    voice = await tb.guild.create_voice_channel("Created", bitrate=96000)
    role = await tb.guild.create_role(name="DJ", colour=discord.Colour(0x3498DB))
    await role.edit(colour=discord.Colour(0xFF0000))

    assert voice.bitrate == 96000
    stored = tb.guild.get_role(role.id)
    assert stored is not None
    assert stored.colour.value == 0xFF0000


async def test_members_carry_roles_permissions_and_flags(tb: TestBot) -> None:
    dj = add_role(tb.guild, "DJ", colour=0x123456)
    admin = add_member(
        tb.guild, "root", permissions=discord.Permissions(manage_guild=True), roles=(dj,)
    )
    alice = add_member(tb.guild, "alice", nick="Ally")

    assert admin.guild_permissions.manage_guild
    assert not alice.guild_permissions.manage_guild
    assert dj in admin.roles
    assert dj.colour.value == 0x123456
    assert alice.display_name == "Ally"
    assert alice.flags.value == 0


async def test_reactions_reach_the_bot(tb: TestBot) -> None:
    alice = add_member(tb.guild, "alice")
    message = await send_message(alice, tb.text_channel, "hello")
    await dpytest.add_reaction(alice, message, "👍")
    await message.add_reaction("🔊")

    assert sorted(str(r.emoji) for r in message.reactions) == ["👍", "🔊"]


# ---------------------------------------------------------------- messages


async def test_listener_echo_is_captured_with_mentions_suppressed(tb: TestBot) -> None:
    alice = add_member(tb.guild, "alice")
    await send_message(alice, tb.text_channel, f"echo hi {alice.mention} @everyone")

    [sent] = tb.sent
    assert sent.channel_id == tb.text_channel.id
    assert sent.content == f"hi {alice.mention} @everyone"
    assert sent.allowed_mentions == {"parse": []}
    assert sent.mentions_suppressed
    assert dpytest.get_message().content == sent.content


async def test_second_guild_with_its_own_channel(tb: TestBot) -> None:
    other = add_guild("Other Guild")
    lobby = add_text_channel(other, "lobby")
    bob = add_member(other, "bob")
    await send_message(bob, lobby, "echo over here")

    assert other in tb.bot.guilds
    assert other.me is not None
    assert [m.content for m in tb.sent_to(lobby)] == ["over here"]
    assert tb.sent_to(tb.text_channel) == []


async def test_message_without_allowed_mentions_is_flagged(tb: TestBot) -> None:
    alice = add_member(tb.guild, "alice")
    await send_message(alice, tb.text_channel, "shout @everyone")
    await send_message(alice, tb.text_channel, "nothing for the bot")

    [sent] = tb.sent_to(tb.text_channel)
    assert sent.allowed_mentions is None
    assert not sent.mentions_suppressed


async def test_bot_sends_and_edits_messages_with_sane_types(tb: TestBot) -> None:
    sent = await tb.text_channel.send("draft", allowed_mentions=discord.AllowedMentions.none())
    edited = await sent.edit(content="final")

    assert sent.type is discord.MessageType.default
    assert edited.type is discord.MessageType.default
    assert edited.content == "final"
    assert [m.content for m in tb.sent] == ["draft"]


# ---------------------------------------------------------------- teardown


async def test_close_restores_patches_and_allows_a_new_bot(demo_extension: str) -> None:
    originals = (dpy_factories.dict_from_channel, dpy_factories.dict_from_member)
    harness = await make_test_bot([demo_extension])
    try:
        with pytest.raises(RuntimeError, match="still running"):
            await make_test_bot()
        patched = dpy_factories.dict_from_channel
    finally:
        await harness.close()  # the subject under test; closing twice is harmless

    assert patched is not originals[0]
    assert (dpy_factories.dict_from_channel, dpy_factories.dict_from_member) == originals
    assert harness.bot.is_closed()
    async with await make_test_bot() as second:
        assert second.guild.name == "Test Guild"

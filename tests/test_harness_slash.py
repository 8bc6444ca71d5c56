"""Proves tests/fakes/slash.py: slash commands dispatched through discord.py, replies captured."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest
from discord import app_commands

from tests.fakes.discord_harness import EPHEMERAL, TestBot, add_member, add_role, invoke_slash
from tests.harness_support import demo_bot

MANAGE_GUILD = "32"


@pytest.fixture
async def tb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestBot]:
    async with demo_bot(tmp_path, monkeypatch) as harness:
        yield harness


async def test_slash_refused_without_permission(tb: TestBot) -> None:
    alice = add_member(tb.guild, "alice")
    result = await invoke_slash(
        tb.bot, tb.guild, alice, tb.text_channel, "demo", "status", permissions="0"
    )

    assert list(result) == []  # the default tree handler only logs
    assert result.interaction.command_failed
    [error] = result.errors
    assert isinstance(error, app_commands.MissingPermissions)
    assert error.missing_permissions == ["manage_guild"]


async def test_slash_admin_gets_ephemeral_message(tb: TestBot) -> None:
    alice = add_member(tb.guild, "alice")
    result = await invoke_slash(
        tb.bot, tb.guild, alice, tb.text_channel, "demo", "status", permissions=MANAGE_GUILD
    )

    [reply] = result
    assert (reply.kind, reply.type, reply.flags) == ("response", 4, EPHEMERAL)
    assert reply.ephemeral
    assert reply.content == "all good"
    assert result.errors == []
    assert tb.responses == [reply]


async def test_slash_permissions_default_to_member_roles(tb: TestBot) -> None:
    admin = add_member(tb.guild, "root", permissions=discord.Permissions(manage_guild=True))
    alice = add_member(tb.guild, "alice")

    allowed = await invoke_slash(tb.bot, tb.guild, admin, tb.text_channel, "demo", "status")
    refused = await invoke_slash(tb.bot, tb.guild, alice, tb.text_channel, "demo", "status")

    assert [r.content for r in allowed] == ["all good"]
    assert list(refused) == []
    assert isinstance(refused.errors[0], app_commands.MissingPermissions)


async def test_tree_error_handler_reply_is_captured(tb: TestBot) -> None:
    @tb.bot.tree.error
    async def on_app_command_error(
        interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await interaction.response.send_message(f"refused: {type(error).__name__}", ephemeral=True)

    alice = add_member(tb.guild, "alice")
    result = await invoke_slash(
        tb.bot, tb.guild, alice, tb.text_channel, "demo", "status", permissions="0"
    )

    [reply] = result
    assert (reply.type, reply.ephemeral, reply.content) == (4, True, "refused: MissingPermissions")
    assert tb.bot.tree.on_error is on_app_command_error


async def test_deferred_reply_and_followup_with_options(tb: TestBot) -> None:
    alice = add_member(tb.guild, "alice")
    result = await invoke_slash(
        tb.bot,
        tb.guild,
        alice,
        tb.text_channel,
        "demo",
        "diagnose",
        options={"target": "edge", "rounds": 3},
        permissions=MANAGE_GUILD,
    )

    deferred, followup = result
    assert (deferred.kind, deferred.type, deferred.ephemeral) == ("response", 5, True)
    assert (followup.kind, followup.type, followup.ephemeral) == ("followup", None, True)
    assert followup.content == "edge x3"
    assert followup.embeds[0]["title"] == "Diagnostics"
    assert followup.mentions_suppressed


async def test_options_resolve_and_every_reply_route_is_captured(tb: TestBot) -> None:
    seen: dict[str, object] = {}

    @tb.bot.tree.command(name="pick", description="Resolves options")
    async def pick(
        interaction: discord.Interaction,
        who: discord.Member,
        role: discord.Role,
        where: discord.VoiceChannel,
        speed: float,
        loud: bool,
    ) -> None:
        seen.update(who=who, role=role, where=where, speed=speed, loud=loud)
        await interaction.response.send_message("picked")
        original = await interaction.original_response()
        await interaction.edit_original_response(content=f"picked #{original.id}")
        extra = await interaction.followup.send("extra", wait=True)
        await extra.edit(content="extra!")
        await extra.delete()
        await interaction.delete_original_response()

    alice = add_member(tb.guild, "alice")
    dj = add_role(tb.guild, "DJ")
    options = {"who": alice, "role": dj, "where": tb.voice_channel, "speed": 1.5, "loud": True}
    result = await invoke_slash(tb.bot, tb.guild, alice, tb.text_channel, "pick", options=options)

    assert result.errors == []
    assert seen == {"who": alice, "role": dj, "where": tb.voice_channel, "speed": 1.5, "loud": True}
    original_id = int((result[1].content or "").removeprefix("picked #"))
    assert discord.utils.snowflake_time(original_id) <= discord.utils.utcnow()
    assert [(r.kind, r.content) for r in result] == [
        ("response", "picked"),
        ("edit_original", f"picked #{original_id}"),
        ("followup", "extra"),
        ("edit_followup", "extra!"),
        ("delete_followup", None),
        ("delete_original", None),
    ]
    assert not result[0].ephemeral

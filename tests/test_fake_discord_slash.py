"""Slash commands through INTERACTION_CREATE, answered over the real webhook routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest
from discord import app_commands

from tests.fake_discord_support import Scene, build_scene, make_bot
from tests.fakes.discord import FakeDiscord, running_bot
from tests.fakes.discord.interactions import EPHEMERAL
from tests.fakes.discord.rest import GUILD_COMMANDS, INTERACTION_CALLBACK

VOICES = ["de-DE-KatjaNeural", "de-DE-KillianNeural", "en-US-AriaNeural"]


def install_commands(bot: Any, seen: dict[str, Any]) -> None:
    """A top-level ``/ping``, a deferred ``/slow`` and a ``/tts`` group."""

    @bot.tree.command(name="ping", description="Pong, privately")
    async def ping(interaction: discord.Interaction) -> None:
        await interaction.response.send_message(
            "pong", ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )

    @bot.tree.command(name="slow", description="Deferred, then a follow-up")
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.followup.send("done", embed=discord.Embed(title="report"), ephemeral=True)

    tts = app_commands.Group(name="tts", description="Text to speech")

    @tts.command(name="status", description="Status")
    async def status(interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"ok in {interaction.guild.name}", ephemeral=True)

    @tts.command(name="say", description="Say something")
    async def say(
        interaction: discord.Interaction,
        text: str,
        repeat: int = 1,
        loud: bool = False,
        member: discord.Member | None = None,
        voice: str | None = None,
    ) -> None:
        seen["say"] = (text, repeat, loud, member, voice)
        await interaction.response.send_message(text * repeat, ephemeral=True)

    @say.autocomplete("voice")
    async def voice_names(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=v, value=v) for v in VOICES if current.lower() in v.lower()
        ]

    @bot.tree.command(name="silent", description="Never answers")
    async def silent(interaction: discord.Interaction) -> None:
        seen["silent"] = interaction.id

    @bot.tree.command(name="late", description="Answers after the deadline")
    async def late(interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.3)
        try:
            await interaction.response.send_message("too late", ephemeral=True)
        except discord.NotFound as exc:
            seen["late"] = exc

    @tts.command(name="reset", description="Admins only")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def reset(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("reset", ephemeral=True)

    @bot.tree.error
    async def on_error(
        interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        seen["error"] = error
        await interaction.response.send_message("You may not do that.", ephemeral=True)

    bot.tree.add_command(tts)


@contextlib.asynccontextmanager
async def slash_bot(
    *, sync: bool, deadline: float = 3.0
) -> AsyncIterator[tuple[FakeDiscord, Scene, dict[str, Any]]]:
    async with FakeDiscord(interaction_deadline=deadline) as fake:
        scene = build_scene(fake)
        bot = make_bot(fake)
        seen: dict[str, Any] = {}
        install_commands(bot, seen)
        async with running_bot(fake, bot):
            if sync:
                guild = discord.Object(id=scene.guild.id)
                bot.tree.copy_global_to(guild=guild)
                await bot.tree.sync(guild=guild)
            yield fake, scene, seen


@pytest.mark.parametrize("sync", [True, False], ids=["synced-to-guild", "not-synced"])
async def test_a_tree_command_and_a_subcommand_reply_ephemerally(sync: bool) -> None:
    async with slash_bot(sync=sync) as (fake, scene, _):
        ping = await fake.invoke_slash(scene.alice, scene.text, "ping")
        assert ping.type == 4
        assert ping.flags == EPHEMERAL
        assert ping.ephemeral
        assert ping.content == "pong"
        assert ping.allowed_mentions == {"parse": []}

        status = await fake.invoke_slash(scene.alice, scene.text, "tts", "status")
        assert (status.type, status.ephemeral, status.content) == (4, True, "ok in Fake Guild")
        callbacks = fake.requests.matching("POST", INTERACTION_CALLBACK)
        assert [r.query for r in callbacks] == [{"with_response": "1"}] * 2
        if sync:
            (put,) = fake.requests.matching("PUT", GUILD_COMMANDS)
            assert {c["name"] for c in put.json} == {"late", "ping", "slow", "silent", "tts"}


async def test_a_deferred_answer_and_its_follow_up_are_captured() -> None:
    async with slash_bot(sync=True) as (fake, scene, _):
        record = await fake.invoke_slash(scene.alice, scene.text, "slow")
        assert record.type == 5
        assert record.deferred
        assert record.ephemeral
        (followup,) = record.followups
        assert followup.content == "done"
        assert followup.ephemeral
        assert followup.embeds[0]["title"] == "report"
        assert [e.kind for e in record.events] == ["callback", "followup"]


async def test_typed_options_follow_the_synced_schema() -> None:
    async with slash_bot(sync=True) as (fake, scene, seen):
        record = await fake.invoke_slash(
            scene.alice,
            scene.text,
            "tts",
            "say",
            text="hi",
            repeat=2,
            loud=True,
            member=scene.admin,
        )
        assert record.content == "hihi"
        text, repeat, loud, member, voice = seen["say"]
        assert (text, repeat, loud, voice) == ("hi", 2, True, None)
        assert isinstance(member, discord.Member)
        assert member.id == scene.admin.id


async def test_autocomplete_returns_the_choices() -> None:
    async with slash_bot(sync=True) as (fake, scene, _):
        record = await fake.autocomplete(
            scene.alice, scene.text, "tts", "say", focused="voice", text="x", voice="de-"
        )
        assert record.type == 8
        assert [c["value"] for c in record.choices] == VOICES[:2]


async def test_a_member_without_permission_is_refused_by_the_check() -> None:
    async with slash_bot(sync=True) as (fake, scene, seen):
        refused = await fake.invoke_slash(scene.alice, scene.text, "tts", "reset")
        assert isinstance(seen["error"], app_commands.MissingPermissions)
        assert refused.content == "You may not do that."
        assert refused.ephemeral

        allowed = await fake.invoke_slash(scene.admin, scene.text, "tts", "reset")
        assert allowed.content == "reset"

        manager = fake.add_member(
            scene.guild, "manager", permissions=discord.Permissions(manage_guild=True).value
        )
        assert (await fake.invoke_slash(manager, scene.text, "tts", "reset")).content == "reset"


async def test_an_unanswered_interaction_times_out_on_the_test_side() -> None:
    async with slash_bot(sync=False) as (fake, scene, seen):
        with pytest.raises(TimeoutError):
            await fake.invoke_slash(scene.alice, scene.text, "silent", timeout=0.3)
        record = await fake.invoke_slash(scene.alice, scene.text, "silent", wait=False)
        await fake.wait_for(lambda: seen.get("silent") == record.id)
        assert record.callback_type is None
        assert not record.answered


async def test_a_callback_after_the_deadline_is_an_unknown_interaction() -> None:
    async with slash_bot(sync=False, deadline=0.1) as (fake, scene, seen):
        record = await fake.invoke_slash(scene.alice, scene.text, "late", wait=False)
        await fake.wait_for(lambda: "late" in seen)
        assert seen["late"].code == 10062
        assert record.callback_type is None

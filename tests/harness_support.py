"""Shared by the harness tests: a tiny demo cog loaded as an extension.

The cog is loaded from an extension file that imports it from here, so the class the
tests check against is the one the bot holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakes.discord_harness import TestBot, running_test_bot


class DemoCog(commands.Cog):
    """Stands in for a real cog: a prefix-less listener and a guarded slash group."""

    demo = app_commands.Group(name="demo", description="Harness demo", guild_only=True)

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.voice_updates: list[tuple[discord.Member, object]] = []

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        if message.content.startswith("echo "):
            await message.channel.send(
                message.content.removeprefix("echo "),
                allowed_mentions=discord.AllowedMentions.none(),
            )
        elif message.content.startswith("shout "):
            await message.channel.send(message.content.removeprefix("shout "))

    @commands.Cog.listener()
    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        self.voice_updates.append((member, after.channel))  # discord mutates `after` later

    @demo.command(name="status", description="Ephemeral status")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def status(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("all good", ephemeral=True)

    @demo.command(name="diagnose", description="Deferred report")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def diagnose(
        self, interaction: discord.Interaction, target: str, rounds: int = 1
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.followup.send(
            f"{target} x{rounds}",
            embed=discord.Embed(title="Diagnostics", description=target),
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )


EXTENSION_SOURCE = """
from tests.harness_support import DemoCog

async def setup(bot):
    await bot.add_cog(DemoCog(bot))
"""


def install_demo_extension(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Write the extension that loads :class:`DemoCog`, importable for this test; its name."""
    (tmp_path / "harness_demo_ext.py").write_text(EXTENSION_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "harness_demo_ext"


@contextlib.asynccontextmanager
async def demo_bot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestBot]:
    """A running harness bot with the demo extension loaded."""
    async with running_test_bot([install_demo_extension(tmp_path, monkeypatch)]) as harness:
        yield harness


def demo_cog(tb: TestBot) -> DemoCog:
    """The bot's loaded :class:`DemoCog`."""
    cog = tb.bot.get_cog("DemoCog")
    assert isinstance(cog, DemoCog)
    return cog

"""``/myvoice`` and ``/voices``: what each person chooses for themselves, for everyone.

``/myvoice`` shows the voice and name a person is spoken with in this server; with
``voice`` (``auto`` forgets it) and ``name`` (the name said in "NAME said") it changes
them, with ``reset`` it forgets both. ``/voices`` lists the voice list's languages, or
with ``language`` (``de``, ``de-AT``) that language's voices. The
``edge_voice.cogs.voice`` extension's ``setup()`` adds this cog next to the voice cog.
Every reply is ephemeral and pings no one; the wording is
:mod:`edge_voice.cogs.settings_views`'s.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from edge_voice.cogs import settings_views as views
from edge_voice.cogs.replies import respond
from edge_voice.cogs.tts_context import TTSContext, acquire_tts_context, release_tts_context
from edge_voice.core.settings_changes import member_changes
from edge_voice.core.storage.database import StorageError
from edge_voice.core.storage.rules import MAX_SPOKEN_NAME, SettingError
from edge_voice.core.storage.settings import SettingsChange, SettingsRepository

log = logging.getLogger(__name__)

GUILD_ONLY = "This command only works in a server."


class PersonalCog(commands.Cog, name="TTS personal"):
    """Each person's voice and spoken name, and the voice list; see the module docstring."""

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.context: TTSContext  # set by cog_load: the bot's shared TTS context

    async def cog_load(self) -> None:
        self.context = acquire_tts_context(self.bot)  # handed back in cog_unload
        try:
            await self.context.open_state()
        except BaseException:
            await release_tts_context(self.bot)
            raise

    async def cog_unload(self) -> None:
        await release_tts_context(self.bot)

    @property
    def settings(self) -> SettingsRepository:
        """The server and member settings."""
        return self.context.settings_store.settings

    @app_commands.command(name="myvoice", description="Your voice and spoken name in this server")
    @app_commands.describe(
        voice="The voice your messages are read with (auto: the server's)",
        name='The name said for you in "NAME said"',
        reset="Forget your voice and name here",
    )
    @app_commands.guild_only()
    async def myvoice(
        self,
        interaction: discord.Interaction,
        voice: str | None = None,
        name: app_commands.Range[str, 1, MAX_SPOKEN_NAME] | None = None,
        reset: bool = False,
    ) -> None:
        """Show, change or forget the caller's own settings in this server."""
        member = interaction.user
        if interaction.guild is None or not isinstance(member, discord.Member):
            await respond(interaction, GUILD_ONLY)
            return
        asked = member_changes(voice, name)
        if not asked and not reset:
            await respond(interaction, views.my_voice_text(self.settings, member))
            return
        guild_id = interaction.guild.id
        try:
            # Checked before the reset, so a bad value forgets nothing.
            self.settings.validate_member(asked)
            change = await self.settings.reset_member(guild_id, member.id) if reset else None
            if asked:
                updated = await self.settings.update_member(guild_id, member.id, asked)
                change = _combined(change, updated)
        except SettingError as exc:
            await respond(interaction, f"⚠️ Nothing was changed. {exc}")
            return
        except StorageError:
            log.exception("saving the settings of member %s failed", member.id)
            await respond(interaction, "⚠️ That could not be saved; the bot's log says why.")
            return
        assert change is not None
        await respond(interaction, views.member_change_text(change, reset, self.settings, member))

    @myvoice.autocomplete("voice")
    async def _voice_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        locale = views.locale_of(interaction.guild)
        return views.voice_choices(
            self.context.catalogue, current, locale, auto_means="the server's voice"
        )

    @app_commands.command(name="voices", description="The voices you can choose from")
    @app_commands.describe(language="A language or locale, e.g. de, en-GB, pt-BR")
    async def voices(self, interaction: discord.Interaction, language: str | None = None) -> None:
        """Every language with its number of voices, or one language's voices."""
        catalogue = self.context.catalogue
        if language is None or not language.strip():
            embed = views.languages_embed(catalogue)
        else:
            embed = views.voices_embed(catalogue, language)
        await respond(interaction, embed=embed)

    @voices.autocomplete("language")
    async def _language_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return views.language_choices(self.context.catalogue, current)

    async def cog_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        cause = getattr(error, "original", error)
        name = getattr(interaction.command, "name", "?")
        log.error("/%s failed", name, exc_info=(type(cause), cause, cause.__traceback__))
        await respond(interaction, "Something went wrong with that command; it has been logged.")


def _combined(first: SettingsChange | None, second: SettingsChange) -> SettingsChange:
    """One change for a reset followed by new values: from before the reset to the end."""
    if first is None:
        return second
    changed = tuple(
        key for key in ("voice", "name") if getattr(first.before, key) != getattr(second.after, key)
    )
    return SettingsChange(first.before, second.after, changed)

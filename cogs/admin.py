"""``/tts status | diagnose | reset | settings | set`` for server admins, and the log channel.

Admin only, for real: ``default_permissions`` hides the group from members who
lack the permission (a hint server admins can override), and a runtime check
enforces it anyway (``manage_guild`` unless ``[discord] admin_permission`` says
otherwise). Every reply is ephemeral; an error becomes a short ephemeral message
and a logged traceback.

``/tts settings`` shows the server's text-to-speech settings and ``/tts set`` changes
the ones given (each validated; unknown voices come back with the nearest matches); the
wording is :mod:`edge_voice.cogs.settings_views`'s, the rules
:mod:`edge_voice.core.storage.settings`'s.

The log channel (``[discord] log_channel_id``) gets every breaker transition,
coalesced over ``log_coalesce_seconds`` by :class:`core.alerts.AlertBatcher`, the
startup connectivity test once the bot is ready, and who reset the breakers. A
missing channel or permission is a logged warning, never an error.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from edge_voice.cogs import settings_views as views
from edge_voice.cogs.replies import NO_MENTIONS, defer_privately, respond
from edge_voice.cogs.tts_context import acquire_tts_context, release_tts_context
from edge_voice.core.alerts import (
    STATE_COLOURS,
    Alert,
    AlertBatcher,
    Sleep,
    diagnosis_alert,
    status_alert,
)
from edge_voice.core.breaker import CircuitState
from edge_voice.core.config import ConfigError
from edge_voice.core.diagnostics.report import Verdict
from edge_voice.core.diagnostics.service_check import diagnose_service
from edge_voice.core.settings_changes import guild_changes
from edge_voice.core.storage.database import StorageError
from edge_voice.core.storage.rules import SettingError
from edge_voice.core.storage.settings import SettingsRepository
from edge_voice.core.tasks import cancel_and_wait
from edge_voice.core.tts.modes import (
    DESCRIPTIONS,
    MODE_STATES,
    ServiceMode,
    apply_mode,
    current_mode,
)

log = logging.getLogger(__name__)


DIAGNOSE_DEADLINE = 90.0
"""Seconds /tts diagnose may take; the checks' own deadlines add up to less."""
POST_DEADLINE = 15.0


def admin_permission(name: str) -> discord.Permissions:
    """The permission ``name`` (e.g. ``manage_guild``) as flags; a clear error if unknown."""
    if name not in discord.Permissions.VALID_FLAGS:
        raise ConfigError(
            "config",
            "discord.admin_permission",
            "a Discord permission name such as 'manage_guild' or 'administrator'",
            name,
        )
    return discord.Permissions(**{name: True})


def alert_embed(alert: Alert) -> discord.Embed:
    """The Discord embed for ``alert``."""
    embed = discord.Embed(
        title=alert.title,
        description=alert.description,
        colour=alert.colour,
        timestamp=alert.at,
    )
    for name, value in alert.fields:
        embed.add_field(name=name, value=value, inline=False)
    return embed


class AdminCog(commands.Cog, name="TTS admin"):
    """Breaker status, diagnostics and reset for admins; breaker alerts to the log channel."""

    tts = app_commands.Group(
        name="tts",
        description="Text-to-speech administration",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: commands.Bot, *, sleep: Sleep = asyncio.sleep) -> None:
        self.bot = bot
        self.context = context = acquire_tts_context(bot)  # handed back in cog_unload
        self.config = context.config
        self.service = context.service
        settings = self.config.discord
        self.permission = settings.admin_permission
        # Set on this cog's copy of the group, before the tree ever serializes it.
        self.tts.default_permissions = admin_permission(self.permission)
        self.alerts = AlertBatcher(
            self.post_alert, settings.log_coalesce_seconds, sleep=sleep, post_deadline=POST_DEADLINE
        )
        self.startup_task: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        try:
            await self.context.open_state()
        except BaseException:
            await release_tts_context(self.bot)
            raise
        self.service.breakers.add_listener(self.alerts.add)
        self.context.operator_log.connect(self.post_alert)
        self.startup_task = asyncio.create_task(self._startup_report(), name="tts-startup-report")

    async def cog_unload(self) -> None:
        self.service.breakers.remove_listener(self.alerts.add)
        self.context.operator_log.disconnect(self.post_alert)
        if self.startup_task is not None:
            await cancel_and_wait(self.startup_task)
        await self.alerts.close()
        await release_tts_context(self.bot)

    # -- checks and errors ---------------------------------------------

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        if interaction.guild_id is None:
            raise app_commands.NoPrivateMessage()
        permissions = interaction.permissions
        if not (getattr(permissions, self.permission) or permissions.administrator):
            raise app_commands.MissingPermissions([self.permission])
        return True

    async def cog_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        command = interaction.command.qualified_name if interaction.command else "tts"
        if isinstance(error, app_commands.MissingPermissions):
            needed = self.permission.replace("_", " ").replace("guild", "server").title()
            message = f"You need the **{needed}** permission to use /{command}."
        elif isinstance(error, app_commands.NoPrivateMessage):
            message = f"/{command} only works in a server."
        else:
            cause = getattr(error, "original", error)
            log.error("/%s failed", command, exc_info=(type(cause), cause, cause.__traceback__))
            message = (
                f"/{command} failed ({type(cause).__name__}). The details are in the bot's log."
            )
        await respond(interaction, message)

    # -- commands ------------------------------------------------------

    @tts.command(name="status", description="Circuit breaker state of the service and each voice")
    async def status(self, interaction: discord.Interaction) -> None:
        cache, admission = self.context.cache, self.context.admission
        alert = status_alert(
            self.service.health(),
            cache=None if cache is None else cache.stats(),
            on_open=self.config.fallback.on_open,
            streams=None if admission is None else admission.stats(),
        )
        await respond(interaction, embed=alert_embed(alert))

    @tts.command(name="diagnose", description="Test the path to Edge TTS and suggest fixes")
    async def diagnose(self, interaction: discord.Interaction) -> None:
        await defer_privately(interaction)
        async with asyncio.timeout(DIAGNOSE_DEADLINE):
            diagnosis = await diagnose_service(self.service, self.config.edge)
        await respond(interaction, embed=alert_embed(diagnosis_alert(diagnosis)))

    @tts.command(name="reset", description="Close every TTS circuit breaker and clear its counters")
    async def reset(self, interaction: discord.Interaction) -> None:
        if not await self._may_control(interaction):
            return
        user = interaction.user
        before = {b.name: b.state for b in self.service.breakers}
        self.service.breakers.reset(f"reset by {user} with /tts reset")
        troubled = [f"{n}: {s.value}" for n, s in before.items() if s is not CircuitState.CLOSED]
        was = ", ".join(troubled) if troubled else "all were CLOSED already"
        await respond(
            interaction,
            f"Reset {len(before)} breakers ({was}). Speech is tried again with the next message.",
        )
        await self.post_alert(
            Alert.build(
                "TTS breakers reset",
                f"{user.mention} ({user}) reset the breakers with /tts reset.",
                STATE_COLOURS[CircuitState.CLOSED],
                [("Before", "\n".join(f"{n}: {s.value}" for n, s in before.items()))],
                discord.utils.utcnow(),
            )
        )

    @tts.command(name="mode", description="Switch the TTS breakers' mode (acts on every server)")
    @app_commands.describe(mode="normal, isolated (never call Edge), disabled, metrics only")
    @app_commands.choices(
        mode=[app_commands.Choice(name=m.value, value=m.value) for m in ServiceMode]
    )
    async def mode(self, interaction: discord.Interaction, mode: app_commands.Choice[str]) -> None:
        if not await self._may_control(interaction):
            return
        user = interaction.user
        chosen = ServiceMode(mode.value)
        was = current_mode(self.service.service_breaker)
        change = apply_mode(
            self.service.breakers, chosen, f"set to {chosen} by {user} with /tts mode"
        )
        if not change.changed:
            await respond(interaction, f"The mode is already **{chosen}**: {DESCRIPTIONS[chosen]}.")
            return
        await respond(
            interaction,
            f"🛠️ Mode: **{chosen}** (was {was}): {DESCRIPTIONS[chosen]}. "
            "This acts on every server the bot is in, and survives a restart.",
        )
        state = MODE_STATES.get(chosen, CircuitState.CLOSED)
        await self.post_alert(
            Alert.build(
                f"TTS mode: {chosen}",
                f"{user.mention} ({user}) set the mode to **{chosen}** (was {was}) with "
                f"/tts mode: {DESCRIPTIONS[chosen]}.",
                STATE_COLOURS[state],
                [("Before", "\n".join(f"{n}: {s.value}" for n, s in change.before.items()))],
                discord.utils.utcnow(),
            )
        )

    async def _may_control(self, interaction: discord.Interaction) -> bool:
        """/tts reset and /tts mode act on every server: with ``[discord]
        control_guild_ids`` set, only those servers' admins may use them."""
        allowed = self.config.discord.control_guild_ids
        if not allowed or interaction.guild_id in allowed:
            return True
        await respond(
            interaction,
            "This changes text-to-speech for every server the bot is in; the bot's "
            "operators allow it only from their own server.",
        )
        return False

    @tts.command(name="settings", description="Show this server's text-to-speech settings")
    async def show_settings(self, interaction: discord.Interaction) -> None:
        assert interaction.guild is not None  # interaction_check refused DMs
        await respond(
            interaction, embed=views.server_settings_embed(self.settings, interaction.guild)
        )

    @tts.command(name="set", description="Change this server's text-to-speech settings")
    @app_commands.describe(
        voice="The server's voice (auto: one for the server's language)",
        rate="Speaking rate, e.g. +10% or -20% (-50% to +100%)",
        announce_speaker='Say "NAME said" before messages',
        max_chars="The longest message read aloud",
        autojoin="Join the writer's voice channel when someone writes in the bound channel",
        required_role="Only read members with this role (@everyone: everyone)",
        skip_prefix="Messages starting with this are not read (none: read every message)",
    )
    async def set_settings(
        self,
        interaction: discord.Interaction,
        voice: str | None = None,
        rate: str | None = None,
        announce_speaker: bool | None = None,
        max_chars: int | None = None,
        autojoin: bool | None = None,
        required_role: discord.Role | None = None,
        skip_prefix: str | None = None,
    ) -> None:
        guild = interaction.guild
        assert guild is not None  # interaction_check refused DMs
        asked = guild_changes(
            {
                "voice": voice, "rate": rate, "announce_speaker": announce_speaker,
                "max_chars": max_chars, "autojoin": autojoin,
                "required_role": None if required_role is None else required_role.id,
                "skip_prefix": skip_prefix,
            },
            everyone_role_id=guild.id,
        )  # fmt: skip
        if not asked:
            await respond(
                interaction, "Give at least one setting to change; /tts settings shows them."
            )
            return
        before = self.settings.effective(guild.id)
        try:
            change = await self.settings.update_guild(guild.id, asked)
        except SettingError as exc:
            await respond(interaction, f"⚠️ Nothing was changed. {exc}")
            return
        except StorageError:
            log.exception("saving the settings of guild %s failed", guild.id)
            await respond(interaction, "⚠️ The settings could not be saved; the bot's log says why.")
            return
        text = views.server_change_text(change, tuple(asked), before, self.settings, guild)
        await respond(interaction, text)

    @set_settings.autocomplete("voice")
    async def _voice_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        locale = views.locale_of(interaction.guild)
        return views.voice_choices(
            self.context.catalogue, current, locale, auto_means="a voice for the server's language"
        )

    @property
    def settings(self) -> SettingsRepository:
        """The server and member settings (the store opened in ``cog_load``)."""
        return self.context.settings_store.settings

    # -- log channel ---------------------------------------------------

    def log_channel(self) -> discord.abc.Messageable | None:
        """The configured log channel if the bot can post embeds there; else None (warned)."""
        channel_id = self.config.discord.log_channel_id
        if not channel_id:
            return None
        channel = self.bot.get_channel(channel_id)
        if not isinstance(channel, discord.TextChannel | discord.Thread | discord.VoiceChannel):
            log.warning(
                "log channel %d not found, or not a text channel the bot can see", channel_id
            )
            return None
        permissions = channel.permissions_for(channel.guild.me)
        missing = [
            name
            for name in ("view_channel", "send_messages", "embed_links")
            if not getattr(permissions, name)
        ]
        if missing:
            log.warning("cannot post to log channel #%s: missing %s", channel, ", ".join(missing))
            return None
        return channel

    async def post_alert(self, alert: Alert) -> None:
        """Post ``alert`` to the log channel; problems are logged, never raised."""
        channel = self.log_channel()
        if channel is None:
            return
        try:
            async with asyncio.timeout(POST_DEADLINE):
                await channel.send(embed=alert_embed(alert), allowed_mentions=NO_MENTIONS)
        except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
            # aiohttp's errors too: discord.py lets a dropped connection through as it is.
            log.warning("could not post to log channel %s: %r", channel, exc)

    async def _startup_report(self) -> None:
        await self.bot.wait_until_ready()
        try:
            async with asyncio.timeout(DIAGNOSE_DEADLINE):
                diagnosis = await diagnose_service(self.service, self.config.edge)
        except Exception:
            log.exception("startup connectivity test failed to run")
            return
        level = logging.INFO if diagnosis.verdict is Verdict.HEALTHY else logging.WARNING
        log.log(level, "startup connectivity test: %s", diagnosis.headline)
        await self.post_alert(diagnosis_alert(diagnosis, "TTS startup connectivity test"))


async def setup(bot: commands.Bot) -> None:
    """Extension entry point: ``await bot.load_extension("edge_voice.cogs.admin")``."""
    await bot.add_cog(AdminCog(bot))

"""Voice cog: /join, /leave, /say, /skip, /clear, reading the bound text channel aloud, and
``speak()``.

Thin on purpose: it turns Discord events into :class:`core.speech.Utterance` objects for a
per-guild :class:`core.player.GuildPlayer` (queue, staleness, breaker-guarded synthesis, text
fallback) and formats the replies. Works in any ``commands.Bot``; it needs the
``message_content`` and ``voice_states`` intents to read channels and notice who is listening.

Each message is spoken as the server's settings and its author's choices say
(:mod:`edge_voice.core.speaking`: voice chain, rate, length, who is read). The sessions,
from joining to leaving (idle, nobody listening, voice gone), are kept by
:class:`~edge_voice.cogs.guild_sessions.GuildSessions`, and saved for restarts and
autojoin by :mod:`edge_voice.cogs.voice_restore`. The extension also adds
:class:`~edge_voice.cogs.personal.PersonalCog` (``/myvoice``, ``/voices``).

Other cogs speak through :meth:`VoiceCog.speak`::

    cog = bot.get_cog("Voice")
    result = await cog.speak(guild, "Welcome!", fallback_channel=channel)
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from edge_voice.cogs.guild_sessions import GuildSessions
from edge_voice.cogs.message_text import planned_utterance
from edge_voice.cogs.personal import PersonalCog
from edge_voice.cogs.replies import defer_privately, respond
from edge_voice.cogs.settings_views import locale_of
from edge_voice.cogs.text_output import ChannelTextOutput
from edge_voice.cogs.tts_context import TTSContext, acquire_tts_context, release_tts_context
from edge_voice.cogs.voice_join import bold, can_post, join_problem
from edge_voice.cogs.voice_session import VoiceSession, describe_result
from edge_voice.core.clock import Clock, monotonic
from edge_voice.core.config import Config
from edge_voice.core.metrics import PlayerFigures
from edge_voice.core.player import GuildPlayer
from edge_voice.core.speaking import SpeakingPlan, reading_refusal, speaking_plan
from edge_voice.core.speech import (
    FailureReason,
    SpeechResult,
    Utterance,
    posted_while_not_connected,
    text_post_for,
)
from edge_voice.core.storage.settings import SettingsRepository
from edge_voice.core.tts.errors import InvalidText
from edge_voice.core.tts.service import TTSService

log = logging.getLogger(__name__)

_SPOKEN_TYPES = (discord.MessageType.default, discord.MessageType.reply)

NOT_IN_VOICE = "You're not in a voice channel. Join one, then run /join again."
NOT_CONNECTED = "I'm not in a voice channel here. Use /join first."
NOTHING_PLAYING = "Nothing is being spoken right now."
NOTHING_QUEUED = "Nothing is waiting to be spoken."
GUILD_ONLY = "This command only works in a server."


class VoiceCog(commands.Cog, name="Voice"):
    """Speaks messages in voice channels; see the module docstring."""

    def __init__(self, bot: commands.Bot, *, clock: Clock = monotonic) -> None:
        self.bot = bot
        self.context: TTSContext  # set by cog_load: the bot's shared TTS context
        self.config: Config
        self.service: TTSService
        self.clock = clock
        """Monotonic clock for staleness, the "NAME said" window and idle time (tests swap it)."""
        self.sessions: GuildSessions  # set by cog_load, over the shared state store

    async def cog_load(self) -> None:
        self.context = acquire_tts_context(self.bot)  # handed back in cog_unload
        self.config, self.service = self.context.config, self.context.service
        try:
            state = await self.context.open_state()
        except BaseException:
            await release_tts_context(self.bot)
            raise
        self.sessions = GuildSessions(
            self.bot, self.context, state.sessions, clock=lambda: self.clock, on_outcome=self._count
        )
        self.context.metrics.player_stats = self.sessions.figures
        if self.bot.is_ready():  # loaded into a running bot: on_ready has passed
            self.sessions.keeper.restore_all(self.bot.guilds)
        intents = self.bot.intents
        if not (intents.message_content and intents.voice_states):
            log.warning("Voice cog: enable the message_content and voice_states intents")
        self.sessions.watch_idle()

    async def cog_unload(self) -> None:
        # Also runs when the host shuts down some other way (bot.run() and Ctrl-C, an
        # unload_extension): every guild is wound down at once.
        await self.sessions.close()
        self.context.metrics.player_stats = lambda: PlayerFigures(0, 0)
        await release_tts_context(self.bot)

    # -- API for other cogs ------------------------------------------------

    def player(self, guild: discord.abc.Snowflake) -> GuildPlayer | None:
        """The guild's player while the bot is joined there."""
        session = self.sessions.get(guild.id)
        return session.player if session else None

    def bound_channel(self, guild: discord.abc.Snowflake) -> discord.abc.Messageable | None:
        """The text channel read aloud (and posted to) in ``guild``, if joined."""
        session = self.sessions.get(guild.id)
        return session.text.channel if session else None

    async def speak(
        self,
        guild: discord.Guild,
        text: str,
        *,
        fallback_channel: discord.abc.Messageable | None = None,
    ) -> SpeechResult:
        """Speak ``text`` in ``guild``'s voice channel, as the bot; return what happened.

        The text is cleaned like a message, spoken in the server's voice and cut to its
        ``max_chars``. The result is exactly one of: ``SPOKEN``; ``POSTED_AS_TEXT`` (by
        the guild's player in the bound channel, or, with no voice connection, in
        ``fallback_channel``, else the bound channel, with reason "not connected");
        ``FAILED``, with the reason: "unspeakable", or "text post failed" when there was
        no channel to post in or the post failed (the detail says which).
        """
        session = self.sessions.get(guild.id)
        speaker: Any = guild.me or self.bot.user
        plan = self._plan(guild, None)
        try:
            utterance, _ = self._utterance(guild, speaker, text, session, plan, announce=False)
        except InvalidText as exc:
            return self._count(SpeechResult.failed(FailureReason.UNSPEAKABLE, exc.message))
        if session is not None and session.voice.is_connected():
            return await session.player.speak(utterance, plan.settings)
        output = session.text if session is not None else None
        if fallback_channel is not None:
            output = ChannelTextOutput(fallback_channel, warn=self.context.operator_log.warn)
        posted = None if output is None else await output.post(text_post_for(utterance))
        return self._count(posted_while_not_connected(posted))

    def _count(self, result: SpeechResult) -> SpeechResult:
        # The player counts what it handles (on_outcome); speak() counts the rest.
        self.context.metrics.message(result.outcome.value)
        return result

    async def leave_idle(self, now: float | None = None) -> list[discord.Guild]:
        """Leave every guild where nothing was said for ``player.idle_timeout`` seconds
        (``now``: a reading of :attr:`clock`, default: read it); the guilds left."""
        return await self.sessions.leave_idle(now)

    # -- slash commands ----------------------------------------------------

    @app_commands.command(name="join", description="Join your voice channel and read this channel")
    @app_commands.guild_only()
    async def join(self, interaction: discord.Interaction) -> None:
        """Join the caller's voice channel; bind the text channel the command ran in."""
        member = await self._member_or_reply(interaction)
        if member is None:
            return
        guild = member.guild
        if member.voice is None or member.voice.channel is None:
            await respond(interaction, NOT_IN_VOICE)
            return
        channel = member.voice.channel
        problem = join_problem(channel, guild.me)
        text_channel = interaction.channel
        if problem is None and not can_post(text_channel, guild.me):
            problem = (
                "I can't send messages in this channel, so messages I can't speak would be "
                "lost. Run /join in a channel where I can post."
            )
        if problem is not None or not isinstance(text_channel, discord.abc.Messageable):
            await respond(interaction, problem or GUILD_ONLY)
            return
        await defer_privately(interaction)
        problem = await self.join_and_bind(guild, channel, text_channel)
        if problem is not None:
            await respond(interaction, problem)
            return
        where = getattr(text_channel, "mention", "this channel")
        await respond(interaction, f"🔊 Joined {bold(channel.name)}; reading {where} aloud.")

    @app_commands.command(name="leave", description="Leave the voice channel")
    @app_commands.guild_only()
    async def leave(self, interaction: discord.Interaction) -> None:
        """Leave voice; anything still queued is posted as text."""
        member = await self._member_or_reply(interaction)
        if member is None:
            return
        guild = member.guild
        if not self.sessions.joined(guild) and guild.voice_client is None:
            await respond(interaction, NOT_CONNECTED)
            return
        await respond(interaction, "👋 Leaving voice.")
        await self.sessions.end(guild.id)

    @app_commands.command(name="say", description="Speak text in the voice channel")
    @app_commands.describe(text="What to say")
    @app_commands.guild_only()
    async def say(
        self, interaction: discord.Interaction, text: app_commands.Range[str, 1, 2000]
    ) -> None:
        """Speak ``text``; the reply says whether it was spoken, posted or rejected."""
        member = await self._member_or_reply(interaction)
        if member is None:
            return
        session = self.sessions.get(member.guild.id)
        channel = session.voice_channel() if session is not None else None
        if session is None or channel is None:
            await respond(interaction, NOT_CONNECTED)
            return
        if member.voice is None or member.voice.channel != channel:
            await respond(interaction, f"Join {bold(channel.name)} to use /say.")
            return
        plan = self._plan(member.guild, member.id)
        try:
            utterance, shortened = self._utterance(member.guild, member, text, session, plan)
        except InvalidText as exc:
            await respond(interaction, f"That can't be spoken: {exc.message}.")
            return
        await defer_privately(interaction)
        result = await session.player.speak(utterance, plan.settings)
        await respond(interaction, describe_result(result, session, shortened))

    @app_commands.command(name="skip", description="Stop the message being spoken")
    @app_commands.guild_only()
    async def skip(self, interaction: discord.Interaction) -> None:
        """Stop the current utterance; the queue goes on."""
        member = await self._member_or_reply(interaction)
        if member is None:
            return
        session = self.sessions.get(member.guild.id)
        if session is None or not session.player.skip():
            await respond(interaction, NOTHING_PLAYING)
            return
        await respond(interaction, "⏭️ Skipped.")

    @app_commands.command(name="clear", description="Drop the messages waiting to be spoken")
    @app_commands.guild_only()
    async def clear(self, interaction: discord.Interaction) -> None:
        """Empty the guild's queue (not the message being spoken); say how many were dropped."""
        member = await self._member_or_reply(interaction)
        if member is None:
            return
        session = self.sessions.get(member.guild.id)
        channel = session.voice_channel() if session is not None else None
        if session is None or channel is None:
            await respond(interaction, NOT_CONNECTED)
            return
        admin = self.config.discord.admin_permission
        permissions = interaction.permissions
        listening = member.voice is not None and member.voice.channel == channel
        if not (listening or getattr(permissions, admin) or permissions.administrator):
            await respond(interaction, f"Join {bold(channel.name)} to use /clear.")
            return
        dropped = len(session.player.clear())
        if not dropped:
            await respond(interaction, NOTHING_QUEUED)
            return
        count = f"{dropped} queued message{'s' if dropped != 1 else ''}"
        where = getattr(session.text.channel, "mention", "the channel")
        await respond(interaction, f"🧹 Dropped {count}; they were not read, and stay in {where}.")
        await session.text.post(f"🧹 {member.mention} dropped {count} that had not been read yet.")

    async def cog_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        log.error(
            "voice command /%s failed", getattr(interaction.command, "name", "?"), exc_info=error
        )
        text = "Something went wrong with that command; it has been logged."
        await respond(interaction, text)

    # -- listeners ---------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Speak messages in the bound channel by members listening in the bot's channel."""
        guild, author = message.guild, message.author
        if guild is None or author.bot or message.webhook_id is not None:
            return
        if message.type not in _SPOKEN_TYPES:
            return
        session = self.sessions.get(guild.id)
        if session is not None and message.channel.id != getattr(session.text.channel, "id", None):
            return
        settings = self.settings.effective(guild.id)
        if session is None and not self.sessions.keeper.may_autojoin(message, settings):
            return
        roles = [role.id for role in getattr(author, "roles", ())]
        if reading_refusal(settings, message.content, roles) is not None:
            return
        if (await self.bot.get_context(message)).valid:
            return  # a command for the host bot
        if session is None:
            if not await self.sessions.keeper.autojoin(message):
                return
            session = self.sessions.by_guild[guild.id]
        channel = session.voice_channel()
        voice = getattr(author, "voice", None)
        # A deleted voice channel ends the session within moments; until then its
        # messages are still taken (and posted as text), never dropped.
        if channel is not None and (voice is None or voice.channel != channel):
            return
        plan = self._plan(guild, author.id)
        try:
            utterance, _ = self._utterance(
                guild, author, message.content, session, plan, message=message
            )
        except InvalidText:
            return  # nothing to say ("..."): the message itself is still there
        session.player.submit(utterance, plan.settings)

    @commands.Cog.listener()
    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        """Leave when no one but bots is left in the session's voice channel (the bot's own
        voice state is the supervisor's business: :meth:`GuildSessions.member_moved`)."""
        # An argument is read now: discord.py updates `after` in place later.
        await self.sessions.member_moved(member, before.channel, after.channel)

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """Drop the session of a guild the bot was removed from, saved one included."""
        await self.sessions.removed_from(guild)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Rejoin, after a restart, the saved sessions that still have listeners."""
        self.sessions.keeper.restore_all(self.bot.guilds)

    @commands.Cog.listener()
    async def on_guild_available(self, guild: discord.Guild) -> None:
        """A guild that was unavailable (or arrives late at startup) gets its restore too."""
        if self.bot.is_ready():
            self.sessions.keeper.restore_soon(guild)

    # -- settings and sessions (the sessions: GuildSessions') ----------------

    @property
    def settings(self) -> SettingsRepository:
        """The server and member settings (the shared store opened in ``cog_load``)."""
        return self.context.settings_store.settings

    def joined(self, guild: discord.Guild) -> bool:
        """Whether the cog has a session in ``guild``."""
        return self.sessions.joined(guild)

    async def join_and_bind(
        self, guild: discord.Guild, channel: Any, text_channel: discord.abc.Messageable
    ) -> str | None:
        """Connect (or move) to ``channel``, read ``text_channel`` aloud, and save the
        session for restarts; a problem for people, or None."""
        return await self.sessions.join_and_bind(guild, channel, text_channel)

    async def post_bound(self, guild: discord.Guild, text: str) -> None:
        """Post ``text`` in the guild's bound channel, if joined (no pings)."""
        await self.sessions.post_bound(guild, text)

    # -- internals ---------------------------------------------------------

    async def _member_or_reply(self, interaction: discord.Interaction) -> discord.Member | None:
        if interaction.guild is None or not isinstance(interaction.user, discord.Member):
            await respond(interaction, GUILD_ONLY)
            return None
        return interaction.user

    def _plan(self, guild: discord.Guild, user_id: int | None) -> SpeakingPlan:
        return speaking_plan(self.settings, guild.id, user_id, locale_of(guild))

    def _utterance(
        self,
        guild: discord.Guild,
        author: Any,
        content: str,
        session: VoiceSession | None,
        plan: SpeakingPlan,
        *,
        announce: bool = True,
        message: discord.Message | None = None,
    ) -> tuple[Utterance, bool]:
        """:func:`~edge_voice.cogs.message_text.planned_utterance`, now, in ``session``."""
        return planned_utterance(
            guild, author, content, self.clock(), plan,
            spoken_max_chars=self.service.max_chars,
            prefixer=session.prefixer if session else None, announce=announce, message=message,
        )  # fmt: skip


async def teardown(bot: commands.Bot) -> None:
    """Unloading the extension removes the personal cog too (it lives in its own module,
    which discord.py would not remove with this one)."""
    await bot.remove_cog(PersonalCog.__cog_name__)


async def setup(bot: commands.Bot) -> None:
    """Extension entry point: ``await bot.load_extension("edge_voice.cogs.voice")``; adds
    the voice cog and the personal cog (``/myvoice``, ``/voices``)."""
    await bot.add_cog(VoiceCog(bot))
    await bot.add_cog(PersonalCog(bot))

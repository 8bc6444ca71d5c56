"""Voice cog: /join, /leave, /say, /skip, reading the bound text channel aloud, and ``speak()``.

Thin on purpose: it turns Discord events into :class:`core.speech.Utterance` objects for a
per-guild :class:`core.player.GuildPlayer` (queue, staleness, breaker-guarded synthesis, text
fallback) and formats the replies. Works in any ``commands.Bot``; it needs the
``message_content`` and ``voice_states`` intents to read channels and notice who is listening.

Other cogs speak through :meth:`VoiceCog.speak`::

    cog = bot.get_cog("Voice")
    result = await cog.speak(guild, "Welcome!", fallback_channel=channel)
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from edge_voice.cogs.message_text import build_utterance
from edge_voice.cogs.replies import defer_privately, respond
from edge_voice.cogs.text_output import ChannelTextOutput
from edge_voice.cogs.tts_context import TTSContext, acquire_tts_context, release_tts_context
from edge_voice.cogs.voice_join import bold, can_post, connect_voice, join_problem
from edge_voice.cogs.voice_link import LinkedVoiceClient
from edge_voice.cogs.voice_session import (
    DISCONNECT_TIMEOUT,
    VoiceSession,
    describe_result,
    disconnect_timeout,
    leave_voice,
    open_session,
)
from edge_voice.core.clock import Clock, monotonic
from edge_voice.core.config import Config
from edge_voice.core.player import GuildPlayer
from edge_voice.core.speech import (
    FailureReason,
    SpeechOutcome,
    SpeechResult,
    TextPostReason,
    Utterance,
    text_post_for,
)
from edge_voice.core.tasks import cancel_and_wait
from edge_voice.core.tts.errors import InvalidText
from edge_voice.core.tts.service import TTSService

log = logging.getLogger(__name__)

_SPOKEN_TYPES = (discord.MessageType.default, discord.MessageType.reply)

NOT_IN_VOICE = "You're not in a voice channel. Join one, then run /join again."
NOT_CONNECTED = "I'm not in a voice channel here. Use /join first."
NOTHING_PLAYING = "Nothing is being spoken right now."
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
        self._sessions: dict[int, VoiceSession] = {}
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._idle_task: asyncio.Task[None] | None = None

    async def cog_load(self) -> None:
        self.context = acquire_tts_context(self.bot)  # handed back in cog_unload
        self.config, self.service = self.context.config, self.context.service
        intents = self.bot.intents
        if not (intents.message_content and intents.voice_states):
            log.warning("Voice cog: enable the message_content and voice_states intents")
        if self.config.player.idle_timeout > 0:
            self._idle_task = asyncio.create_task(self._watch_idle(), name="voice-idle-watch")

    async def cog_unload(self) -> None:
        # Also runs when the host shuts down some other way (bot.run() and Ctrl-C, an
        # unload_extension): every guild is wound down at once, each within its
        # player's shutdown deadline plus the disconnect timeout.
        if self._idle_task is not None:
            await cancel_and_wait(self._idle_task)
        leave = disconnect_timeout()  # here: the sessions end in tasks of their own
        ending = [
            self._end_session(guild_id, leave_within=leave) for guild_id in list(self._sessions)
        ]
        for failure in await asyncio.gather(*ending, return_exceptions=True):
            if isinstance(failure, Exception):
                log.error("ending a voice session failed", exc_info=failure)
        await release_tts_context(self.bot)

    # -- API for other cogs ------------------------------------------------

    def player(self, guild: discord.abc.Snowflake) -> GuildPlayer | None:
        """The guild's player while the bot is joined there."""
        session = self._sessions.get(guild.id)
        return session.player if session else None

    def bound_channel(self, guild: discord.abc.Snowflake) -> discord.abc.Messageable | None:
        """The text channel read aloud (and posted to) in ``guild``, if joined."""
        session = self._sessions.get(guild.id)
        return session.text.channel if session else None

    async def speak(
        self,
        guild: discord.Guild,
        text: str,
        *,
        fallback_channel: discord.abc.Messageable | None = None,
    ) -> SpeechResult:
        """Speak ``text`` in ``guild``'s voice channel, as the bot; return what happened.

        The text is cleaned like a message and cut to ``text.max_chars``. The result is
        exactly one of: ``SPOKEN``; ``POSTED_AS_TEXT`` (by the guild's player in the bound
        channel, or, with no voice connection, in ``fallback_channel``, else the bound
        channel, with reason "not connected"); ``FAILED``, with the reason:
        "unspeakable", or "text post failed" when there was no channel to post in or
        the post failed (the detail says which).
        """
        session = self._sessions.get(guild.id)
        speaker: Any = guild.me or self.bot.user
        try:
            utterance, _ = self._utterance(guild, speaker, text, session, announce=False)
        except InvalidText as exc:
            return SpeechResult.failed(FailureReason.UNSPEAKABLE, exc.message)
        if session is not None and session.voice.is_connected():
            return await session.player.speak(utterance)
        why = TextPostReason.NOT_CONNECTED.value
        if session is not None and fallback_channel is None:
            output = session.text
        elif fallback_channel is not None:
            output = ChannelTextOutput(fallback_channel, warn=self.context.operator_log.warn)
        else:
            detail = f"{why}, and there is no text channel to post in"
            return SpeechResult.failed(FailureReason.TEXT_POST_FAILED, detail)
        posted = await output.post(text_post_for(utterance))
        if not posted.delivered:
            detail = f"{why}, and posting it as text failed: {posted.reason}"
            return SpeechResult.failed(FailureReason.TEXT_POST_FAILED, detail)
        return SpeechResult(SpeechOutcome.POSTED_AS_TEXT, why)

    async def leave_idle(self, now: float | None = None) -> list[discord.Guild]:
        """Leave every guild where nothing was said for ``player.idle_timeout`` seconds.

        ``now`` is a reading of :attr:`clock` (default: read it). Returns the guilds left.
        """
        timeout = self.config.player.idle_timeout
        if timeout <= 0:
            return []
        now = self.clock() if now is None else now
        left = []
        for guild_id, session in list(self._sessions.items()):
            player = session.player
            if player.speaking or player.pending or now - player.last_activity < timeout:
                continue
            guild = self.bot.get_guild(guild_id)
            if guild is None:
                continue
            minutes = f"{timeout / 60:g} minute{'s' if timeout != 60 else ''}"
            await self._end_session(guild_id, f"👋 Left voice after {minutes} of silence.")
            left.append(guild)
        return left

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
        async with self._locks[guild.id]:
            timeout = self.config.player.voice_connect_timeout
            problem = await connect_voice(
                guild, channel, connect_timeout=timeout, cls=LinkedVoiceClient
            )
            if problem is None:
                self._bind(guild, channel, text_channel)
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
        if guild.id not in self._sessions and guild.voice_client is None:
            await respond(interaction, NOT_CONNECTED)
            return
        await respond(interaction, "👋 Leaving voice.")
        await self._end_session(guild.id)

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
        session = self._sessions.get(member.guild.id)
        channel = session.voice_channel() if session is not None else None
        if session is None or channel is None:
            await respond(interaction, NOT_CONNECTED)
            return
        if member.voice is None or member.voice.channel != channel:
            await respond(interaction, f"Join {bold(channel.name)} to use /say.")
            return
        try:
            utterance, shortened = self._utterance(member.guild, member, text, session)
        except InvalidText as exc:
            await respond(interaction, f"That can't be spoken: {exc.message}.")
            return
        await defer_privately(interaction)
        result = await session.player.speak(utterance)
        await respond(interaction, describe_result(result, session, shortened))

    @app_commands.command(name="skip", description="Stop the message being spoken")
    @app_commands.guild_only()
    async def skip(self, interaction: discord.Interaction) -> None:
        """Stop the current utterance; the queue goes on."""
        member = await self._member_or_reply(interaction)
        if member is None:
            return
        session = self._sessions.get(member.guild.id)
        if session is None or not session.player.skip():
            await respond(interaction, NOTHING_PLAYING)
            return
        await respond(interaction, "⏭️ Skipped.")

    async def cog_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        log.error(
            "voice command /%s failed", getattr(interaction.command, "name", "?"), exc_info=error
        )
        text = "Something went wrong with that command; it has been logged."
        if interaction.response.is_done():
            await respond(interaction, text)
        else:
            await respond(interaction, text)

    # -- listeners ---------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Speak messages in the bound channel by members listening in the bot's channel."""
        guild = message.guild
        if guild is None or message.author.bot or message.webhook_id is not None:
            return
        session = self._sessions.get(guild.id)
        if session is None or message.channel.id != getattr(session.text.channel, "id", None):
            return
        skip_prefix = self.config.text.skip_prefix
        if message.type not in _SPOKEN_TYPES or (
            skip_prefix and message.content.startswith(skip_prefix)
        ):
            return
        channel = session.voice_channel()
        voice = getattr(message.author, "voice", None)
        # A deleted voice channel ends the session within moments; until then its
        # messages are still taken (and posted as text), never dropped.
        if channel is not None and (voice is None or voice.channel != channel):
            return
        if (await self.bot.get_context(message)).valid:
            return  # a command for the host bot
        try:
            utterance, _ = self._utterance(guild, message.author, message.content, session)
        except InvalidText:
            return  # nothing to say (an image, "..."): the message itself is still there
        session.player.submit(utterance)

    @commands.Cog.listener()
    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        """Leave when no one but bots is left in the session's voice channel.

        The bot's own voice state is the session's supervisor's business: discord.py
        leaves and rejoins by itself while it reconnects, which must not end the session.
        """
        after_channel = after.channel  # discord.py updates `after` in place later
        session = self._sessions.get(member.guild.id)
        if session is None or (self.bot.user is not None and member.id == self.bot.user.id):
            return
        channel = session.voice_channel()
        if channel is None or before.channel != channel or after_channel == channel:
            return
        if not any(not listener.bot for listener in channel.members):
            await self._end_session(member.guild.id, "👋 Left voice: nobody is listening anymore.")

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """Drop the session of a guild the bot was removed from."""
        if guild.id in self._sessions:
            await self._end_session(guild.id)

    # -- internals ---------------------------------------------------------

    async def _member_or_reply(self, interaction: discord.Interaction) -> discord.Member | None:
        if interaction.guild is None or not isinstance(interaction.user, discord.Member):
            await respond(interaction, GUILD_ONLY)
            return None
        return interaction.user

    def _bind(
        self, guild: discord.Guild, voice_channel: Any, channel: discord.abc.Messageable
    ) -> None:
        session = self._sessions.get(guild.id)
        if session is not None:
            session.text.channel = channel
            session.link.channel_id = voice_channel.id
            return
        session = open_session(
            self.bot,
            guild,
            voice_channel,
            channel,
            self.service,
            self.config,
            lock=self._locks[guild.id],
            cache=self.context.cache,
            offline_voice=self.context.offline_voice,
            clock=self.clock,
            warn=self.context.operator_log.warn,
        )
        self._sessions[guild.id] = session
        session.watch = asyncio.create_task(
            self._watch_link(guild.id, session), name=f"voice-link-{guild.id}"
        )

    async def _watch_link(self, guild_id: int, session: VoiceSession) -> None:
        """Run the session's supervisor; when it says the session is over, end it."""
        end = await session.supervisor.run()
        log.info("guild %s: ending the voice session: %s", guild_id, end.name.lower())
        await self._end_session(guild_id, end.notice, only=session)

    async def _end_session(
        self,
        guild_id: int,
        notice: str | None = None,
        *,
        only: VoiceSession | None = None,
        leave_within: float = DISCONNECT_TIMEOUT,
    ) -> None:
        """Post what is queued (then ``notice``) and leave voice; ``only`` ends the session
        only if it is still that one (a /join may have replaced it meanwhile)."""
        session = self._sessions.get(guild_id)
        if session is not None and (only is None or session is only):
            # Before the lock: a rejoin in progress holds it, and stopping it releases it.
            await session.stop_watching()
        async with self._locks[guild_id]:
            session = self._sessions.get(guild_id)
            if only is not None and session is not only:
                return
            self._sessions.pop(guild_id, None)
            if session is not None:
                await session.player.close()
                if notice:
                    await session.text.post(notice)
            guild = self.bot.get_guild(guild_id)
            client = guild.voice_client if guild is not None else None
            await leave_voice(client, leave_within)

    def _utterance(
        self,
        guild: discord.Guild,
        author: Any,
        content: str,
        session: VoiceSession | None,
        *,
        announce: bool = True,
    ) -> tuple[Utterance, bool]:
        """The cleaned utterance and whether it was cut; raises ``InvalidText``."""
        return build_utterance(
            guild, author, content, self.clock(), max_chars=self.config.text.max_chars,
            spoken_max_chars=self.service.max_chars,
            prefixer=session.prefixer if session else None, announce=announce,
        )  # fmt: skip

    async def _watch_idle(self) -> None:
        interval = min(30.0, max(1.0, self.config.player.idle_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.leave_idle()
            except Exception:  # the watcher must outlive one bad guild
                log.exception("idle check failed")


async def setup(bot: commands.Bot) -> None:
    """Extension entry point: ``await bot.load_extension("edge_voice.cogs.voice")``."""
    await bot.add_cog(VoiceCog(bot))

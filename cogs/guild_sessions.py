"""The voice cog's sessions, one per guild, from joining to leaving.

:class:`GuildSessions` holds each guild's :class:`~edge_voice.cogs.voice_session.VoiceSession`
and everything that starts or ends one: joining and binding a text channel, watching the
voice link until its supervisor says the session is over, leaving voice but reading on
as text when voice gave up, ending a session (posting what is still queued) on /leave,
when nobody is listening, when the bot is removed from the guild, and in guilds where
nothing was said for ``player.idle_timeout``. Each guild's joins, rejoins
and endings take that guild's lock, so they never overlap.

It owns the :class:`~edge_voice.cogs.voice_restore.SessionKeeper` and is the joiner the
keeper restores and autojoins through. The voice cog's commands and listeners call it;
the replies to commands stay the cog's, the notices a session posts itself are here.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import discord
from discord.ext import commands

from edge_voice.cogs.tts_context import TTSContext
from edge_voice.cogs.voice_join import connect_voice
from edge_voice.cogs.voice_link import LinkedVoiceClient
from edge_voice.cogs.voice_restore import SessionKeeper
from edge_voice.cogs.voice_session import (
    DISCONNECT_TIMEOUT,
    VoiceSession,
    disconnect_timeout,
    leave_voice,
    open_session,
    player_figures,
)
from edge_voice.core.clock import Clock
from edge_voice.core.metrics import PlayerFigures
from edge_voice.core.speech import SpeechResult
from edge_voice.core.storage.sessions import SessionStore
from edge_voice.core.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class GuildSessions:
    """The voice cog's sessions by guild, and their lifecycle; see the module docstring."""

    def __init__(
        self,
        bot: commands.Bot,
        context: TTSContext,
        store: SessionStore,
        *,
        clock: Callable[[], Clock],
        on_outcome: Callable[[SpeechResult], object],
    ) -> None:
        self.bot = bot
        self.context = context
        self._clock = clock
        self.by_guild: dict[int, VoiceSession] = {}
        self.keeper = SessionKeeper(store, self)
        self._on_outcome = on_outcome
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._idle_task: asyncio.Task[None] | None = None

    @property
    def clock(self) -> Clock:
        """The voice cog's clock as it is now (tests swap it): each new session's player
        takes it, and :meth:`leave_idle` reads it."""
        return self._clock()

    def get(self, guild_id: int) -> VoiceSession | None:
        """The guild's session while the bot is joined there."""
        return self.by_guild.get(guild_id)

    def figures(self) -> PlayerFigures:
        """What a metrics scrape reads of the sessions: streams playing, messages waiting."""
        return player_figures(self.by_guild.values(), self.context.admission)

    def joined(self, guild: discord.Guild) -> bool:
        """Whether there is a session in ``guild``."""
        return guild.id in self.by_guild

    async def join_and_bind(
        self, guild: discord.Guild, channel: Any, text_channel: discord.abc.Messageable
    ) -> str | None:
        """Connect (or move) to ``channel``, read ``text_channel`` aloud, and save the
        session for restarts; a problem for people, or None."""
        async with self._locks[guild.id]:
            timeout = self.context.config.player.voice_connect_timeout
            problem = await connect_voice(
                guild, channel, connect_timeout=timeout, cls=LinkedVoiceClient
            )
            if problem is None:
                old = self.by_guild.get(guild.id)
                if old is not None and old.text_only:  # voice gave up on it: a fresh one
                    del self.by_guild[guild.id]
                    await old.player.close()
                self._bind(guild, channel, text_channel)
        if problem is None:
            await self.keeper.remember(guild, channel, text_channel)
        return problem

    async def post_bound(self, guild: discord.Guild, text: str) -> None:
        """Post ``text`` in the guild's bound channel, if joined (no pings)."""
        session = self.by_guild.get(guild.id)
        if session is not None:
            await session.text.post(text)

    async def end(
        self,
        guild_id: int,
        notice: str | None = None,
        *,
        only: VoiceSession | None = None,
        leave_within: float = DISCONNECT_TIMEOUT,
        forget: bool = True,
    ) -> None:
        """Post what is queued (then ``notice``) and leave voice; ``only`` ends the session
        only if it is still that one (a /join may have replaced it meanwhile).

        ``forget``: the bot left on purpose, so a restart does not rejoin (the bound
        channel stays saved for autojoin).
        """
        session = self.by_guild.get(guild_id)
        if session is not None and (only is None or session is only):
            # Before the lock: a rejoin in progress holds it, and stopping it releases it.
            await session.stop_watching()
        async with self._locks[guild_id]:
            session = self.by_guild.get(guild_id)
            if only is not None and session is not only:
                return
            guild = self.bot.get_guild(guild_id)
            if forget and guild is not None:
                await self.keeper.left(guild)
            self.by_guild.pop(guild_id, None)
            if session is not None:
                await session.player.close()
                if notice:
                    await session.text.post(notice)
            client = guild.voice_client if guild is not None else None
            await leave_voice(client, leave_within)

    async def member_moved(self, member: discord.Member, left: Any, joined: Any) -> None:
        """Leave when ``member`` moved from the session's voice channel (``left``) to
        ``joined`` (None: out of voice) and no one but bots is left there.

        The bot's own voice state is the session's supervisor's business: discord.py
        leaves and rejoins by itself while it reconnects, which must not end the session.
        """
        session = self.by_guild.get(member.guild.id)
        if session is None or (self.bot.user is not None and member.id == self.bot.user.id):
            return
        channel = session.voice_channel()
        if channel is None or left != channel or joined == channel:
            return
        if not any(not listener.bot for listener in channel.members):
            notice = None if session.text_only else "👋 Left voice: nobody is listening anymore."
            await self.end(member.guild.id, notice)

    async def removed_from(self, guild: discord.Guild) -> None:
        """The bot was removed from ``guild``: end its session; nothing of it is kept."""
        if guild.id in self.by_guild:
            await self.end(guild.id, forget=False)
        await self.keeper.forget(guild)

    async def leave_idle(self, now: float | None = None) -> list[discord.Guild]:
        """Leave every guild where nothing was said for ``player.idle_timeout`` seconds.

        ``now`` is a reading of :attr:`clock` (default: read it). Returns the guilds left.
        """
        timeout = self.context.config.player.idle_timeout
        if timeout <= 0:
            return []
        now = self.clock() if now is None else now
        left = []
        for guild_id, session in list(self.by_guild.items()):
            player = session.player
            if player.speaking or player.pending or now - player.last_activity < timeout:
                continue
            guild = self.bot.get_guild(guild_id)
            if guild is None:
                continue
            minutes = f"{timeout / 60:g} minute{'s' if timeout != 60 else ''}"
            await self.end(guild_id, f"👋 Left voice after {minutes} of silence.")
            left.append(guild)
        return left

    def watch_idle(self) -> None:
        """Check for idle guilds in the background from now on, if ``idle_timeout`` is on."""
        if self.context.config.player.idle_timeout > 0:
            self._idle_task = asyncio.create_task(self._watch_idle(), name="voice-idle-watch")

    async def close(self) -> None:
        """Stop the idle check, the keeper's restores and autojoins, and end every session
        at once, each within its player's shutdown deadline plus the disconnect timeout."""
        if self._idle_task is not None:
            await cancel_and_wait(self._idle_task)
        await self.keeper.close()
        leave = disconnect_timeout()  # here: the sessions end in tasks of their own
        # Kept in the store (forget=False): a restart rejoins where listeners still are.
        ending = [
            self.end(guild_id, leave_within=leave, forget=False) for guild_id in list(self.by_guild)
        ]
        for failure in await asyncio.gather(*ending, return_exceptions=True):
            if isinstance(failure, Exception):
                log.error("ending a voice session failed", exc_info=failure)

    # -- internals ---------------------------------------------------------

    def _bind(
        self, guild: discord.Guild, voice_channel: Any, channel: discord.abc.Messageable
    ) -> None:
        session = self.by_guild.get(guild.id)
        if session is not None:
            session.text.channel = channel
            session.link.channel_id = voice_channel.id
            return
        context = self.context
        session = open_session(
            self.bot,
            guild,
            voice_channel,
            channel,
            context.service,
            context.config,
            lock=self._locks[guild.id],
            cache=context.cache,
            offline_voice=context.offline_voice,
            clock=self.clock,
            warn=context.operator_log.warn,
            on_outcome=self._on_outcome,
            admission=context.admission,
            converter=context.converter,
            pacer=context.pacer,
        )
        self.by_guild[guild.id] = session
        session.watch = asyncio.create_task(
            self._watch_link(guild.id, session), name=f"voice-link-{guild.id}"
        )

    async def _watch_link(self, guild_id: int, session: VoiceSession) -> None:
        """Run the session's supervisor; when it says the session is over, end it (or,
        when voice gave up, only its voice part: the bound channel stays, as text)."""
        end = await session.supervisor.run()
        log.info("guild %s: ending the voice session: %s", guild_id, end.name.lower())
        if end.keeps_channel:
            await self._end_voice(guild_id, end.notice, session)
        else:
            await self.end(guild_id, end.notice, only=session)

    async def _end_voice(self, guild_id: int, notice: str, session: VoiceSession) -> None:
        """Leave voice but keep ``session`` reading its channel: its player posts every
        message as text (the supervisor stays down) until /join, /leave or nobody is left."""
        async with self._locks[guild_id]:
            if self.by_guild.get(guild_id) is not session:
                return
            session.text_only = True
            guild = self.bot.get_guild(guild_id)
            if guild is not None:
                await self.keeper.left(guild)
            await session.text.post(notice)
            await leave_voice(guild.voice_client if guild is not None else None, DISCONNECT_TIMEOUT)

    async def _watch_idle(self) -> None:
        interval = min(30.0, max(1.0, self.context.config.player.idle_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.leave_idle()
            except Exception:  # the watcher must outlive one bad guild
                log.exception("idle check failed")

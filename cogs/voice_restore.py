"""Sessions across restarts, and autojoin, for the voice cog.

:class:`SessionKeeper` writes each guild's session to the state store
(:class:`~edge_voice.core.storage.sessions.SessionStore`) when the bot joins, marks it
left when the bot leaves on purpose (the bound text channel stays), and forgets it
when the bot leaves the server. The voice cog keeps the session alive only in memory
otherwise: a store that cannot be written is a logged warning, never a failed /join.

**After a restart** (on ready, and for each guild as it becomes available) a saved
session still marked ``rejoin`` is resumed once per process: only if non-bot members
are in its voice channel and the bound text channel is still there; then one short
notice goes to that channel. Otherwise nothing is joined and nothing is forgotten.

**Autojoin** (the ``autojoin`` server setting): a member in a voice channel who writes
in the bound channel while the bot is not in voice brings it to their channel; messages
that arrive during that join wait for it instead of starting another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import Any, Final, Protocol

import discord

from edge_voice.cogs.voice_join import can_post, join_problem
from edge_voice.core.storage.database import StorageError
from edge_voice.core.storage.rules import SettingError
from edge_voice.core.storage.sessions import GuildSession, SessionStore
from edge_voice.core.storage.settings import EffectiveGuildSettings
from edge_voice.core.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RESTORE_NOTICE: Final = "🔊 Back after a restart; reading {channel} again."


class VoiceJoiner(Protocol):
    """What the keeper needs of the voice cog's sessions
    (:class:`~edge_voice.cogs.guild_sessions.GuildSessions`)."""

    def joined(self, guild: discord.Guild) -> bool:
        """Whether the cog has a session in ``guild`` right now."""
        ...

    async def join_and_bind(
        self, guild: discord.Guild, channel: Any, text_channel: discord.abc.Messageable
    ) -> str | None:
        """Connect to ``channel`` and read ``text_channel``; a problem for people, or None."""
        ...

    async def post_bound(self, guild: discord.Guild, text: str) -> None:
        """Post ``text`` in the guild's bound channel (no pings)."""
        ...


class SessionKeeper:
    """Saves, restores and autojoins the voice cog's sessions; see the module docstring."""

    def __init__(self, sessions: SessionStore, joiner: VoiceJoiner) -> None:
        self.sessions = sessions
        self.joiner = joiner
        self._tried: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._joining: dict[int, asyncio.Task[str | None]] = {}

    # -- saving -------------------------------------------------------------

    async def remember(
        self, guild: discord.Guild, channel: Any, text_channel: discord.abc.Messageable
    ) -> None:
        """The bot joined (or moved to) ``channel`` reading ``text_channel``."""
        self._tried.add(guild.id)  # joined in this process: nothing left to restore
        text_id = getattr(text_channel, "id", None)
        await self._write("save", self.sessions.save(guild.id, channel.id, text_id))

    async def left(self, guild: discord.Guild) -> None:
        """The bot left on purpose: keep the bound channel, do not rejoin after a restart."""
        await self._write("mark as left", self.sessions.left(guild.id))

    async def forget(self, guild: discord.Guild) -> None:
        """The bot left the server: nothing of its session is kept."""
        await self._write("forget", self.sessions.clear(guild.id))

    async def _write(self, what: str, write: Awaitable[object]) -> None:
        try:
            await write
        except (StorageError, SettingError) as exc:
            log.warning("could not %s the voice session: %s", what, exc)

    # -- after a restart ------------------------------------------------------

    def restore_all(self, guilds: Iterable[discord.Guild]) -> None:
        """Resume, in the background, every saved session of these guilds."""
        for guild in guilds:
            self.restore_soon(guild)

    def restore_soon(self, guild: discord.Guild) -> None:
        """Resume ``guild``'s saved session in the background, once per process."""
        saved = self.sessions.get(guild.id)
        if saved is None or not saved.rejoin or guild.id in self._tried:
            return
        if guild.unavailable:
            return  # its channels are not known yet: on_guild_available comes later
        self._tried.add(guild.id)
        task = asyncio.get_running_loop().create_task(
            self._restore(guild, saved), name=f"voice-restore-{guild.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _restore(self, guild: discord.Guild, saved: GuildSession) -> None:
        try:
            outcome = await self.restore(guild, saved)
        except Exception:  # one guild's restore must not take others down
            log.exception("restoring the voice session in guild %s failed", guild.id)
            return
        log.info("voice session in guild %s after the restart: %s", guild.id, outcome)

    async def restore(self, guild: discord.Guild, saved: GuildSession) -> str:
        """Rejoin ``saved`` if listeners are there; what happened, for the log."""
        if self.joiner.joined(guild):
            return "already joined again"
        channel = guild.get_channel(saved.voice_channel_id)
        if not isinstance(channel, discord.VoiceChannel):
            return "its voice channel is gone; not rejoined"
        if not any(not member.bot for member in channel.members):
            return "nobody is listening; not rejoined"
        text = None
        if saved.text_channel_id is not None:
            text = guild.get_channel_or_thread(saved.text_channel_id)
        if not isinstance(text, discord.abc.Messageable) or not can_post(text, guild.me):
            return "its text channel is gone or closed to the bot; not rejoined"
        problem = join_problem(channel, guild.me) or await self.joiner.join_and_bind(
            guild, channel, text
        )
        if problem is not None:
            return f"not rejoined: {problem}"
        where = getattr(text, "mention", "this channel")
        await self.joiner.post_bound(guild, RESTORE_NOTICE.format(channel=where))
        return f"rejoined {channel.id}"

    # -- autojoin ---------------------------------------------------------------

    def may_autojoin(self, message: discord.Message, settings: EffectiveGuildSettings) -> bool:
        """Whether ``message`` (the bot not in voice) should bring the bot to its author:
        the server has autojoin on, it was written in the bound channel, and its author
        is in a voice channel. Cheap: no I/O."""
        if not settings.autojoin or message.guild is None:
            return False
        saved = self.sessions.get(message.guild.id)
        if saved is None or saved.text_channel_id != message.channel.id:
            return False
        voice = getattr(message.author, "voice", None)
        return voice is not None and isinstance(voice.channel, discord.VoiceChannel)

    async def autojoin(self, message: discord.Message) -> bool:
        """Join the author's voice channel (or wait for a join already under way); True
        once the bot is in voice with a session."""
        guild = message.guild
        voice = getattr(message.author, "voice", None)
        if guild is None or voice is None or voice.channel is None:
            return False
        joining = self._joining.get(guild.id)
        if joining is None:
            problem = join_problem(voice.channel, guild.me)
            if problem is not None:
                log.info("autojoin in guild %s: %s", guild.id, problem)
                return False
            joining = asyncio.get_running_loop().create_task(
                self.joiner.join_and_bind(guild, voice.channel, message.channel),
                name=f"voice-autojoin-{guild.id}",
            )
            self._joining[guild.id] = joining
            joining.add_done_callback(lambda _: self._joining.pop(guild.id, None))
        problem = await asyncio.shield(joining)
        if problem is not None:
            log.info("autojoin in guild %s failed: %s", guild.id, problem)
        return problem is None and self.joiner.joined(guild)

    async def close(self) -> None:
        """Stop restores and autojoins still under way (the cog is unloading)."""
        for task in [*self._tasks, *self._joining.values()]:
            await cancel_and_wait(task)

"""Where each guild's session was: its bound text channel and voice channel, across restarts.

The voice cog saves a session when it joins or moves; when it leaves on purpose (/leave,
idle, nobody left listening) it marks the session :meth:`~SessionStore.left`: the bound
text channel stays (a member writing there brings the bot back with ``autojoin``) but
the voice channel is not rejoined after a restart. After a restart the cog reads
:meth:`SessionStore.all` and rejoins the voice channels of sessions still marked
``rejoin`` that have listeners (and says so once). Reads are memory lookups; writes go
through the store's worker thread like the settings.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from dataclasses import dataclass

from edge_voice.core.clock import WallClock, wall_time
from edge_voice.core.storage import rules
from edge_voice.core.storage.database import Database


@dataclass(frozen=True, slots=True)
class GuildSession:
    """One guild's saved session."""

    guild_id: int
    text_channel_id: int | None
    """The channel whose messages are read aloud (None: none was bound)."""
    voice_channel_id: int
    saved_at: float
    """Epoch seconds of the save: a very old session may not be worth resuming."""
    rejoin: bool = True
    """The bot was in the voice channel when this was saved: rejoin it after a restart.
    False once the bot left on purpose."""


class SessionStore:
    """Saved sessions over one :class:`Database`; build with :meth:`load`."""

    def __init__(self, database: Database, *, wall_clock: WallClock = wall_time) -> None:
        self._db = database
        self._wall = wall_clock
        self._sessions: dict[int, GuildSession] = {}

    @classmethod
    async def load(cls, database: Database, *, wall_clock: WallClock = wall_time) -> SessionStore:
        """A store holding every saved session (read on the store's thread)."""
        store = cls(database, wall_clock=wall_clock)
        rows = await database.read(
            lambda conn: conn.execute(
                "SELECT guild_id, text_channel_id, voice_channel_id, saved_at, rejoin "
                "FROM guild_sessions"
            ).fetchall()
        )
        for guild_id, text_channel_id, voice_channel_id, saved_at, rejoin in rows:
            store._sessions[guild_id] = GuildSession(
                guild_id, text_channel_id, voice_channel_id, float(saved_at), bool(rejoin)
            )
        return store

    def get(self, guild_id: int) -> GuildSession | None:
        """The guild's saved session, if any."""
        return self._sessions.get(guild_id)

    def all(self) -> list[GuildSession]:
        """Every saved session, oldest first."""
        return sorted(self._sessions.values(), key=lambda s: (s.saved_at, s.guild_id))

    async def save(
        self, guild_id: int, voice_channel_id: int, text_channel_id: int | None
    ) -> GuildSession:
        """Remember the guild's session (replacing an earlier one), to rejoin after a restart."""
        session = GuildSession(
            rules.snowflake("guild_id", guild_id),
            None if text_channel_id is None else rules.snowflake("text_channel", text_channel_id),
            rules.snowflake("voice_channel", voice_channel_id),
            self._wall(),
        )
        return await self._put(session)

    async def left(self, guild_id: int) -> GuildSession | None:
        """The bot left the guild's voice channel on purpose: keep the bound channels but
        do not rejoin after a restart. Returns the updated session (None: none saved)."""
        saved = self._sessions.get(guild_id)
        if saved is None or not saved.rejoin:
            return saved
        return await self._put(dataclasses.replace(saved, rejoin=False, saved_at=self._wall()))

    async def _put(self, session: GuildSession) -> GuildSession:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO guild_sessions "
                "(guild_id, text_channel_id, voice_channel_id, saved_at, rejoin) "
                "VALUES (?, ?, ?, ?, ?)",
                (session.guild_id, session.text_channel_id, session.voice_channel_id,
                 session.saved_at, int(session.rejoin)),
            )  # fmt: skip

        async def apply() -> GuildSession:
            await self._db.write(write)
            self._sessions[session.guild_id] = session
            return session

        return await asyncio.shield(apply())

    async def clear(self, guild_id: int) -> None:
        """Forget the guild's session (the bot left on purpose, or the guild is gone)."""

        async def apply() -> None:
            await self._db.write(
                lambda conn: conn.execute(
                    "DELETE FROM guild_sessions WHERE guild_id = ?", (guild_id,)
                )
            )
            self._sessions.pop(guild_id, None)

        await asyncio.shield(apply())

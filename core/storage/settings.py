"""Per-guild and per-member settings, kept in memory and written through to the store.

Reads (:meth:`SettingsRepository.guild`, :meth:`~SettingsRepository.effective`,
:meth:`~SettingsRepository.voice_choice`) are dictionary lookups, cheap enough for every
message on the event loop. Writes validate every value first (all or nothing), then
run on the store's worker thread (:class:`core.storage.database.Database`), and update
the memory copy once the file has them, so what a command confirmed is what a restart
reads back. A write whose caller is cancelled still finishes, file and memory alike.

``None`` means "not set": the config default applies. Table and column names are the
fixed ones below; user input only ever travels as bound parameters.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from edge_voice.core.clock import WallClock, wall_time
from edge_voice.core.config import Config
from edge_voice.core.storage import rules
from edge_voice.core.storage.database import Database
from edge_voice.core.voices.catalogue import VoiceCatalogue
from edge_voice.core.voices.choice import VoiceChoice, choose_voice_chain

log = logging.getLogger(__name__)

GUILD_KEYS: Final = (
    "voice", "rate", "announce_speaker", "max_chars", "autojoin", "required_role", "skip_prefix",
)  # fmt: skip
"""The server settings, in ``/tts settings`` order; also their column names."""
MEMBER_KEYS: Final = ("voice", "name")
_BOOLEAN_KEYS: Final = frozenset({"announce_speaker", "autojoin"})


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """What a server's admins set; None is not set."""

    voice: str | None = None
    rate: str | None = None
    announce_speaker: bool | None = None
    max_chars: int | None = None
    autojoin: bool | None = None
    required_role: int | None = None
    """The role a member needs for the bot to read their messages."""
    skip_prefix: str | None = None

    @property
    def is_empty(self) -> bool:
        """Nothing is set."""
        return all(getattr(self, key) is None for key in GUILD_KEYS)


@dataclass(frozen=True, slots=True)
class MemberSettings:
    """What one person set for themselves in one server; None is not set."""

    voice: str | None = None
    name: str | None = None
    """The name spoken for them in "NAME said"."""

    @property
    def is_empty(self) -> bool:
        """Nothing is set."""
        return self.voice is None and self.name is None


@dataclass(frozen=True, slots=True)
class EffectiveGuildSettings:
    """A server's settings with the config defaults filled in."""

    voice: str | None
    """The server's voice; None: chosen by ``[speech] voice`` (see :meth:`voice_choice`)."""
    rate: str
    announce_speaker: bool
    max_chars: int
    autojoin: bool
    required_role: int | None
    skip_prefix: str


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """What one update did: the settings before and after, and the keys that changed."""

    before: Any
    after: Any
    changed: tuple[str, ...]


class SettingsRepository:
    """Guild and member settings over one :class:`Database`; build with :meth:`load`.

    ``catalogue`` returns the voice catalogue in use (it may be refreshed meanwhile).
    """

    def __init__(
        self,
        database: Database,
        config: Config,
        catalogue: Callable[[], VoiceCatalogue],
        *,
        wall_clock: WallClock = wall_time,
    ) -> None:
        self._db = database
        self.config = config
        self._catalogue = catalogue
        self._wall = wall_clock
        self._guilds: dict[int, GuildSettings] = {}
        self._members: dict[tuple[int, int], MemberSettings] = {}

    @classmethod
    async def load(
        cls,
        database: Database,
        config: Config,
        catalogue: Callable[[], VoiceCatalogue],
        *,
        wall_clock: WallClock = wall_time,
    ) -> SettingsRepository:
        """A repository holding every stored setting (read on the store's thread)."""
        repository = cls(database, config, catalogue, wall_clock=wall_clock)
        guild_rows, member_rows = await database.read(_select_all)
        for row in guild_rows:
            repository._guilds[row[0]] = _guild_from_row(row[1:], row[0])
        for row in member_rows:
            member = _member_from_row(row[2:], row[0], row[1])
            if not member.is_empty:
                repository._members[(row[0], row[1])] = member
        return repository

    # -- reads (memory only) ------------------------------------------------

    def guild(self, guild_id: int) -> GuildSettings:
        """What the server set (empty if nothing)."""
        return self._guilds.get(guild_id) or GuildSettings()

    def member(self, guild_id: int, user_id: int) -> MemberSettings:
        """What the person set in this server (empty if nothing)."""
        return self._members.get((guild_id, user_id)) or MemberSettings()

    def effective(self, guild_id: int) -> EffectiveGuildSettings:
        """The server's settings, each one that is not set taken from the config."""
        stored = self.guild(guild_id)
        config = self.config

        def pick(value: Any, default: Any) -> Any:
            return default if value is None else value

        return EffectiveGuildSettings(
            voice=stored.voice,
            rate=pick(stored.rate, config.speech.rate),
            announce_speaker=pick(stored.announce_speaker, config.text.announce_speaker),
            max_chars=min(pick(stored.max_chars, config.text.max_chars), config.text.max_chars),
            autojoin=pick(stored.autojoin, config.player.autojoin),
            required_role=stored.required_role,
            skip_prefix=pick(stored.skip_prefix, config.text.skip_prefix),
        )

    def voice_choice(
        self, guild_id: int, user_id: int | None, preferred_locale: str | None
    ) -> VoiceChoice:
        """The voice chain for ``user_id`` (None: the server's own) in this guild."""
        member = self.member(guild_id, user_id) if user_id is not None else MemberSettings()
        return choose_voice_chain(
            member.voice,
            self.guild(guild_id).voice,
            preferred_locale,
            self.config.speech,
            self._catalogue(),
        )

    def spoken_name(self, guild_id: int, user_id: int, display_name: str) -> str:
        """The name to say for the person: their chosen one, else ``display_name``."""
        return self.member(guild_id, user_id).name or display_name

    # -- writes -------------------------------------------------------------

    def validate_guild(self, changes: Mapping[str, object]) -> dict[str, Any]:
        """``changes`` checked and in stored form (None stays None: unset); raises
        :class:`core.storage.rules.SettingError` for the first bad key or value."""
        checked: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in GUILD_KEYS:
                raise rules.SettingError(key, "one of " + ", ".join(GUILD_KEYS), key)
            checked[key] = None if value is None else self._check_guild_value(key, value)
        return checked

    def _check_guild_value(self, key: str, value: object) -> Any:
        if key == "voice":
            return rules.voice(value, self._catalogue())
        if key == "rate":
            return rules.rate(value)
        if key in _BOOLEAN_KEYS:
            return rules.flag(key, value)
        if key == "max_chars":
            return rules.max_chars(value, self.config.text.max_chars)
        if key == "required_role":
            return rules.snowflake(key, value)
        return rules.skip_prefix(value)

    def validate_member(self, changes: Mapping[str, object]) -> dict[str, Any]:
        """Like :meth:`validate_guild`, for ``voice`` and ``name``."""
        checked: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in MEMBER_KEYS:
                raise rules.SettingError(key, "one of " + ", ".join(MEMBER_KEYS), key)
            if value is None:
                checked[key] = None
            elif key == "voice":
                checked[key] = rules.voice(value, self._catalogue())
            else:
                checked[key] = rules.spoken_name(value)
        return checked

    async def update_guild(self, guild_id: int, changes: Mapping[str, object]) -> SettingsChange:
        """Set (or, with None, unset) the given server settings; the others stay.

        Raises :class:`~core.storage.rules.SettingError` before anything is written,
        and :class:`~core.storage.database.StorageError` if the file refuses the write.
        """
        rules.snowflake("guild_id", guild_id)
        checked = self.validate_guild(changes)
        before = self.guild(guild_id)
        if not checked:
            return SettingsChange(before, before, ())
        write = _upsert("guild_settings", ("guild_id",), (guild_id,), checked, self._wall())
        return await asyncio.shield(self._apply_guild(guild_id, before, checked, write))

    async def _apply_guild(
        self,
        guild_id: int,
        before: GuildSettings,
        checked: dict[str, Any],
        write: Callable[[sqlite3.Connection], None],
    ) -> SettingsChange:
        await self._db.write(write)
        after = dataclasses.replace(self.guild(guild_id), **checked)
        if after.is_empty:
            self._guilds.pop(guild_id, None)
        else:
            self._guilds[guild_id] = after
        changed = tuple(k for k in checked if getattr(before, k) != getattr(after, k))
        return SettingsChange(before, after, changed)

    async def update_member(
        self, guild_id: int, user_id: int, changes: Mapping[str, object]
    ) -> SettingsChange:
        """Set (or, with None, unset) the person's ``voice`` and ``name`` in this server."""
        rules.snowflake("guild_id", guild_id)
        rules.snowflake("user_id", user_id)
        checked = self.validate_member(changes)
        before = self.member(guild_id, user_id)
        if not checked:
            return SettingsChange(before, before, ())
        write = _upsert(
            "member_settings", ("guild_id", "user_id"), (guild_id, user_id), checked, self._wall()
        )
        return await asyncio.shield(self._apply_member(guild_id, user_id, before, checked, write))

    async def _apply_member(
        self,
        guild_id: int,
        user_id: int,
        before: MemberSettings,
        checked: dict[str, Any],
        write: Callable[[sqlite3.Connection], None],
    ) -> SettingsChange:
        await self._db.write(write)
        after = dataclasses.replace(self.member(guild_id, user_id), **checked)
        if after.is_empty:
            self._members.pop((guild_id, user_id), None)
        else:
            self._members[(guild_id, user_id)] = after
        changed = tuple(k for k in checked if getattr(before, k) != getattr(after, k))
        return SettingsChange(before, after, changed)

    async def reset_member(self, guild_id: int, user_id: int) -> SettingsChange:
        """Forget everything the person set in this server (``/myvoice reset``)."""
        return await self.update_member(guild_id, user_id, dict.fromkeys(MEMBER_KEYS))

    async def forget_guild(self, guild_id: int) -> None:
        """Delete the server's and its members' settings (the bot left the server)."""

        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,))
            conn.execute("DELETE FROM member_settings WHERE guild_id = ?", (guild_id,))

        async def apply() -> None:
            await self._db.write(delete)
            self._guilds.pop(guild_id, None)
            for key in [key for key in self._members if key[0] == guild_id]:
                del self._members[key]

        await asyncio.shield(apply())


def _upsert(
    table: str,
    key_columns: tuple[str, ...],
    key_values: tuple[int, ...],
    checked: Mapping[str, Any],
    now: float,
) -> Callable[[sqlite3.Connection], None]:
    """A write of only the given columns (concurrent updates of others are kept), then
    removal of a row left with nothing set. Names come from the fixed key lists."""
    columns = tuple(checked)
    every = GUILD_KEYS if table == "guild_settings" else MEMBER_KEYS
    if table not in ("guild_settings", "member_settings") or not set(columns) <= set(every):
        raise ValueError(f"not a settings table and its columns: {table} {columns}")
    names = (*key_columns, *columns, "updated_at")
    insert = (
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
        f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET "
        + ", ".join(f"{name} = excluded.{name}" for name in (*columns, "updated_at"))
    )
    where = " AND ".join(f"{name} = ?" for name in key_columns)
    empty = " AND ".join(f"{name} IS NULL" for name in every)
    delete = f"DELETE FROM {table} WHERE {where} AND {empty}"
    values = (*key_values, *(_to_column(checked[c]) for c in columns), now)

    def write(conn: sqlite3.Connection) -> None:
        conn.execute(insert, values)
        conn.execute(delete, key_values)

    return write


def _to_column(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


def _select_all(conn: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
    guilds = conn.execute(f"SELECT guild_id, {', '.join(GUILD_KEYS)} FROM guild_settings")
    members = conn.execute(
        f"SELECT guild_id, user_id, {', '.join(MEMBER_KEYS)} FROM member_settings"
    )
    return guilds.fetchall(), members.fetchall()


def _guild_from_row(row: tuple[Any, ...], guild_id: int) -> GuildSettings:
    values: dict[str, Any] = {}
    for key, raw in zip(GUILD_KEYS, row, strict=True):
        values[key] = _loaded(key, raw, f"guild {guild_id}")
    return GuildSettings(**values)


def _member_from_row(row: tuple[Any, ...], guild_id: int, user_id: int) -> MemberSettings:
    values: dict[str, Any] = {}
    for key, raw in zip(MEMBER_KEYS, row, strict=True):
        if key == "name":
            values[key] = _loaded("name", raw, f"member {user_id} of guild {guild_id}")
        else:
            values[key] = raw if isinstance(raw, str) else None
    return MemberSettings(**values)


def _loaded(key: str, raw: Any, owner: str) -> Any:
    """A stored value, re-checked: one edited by hand into nonsense is dropped (and the
    default applies) instead of failing every message. Voices are not checked here:
    the catalogue may change, and the voice choice passes over unknown ones."""
    if raw is None:
        return None
    try:
        if key == "voice":
            if not isinstance(raw, str):
                raise rules.SettingError(key, "text", raw)
            return raw
        if key == "rate":
            return rules.rate(raw)
        if key in _BOOLEAN_KEYS:
            return rules.flag(key, bool(raw) if raw in (0, 1) else raw)
        if key == "max_chars":
            return rules.max_chars(raw, 2**31)
        if key == "required_role":
            return rules.snowflake(key, raw)
        if key == "name":
            return rules.spoken_name(raw)
        return rules.skip_prefix(raw)
    except rules.SettingError as exc:
        log.warning("settings: ignoring the stored %s of %s: %s", key, owner, exc)
        return None

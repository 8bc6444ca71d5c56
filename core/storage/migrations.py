"""The store's schema, as ordered migrations; ``PRAGMA user_version`` is the last applied.

Each migration moves the file from ``version - 1`` to ``version``. They only ever add:
a released migration is never edited (files out there already ran it); a change is a
new migration at the end. :class:`core.storage.database.Database` runs every pending one
in a single transaction, so a file is at one version or the next, never in between.

Table and column names are fixed here; rows are keyed by Discord ids. Booleans are
0/1 integers, times are epoch seconds (REAL), NULL is "not set" (the config default
applies). The CHECK constraints are a last line of defence behind the repositories'
validation: a bad value written by hand fails loudly instead of being read back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class MigrationContext:
    """What a migration may need besides the connection."""

    path: Path
    """The database file (a migration importing an older file looks next to it)."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step. ``apply`` runs inside the migrating transaction; it must not
    commit (no ``executescript``) and must use only fixed SQL."""

    version: int
    name: str
    apply: Callable[[sqlite3.Connection, MigrationContext], None]


def _statements(*sql: str) -> Callable[[sqlite3.Connection, MigrationContext], None]:
    def apply(conn: sqlite3.Connection, _context: MigrationContext) -> None:
        for statement in sql:
            conn.execute(statement)

    return apply


_V1_SETTINGS = _statements(
    """
    CREATE TABLE guild_settings (
        guild_id INTEGER PRIMARY KEY,
        voice TEXT,
        rate TEXT,
        announce_speaker INTEGER CHECK (announce_speaker IN (0, 1)),
        max_chars INTEGER CHECK (max_chars > 0),
        autojoin INTEGER CHECK (autojoin IN (0, 1)),
        required_role INTEGER CHECK (required_role > 0),
        skip_prefix TEXT,
        updated_at REAL NOT NULL
    )
    """,
    """
    CREATE TABLE member_settings (
        guild_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        voice TEXT,
        name TEXT,
        updated_at REAL NOT NULL,
        PRIMARY KEY (guild_id, user_id)
    ) WITHOUT ROWID
    """,
)

_V2_SESSIONS = _statements(
    """
    CREATE TABLE guild_sessions (
        guild_id INTEGER PRIMARY KEY,
        text_channel_id INTEGER CHECK (text_channel_id > 0),
        voice_channel_id INTEGER NOT NULL CHECK (voice_channel_id > 0),
        saved_at REAL NOT NULL
    )
    """,
)

# A session the bot ended on purpose (/leave, idle, an empty channel) keeps its bound
# text channel for autojoin but is not rejoined after a restart. Rows of version 2 were
# all sessions the bot was still in.
_V3_SESSION_REJOIN = _statements(
    """
    ALTER TABLE guild_sessions
    ADD COLUMN rejoin INTEGER NOT NULL DEFAULT 1 CHECK (rejoin IN (0, 1))
    """,
)

MIGRATIONS: Sequence[Migration] = (
    Migration(1, "guild and member settings", _V1_SETTINGS),
    Migration(2, "guild sessions that survive restarts", _V2_SESSIONS),
    Migration(3, "sessions ended on purpose are not rejoined", _V3_SESSION_REJOIN),
)
"""Every migration, oldest first; the last one's version is the current schema."""


def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """The schema version a file has after ``migrations``."""
    return migrations[-1].version if migrations else 0


def check_order(migrations: Sequence[Migration]) -> None:
    """Raise ValueError unless the versions run 1, 2, 3, ... without gaps."""
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise ValueError(
                f"migration {migration.name!r} has version {migration.version}, expected {expected}"
            )

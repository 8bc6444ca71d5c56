"""The SQLite file behind :class:`core.breaker.store.BreakerStateStore`.

Opens the file (creating it and its directory), keeps its one table at the current
schema, and survives a bad file: one that is not a database or is corrupt is moved
aside and replaced; a version-1 table is upgraded in place; a table it does not
recognise is renamed aside (kept, not dropped) and a new one created; a file of a
newer schema than this code knows is refused with a warning and never written; one
that is locked or unwritable makes the call answer None (logged) instead of
raising. The store decides what the rows mean.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

# Part of the store: its warnings keep the store's logger name, which operators filter on.
log = logging.getLogger("edge_voice.core.breaker.store")

SCHEMA_VERSION = 2
"""Kept in SQLite's ``PRAGMA user_version``. 2 added the cooldown level, the calm
start, the version, the reason and the trip figures (and the operator modes as states)."""

BUSY_TIMEOUT = 0.1
"""Seconds a write waits for another connection's lock. It blocks the event loop,
so it is short: only a second process sharing the file holds locks."""

_TABLE = "breaker_state"
_V1_COLUMNS = (
    "name",
    "state",
    "open_until_wall",
    "cooldown",
    "trips",
    "consecutive_trips",
    "saved_at_wall",
)
_ADDED_IN_V2 = (
    ("cooldown_level", "INTEGER NOT NULL DEFAULT 0"),
    ("calm_since_wall", "REAL"),
    ("version", "INTEGER NOT NULL DEFAULT 0"),
    ("reason", "TEXT NOT NULL DEFAULT ''"),
    ("tripped_by", "TEXT"),
)
_COLUMNS = _V1_COLUMNS + tuple(name for name, _ in _ADDED_IN_V2)
_CREATE = f"""
CREATE TABLE {_TABLE} (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    open_until_wall REAL,
    cooldown REAL NOT NULL,
    trips INTEGER NOT NULL,
    consecutive_trips INTEGER NOT NULL,
    saved_at_wall REAL NOT NULL,
    {", ".join(f"{name} {kind}" for name, kind in _ADDED_IN_V2)}
)"""
_MIGRATE_V1 = [
    *(f"ALTER TABLE {_TABLE} ADD COLUMN {name} {kind}" for name, kind in _ADDED_IN_V2),
    # Version 1 grew the cooldown once per trip in a row: that many levels.
    f"UPDATE {_TABLE} SET cooldown_level = consecutive_trips",
]
_UPSERT = (
    f"INSERT OR REPLACE INTO {_TABLE} ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM {_TABLE} WHERE name = ?"
# Every other statement, here rather than inline: SQL is the same in any letter case.
_GET_VERSION = "PRAGMA user_version"
_SET_VERSION = f"PRAGMA user_version = {SCHEMA_VERSION}"
_WAL = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")
_COLUMNS_NOW = f"PRAGMA table_info({_TABLE})"
_TABLES = "SELECT name FROM sqlite_master"
_BEGIN, _COMMIT, _ROLLBACK = "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"
_JOURNALS = ("-wal", "-shm", "-journal")


class NewerSchemaError(Exception):
    """The file was written by a newer release; this one must not touch it."""


# The file is unusable rather than busy: move it aside and start a new one.
_CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


class StateDatabase:
    """One connection to the state file at ``path``, opened on first use.

    A row is one breaker's values in column order: name, state, open_until_wall,
    cooldown, trips, consecutive_trips, saved_at_wall, cooldown_level,
    calm_since_wall, version, reason, tripped_by. Not locked: the store serialises
    every call. After :meth:`close`, or once the file proved newer than this code,
    every call answers None and the file is not opened again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    def select(self, name: str) -> list[Any] | None:
        """The rows stored for breaker ``name`` (none or one); None when the file is unusable."""
        return self._execute(_SELECT, (name,))

    def upsert(self, row: tuple[object, ...]) -> None:
        """Write ``row`` over any row of its breaker; a failure is logged."""
        self._execute(_UPSERT, row)

    def _execute(self, sql: str, params: tuple[object, ...]) -> list[Any] | None:
        """Run one statement; its rows, or None when the file is unusable now.

        A corrupt file is moved aside and the statement retried on a new one.
        Other errors (locked, disk full) are logged and the connection dropped,
        so the next call starts afresh.
        """
        retried = False
        conn = self._connection()
        while conn is not None:
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                if not _is_corrupt(exc) or retried:
                    log.warning("breaker state: %s failed: %s", self.path, exc)
                    self._drop_connection()
                    return None
                self._quarantine(exc)
                retried = True
                conn = self._connection()
        return None

    def close(self) -> None:
        """Close the connection for good. Idempotent."""
        self._closed = True
        self._drop_connection()

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is not None or self._closed:
            return self._conn
        try:
            self._conn = self._open()
        except NewerSchemaError as exc:
            log.warning(
                "breaker state: %s has schema version %s, newer than this release's %s; "
                "leaving it untouched (nothing is saved), breakers start CLOSED",
                self.path,
                exc,
                SCHEMA_VERSION,
            )
            self._closed = True
        except sqlite3.Error as exc:
            if not _is_corrupt(exc):
                log.warning(
                    "breaker state: cannot use %s (%s); breakers start CLOSED", self.path, exc
                )
                return None
            self._quarantine(exc)
            try:
                self._conn = self._open()
            except (sqlite3.Error, OSError) as again:
                log.warning("breaker state: cannot recreate %s: %s", self.path, again)
        except OSError as exc:
            log.warning("breaker state: cannot create %s: %s", self.path.parent, exc)
        return self._conn

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit: every write is one statement and its own transaction.
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            # Before anything that writes (WAL changes the file's header): a newer
            # release's file is left exactly as it was.
            version = conn.execute(_GET_VERSION).fetchone()[0]
            if version > SCHEMA_VERSION:
                raise NewerSchemaError(version)
            # WAL with NORMAL sync: a commit is an append without fsync; a power
            # cut may lose the last rows but never corrupts the file.
            for statement in _WAL:
                conn.execute(statement)
            self._ensure_schema(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute(_GET_VERSION).fetchone()[0]
        columns = tuple(row[1] for row in conn.execute(_COLUMNS_NOW))
        if columns == _COLUMNS and version == SCHEMA_VERSION:
            return
        conn.execute(_BEGIN)
        try:
            if columns == _V1_COLUMNS:
                for statement in _MIGRATE_V1:
                    conn.execute(statement)
                log.info(
                    "breaker state: %s upgraded to schema version %s", self.path, SCHEMA_VERSION
                )
            elif columns != _COLUMNS:
                if columns:
                    self._rename_aside(conn, version, columns)
                conn.execute(_CREATE)
            conn.execute(_SET_VERSION)
            conn.execute(_COMMIT)
        except BaseException:
            # Leaves the file as it was; "no transaction is active" needs nothing undone.
            with contextlib.suppress(sqlite3.Error):
                conn.execute(_ROLLBACK)
            raise

    def _rename_aside(
        self, conn: sqlite3.Connection, version: int, columns: tuple[str, ...]
    ) -> None:
        taken = {row[0] for row in conn.execute(_TABLES)}
        aside = next(
            name for n in itertools.count(1) if (name := f"{_TABLE}_unrecognised_{n}") not in taken
        )
        log.warning(
            "breaker state: %s has a table of schema version %s with columns %s, expected %s; "
            "kept as %s, breakers start CLOSED",
            self.path,
            version,
            list(columns),
            list(_COLUMNS),
            aside,
        )
        conn.execute(f"ALTER TABLE {_TABLE} RENAME TO {aside}")

    def _quarantine(self, exc: sqlite3.Error) -> None:
        self._drop_connection()
        aside = self.path.with_name(self.path.name + ".corrupt")
        log.warning(
            "breaker state: %s is not a usable database (%s); moved to %s and starting a "
            "new one, breakers start CLOSED",
            self.path,
            exc,
            aside,
        )
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            pass
        except OSError as error:
            log.warning("breaker state: cannot move %s aside (%s); deleting it", self.path, error)
            with contextlib.suppress(OSError):
                self.path.unlink()
        # Journal files belong to the old database and must not meet the new one.
        for suffix in _JOURNALS:
            with contextlib.suppress(OSError):
                self.path.with_name(self.path.name + suffix).unlink()

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


def _is_corrupt(exc: sqlite3.Error) -> bool:
    # Extended result codes keep the primary code in the low byte.
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and (code & 0xFF) in _CORRUPT_CODES

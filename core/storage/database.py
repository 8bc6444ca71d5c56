"""One SQLite file in the data directory, its schema version, and the thread that uses it.

:meth:`Database.open` opens (or creates) the file and brings it to the current schema
(:mod:`core.storage.migrations`): an older file is upgraded in place, keeping its rows,
after a copy of it is saved beside it (``NAME.vN.bak``); a file from a newer release is
refused with :class:`SchemaTooNewError` and left exactly as it was; a file that is not a
database or fails SQLite's quick check is moved aside (``NAME.corrupt-TIMESTAMP``) and
a new one started; a database that belongs to something else (another application id,
or tables without our version) is refused, never overwritten.

Threading: the connection lives on one worker thread of its own and every statement
runs there (:meth:`read`, :meth:`write`, :meth:`write_soon`). The event loop only hands
work over and picks up results, so a write costs the loop a few microseconds even when
SQLite checkpoints the WAL, fsyncs, or waits up to :data:`BUSY_TIMEOUT` for a lock held
by another process (an operator's ``sqlite3`` shell, a second bot on the same file).
One thread also keeps the writes in the order they were submitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Final, TypeVar

from edge_voice.core.storage.migrations import (
    MIGRATIONS,
    Migration,
    MigrationContext,
    check_order,
    latest_version,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

FILE_NAME: Final = "edge_voice.sqlite3"
"""The store's file in ``[state] data_dir``."""

APPLICATION_ID: Final = 0x45564F49
"""``PRAGMA application_id`` of our files ("EVOI"): tells ours from another database."""

BUSY_TIMEOUT: Final = 1.0
"""Seconds a statement waits for another connection's lock. It runs on the worker
thread, so waiting never stalls the event loop; callers have their own deadlines."""

_CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


class StorageError(Exception):
    """The store cannot be used; the message names the file and what to do."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class SchemaTooNewError(StorageError):
    """The file was written by a newer release; it is left untouched."""

    def __init__(self, path: Path, found: int, supported: int) -> None:
        super().__init__(
            path,
            f"schema version {found} is newer than this release supports ({supported}); "
            "the file was left untouched: run the newer release, or move the file away "
            "to start with empty settings",
        )
        self.found = found
        self.supported = supported


class Database:
    """The store's one connection, owned by one worker thread; use :meth:`open`."""

    def __init__(
        self, path: Path, executor: ThreadPoolExecutor, conn: sqlite3.Connection, version: int
    ) -> None:
        self.path = path
        self._executor = executor
        self._conn = conn
        self._closed = False
        self._pending: set[Future[object]] = set()
        self.schema_version = version
        """The file's schema version (the last migration's, once open)."""

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], migrations: Sequence[Migration] = MIGRATIONS
    ) -> Database:
        """Open ``path`` on a new worker thread and migrate it to ``migrations``' last
        version; raises :class:`StorageError` (or :class:`SchemaTooNewError`)."""
        check_order(migrations)
        target = Path(path)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(executor, _open_and_migrate, target, migrations)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(target, executor, conn, latest_version(migrations))

    @staticmethod
    def in_data_dir(data_dir: str | os.PathLike[str]) -> Path:
        """The store's path in the configured data directory."""
        return Path(data_dir) / FILE_NAME

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``query(connection)`` on the worker thread and return what it returns."""
        return await self._run(query)

    async def write(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``change(connection)`` in one transaction on the worker thread.

        Committed when it returns, rolled back when it raises; a database error is
        raised as :class:`StorageError`. Writes run in the order they were submitted.
        """
        return await self._run(lambda conn: _transaction(conn, change, self.path))

    def write_soon(self, change: Callable[[sqlite3.Connection], object]) -> None:
        """Queue ``change`` as a transaction without waiting: for synchronous callers
        (an event listener) that must not block. A failure is logged."""
        if self._closed:
            log.warning("store %s is closed; a write was dropped", self.path)
            return
        future = self._executor.submit(_transaction, self._conn, change, self.path)
        self._pending.add(future)
        future.add_done_callback(self._written)

    def _written(self, future: Future[object]) -> None:
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.warning("store %s: a queued write failed: %s", self.path, future.exception())

    async def _run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StorageError(self.path, "the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, job, self._conn)

    async def close(self) -> None:
        """Finish queued writes, close the connection and stop the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        # Queued after every pending write, so they all land before the close.
        await loop.run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)


def conn_version(conn: sqlite3.Connection) -> int:
    """The file's ``PRAGMA user_version``."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _transaction(
    conn: sqlite3.Connection, change: Callable[[sqlite3.Connection], T], path: Path
) -> T:
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = change(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StorageError(path, f"write failed: {exc}") from exc
    return result


# -- opening (on the worker thread) ------------------------------------------


def _open_and_migrate(path: Path, migrations: Sequence[Migration]) -> sqlite3.Connection:
    if path.is_dir():
        raise StorageError(path, "is a directory, not a database file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(path, f"cannot create the directory: {exc}") from exc
    conn = _connect_checked(path)
    try:
        _migrate(conn, path, migrations)
    except BaseException:
        conn.close()
        raise
    return conn


def _connect_checked(path: Path) -> sqlite3.Connection:
    """A connection to a healthy file of ours, moving a corrupt file aside first."""
    for attempt in (1, 2):
        conn = _connect(path)
        try:
            _check_health(conn, path)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if attempt == 2 or not _is_corrupt(exc):
                raise StorageError(path, f"cannot read the database: {exc}") from exc
            _quarantine(path, str(exc))
            continue
        except BaseException:
            conn.close()
            raise
        return conn
    raise AssertionError("unreachable: the second attempt returns or raises")


def _connect(path: Path) -> sqlite3.Connection:
    try:
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE), so a write
        # takes the write lock up front instead of failing half-way on upgrade.
        return sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(path, f"cannot open: {exc}") from exc


def _check_health(conn: sqlite3.Connection, path: Path) -> None:
    # Reads only: nothing is written before the version is known to be ours.
    verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
    if verdict != "ok":
        raise sqlite3.DatabaseError(f"quick_check: {verdict}")


def _migrate(conn: sqlite3.Connection, path: Path, migrations: Sequence[Migration]) -> None:
    supported = latest_version(migrations)
    version = conn_version(conn)
    _check_ownership(conn, path, version)
    if version > supported:
        raise SchemaTooNewError(path, version, supported)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL with WAL: a commit is an append without fsync; a power cut may lose the
    # last commits but never corrupts the file.
    conn.execute("PRAGMA synchronous=NORMAL")
    if version == supported:
        return
    if version > 0:
        _backup(conn, path, version)
    try:
        conn.execute("BEGIN IMMEDIATE")
        # Another process may have migrated the file since we looked.
        version = conn_version(conn)
        for migration in migrations:
            if migration.version > version:
                migration.apply(conn, MigrationContext(path))
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {supported}")
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise StorageError(
                path,
                f"upgrading schema version {version} to {supported} failed, the file "
                f"is unchanged: {exc}",
            ) from exc
        raise
    if version > 0:
        log.info("store %s: upgraded schema version %d to %d", path, version, supported)


def _check_ownership(conn: sqlite3.Connection, path: Path, version: int) -> None:
    application_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    if application_id == APPLICATION_ID:
        return
    if application_id != 0:
        raise StorageError(
            path, f"belongs to another application (application_id {application_id:#x})"
        )
    tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if version != 0 or tables:
        raise StorageError(
            path,
            f"is a database of something else (schema version {version}, {tables} objects); "
            "refusing to change it",
        )


def _backup(conn: sqlite3.Connection, path: Path, version: int) -> None:
    copy = path.with_name(f"{path.name}.v{version}.bak")
    try:
        with contextlib.closing(sqlite3.connect(copy)) as target:
            conn.backup(target)
    except sqlite3.Error as exc:
        raise StorageError(path, f"cannot save a copy before upgrading ({copy}): {exc}") from exc


def _quarantine(path: Path, why: str) -> None:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    log.warning(
        "store %s is not a usable database (%s); moved it to %s and starting a new one",
        path,
        why,
        aside,
    )
    try:
        os.replace(path, aside)
    except OSError as exc:
        raise StorageError(path, f"is corrupt and cannot be moved aside: {exc}") from exc
    # The journal files belong to the old database and must not meet the new one.
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):
            os.replace(path.with_name(path.name + suffix), aside.with_name(aside.name + suffix))


def _is_corrupt(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        # Extended result codes keep the primary code in the low byte.
        return (code & 0xFF) in _CORRUPT_CODES
    return str(exc).startswith("quick_check:")

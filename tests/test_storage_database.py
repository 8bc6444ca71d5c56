"""core.storage.database: one file, versioned schema, migrations, bad files handled."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

import pytest

from edge_voice.core.storage.database import (
    APPLICATION_ID,
    FILE_NAME,
    Database,
    SchemaTooNewError,
    StorageError,
)
from edge_voice.core.storage.migrations import MIGRATIONS, Migration, latest_version


def pragma(path: Path, name: str) -> object:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def tables(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


SESSION_COLUMNS = "guild_id, text_channel_id, voice_channel_id, saved_at"


async def test_a_new_file_gets_the_current_schema(tmp_path: Path) -> None:
    path = Database.in_data_dir(tmp_path / "data")
    assert path.name == FILE_NAME

    database = await Database.open(path)
    await database.close()

    assert database.schema_version == latest_version() == 3
    assert pragma(path, "user_version") == 3
    assert pragma(path, "application_id") == APPLICATION_ID
    assert pragma(path, "journal_mode") == "wal"
    assert tables(path) == {"guild_settings", "member_settings", "guild_sessions"}
    assert not list(tmp_path.glob("data/*.bak"))


async def test_an_older_file_is_upgraded_in_place_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    old = await Database.open(path, MIGRATIONS[:1])
    await old.write(
        lambda conn: conn.execute(
            "INSERT INTO guild_settings (guild_id, rate, updated_at) VALUES (7, '+10%', 1.0)"
        )
    )
    await old.close()
    assert pragma(path, "user_version") == 1

    upgraded = await Database.open(path)
    rows = await upgraded.read(
        lambda conn: conn.execute("SELECT guild_id, rate FROM guild_settings").fetchall()
    )
    sessions = await upgraded.read(
        lambda conn: conn.execute("SELECT count(*) FROM guild_sessions").fetchone()[0]
    )
    await upgraded.close()

    assert rows == [(7, "+10%")]
    assert sessions == 0
    assert pragma(path, "user_version") == 3
    # The file as it was before the upgrade, in case the new release has to be rolled back.
    backup = path.with_name(f"{FILE_NAME}.v1.bak")
    assert pragma(backup, "user_version") == 1
    assert "guild_sessions" not in tables(backup)


async def test_sessions_of_a_version_2_file_are_rejoined_after_the_upgrade(
    tmp_path: Path,
) -> None:
    path = tmp_path / FILE_NAME
    old = await Database.open(path, MIGRATIONS[:2])
    await old.write(
        lambda conn: conn.execute(
            f"INSERT INTO guild_sessions ({SESSION_COLUMNS}) VALUES (7, 8, 9, 1.0)"
        )
    )
    await old.close()

    upgraded = await Database.open(path)
    rows = await upgraded.read(
        lambda conn: conn.execute(
            "SELECT guild_id, text_channel_id, voice_channel_id, rejoin FROM guild_sessions"
        ).fetchall()
    )
    await upgraded.close()

    # Version 2 saved only sessions the bot was in: each is rejoined after the restart.
    assert rows == [(7, 8, 9, 1)]
    assert pragma(path.with_name(f"{FILE_NAME}.v2.bak"), "user_version") == 2


async def test_a_newer_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    newer = (*MIGRATIONS, Migration(4, "from the future", lambda conn, ctx: None))
    await (await Database.open(path, newer)).close()
    before = path.read_bytes()
    neighbours = sorted(p.name for p in tmp_path.iterdir())

    with pytest.raises(SchemaTooNewError) as refused:
        await Database.open(path)

    message = str(refused.value)
    assert str(path) in message
    assert "schema version 4" in message
    assert "supports (3)" in message
    assert "left untouched" in message
    assert (refused.value.found, refused.value.supported) == (4, 3)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == neighbours


@pytest.mark.parametrize(
    "content", [b"this is not a database" * 100, b"SQLite format 3\x00" + bytes(200)]
)
async def test_a_corrupt_file_is_moved_aside(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / FILE_NAME
    path.write_bytes(content)

    database = await Database.open(path)
    await database.close()

    aside = list(tmp_path.glob(f"{FILE_NAME}.corrupt-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes() == content
    assert pragma(path, "user_version") == 3
    assert "moved it to" in caplog.text


async def test_a_database_of_something_else_is_refused(tmp_path: Path) -> None:
    # The breaker state file of today is such a file: version 1, its own table.
    path = tmp_path / "breaker_state.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE breaker_state (name TEXT PRIMARY KEY)")
        conn.execute("PRAGMA user_version = 1")
    before = path.read_bytes()

    with pytest.raises(StorageError, match="database of something else"):
        await Database.open(path)

    with contextlib.closing(sqlite3.connect(tmp_path / "other.db")) as conn, conn:
        conn.execute("PRAGMA application_id = 1234")
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(StorageError, match="another application"):
        await Database.open(tmp_path / "other.db")
    assert path.read_bytes() == before


async def test_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is a directory"):
        await Database.open(tmp_path)


async def test_a_failing_migration_leaves_the_file_at_its_old_version(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    await (await Database.open(path, MIGRATIONS[:1])).close()

    def broken(conn: sqlite3.Connection, _context: object) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        conn.execute("THIS IS NOT SQL")

    with pytest.raises(StorageError, match="upgrading schema version 1 to 2 failed"):
        await Database.open(path, (MIGRATIONS[0], Migration(2, "broken", broken)))

    assert pragma(path, "user_version") == 1
    assert "half_done" not in tables(path)


async def test_migrations_must_be_numbered_in_order(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected 2"):
        await Database.open(
            tmp_path / FILE_NAME, (MIGRATIONS[0], Migration(3, "gap", MIGRATIONS[1].apply))
        )


async def test_statements_run_on_the_stores_own_thread(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / FILE_NAME)
    thread = await database.read(lambda _conn: threading.current_thread().name)
    await database.close()
    assert thread.startswith("sqlite")
    assert thread != threading.current_thread().name


async def test_a_failed_write_is_rolled_back(tmp_path: Path) -> None:
    database = await Database.open(tmp_path / FILE_NAME)

    def half(conn: sqlite3.Connection) -> None:
        conn.execute(f"INSERT INTO guild_sessions ({SESSION_COLUMNS}) VALUES (1, 2, 3, 4.0)")
        raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        await database.write(half)
    with pytest.raises(StorageError, match="write failed"):
        await database.write(
            lambda conn: conn.execute(
                f"INSERT INTO guild_sessions ({SESSION_COLUMNS}) VALUES (1, 2, -3, 4.0)"
            )
        )
    count = await database.read(
        lambda conn: conn.execute("SELECT count(*) FROM guild_sessions").fetchone()[0]
    )
    await database.close()
    assert count == 0


async def test_queued_writes_land_in_order_before_close(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    database = await Database.open(path)
    for number in range(1, 51):
        database.write_soon(
            lambda conn, n=number: conn.execute(
                f"INSERT OR REPLACE INTO guild_sessions ({SESSION_COLUMNS}) VALUES (1, ?, 9, ?)",
                (n, float(n)),
            )
        )
    await database.close()
    await database.close()  # idempotent
    database.write_soon(lambda conn: None)  # dropped with a warning, not raised

    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        assert conn.execute("SELECT text_channel_id FROM guild_sessions").fetchall() == [(50,)]
    with pytest.raises(StorageError, match="closed"):
        await database.read(lambda conn: None)

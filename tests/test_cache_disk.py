"""core.cache_disk: the on-disk tier of AudioCache, its file format and failure modes.

The tests use real files under pytest's tmp_path.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_voice.core.cache import AudioCache
from edge_voice.core.cache_disk import CorruptEntryError, decode_entry, encode_entry
from tests.cache_support import HELLO, key, packets_of


def files_in(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


# -- disk tier ---------------------------------------------------------------------------


def test_entry_encoding_round_trips() -> None:
    packets = [b"\x00", b"", b"\xff" * 1275, bytes(range(256))]
    assert decode_entry(HELLO.digest, encode_entry(HELLO.digest, packets)) == packets


def test_entry_for_another_key_is_rejected() -> None:
    data = encode_entry(HELLO.digest, packets_of(5))
    with pytest.raises(CorruptEntryError, match="another key"):
        decode_entry(key("other").digest, data)


@pytest.mark.parametrize(
    ("count", "body", "problem"),
    [
        (1, b"\x00\x0aabc", "truncated packet"),
        (2, b"\x00\x01a\x00", "truncated packet length"),
        (0, b"", "no packets"),
    ],
)
def test_inconsistent_body_with_valid_checksum_is_rejected(
    count: int, body: bytes, problem: str
) -> None:
    header = b"TTSOPK\x01" + bytes.fromhex(HELLO.digest)
    data = header + count.to_bytes(4, "big") + zlib.crc32(body).to_bytes(4, "big") + body
    with pytest.raises(CorruptEntryError, match=f"^{problem}$"):
        decode_entry(HELLO.digest, data)


def test_disk_entries_survive_a_new_instance(tmp_path: Path) -> None:
    AudioCache(10_000, directory=tmp_path).put(HELLO, [b"one", b"two", b"three"])
    reopened = AudioCache(10_000, directory=tmp_path)
    assert reopened.stats()["disk_entries"] == 1
    assert reopened.get(HELLO) == [b"one", b"two", b"three"]
    assert reopened.get(HELLO) == [b"one", b"two", b"three"]
    stats = reopened.stats()
    assert (stats["hits"], stats["disk_hits"], stats["entries"]) == (2, 1, 1)


def test_disk_files_are_one_per_key_without_temp_leftovers(tmp_path: Path) -> None:
    cache = AudioCache(10_000, directory=tmp_path)
    cache.put(key("a"), packets_of(10))
    cache.put(key("b"), packets_of(10))
    cache.put(key("a"), packets_of(20))
    names = [p.name for p in files_in(tmp_path)]
    assert sorted(names) == sorted(f"{key(t).digest}.opuspk" for t in "ab")
    assert cache.stats()["disk_bytes"] == sum(p.stat().st_size for p in files_in(tmp_path))


def test_disk_bound_deletes_least_recently_used(tmp_path: Path) -> None:
    file_size = len(encode_entry(HELLO.digest, packets_of(100)))
    cache = AudioCache(0, directory=tmp_path, max_disk_bytes=3 * file_size)
    for text in "abc":
        cache.put(key(text), packets_of(100))
    assert cache.get(key("a")) is not None  # a disk hit makes a the most recent
    cache.put(key("d"), packets_of(100))
    assert not (tmp_path / f"{key('b').digest}.opuspk").exists()
    assert [cache.get(key(t)) is not None for t in "abcd"] == [True, False, True, True]
    stats = cache.stats()
    assert (stats["disk_entries"], stats["disk_bytes"], stats["disk_evictions"]) == (
        3,
        3 * file_size,
        1,
    )


def test_disk_order_after_restart_follows_mtime(tmp_path: Path) -> None:
    cache = AudioCache(0, directory=tmp_path)
    for text in "abc":
        cache.put(key(text), packets_of(100))
    # b used last, then c, then a (oldest); explicit times avoid mtime granularity.
    for text, mtime in (("a", 1_000), ("b", 3_000), ("c", 2_000)):
        os.utime(tmp_path / f"{key(text).digest}.opuspk", (mtime, mtime))
    file_size = len(encode_entry(HELLO.digest, packets_of(100)))
    shrunk = AudioCache(0, directory=tmp_path, max_disk_bytes=2 * file_size)
    assert shrunk.stats()["disk_evictions"] == 1
    assert [shrunk.get(key(t)) is not None for t in "abc"] == [False, True, True]


def test_disk_hit_touches_the_file(tmp_path: Path) -> None:
    AudioCache(0, directory=tmp_path).put(HELLO, packets_of(10))
    path = tmp_path / f"{HELLO.digest}.opuspk"
    os.utime(path, (1_000, 1_000))
    assert AudioCache(0, directory=tmp_path).get(HELLO) is not None
    assert path.stat().st_mtime > 1_000


def test_entry_too_big_for_disk_stays_in_memory_only(tmp_path: Path) -> None:
    cache = AudioCache(10_000, directory=tmp_path, max_disk_bytes=100)
    cache.put(HELLO, packets_of(200))
    assert files_in(tmp_path) == []
    assert cache.get(HELLO) == packets_of(200)


def test_packet_too_long_for_the_format_is_not_persisted(tmp_path: Path) -> None:
    cache = AudioCache(200_000, directory=tmp_path)
    cache.put(HELLO, [b"x" * 70_000])
    assert files_in(tmp_path) == []
    assert cache.get(HELLO) == [b"x" * 70_000]


def _truncate(data: bytes) -> bytes:
    return data[:-3]


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0xFF])


def _wrong_version(data: bytes) -> bytes:
    return data[:6] + b"\x63" + data[7:]


def _packet_count(delta: int) -> Callable[[bytes], bytes]:
    # The count follows magic (6), version (1) and key hash (32); the checksum covers packets only.
    def damage(data: bytes) -> bytes:
        count = int.from_bytes(data[39:43], "big") + delta
        return data[:39] + count.to_bytes(4, "big") + data[43:]

    return damage


@pytest.mark.parametrize(
    "damage",
    [
        _truncate,
        _flip_last_byte,
        _wrong_version,
        lambda data: b"",
        lambda data: data[:10],
        lambda data: data + b"\x00",
        lambda data: b"not a cache file at all",
        _packet_count(-1),
        _packet_count(+1),
    ],
    ids=[
        "truncated",
        "flipped",
        "version",
        "empty",
        "header-cut",
        "trailing",
        "garbage",
        "count-low",
        "count-high",
    ],
)
async def test_corrupt_file_is_a_miss_and_is_removed(
    tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    AudioCache(0, directory=tmp_path).put(HELLO, [b"abc", b"defgh"])
    path = tmp_path / f"{HELLO.digest}.opuspk"
    path.write_bytes(damage(path.read_bytes()))
    cache = AudioCache(1_000, directory=tmp_path)
    assert await cache.aget(HELLO) is None
    assert not path.exists()
    stats = cache.stats()
    assert (stats["misses"], stats["disk_errors"], stats["disk_entries"]) == (1, 1, 0)
    assert stats["disk_bytes"] == 0


def test_file_copied_under_another_key_is_a_miss(tmp_path: Path) -> None:
    AudioCache(0, directory=tmp_path).put(HELLO, packets_of(10))
    other = key("other")
    (tmp_path / f"{HELLO.digest}.opuspk").rename(tmp_path / f"{other.digest}.opuspk")
    assert AudioCache(0, directory=tmp_path).get(other) is None
    assert files_in(tmp_path) == []


def test_file_deleted_behind_the_cache_is_a_miss(tmp_path: Path) -> None:
    cache = AudioCache(0, directory=tmp_path)
    cache.put(HELLO, packets_of(10))
    (tmp_path / f"{HELLO.digest}.opuspk").unlink()
    assert cache.get(HELLO) is None
    assert cache.stats()["disk_entries"] == 0


def test_opening_removes_stale_temp_files_and_ignores_foreign_ones(tmp_path: Path) -> None:
    stale = tmp_path / f"{HELLO.digest}.abc123.tmp"
    stale.write_bytes(b"half written")
    foreign = tmp_path / "README.txt"
    foreign.write_text("keep me")
    cache = AudioCache(0, directory=tmp_path)
    assert not stale.exists()
    assert foreign.exists()
    assert cache.stats()["disk_entries"] == 0


def test_unusable_directory_turns_the_disk_tier_off(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    cache = AudioCache(1_000, directory=not_a_dir)
    cache.put(HELLO, packets_of(10))
    assert cache.get(HELLO) == packets_of(10)
    assert cache.directory is None
    assert cache.stats()["max_disk_bytes"] == 0


def test_clear_empties_memory_and_disk(tmp_path: Path) -> None:
    cache = AudioCache(10_000, directory=tmp_path)
    cache.put(key("a"), packets_of(10))
    cache.put(key("b"), packets_of(10))
    cache.clear()
    assert files_in(tmp_path) == []
    assert cache.get(key("a")) is None
    stats = cache.stats()
    assert (stats["entries"], stats["bytes"], stats["disk_entries"], stats["disk_bytes"]) == (
        0,
        0,
        0,
        0,
    )


# -- async variants ------------------------------------------------------------------------


async def test_aput_and_aget_round_trip_through_disk(tmp_path: Path) -> None:
    cache = AudioCache(10_000, directory=tmp_path)
    await cache.aput(HELLO, [b"a", b"bc"])
    assert len(files_in(tmp_path)) == 1
    reopened = AudioCache(10_000, directory=tmp_path)
    assert await reopened.aget(HELLO) == [b"a", b"bc"]
    assert reopened.stats()["disk_hits"] == 1
    await reopened.aclear()
    assert files_in(tmp_path) == []
    assert await reopened.aget(HELLO) is None


async def test_aget_memory_hit_completes_without_suspending(tmp_path: Path) -> None:
    cache = AudioCache(10_000, directory=tmp_path)
    cache.put(HELLO, [b"a"])
    coroutine = cache.aget(HELLO)
    with pytest.raises(StopIteration) as finished:
        coroutine.send(None)
    assert finished.value.value == [b"a"]


async def test_aget_disk_read_runs_off_the_loop_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    AudioCache(0, directory=tmp_path).put(HELLO, [b"a"])
    cache = AudioCache(0, directory=tmp_path)
    read_threads: list[threading.Thread] = []
    original = Path.read_bytes

    def spying_read(self: Path) -> bytes:
        read_threads.append(threading.current_thread())
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", spying_read)
    assert await cache.aget(HELLO) == [b"a"]
    assert read_threads
    assert threading.main_thread() not in read_threads

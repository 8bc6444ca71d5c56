"""core.cache: LRU bounds, keys, the disk tier and its failure modes, PacketRecorder.

The disk tests use real files under pytest's tmp_path; the end-to-end test records
real Opus packets from PyAV and decodes them back after a round trip through disk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import zlib
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.audio import decode_opus_packets, opus_packets, rms
from core.cache import (
    PACKET_OVERHEAD,
    AudioCache,
    CacheKey,
    PacketRecorder,
    memory_size,
)
from core.cache_disk import CorruptEntryError, decode_entry, encode_entry
from core.tts.provider import EDGE_MP3, SynthesisRequest, VoiceSettings
from tests.fakes.audio_samples import edge_like_mp3

HELLO = CacheKey("edge", "en-US-AriaNeural", "+0%", "+0%", "+0Hz", "Hello")


def key(text: str) -> CacheKey:
    return dataclasses.replace(HELLO, text=text)


def packets_of(size: int, fill: int = 1, count: int = 1) -> list[bytes]:
    return [bytes([fill % 256]) * size for _ in range(count)]


def files_in(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


# -- keys ---------------------------------------------------------------------------


def test_key_from_request_takes_every_field() -> None:
    request = SynthesisRequest(
        "Game starts", VoiceSettings("en-GB-SoniaNeural", rate="+10%", volume="-5%", pitch="+2Hz")
    )
    assert CacheKey.from_request("edge", request) == CacheKey(
        "edge", "en-GB-SoniaNeural", "+10%", "-5%", "+2Hz", "Game starts"
    )


def test_digest_is_stable_across_runs() -> None:
    # The digest names files on disk: changing it orphans every persisted entry.
    assert HELLO.digest == "94965ee2d3cbc7f4c5804b14f964e803ef5968afec7247045435976cfd6e5b0c"


def test_digest_keeps_field_boundaries() -> None:
    a = CacheKey("edge", "v", "+0%", "+0%", "+0Hz", 'a","b')
    b = CacheKey("edge", "v", "+0%", "+0%", "+0Hz", "a")
    assert a.digest != b.digest
    assert (
        dataclasses.replace(HELLO, voice="ab", rate="c").digest
        != dataclasses.replace(HELLO, voice="a", rate="bc").digest
    )


@pytest.mark.parametrize("field", ["provider", "voice", "rate", "volume", "pitch", "text"])
async def test_changing_any_key_field_misses(tmp_path: Path, field: str) -> None:
    cache = AudioCache(10_000, directory=tmp_path)
    cache.put(HELLO, packets_of(50))
    other = dataclasses.replace(HELLO, **{field: getattr(HELLO, field) + "x"})
    assert other.digest != HELLO.digest
    assert cache.get(other) is None
    assert await AudioCache(10_000, directory=tmp_path).aget(other) is None
    assert cache.get(HELLO) == packets_of(50)


# -- memory tier ----------------------------------------------------------------------


def test_entry_size_counts_packet_lengths_plus_overhead() -> None:
    cache = AudioCache(10_000)
    cache.put(key("a"), [b"x" * 10, b"y" * 30])
    assert PACKET_OVERHEAD > 0
    assert memory_size([b"x" * 10, b"y" * 30]) == 40 + 2 * PACKET_OVERHEAD
    assert cache.stats()["bytes"] == 40 + 2 * PACKET_OVERHEAD


def test_least_recently_used_entry_is_evicted_first() -> None:
    entry = memory_size(packets_of(100))
    cache = AudioCache(3 * entry)
    for text in "abc":
        cache.put(key(text), packets_of(100, ord(text)))
    assert cache.get(key("a")) == packets_of(100, ord("a"))  # a is now the most recent
    cache.put(key("d"), packets_of(100, ord("d")))
    assert cache.get(key("b")) is None
    assert [cache.get(key(t)) is not None for t in "acd"] == [True, True, True]
    assert cache.stats()["evictions"] == 1
    assert cache.stats()["bytes"] == 3 * entry


def test_replacing_an_entry_does_not_count_it_twice() -> None:
    cache = AudioCache(1_000)
    cache.put(HELLO, packets_of(100))
    cache.put(HELLO, packets_of(200, fill=2))
    assert cache.get(HELLO) == packets_of(200, fill=2)
    assert cache.stats()["bytes"] == memory_size(packets_of(200))
    assert cache.stats()["entries"] == 1


def test_oversize_entry_is_not_stored_and_evicts_nothing() -> None:
    cache = AudioCache(500)
    cache.put(key("small"), packets_of(100))
    cache.put(key("big"), packets_of(400, count=2))
    assert cache.get(key("big")) is None
    assert cache.get(key("small")) == packets_of(100)
    assert cache.stats()["evictions"] == 0


def test_empty_utterance_is_not_stored() -> None:
    cache = AudioCache(500)
    cache.put(HELLO, [])
    assert cache.get(HELLO) is None
    assert cache.stats()["entries"] == 0


def test_returned_packets_are_a_copy() -> None:
    cache = AudioCache(1_000)
    cache.put(HELLO, packets_of(10))
    cache.get(HELLO).clear()  # type: ignore[union-attr]
    assert cache.get(HELLO) == packets_of(10)


def test_stats_counts() -> None:
    cache = AudioCache(2 * memory_size(packets_of(10)))
    assert cache.get(key("a")) is None
    for text in "abc":
        cache.put(key(text), packets_of(10))
    cache.get(key("c"))
    cache.get(key("b"))
    assert cache.stats() == {
        "hits": 2,
        "misses": 1,
        "evictions": 1,
        "entries": 2,
        "bytes": 2 * memory_size(packets_of(10)),
        "max_bytes": 2 * memory_size(packets_of(10)),
        "disk_hits": 0,
        "disk_evictions": 0,
        "disk_errors": 0,
        "disk_entries": 0,
        "disk_bytes": 0,
        "max_disk_bytes": 0,
    }


def test_negative_bounds_are_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        AudioCache(-1)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 7), st.integers(1, 400)),
        st.tuples(st.just("get"), st.integers(0, 7), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_any_sequence_stays_within_bound_and_keeps_most_recent(
    ops: list[tuple[str, int, int]],
) -> None:
    max_bytes = 800
    cache = AudioCache(max_bytes)
    last_stored: dict[int, list[bytes]] = {}
    recency: list[int] = []  # keys by last successful put or hit, oldest first
    gets = 0
    for op, k, size in ops:
        if op == "put":
            value = packets_of(size, fill=k + size)
            cache.put(key(str(k)), value)
            if memory_size(value) <= max_bytes:
                last_stored[k] = value
                recency = [*(r for r in recency if r != k), k]
        else:
            gets += 1
            if cache.get(key(str(k))) is not None:
                recency = [*(r for r in recency if r != k), k]
        assert cache.stats()["bytes"] <= max_bytes

    stats = cache.stats()
    newest_first = list(reversed(recency))
    present = [cache.get(key(str(k))) is not None for k in newest_first]
    # What survives is exactly the most recently used keys: a prefix of newest_first.
    assert present == sorted(present, reverse=True)
    if newest_first:
        assert present[0]
    for k, is_present in zip(newest_first, present, strict=True):
        if is_present:
            assert cache.get(key(str(k))) == last_stored[k]
    kept = [k for k, is_present in zip(newest_first, present, strict=True) if is_present]
    assert stats["entries"] == len(kept)
    assert stats["bytes"] == sum(memory_size(last_stored[k]) for k in kept)
    assert stats["hits"] + stats["misses"] == gets


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


# -- PacketRecorder ----------------------------------------------------------------------------


async def source(packets: list[bytes], fail: bool = False) -> AsyncGenerator[bytes, None]:
    for packet in packets:
        yield packet
    if fail:
        raise RuntimeError("synthesis failed mid-stream")


async def test_recorder_passes_packets_through_and_completes() -> None:
    recorder = PacketRecorder()
    played = [packet async for packet in recorder.tee(source([b"a", b"b"]))]
    assert played == [b"a", b"b"]
    assert recorder.is_complete
    assert recorder.cacheable_packets() == [b"a", b"b"]


async def test_recorder_failed_stream_is_not_cacheable() -> None:
    recorder = PacketRecorder()
    played: list[bytes] = []

    async def play() -> None:
        async for packet in recorder.tee(source([b"a", b"b"], fail=True)):
            played.append(packet)

    with pytest.raises(RuntimeError, match="mid-stream"):
        await play()
    assert played == [b"a", b"b"]
    assert not recorder.is_complete
    assert recorder.cacheable_packets() is None


async def test_recorder_abandoned_stream_is_not_cacheable_and_closes_source() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncGenerator[bytes, None]:
        try:
            while True:
                yield b"x"
        finally:
            closed.set()

    recorder = PacketRecorder()
    stream = recorder.tee(endless())
    assert await anext(stream) == b"x"
    await stream.aclose()
    assert closed.is_set()
    assert recorder.cacheable_packets() is None


async def test_recorder_drops_an_utterance_over_its_bound() -> None:
    recorder = PacketRecorder(max_bytes=2 * (10 + PACKET_OVERHEAD))
    played = [p async for p in recorder.tee(source(packets_of(10, count=3)))]
    assert len(played) == 3
    assert recorder.overflowed
    assert recorder.packets == []
    assert recorder.cacheable_packets() is None


def test_recorder_empty_stream_is_not_cacheable() -> None:
    recorder = PacketRecorder()
    recorder.complete()
    assert recorder.cacheable_packets() is None


async def test_recorded_real_opus_survives_disk_and_decodes_the_same(tmp_path: Path) -> None:
    async def mp3_chunks() -> AsyncGenerator[bytes, None]:
        audio = edge_like_mp3(0.5)
        for start in range(0, len(audio), 1440):
            yield audio[start : start + 1440]

    recorder = PacketRecorder(max_bytes=1_000_000)
    played = [p async for p in recorder.tee(opus_packets(mp3_chunks(), EDGE_MP3))]
    request = SynthesisRequest("Hello", VoiceSettings("en-US-AriaNeural"))
    cache_key = CacheKey.from_request("edge", request)
    packets = recorder.cacheable_packets()
    assert packets is not None
    await AudioCache(1_000_000, directory=tmp_path).aput(cache_key, packets)

    cached = await AudioCache(1_000_000, directory=tmp_path).aget(cache_key)
    assert cached == played
    pcm, seconds = decode_opus_packets(cached)
    assert seconds == pytest.approx(0.5, abs=0.1)
    assert rms(pcm) > 1_000

"""core.cache: keys, LRU bounds of the memory tier, PacketRecorder.

The end-to-end test records real Opus packets from PyAV and decodes them back
after a round trip through disk.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_voice.core.audio import decode_opus_packets, opus_packets, rms
from edge_voice.core.cache import (
    PACKET_OVERHEAD,
    AudioCache,
    CacheKey,
    PacketRecorder,
    memory_size,
)
from edge_voice.core.tts.provider import EDGE_MP3, SynthesisRequest, VoiceSettings
from tests.cache_support import HELLO, key, packets_of
from tests.fakes.audio_samples import edge_like_mp3

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

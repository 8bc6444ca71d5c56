"""A cache of finished utterances as Opus packets, in memory and optionally on disk.

Repeated phrases (greetings, announcements, "NAME said") are synthesized once.
Entries are keyed by provider, voice settings and text, bounded by bytes and
evicted least-recently-used first. A hit never touches the TTS service, so
cached phrases are spoken even while its breaker is OPEN. Only complete
syntheses may be stored: :class:`PacketRecorder` collects packets during
playback and hands them over only if the stream ended normally.

The disk tier (:mod:`core.cache_disk`) keeps one file per key in a directory
owned by one cache; its failures are logged, never raised, because the cache is
only an optimisation. Use :meth:`AudioCache.aget` / :meth:`AudioCache.aput` from
the event loop: they answer memory hits synchronously and move file I/O to a
worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_voice.core.cache_disk import DiskStore
from edge_voice.core.tts.provider import SynthesisRequest

DEFAULT_MAX_DISK_BYTES = 64 * 1024 * 1024

PACKET_OVERHEAD = 40
"""Bytes charged per packet in memory on top of its length: roughly what CPython
spends on one ``bytes`` object and its slot in the entry's tuple. Without it, a
cache of small 20 ms packets would use far more memory than its bound says."""

_KEY_SCHEMA = "audio-cache-key/1"


@dataclass(frozen=True, slots=True)
class CacheKey:
    """Everything that decides what an utterance sounds like."""

    provider: str
    voice: str
    rate: str
    volume: str
    pitch: str
    text: str

    @classmethod
    def from_request(cls, provider_name: str, request: SynthesisRequest) -> CacheKey:
        """The key for ``request`` spoken by the provider named ``provider_name``."""
        settings = request.settings
        return cls(
            provider=provider_name,
            voice=settings.voice,
            rate=settings.rate,
            volume=settings.volume,
            pitch=settings.pitch,
            text=request.text,
        )

    @property
    def digest(self) -> str:
        """A stable sha256 hex digest of every field (used as the file name on disk)."""
        fields = [_KEY_SCHEMA, self.provider, self.voice, self.rate, self.volume, self.pitch]
        # JSON quoting keeps field boundaries unambiguous whatever the text contains.
        canonical = json.dumps([*fields, self.text], ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def memory_size(packets: Sequence[bytes]) -> int:
    """Bytes an entry is charged in memory: packet lengths plus :data:`PACKET_OVERHEAD` each."""
    return sum(len(packet) for packet in packets) + PACKET_OVERHEAD * len(packets)


class AudioCache:
    """Finished utterances by :class:`CacheKey`, LRU-bounded by bytes in memory and on disk.

    ``max_bytes`` bounds memory (see :func:`memory_size`); with ``directory`` set,
    entries are also written there as files, the directory's total file size
    bounded by ``max_disk_bytes`` (least recently used files deleted first; a hit
    touches the file's mtime so the order survives restarts). Constructing the
    cache scans ``directory`` once (cheap: one ``scandir``); the directory must
    belong to this cache alone.

    Safe to use from several threads; the intended caller is the event loop,
    through :meth:`aget` and :meth:`aput`.
    """

    def __init__(
        self,
        max_bytes: int,
        *,
        directory: str | Path | None = None,
        max_disk_bytes: int = DEFAULT_MAX_DISK_BYTES,
    ) -> None:
        if max_bytes < 0 or max_disk_bytes < 0:
            raise ValueError("cache bounds must not be negative")
        self.max_bytes = max_bytes
        self.max_disk_bytes = max_disk_bytes if directory is not None else 0
        self.directory = Path(directory) if directory is not None else None
        self._lock = threading.Lock()
        self._memory: OrderedDict[CacheKey, tuple[bytes, ...]] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._disk_hits = 0
        self._misses = 0
        self._evictions = 0
        # The disk tier has its own lock so a slow file operation never holds up memory hits.
        self._disk: DiskStore | None = None
        if self.directory is not None:
            self._disk = DiskStore.open(self.directory, max_disk_bytes)
            if self._disk is None:
                self.directory = None
                self.max_disk_bytes = 0

    # -- public API -------------------------------------------------------------

    def get(self, key: CacheKey) -> list[bytes] | None:
        """The packets for ``key``, or None. Memory first, then disk (a disk hit is
        promoted to memory). Blocks on file I/O: prefer :meth:`aget` on the loop."""
        packets = self._get_memory(key)
        if packets is not None:
            return packets
        if self._disk is None:
            self._record_miss()
            return None
        return self._after_disk_read(key, self._disk.read(key.digest))

    async def aget(self, key: CacheKey) -> list[bytes] | None:
        """Like :meth:`get`; a memory hit returns without yielding, disk reads run in a thread."""
        packets = self._get_memory(key)
        if packets is not None:
            return packets
        if self._disk is None:
            self._record_miss()
            return None
        return self._after_disk_read(key, await asyncio.to_thread(self._disk.read, key.digest))

    def put(self, key: CacheKey, packets: Iterable[bytes]) -> None:
        """Store a *complete* utterance for ``key``. Each tier ignores an entry larger
        than its bound; an empty utterance is ignored. Blocks on file I/O: prefer :meth:`aput`."""
        entry = tuple(packets)
        if not entry:
            return
        self._put_memory(key, entry)
        if self._disk is not None:
            self._disk.write(key.digest, entry)

    async def aput(self, key: CacheKey, packets: Iterable[bytes]) -> None:
        """Like :meth:`put`, with the file written in a worker thread."""
        entry = tuple(packets)
        if not entry:
            return
        self._put_memory(key, entry)
        if self._disk is not None:
            await asyncio.to_thread(self._disk.write, key.digest, entry)

    def clear(self) -> None:
        """Drop every entry, in memory and on disk. Counters keep counting."""
        with self._lock:
            self._memory.clear()
            self._bytes = 0
        if self._disk is not None:
            self._disk.clear()

    async def aclear(self) -> None:
        """Like :meth:`clear`, with the files deleted in a worker thread."""
        await asyncio.to_thread(self.clear)

    def stats(self) -> dict[str, int]:
        """Counters and sizes for ``/tts status``.

        ``hits`` counts memory and disk hits (``disk_hits`` the latter alone);
        ``evictions`` and ``disk_evictions`` count entries dropped to stay within
        bounds; ``disk_errors`` counts corrupt files discarded and failed file I/O.
        """
        with self._lock:
            memory = {
                "hits": self._hits,
                "disk_hits": self._disk_hits,
                "misses": self._misses,
                "evictions": self._evictions,
                "entries": len(self._memory),
                "bytes": self._bytes,
                "max_bytes": self.max_bytes,
            }
        if self._disk is not None:
            return memory | self._disk.stats()
        disk = {
            "disk_evictions": 0,
            "disk_errors": 0,
            "disk_entries": 0,
            "disk_bytes": 0,
            "max_disk_bytes": self.max_disk_bytes,
        }
        return memory | disk

    # -- memory tier --------------------------------------------------------------

    def _get_memory(self, key: CacheKey) -> list[bytes] | None:
        with self._lock:
            entry = self._memory.get(key)
            if entry is None:
                return None
            self._memory.move_to_end(key)
            self._hits += 1
            return list(entry)

    def _put_memory(self, key: CacheKey, entry: tuple[bytes, ...]) -> None:
        size = memory_size(entry)
        if size > self.max_bytes:
            return
        with self._lock:
            previous = self._memory.pop(key, None)
            if previous is not None:
                self._bytes -= memory_size(previous)
            self._memory[key] = entry
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, evicted = self._memory.popitem(last=False)
                self._bytes -= memory_size(evicted)
                self._evictions += 1

    def _record_miss(self) -> None:
        with self._lock:
            self._misses += 1

    def _after_disk_read(self, key: CacheKey, packets: list[bytes] | None) -> list[bytes] | None:
        if packets is None:
            self._record_miss()
            return None
        with self._lock:
            self._hits += 1
            self._disk_hits += 1
        self._put_memory(key, tuple(packets))
        return packets


class PacketRecorder:
    """Collects an utterance's packets while they play, for caching once complete.

    Wrap the packet stream with :meth:`tee` (or call :meth:`record` per packet and
    :meth:`complete` when the stream ends normally). :meth:`cacheable_packets`
    returns the packets only for a complete stream that stayed within
    ``max_bytes`` (pass the cache's bound so a long utterance that could never be
    stored is not held in memory); otherwise None, so a truncated, failed or
    skipped utterance never reaches the cache.
    """

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes
        self._packets: list[bytes] = []
        self._size = 0
        self._complete = False
        self._overflowed = False

    @property
    def packets(self) -> list[bytes]:
        """The packets recorded so far (empty after an overflow)."""
        return self._packets

    @property
    def is_complete(self) -> bool:
        """True once :meth:`complete` was called."""
        return self._complete

    @property
    def overflowed(self) -> bool:
        """True if the utterance outgrew ``max_bytes`` and was dropped."""
        return self._overflowed

    def record(self, packet: bytes) -> None:
        """Keep one packet (ignored once complete or overflowed)."""
        if self._complete or self._overflowed:
            return
        self._size += len(packet) + PACKET_OVERHEAD
        if self.max_bytes is not None and self._size > self.max_bytes:
            self._overflowed = True
            self._packets = []
            return
        self._packets.append(packet)

    def complete(self) -> None:
        """Mark that the stream ended normally: every packet was recorded."""
        self._complete = True

    def cacheable_packets(self) -> list[bytes] | None:
        """The whole utterance if it is complete, within bounds and not empty; else None."""
        if not self._complete or self._overflowed or not self._packets:
            return None
        return self._packets

    async def tee(self, packets: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
        """Yield ``packets`` unchanged, recording each; :meth:`complete` is called only
        if the source ends normally (not on error, cancellation or an early close).
        Closing this generator closes ``packets`` too."""
        try:
            async for packet in packets:
                self.record(packet)
                yield packet
            self.complete()
        finally:
            if isinstance(packets, AsyncGenerator):
                await packets.aclose()

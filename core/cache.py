"""A cache of finished utterances as Opus packets, in memory and optionally on disk.

Repeated phrases (greetings, announcements, "NAME said") are synthesized once.
Entries are keyed by provider, voice settings and text, bounded by bytes and
evicted least-recently-used first. A hit never touches the TTS service, so
cached phrases are spoken even while its breaker is OPEN. Only complete
syntheses may be stored: :class:`PacketRecorder` collects packets during
playback and hands them over only if the stream ended normally.

The disk tier keeps one file per key in a directory owned by one cache. A file
that is corrupt, truncated or unreadable is a miss (and is deleted); disk
failures are logged, never raised, because the cache is only an optimisation.
Use :meth:`AudioCache.aget` / :meth:`AudioCache.aput` from the event loop: they
answer memory hits synchronously and move file I/O to a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import struct
import tempfile
import threading
import zlib
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.tts.provider import SynthesisRequest

log = logging.getLogger(__name__)

DEFAULT_MAX_DISK_BYTES = 64 * 1024 * 1024

PACKET_OVERHEAD = 40
"""Bytes charged per packet in memory on top of its length: roughly what CPython
spends on one ``bytes`` object and its slot in the entry's tuple. Without it, a
cache of small 20 ms packets would use far more memory than its bound says."""

_KEY_SCHEMA = "audio-cache-key/1"
_MAGIC = b"TTSOPK"
_VERSION = 1
# magic, version, sha256 of the key, packet count, crc32 of the packet section
_HEADER = struct.Struct(">6sB32sII")
_LENGTH = struct.Struct(">H")
# A valid Opus packet is at most 48 frames x 1275 bytes = 61,200 bytes, so two
# bytes of length always suffice; anything longer is not Opus and is not persisted.
_MAX_PACKET = 0xFFFF
_SUFFIX = ".opuspk"
_TEMP_SUFFIX = ".tmp"
_ENTRY_NAME = re.compile(r"[0-9a-f]{64}" + re.escape(_SUFFIX))
_TEMP_NAME = re.compile(r"[0-9a-f]{64}\..+" + re.escape(_TEMP_SUFFIX))


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


class CorruptEntryError(ValueError):
    """A cache file that does not hold a whole, intact entry for its key."""


def memory_size(packets: Sequence[bytes]) -> int:
    """Bytes an entry is charged in memory: packet lengths plus :data:`PACKET_OVERHEAD` each."""
    return sum(len(packet) for packet in packets) + PACKET_OVERHEAD * len(packets)


def encode_entry(digest: str, packets: Sequence[bytes]) -> bytes:
    """Serialize ``packets`` for the key with ``digest``: header, then length-prefixed packets."""
    body = b"".join(_LENGTH.pack(len(packet)) + packet for packet in packets)
    header = _HEADER.pack(_MAGIC, _VERSION, bytes.fromhex(digest), len(packets), zlib.crc32(body))
    return header + body


def decode_entry(digest: str, data: bytes) -> list[bytes]:
    """Parse bytes written by :func:`encode_entry`; raise :class:`CorruptEntryError` if
    they are truncated, damaged, of another version or for another key."""
    if len(data) < _HEADER.size:
        raise CorruptEntryError("shorter than the header")
    magic, version, key_hash, count, crc = _HEADER.unpack_from(data)
    if magic != _MAGIC or version != _VERSION:
        raise CorruptEntryError("unknown magic or version")
    if key_hash != bytes.fromhex(digest):
        raise CorruptEntryError("written for another key")
    body = memoryview(data)[_HEADER.size :]
    if zlib.crc32(body) != crc:
        raise CorruptEntryError("checksum mismatch")
    packets: list[bytes] = []
    offset = 0
    for _ in range(count):
        if offset + _LENGTH.size > len(body):
            raise CorruptEntryError("truncated packet length")
        (length,) = _LENGTH.unpack_from(body, offset)
        offset += _LENGTH.size
        if offset + length > len(body):
            raise CorruptEntryError("truncated packet")
        packets.append(bytes(body[offset : offset + length]))
        offset += length
    if offset != len(body):
        raise CorruptEntryError("trailing bytes")
    if not packets:
        raise CorruptEntryError("no packets")
    return packets


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
        # Disk state has its own lock so a slow file operation never holds up memory hits.
        self._disk_lock = threading.Lock()
        self._disk: OrderedDict[str, int] = OrderedDict()  # digest -> file size, LRU first
        self._disk_bytes = 0
        self._disk_evictions = 0
        self._disk_errors = 0
        if self.directory is not None:
            self._open_directory(self.directory)

    # -- public API -------------------------------------------------------------

    def get(self, key: CacheKey) -> list[bytes] | None:
        """The packets for ``key``, or None. Memory first, then disk (a disk hit is
        promoted to memory). Blocks on file I/O: prefer :meth:`aget` on the loop."""
        packets = self._get_memory(key)
        if packets is not None:
            return packets
        if self.directory is None:
            self._record_miss()
            return None
        return self._after_disk_read(key, self._read_disk(key))

    async def aget(self, key: CacheKey) -> list[bytes] | None:
        """Like :meth:`get`; a memory hit returns without yielding, disk reads run in a thread."""
        packets = self._get_memory(key)
        if packets is not None:
            return packets
        if self.directory is None:
            self._record_miss()
            return None
        return self._after_disk_read(key, await asyncio.to_thread(self._read_disk, key))

    def put(self, key: CacheKey, packets: Iterable[bytes]) -> None:
        """Store a *complete* utterance for ``key``. Each tier ignores an entry larger
        than its bound; an empty utterance is ignored. Blocks on file I/O: prefer :meth:`aput`."""
        entry = tuple(packets)
        if not entry:
            return
        self._put_memory(key, entry)
        if self.directory is not None:
            self._write_disk(key, entry)

    async def aput(self, key: CacheKey, packets: Iterable[bytes]) -> None:
        """Like :meth:`put`, with the file written in a worker thread."""
        entry = tuple(packets)
        if not entry:
            return
        self._put_memory(key, entry)
        if self.directory is not None:
            await asyncio.to_thread(self._write_disk, key, entry)

    def clear(self) -> None:
        """Drop every entry, in memory and on disk. Counters keep counting."""
        with self._lock:
            self._memory.clear()
            self._bytes = 0
        if self.directory is None:
            return
        with self._disk_lock:
            for digest in list(self._disk):
                self._delete_file(digest)

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
        with self._disk_lock:
            disk = {
                "disk_evictions": self._disk_evictions,
                "disk_errors": self._disk_errors,
                "disk_entries": len(self._disk),
                "disk_bytes": self._disk_bytes,
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

    # -- disk tier ------------------------------------------------------------------

    def _path(self, digest: str) -> Path:
        assert self.directory is not None
        return self.directory / (digest + _SUFFIX)

    def _open_directory(self, directory: Path) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            found: list[tuple[int, str, int]] = []
            with os.scandir(directory) as entries:
                for entry in entries:
                    if _TEMP_NAME.fullmatch(entry.name):
                        # Left behind by a crash mid-write: never renamed, so never valid.
                        Path(entry.path).unlink(missing_ok=True)
                    elif _ENTRY_NAME.fullmatch(entry.name) and entry.is_file():
                        stat = entry.stat()
                        digest = entry.name.removesuffix(_SUFFIX)
                        found.append((stat.st_mtime_ns, digest, stat.st_size))
        except OSError as exc:
            log.warning("audio cache directory %s is unusable, disk tier off: %s", directory, exc)
            self.directory = None
            self.max_disk_bytes = 0
            return
        with self._disk_lock:
            for _, digest, size in sorted(found):
                self._disk[digest] = size
                self._disk_bytes += size
            self._enforce_disk_bound()

    def _read_disk(self, key: CacheKey) -> list[bytes] | None:
        digest = key.digest
        with self._disk_lock:
            if digest not in self._disk:
                return None
            path = self._path(digest)
            try:
                packets = decode_entry(digest, path.read_bytes())
            except FileNotFoundError:
                self._disk_bytes -= self._disk.pop(digest)
                return None
            except (CorruptEntryError, OSError) as exc:
                log.warning("discarding audio cache file %s: %s", path.name, exc)
                self._disk_errors += 1
                self._delete_file(digest)
                return None
            try:
                os.utime(path)
            except OSError as exc:
                log.debug("cannot touch audio cache file %s: %s", path.name, exc)
            self._disk.move_to_end(digest)
            return packets

    def _write_disk(self, key: CacheKey, entry: tuple[bytes, ...]) -> None:
        if any(len(packet) > _MAX_PACKET for packet in entry):
            return
        digest = key.digest
        data = encode_entry(digest, entry)
        if len(data) > self.max_disk_bytes:
            return
        with self._disk_lock:
            if self.directory is None:
                return
            try:
                self._write_atomically(self.directory, digest, data)
            except OSError as exc:
                log.warning("cannot write audio cache file for %s: %s", digest, exc)
                self._disk_errors += 1
                return
            self._disk_bytes -= self._disk.pop(digest, 0)
            self._disk[digest] = len(data)
            self._disk_bytes += len(data)
            self._enforce_disk_bound()

    def _write_atomically(self, directory: Path, digest: str, data: bytes) -> None:
        # Readers see the old file or the whole new one, never a partial write. No
        # fsync: after a power loss a damaged file only costs a miss (it fails its checks).
        fd, temp_name = tempfile.mkstemp(dir=directory, prefix=digest + ".", suffix=_TEMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(temp_name, self._path(digest))
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

    def _enforce_disk_bound(self) -> None:
        while self._disk_bytes > self.max_disk_bytes and self._disk:
            self._delete_file(next(iter(self._disk)))
            self._disk_evictions += 1

    def _delete_file(self, digest: str) -> None:
        self._disk_bytes -= self._disk.pop(digest, 0)
        try:
            self._path(digest).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot delete audio cache file for %s: %s", digest, exc)
            self._disk_errors += 1


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

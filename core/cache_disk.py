"""The audio cache's disk tier: one file per key in a directory owned by one cache.

A file holds one finished utterance: a header (magic, version, the key's sha256, the
packet count, a crc32 of the rest), then each Opus packet with a two-byte length. The
files are bounded by their total size, least recently used deleted first; a hit touches
the file's mtime so the order survives restarts.

A file that is corrupt, truncated or unreadable is a miss (and is deleted); disk failures
are logged, never raised, because the cache is only an optimisation. Every method here
does file I/O: :class:`core.cache.AudioCache` calls them from a worker thread.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import tempfile
import threading
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

# The disk tier's messages keep the logger name they had inside core.cache.
log = logging.getLogger("edge_voice.core.cache")

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


class CorruptEntryError(ValueError):
    """A cache file that does not hold a whole, intact entry for its key."""


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


class DiskStore:
    """Entries as files in ``directory`` by key digest, their total size bounded by
    ``max_bytes``. Create it with :meth:`open`. Safe to use from several threads."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._files: OrderedDict[str, int] = OrderedDict()  # digest -> file size, LRU first
        self._bytes = 0
        self._evictions = 0
        self._errors = 0

    @classmethod
    def open(cls, directory: Path, max_bytes: int) -> DiskStore | None:
        """A store over ``directory`` (created if missing) holding the files already
        there, oldest mtime first; None, with a warning, if the directory is unusable."""
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
            return None
        store = cls(directory, max_bytes)
        with store._lock:
            for _, digest, size in sorted(found):
                store._files[digest] = size
                store._bytes += size
            store._enforce_bound()
        return store

    def read(self, digest: str) -> list[bytes] | None:
        """The packets stored for ``digest``, or None (a damaged file is deleted)."""
        with self._lock:
            if digest not in self._files:
                return None
            path = self._path(digest)
            try:
                packets = decode_entry(digest, path.read_bytes())
            except FileNotFoundError:
                self._bytes -= self._files.pop(digest)
                return None
            except (CorruptEntryError, OSError) as exc:
                log.warning("discarding audio cache file %s: %s", path.name, exc)
                self._errors += 1
                self._delete_file(digest)
                return None
            try:
                os.utime(path)
            except OSError as exc:
                log.debug("cannot touch audio cache file %s: %s", path.name, exc)
            self._files.move_to_end(digest)
            return packets

    def write(self, digest: str, entry: Sequence[bytes]) -> None:
        """Store ``entry`` for ``digest``, replacing what was there; an entry that
        cannot be persisted or is larger than the bound is ignored."""
        if any(len(packet) > _MAX_PACKET for packet in entry):
            return
        data = encode_entry(digest, entry)
        if len(data) > self.max_bytes:
            return
        with self._lock:
            try:
                self._write_atomically(digest, data)
            except OSError as exc:
                log.warning("cannot write audio cache file for %s: %s", digest, exc)
                self._errors += 1
                return
            self._bytes -= self._files.pop(digest, 0)
            self._files[digest] = len(data)
            self._bytes += len(data)
            self._enforce_bound()

    def clear(self) -> None:
        """Delete every file of this store."""
        with self._lock:
            for digest in list(self._files):
                self._delete_file(digest)

    def stats(self) -> dict[str, int]:
        """The ``disk_*`` counters of :meth:`core.cache.AudioCache.stats`."""
        with self._lock:
            return {
                "disk_evictions": self._evictions,
                "disk_errors": self._errors,
                "disk_entries": len(self._files),
                "disk_bytes": self._bytes,
                "max_disk_bytes": self.max_bytes,
            }

    def _path(self, digest: str) -> Path:
        return self.directory / (digest + _SUFFIX)

    def _write_atomically(self, digest: str, data: bytes) -> None:
        # Readers see the old file or the whole new one, never a partial write. No
        # fsync: after a power loss a damaged file only costs a miss (it fails its checks).
        fd, temp_name = tempfile.mkstemp(
            dir=self.directory, prefix=digest + ".", suffix=_TEMP_SUFFIX
        )
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
            os.replace(temp_name, self._path(digest))
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

    def _enforce_bound(self) -> None:
        while self._bytes > self.max_bytes and self._files:
            self._delete_file(next(iter(self._files)))
            self._evictions += 1

    def _delete_file(self, digest: str) -> None:
        self._bytes -= self._files.pop(digest, 0)
        try:
            self._path(digest).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot delete audio cache file for %s: %s", digest, exc)
            self._errors += 1

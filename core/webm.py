"""A small incremental WebM (EBML) reader: the Opus frames of a stream, as bytes arrive.

Edge's ``webm-24khz-16bit-mono-opus`` output is Opus in WebM. Its frames can go to
Discord as they are, with no decoding: this reader walks the EBML elements, enters the
containers that hold frames (Segment, Cluster, BlockGroup; their size may be unknown,
as in a live stream), skips everything else, and returns the payload of each
SimpleBlock or Block (Edge sends one track). Laced blocks (several frames in one) are
not used for Opus in WebM and are refused. Pure: bytes in, frames out.
"""

from __future__ import annotations

from collections.abc import Iterator

EBML_HEADER = 0x1A45DFA3
SEGMENT = 0x18538067
CLUSTER = 0x1F43B675
BLOCK_GROUP = 0xA0
BLOCK = 0xA1
SIMPLE_BLOCK = 0xA3
TRACKS = 0x1654AE6B
_CONTAINERS = frozenset({SEGMENT, CLUSTER, BLOCK_GROUP})
_BLOCKS = frozenset({SIMPLE_BLOCK, BLOCK})
_MAX_ELEMENT = 1 << 20
"""The largest element read whole (a block, a header): bigger means it is not our stream."""
_UNKNOWN = -1


class WebmError(ValueError):
    """The bytes are not a WebM stream this reader can take apart."""


def _vint(data: bytes | bytearray, at: int, *, keep_marker: bool) -> tuple[int, int] | None:
    """A variable-length integer at ``at``: (value, length), or None if incomplete."""
    if at >= len(data):
        return None
    first = data[at]
    if first == 0:
        raise WebmError("invalid EBML variable-length integer")
    length = 9 - first.bit_length()
    if at + length > len(data):
        return None
    value = first if keep_marker else first & ((1 << (8 - length)) - 1)
    all_ones = value == (1 << (8 - length)) - 1
    for byte in data[at + 1 : at + length]:
        value = (value << 8) | byte
        all_ones = all_ones and byte == 0xFF
    if not keep_marker and all_ones:
        return _UNKNOWN, length
    return value, length


class WebmOpusReader:
    """Feed WebM bytes; get the frames that were completed (one track assumed)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._skip = 0
        self.frames_out = 0
        self.started = False
        """Whether the EBML header was seen (the stream is WebM at all)."""

    @property
    def pending(self) -> int:
        """Bytes held for an element not complete yet."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[bytes]:
        """The frames ``chunk`` completed (often none). Raises :class:`WebmError`."""
        self._buffer += chunk
        frames = list(self._elements())
        self.frames_out += len(frames)
        return frames

    def _elements(self) -> Iterator[bytes]:
        data = self._buffer
        at = 0
        while True:
            if self._skip:
                taken = min(self._skip, len(data) - at)
                self._skip -= taken
                at += taken
                if self._skip:
                    break
            element = _vint(data, at, keep_marker=True)
            if element is None:
                break
            size = _vint(data, at + element[1], keep_marker=False)
            if size is None:
                break
            ident, (length, size_length) = element[0], size
            if not self.started:
                if ident != EBML_HEADER:
                    raise WebmError(f"not WebM: starts with element {ident:#x}")
                self.started = True
            body = at + element[1] + size_length
            if ident in _CONTAINERS:
                at = body  # step inside; its children follow
                continue
            if length == _UNKNOWN or length > _MAX_ELEMENT:
                raise WebmError(f"element {ident:#x} of size {length} cannot be read")
            if ident not in _BLOCKS:
                self._skip = length
                at = body
                continue
            if body + length > len(data):
                break
            yield _block_frame(bytes(data[body : body + length]))
            at = body + length
        del data[:at]


def _block_frame(block: bytes) -> bytes:
    """The frame of a (Simple)Block: track number, 16-bit timecode, flags, frame."""
    track = _vint(block, 0, keep_marker=False)
    if track is None or len(block) < track[1] + 3:
        raise WebmError("truncated block")
    flags = block[track[1] + 2]
    if flags & 0x06:
        raise WebmError("laced blocks are not supported")
    return block[track[1] + 3 :]

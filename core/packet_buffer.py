"""Hand-over of Opus packets from the event loop to discord.py's player thread.

:func:`core.audio.opus_packets` produces packets on the event loop; discord.py reads one
every 20 ms on its own thread. :class:`PacketBuffer` sits between the two and covers
synthesis stalls with silence; :func:`pump` fills it from a packet stream.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator

from edge_voice.core.audio import OPUS_SILENCE_FRAME
from edge_voice.core.clock import Clock, monotonic


class PacketBuffer:
    """Thread-safe hand-over of Opus packets from the event loop to a player thread.

    The loop side calls :meth:`put` and then :meth:`finish` (with the error, if
    synthesis failed); discord.py's player thread calls :meth:`read` every 20 ms.
    While synthesis lags behind playback, ``read`` returns :data:`OPUS_SILENCE_FRAME`
    instead of ending; after ``stall_limit`` seconds without a packet it ends
    (``stalled_out`` is then True). Give ``read`` a timeout of about one packet
    (0.02 s) so the player keeps its cadence. Times are readings of ``clock``.
    """

    def __init__(self, *, stall_limit: float = 5.0, clock: Clock = monotonic) -> None:
        if stall_limit < 0:
            raise ValueError("stall_limit must not be negative")
        self.stall_limit = stall_limit
        self._clock = clock
        self._cond = threading.Condition()
        self._packets: deque[bytes] = deque()
        self._finished = False
        self._closed = False
        self._error: BaseException | None = None
        self._error_delivered = False
        self._stall_since: float | None = None
        self.first_packet_event = threading.Event()
        """Set when the first packet is put (wait on it from any thread)."""
        self.created_at = clock()
        self.first_packet_at: float | None = None
        self.first_read_at: float | None = None
        self.finished_at: float | None = None
        self.packets_put = 0
        self.packets_read = 0
        self.silence_frames = 0
        self.stalled_out = False

    @property
    def closed(self) -> bool:
        """True once the reader is gone or ended: further packets are dropped."""
        return self._closed

    @property
    def error(self) -> BaseException | None:
        """The error ``finish`` was given, if any."""
        return self._error

    def put(self, packet: bytes) -> bool:
        """Queue one packet; False (and the packet dropped) if the buffer is closed."""
        with self._cond:
            if self._closed or self._finished:
                return False
            self._packets.append(packet)
            self.packets_put += 1
            if self.first_packet_at is None:
                self.first_packet_at = self._clock()
                self.first_packet_event.set()
            self._cond.notify_all()
            return True

    def finish(self, error: BaseException | None = None) -> None:
        """No more packets will come; ``error`` is raised to the reader after the last one."""
        with self._cond:
            if self._finished or self._closed:
                return
            self._finished = True
            self._error = error
            self.finished_at = self._clock()
            self._cond.notify_all()

    def close(self) -> None:
        """Drop what is queued and end: a blocked ``read`` returns ``b""`` at once."""
        with self._cond:
            self._closed = True
            self._packets.clear()
            self._cond.notify_all()

    def read(self, timeout: float) -> bytes:
        """The next packet, waiting at most ``timeout`` seconds (player thread).

        Returns :data:`OPUS_SILENCE_FRAME` when nothing came in time, ``b""`` at
        the end. The ``finish`` error is raised once, after the queued packets.
        """
        with self._cond:
            started = self._clock()
            self._cond.wait_for(self._readable, timeout)
            if self._closed:
                return b""
            if self._packets:
                return self._take()
            if self._finished:
                self._closed = True
                if self._error is not None and not self._error_delivered:
                    self._error_delivered = True
                    raise self._error
                return b""
            if self._stall_since is None:
                self._stall_since = started
            if self._clock() - self._stall_since >= self.stall_limit:
                self._closed = True
                self.stalled_out = True
                return b""
            self.silence_frames += 1
            return OPUS_SILENCE_FRAME

    def _readable(self) -> bool:
        return bool(self._packets) or self._finished or self._closed

    def _take(self) -> bytes:
        packet = self._packets.popleft()
        self._stall_since = None
        self.packets_read += 1
        if self.first_read_at is None:
            self.first_read_at = self._clock()
        return packet


async def pump(packets: AsyncIterator[bytes], buffer: PacketBuffer) -> int:
    """Move ``packets`` into ``buffer`` and finish it; return how many were put.

    An exception from ``packets`` goes to ``buffer.finish(error)`` (the reader
    sees it) instead of being raised here. Stops early, closing ``packets``, once
    the reader has closed the buffer, which it notices at the next packet: when
    playback ends early, cancel the pump task too. Cancellation closes the buffer.
    """
    count = 0
    try:
        async for packet in packets:
            if not buffer.put(packet):
                break
            count += 1
    except asyncio.CancelledError:
        buffer.close()
        raise
    except Exception as exc:
        buffer.finish(exc)
        return count
    finally:
        if isinstance(packets, AsyncGenerator):
            await packets.aclose()
    buffer.finish()
    return count

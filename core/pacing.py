"""One pacing loop for every guild: each stream's next 20 ms packet, on one thread.

discord.py plays each source on a thread of its own (``AudioPlayer``), which wakes every
20 ms, reads a packet, encrypts and sends it. With many guilds those threads compete
for the GIL and the core, and each wakes late on its own. :class:`Pacer` replaces them
with one thread: at every 20 ms tick it reads one packet from each stream it plays and
hands it to that stream's ``send`` (``VoiceClient.send_audio_packet`` in the cog).

The schedule is absolute (tick ``k`` is due at ``start + k * 20 ms``), as discord.py's is:
a late wake-up sends the ticks it missed at once, up to ``max_catch_up``; further behind,
the schedule restarts from now (those packets play late instead of in a burst). After a
stream's last packet it gets ``trailing_silence`` Opus silence frames, as discord.py's
player sends, then its ``on_end`` is called (on the pacer's thread).

Everything that decides is in :meth:`Pacer.tick`, a plain call with the time as an
argument; :meth:`Pacer.run_forever` is the thread's sleep-and-tick loop. Clock and sleep
are injectable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edge_voice.core.audio import OPUS_FRAME_SECONDS, OPUS_SILENCE_FRAME

log = logging.getLogger(__name__)

TRAILING_SILENCE = 5
"""Silence frames after a stream's last packet (what discord.py's player sends)."""
MAX_CATCH_UP = 5
"""Missed ticks sent at once after a late wake-up; further behind, the schedule restarts."""


@dataclass(eq=False)
class PacedStream:
    """One stream the pacer plays.

    ``read`` returns the next packet without blocking (``b""`` at the end);
    ``send`` sends one packet; ``ready`` says whether sending now would reach anyone
    (a stream whose connection is down is skipped, not read, until it is back);
    ``on_end(error)`` is called once, after the trailing silence or on an error.
    """

    read: Callable[[], bytes]
    send: Callable[[bytes], None]
    on_end: Callable[[BaseException | None], None]
    ready: Callable[[], bool] = lambda: True
    packets_sent: int = 0
    silence_left: int = TRAILING_SILENCE
    ended: bool = False
    stopping: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """End after the trailing silence, without reading any further (from any thread)."""
        self.stopping = True


class Pacer:
    """Sends every stream's next packet at each 20 ms tick, on one thread.

    ``add`` a :class:`PacedStream` from any thread; the thread starts with the first
    one and sleeps while there is none (``autostart=False``: no thread, the caller
    calls :meth:`tick`). :meth:`close` ends the thread; streams still
    playing end with a ``RuntimeError``.
    """

    def __init__(
        self,
        *,
        frame: float = OPUS_FRAME_SECONDS,
        max_catch_up: int = MAX_CATCH_UP,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
        autostart: bool = True,
    ) -> None:
        self.frame = frame
        self.autostart = autostart
        """Start the thread with the first stream (False: the caller calls :meth:`tick`)."""
        self.max_catch_up = max_catch_up
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Condition()
        self._streams: list[PacedStream] = []
        self._incoming: list[PacedStream] = []
        self._start: float | None = None
        self._ticks = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self.late_ticks = 0
        """Ticks that were sent late (caught up) so far."""
        self.resyncs = 0
        """Times the schedule restarted because the thread fell too far behind."""

    @property
    def playing(self) -> int:
        """Streams being played (or waiting for their first tick)."""
        with self._lock:
            return len(self._streams) + len(self._incoming)

    def add(self, stream: PacedStream) -> None:
        """Play ``stream`` from the next tick on."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the pacer is closed")
            self._incoming.append(stream)
            if self._thread is None and self.autostart:
                self._thread = threading.Thread(
                    target=self.run_forever, name="voice-pacer", daemon=True
                )
                self._thread.start()
            self._lock.notify_all()

    def tick(self, now: float) -> float:
        """Send what is due at ``now``; return when the next tick is due."""
        with self._lock:
            if self._incoming:
                self._streams.extend(self._incoming)
                self._incoming.clear()
            streams = list(self._streams)
        if self._start is None:
            self._start, self._ticks = now, 0
        # The epsilon keeps a wake-up exactly on time from reading as just before it.
        due = int((now - self._start) / self.frame + 1e-6) + 1 - self._ticks
        if due > self.max_catch_up:
            # Too far behind: a burst that long would overrun listeners' jitter
            # buffers anyway. Send one round and restart the schedule from now.
            self.resyncs += 1
            self._start, self._ticks, due = now, 0, 1
        elif due > 1:
            self.late_ticks += due - 1
        for _ in range(max(0, due)):
            for stream in streams:
                self._send_one(stream)
            self._ticks += 1
        start = self._start
        with self._lock:
            self._streams = [s for s in self._streams if not s.ended]
            if not self._streams and not self._incoming:
                self._start = None
        return start + self._ticks * self.frame

    def _send_one(self, stream: PacedStream) -> None:
        if stream.ended:
            return
        try:
            if not stream.ready():
                return
            packet = b"" if stream.stopping or stream.silence_left < TRAILING_SILENCE else None
            if packet is None:
                packet = stream.read()
            if packet:
                stream.send(packet)
                stream.packets_sent += 1
                return
            if stream.silence_left > 0:
                stream.silence_left -= 1
                stream.send(OPUS_SILENCE_FRAME)
                return
            self._end(stream, None)
        except Exception as exc:  # one stream's failure must not stop the others
            self._end(stream, exc)

    def _end(self, stream: PacedStream, error: BaseException | None) -> None:
        stream.ended = True
        try:
            stream.on_end(error)
        except Exception:
            log.exception("a paced stream's on_end failed")

    def run_forever(self) -> None:
        """The thread: tick, sleep until the next tick; wait while nothing plays."""
        while True:
            with self._lock:
                while not self._closed and not self._streams and not self._incoming:
                    self._lock.wait()
                if self._closed:
                    break
            next_due = self.tick(self._clock())
            delay = next_due - self._clock()
            if delay > 0:
                self._sleep(delay)
        with self._lock:
            left = self._streams + self._incoming
            self._streams, self._incoming = [], []
        for stream in left:
            if not stream.ended:
                self._end(stream, RuntimeError("the pacer was closed"))

    def close(self) -> None:
        """End the thread and join it (blocks for at most one tick)."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
            self._lock.notify_all()
        if thread is not None:
            thread.join(timeout=5.0)

"""The shared pacer: ticks, catch-up, trailing silence, stop, failures, the thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from edge_voice.core.audio import OPUS_SILENCE_FRAME
from edge_voice.core.pacing import TRAILING_SILENCE, PacedStream, Pacer
from edge_voice.core.packet_buffer import PacketBuffer

FRAME = 0.02


class Recorder:
    """A stream of numbered packets; records what was sent and how it ended."""

    def __init__(self, count: int, name: str = "s") -> None:
        self.packets: Iterator[bytes] = iter(f"{name}{i}".encode() for i in range(count))
        self.sent: list[bytes] = []
        self.ends: list[BaseException | None] = []
        self.connected = True
        self.stream = PacedStream(
            read=lambda: next(self.packets, b""),
            send=self.sent.append,
            on_end=self.ends.append,
            ready=lambda: self.connected,
        )


def test_each_tick_sends_one_packet_per_stream_then_silence_then_ends() -> None:
    pacer = Pacer(autostart=False)
    a, b = Recorder(2, "a"), Recorder(1, "b")
    pacer.add(a.stream)
    pacer.add(b.stream)
    now = 100.0
    for _ in range(2 + TRAILING_SILENCE + 1):
        due = pacer.tick(now)
        assert due == pytest.approx(now + FRAME)
        now = due
    assert a.sent == [b"a0", b"a1", *[OPUS_SILENCE_FRAME] * TRAILING_SILENCE]
    assert b.sent == [b"b0", *[OPUS_SILENCE_FRAME] * TRAILING_SILENCE]
    assert (a.ends, b.ends) == ([None], [None])
    assert pacer.playing == 0
    pacer.tick(now)  # nothing left: nothing more is sent or ended
    assert len(a.ends) == 1


def test_a_late_wake_up_sends_the_missed_ticks_and_too_late_restarts_the_schedule() -> None:
    pacer = Pacer(max_catch_up=3, autostart=False)
    s = Recorder(100)
    pacer.add(s.stream)
    pacer.tick(0.0)
    assert len(s.sent) == 1
    # Woke 2.5 frames late: ticks 1, 2 and 3 are due.
    assert pacer.tick(0.07) == pytest.approx(0.08)
    assert (len(s.sent), pacer.late_ticks) == (4, 2)
    # Early: nothing is due yet.
    pacer.tick(0.075)
    assert len(s.sent) == 4
    # Ten frames behind: one packet, and the schedule starts again from now.
    assert pacer.tick(0.3) == pytest.approx(0.32)
    assert (len(s.sent), pacer.resyncs) == (5, 1)


def test_stop_skips_the_rest_and_a_stream_not_ready_is_not_read() -> None:
    pacer = Pacer(autostart=False)
    s = Recorder(100)
    pacer.add(s.stream)
    now = pacer.tick(0.0)
    s.connected = False
    now = pacer.tick(now)
    assert s.sent == [b"s0"]  # skipped, not read: the next packet is still s1
    s.connected = True
    now = pacer.tick(now)
    s.stream.stop()
    for _ in range(TRAILING_SILENCE + 1):
        now = pacer.tick(now)
    assert s.sent == [b"s0", b"s1", *[OPUS_SILENCE_FRAME] * TRAILING_SILENCE]
    assert s.ends == [None]


def test_a_failing_stream_ends_with_its_error_and_the_others_go_on() -> None:
    pacer = Pacer(autostart=False)
    good = Recorder(3, "g")
    boom = OSError("socket gone")

    def fail(packet: bytes) -> None:
        raise boom

    ends: list[BaseException | None] = []
    bad = PacedStream(read=lambda: b"x", send=fail, on_end=ends.append)
    pacer.add(bad)
    pacer.add(good.stream)
    now = pacer.tick(0.0)
    pacer.tick(now)
    assert ends == [boom]
    assert good.sent == [b"g0", b"g1"]


def test_the_thread_plays_a_packet_buffer_and_close_ends_what_is_left() -> None:
    pacer = Pacer()
    buffer = PacketBuffer()
    for i in range(10):
        buffer.put(f"p{i}".encode())
    buffer.finish()
    sent: list[bytes] = []
    done = threading.Event()
    pacer.add(
        PacedStream(read=lambda: buffer.read(0.0), send=sent.append, on_end=lambda e: done.set())
    )
    assert done.wait(5)
    assert sent[:10] == [f"p{i}".encode() for i in range(10)]
    assert sent[10:] == [OPUS_SILENCE_FRAME] * TRAILING_SILENCE
    endless: list[BaseException | None] = []
    pacer.add(PacedStream(read=lambda: b"x", send=lambda p: None, on_end=endless.append))
    pacer.close()
    assert len(endless) == 1
    assert isinstance(endless[0], RuntimeError)
    with pytest.raises(RuntimeError, match="closed"):
        pacer.add(PacedStream(read=lambda: b"", send=lambda p: None, on_end=endless.append))

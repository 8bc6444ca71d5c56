"""The fake's receive path and analysis helpers, on synthetic packets (no sockets)."""

from __future__ import annotations

import asyncio
import math
import socket
import struct
import subprocess
import sys
import threading
import time

import nacl.secret
import pytest

from tests.fakes.discord.audio import (
    OPUS_SILENCE,
    VoicePacket,
    VoiceStream,
    dominant_frequency,
    merged,
    split_utterances,
)
from tests.fakes.discord.voice_udp import DISCOVERY_SIZE, StreamStore, VoiceUDP
from tests.fakes.discord.world import Notifier

AUDIO = b"\xfc\x01\x02"


def packets(pattern: str, *, start: float = 0.0, step: float = 0.02) -> list[VoicePacket]:
    """``a`` audio, ``s`` silence, ``_`` a 0.5 s pause (no packet), ``l`` a 60 ms late audio."""
    result, now, seq = [], start, 0
    for symbol in pattern:
        if symbol == "_":
            now += 0.5
            continue
        if symbol == "l":
            now += 0.04
        seq += 1
        payload = OPUS_SILENCE if symbol == "s" else AUDIO
        result.append(VoicePacket(now, seq, seq * 960, 1, payload))
        now += 0.0 if symbol == "s" else step
    return result


def test_utterances_split_on_gaps_and_trailing_silence() -> None:
    first, second, third = split_utterances(packets("aaaasssss" + "aaa" + "sssss_aaaa"))
    assert (first.frames, first.trailing_silence) == (4, 5)
    assert (second.frames, second.trailing_silence) == (3, 5)
    assert (third.frames, third.trailing_silence) == (4, 0)


def test_silence_inside_an_utterance_is_counted_and_silence_alone_is_dropped() -> None:
    (utterance,) = split_utterances(packets("aassaaasssss" + "_sssss"))
    assert utterance.silence_frames == 2
    assert utterance.trailing_silence == 5
    stream = VoiceStream(1, 1, packets("aassaaasssss"))
    assert stream.silence_frames_mid_stream() == 2


def test_late_packets_skip_the_first_gap() -> None:
    # discord.py's player always leaves ~40 ms before the second packet: not "late".
    (utterance,) = split_utterances(packets("alaaa"))
    assert utterance.late_packets() == []
    (utterance,) = split_utterances(packets("aaalaa"))
    assert [p.index for p in utterance.late_packets()] == [3]
    assert utterance.late_packets()[0].gap == pytest.approx(0.06)


def test_rate_duration_gaps_and_merging() -> None:
    (utterance,) = split_utterances(packets("a" * 51))
    assert utterance.packets_per_second() == pytest.approx(50)
    assert utterance.duration == pytest.approx(1.02)
    gappy = packets("aaaa")
    gappy[2].sequence += 2
    gappy[3].sequence += 2
    assert split_utterances(gappy)[0].sequence_gaps() == 2
    one, two = VoiceStream(1, 10, packets("aa", start=1.0)), VoiceStream(1, 11, packets("a"))
    two.decrypt_failures = 3
    both = merged(1, [one, two])
    assert [p.arrival for p in both.packets] == [0.0, 1.0, 1.02]
    assert both.decrypt_failures == 3


def test_dominant_frequency_of_a_sine() -> None:
    rate = 48_000
    samples = [math.sin(2 * math.pi * 1234.5 * i / rate) for i in range(20_000)]
    assert dominant_frequency(samples, rate) == pytest.approx(1234.5, abs=2)


def rtp(key: bytes, seq: int, payload: bytes, *, nonce: int, extension: bytes = b"") -> bytes:
    """An RTP packet as discord.py 2.7.1 builds it (xchacha20-poly1305 rtpsize)."""
    first = 0x90 if extension else 0x80
    header = struct.pack(">BBHII", first, 0x78, seq, seq * 960, 77)
    plain = payload
    if extension:
        header += struct.pack(">HH", 0xBEDE, len(extension) // 4)
        plain = extension + payload
    nonce_bytes = struct.pack(">I", nonce) + bytes(20)
    box = nacl.secret.Aead(key)
    return header + box.encrypt(plain, header, nonce_bytes).ciphertext + nonce_bytes[:4]


SEND_AT = """
import socket, sys, time
port, at, packet = int(sys.argv[1]), float(sys.argv[2]), bytes.fromhex(sys.argv[3])
time.sleep(max(0.0, at - time.monotonic()))
sent = time.monotonic()
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(packet, ("127.0.0.1", port))
print(sent)
"""


async def test_arrival_is_when_the_packet_came_in_not_when_the_reader_got_to_it() -> None:
    notifier = Notifier()
    udp = VoiceUDP(notifier)
    port = await udp.start("127.0.0.1")
    try:
        key = bytes(range(32))
        stream = StreamStore().new_stream(5)
        udp.register(77, 5, stream)
        udp.set_key(77, key)
        send_at = time.monotonic() + 0.3  # CLOCK_MONOTONIC: the same clock in both processes
        sender = subprocess.Popen(
            [
                sys.executable,
                "-c",
                SEND_AT,
                str(port),
                str(send_at),
                rtp(key, 1, AUDIO, nonce=0).hex(),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        # Keep the GIL from the reader thread (no blocking call, no switch) until well
        # after the packet came in, as a busy bot under test does for a few milliseconds.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(30.0)
        try:
            while time.monotonic() < send_at + 0.4:
                sum(range(10_000))
        finally:
            sys.setswitchinterval(interval)
        out, _ = sender.communicate(timeout=10)
        await notifier.wait_for(lambda: stream.packets, 2)
        sent = float(out)
        assert stream.packets[0].arrival - sent < 0.1  # the reader got to it >= 0.4 s later
    finally:
        udp.close()


async def test_the_udp_server_decrypts_records_and_counts_failures() -> None:
    notifier = Notifier()
    udp = VoiceUDP(notifier)
    port = await udp.start("127.0.0.1")
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        client.bind(("127.0.0.1", 0))
        client.setblocking(False)
        server = ("127.0.0.1", port)
        stream = StreamStore().new_stream(5)
        udp.register(77, 5, stream)
        key = bytes(range(32))

        client.sendto(struct.pack(">HHI", 1, 70, 77) + bytes(DISCOVERY_SIZE - 8), server)
        reply = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(client, 128), 2)
        assert len(reply) == DISCOVERY_SIZE
        assert struct.unpack_from(">HHI", reply) == (2, 70, 77)
        assert reply[8 : reply.index(0, 8)] == b"127.0.0.1"
        assert struct.unpack_from(">H", reply, DISCOVERY_SIZE - 2) == client.getsockname()[1:]

        client.sendto(rtp(key, 1, AUDIO, nonce=0), server)
        await notifier.wait_for(lambda: udp.stats.no_key == 1, 2)
        udp.set_key(77, key)
        client.sendto(rtp(key, 2, AUDIO, nonce=1), server)
        client.sendto(rtp(key, 3, b"\xfc\x09", nonce=2, extension=b"\x10\xff\x00\x00"), server)
        client.sendto(rtp(bytes(32), 4, AUDIO, nonce=3), server)
        client.sendto(b"\x80\x78" + bytes(10), server)
        client.sendto(
            rtp(key, 5, AUDIO, nonce=4).replace(b"\x00\x00\x00\x4d", b"\x00\x00\x00\x4e", 1), server
        )
        await notifier.wait_for(lambda: udp.stats.unknown_ssrc == 1, 2)
        assert [(p.sequence, p.payload) for p in stream.packets] == [(2, AUDIO), (3, b"\xfc\x09")]
        assert stream.decrypt_failures == 1
        assert udp.stats.malformed == 1

        # Leaving: what was sent before is still heard, what comes after is not.
        client.sendto(rtp(key, 6, AUDIO, nonce=5), server)
        udp.forget_after_queued(77)
        client.sendto(rtp(key, 7, AUDIO, nonce=6), server)
        await notifier.wait_for(lambda: udp.stats.unknown_ssrc == 2, 2)
        assert [p.sequence for p in stream.packets] == [2, 3, 6]
    finally:
        client.close()
        udp.close()
    assert not any(t.name.startswith("fake-discord-udp") for t in threading.enumerate())

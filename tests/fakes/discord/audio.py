"""What the bot said: received RTP packets, Opus decoding and analysis.

The UDP server only decrypts and appends a :class:`VoicePacket` (cheap enough for 200
streams at 50 packets/s); decoding with PyAV happens here, lazily, when a test asks.

discord.py ends every source with 5 Opus silence frames (``f8 ff fe``) sent back to back;
:meth:`VoiceStream.utterances` splits them off (and splits on arrival gaps), so pacing
and audio checks see only the audio. Its first inter-arrival gap is about 40 ms (the
player sleeps one extra frame after the first packet), so pacing checks skip it.
"""

from __future__ import annotations

import array
import cmath
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import av

OPUS_SILENCE = b"\xf8\xff\xfe"
SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
TRAILING_SILENCE = 5
"""Silence frames discord.py's player sends after a source ends (and on pause)."""


class VoicePacket:
    """One decrypted RTP packet as it arrived."""

    __slots__ = ("arrival", "payload", "sequence", "ssrc", "timestamp")

    def __init__(
        self, arrival: float, sequence: int, timestamp: int, ssrc: int, payload: bytes
    ) -> None:
        self.arrival = arrival
        """``time.monotonic()`` when the datagram was read."""
        self.sequence = sequence
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload
        """The decrypted Opus packet."""

    @property
    def silence(self) -> bool:
        """Whether this is the Opus silence frame."""
        return self.payload == OPUS_SILENCE

    def __repr__(self) -> str:
        return f"<VoicePacket seq={self.sequence} ts={self.timestamp} {len(self.payload)}B>"


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    """Decoded PCM of channel 0 (left), as floats in [-1, 1]."""

    samples: array.array[float]
    sample_rate: int
    channels: int

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return len(self.samples) / self.sample_rate if self.sample_rate else 0.0


def decode_opus(payloads: Iterable[bytes]) -> DecodedAudio:
    """Decode Opus packets (48 kHz stereo, as Discord sends) with PyAV's decoder."""
    codec = av.CodecContext.create("opus", "r")
    codec.sample_rate = SAMPLE_RATE
    codec.layout = "stereo"
    samples: array.array[float] = array.array("f")
    channels = 2
    for payload in [*payloads, None]:
        packet = av.Packet(payload) if payload is not None else None
        for frame in codec.decode(packet):
            channels = len(frame.layout.channels)
            samples.extend(_channel0(frame, channels))
    return DecodedAudio(samples, SAMPLE_RATE, channels)


def _channel0(frame: av.AudioFrame, channels: int) -> array.array[float]:
    fmt = frame.format
    code, scale = ("f", 1.0) if fmt.name.startswith("flt") else ("h", 1 / 32768)
    width = 4 if code == "f" else 2
    if fmt.is_planar:
        data = array.array(code, bytes(frame.planes[0])[: frame.samples * width])
    else:
        interleaved = array.array(code, bytes(frame.planes[0])[: frame.samples * width * channels])
        data = interleaved[::channels]
    if code == "f":
        return data  # type: ignore[return-value]
    return array.array("f", (s * scale for s in data))


def rms(samples: Sequence[float]) -> float:
    """Root mean square (1.0 = full scale)."""
    if not samples:
        return 0.0
    return math.sqrt(math.fsum(s * s for s in samples) / len(samples))


def _fft(values: list[complex]) -> list[complex]:
    """In-place iterative radix-2 FFT (``len(values)`` a power of two)."""
    n = len(values)
    j = 0
    for i in range(1, n):
        bit = n >> 1
        while j & bit:
            j ^= bit
            bit >>= 1
        j |= bit
        if i < j:
            values[i], values[j] = values[j], values[i]
    size = 2
    while size <= n:
        step = cmath.exp(-2j * math.pi / size)
        half = size // 2
        for start in range(0, n, size):
            w = 1 + 0j
            for k in range(start, start + half):
                odd = values[k + half] * w
                values[k + half] = values[k] - odd
                values[k] += odd
                w *= step
        size *= 2
    return values


def dominant_frequency(samples: Sequence[float], sample_rate: int, window: int = 8192) -> float:
    """The strongest frequency in the middle ``window`` samples (Hann, interpolated peak)."""
    n = 1
    while n * 2 <= min(window, len(samples)):
        n *= 2
    if n < 64:
        return 0.0
    start = (len(samples) - n) // 2
    values = [
        complex(samples[start + i] * (0.5 - 0.5 * math.cos(2 * math.pi * i / (n - 1))))
        for i in range(n)
    ]
    magnitudes = [abs(v) for v in _fft(values)[: n // 2]]
    peak = max(range(1, n // 2 - 1), key=magnitudes.__getitem__)
    a, b, c = magnitudes[peak - 1], magnitudes[peak], magnitudes[peak + 1]
    denominator = a - 2 * b + c
    offset = 0.5 * (a - c) / denominator if denominator else 0.0
    return (peak + offset) * sample_rate / n


@dataclass(frozen=True, slots=True)
class LatePacket:
    """An audio packet that arrived later than 20 ms + tolerance after the previous one."""

    index: int
    gap: float


@dataclass(eq=False)
class Utterance:
    """One played source: its audio packets, without the trailing silence frames."""

    packets: list[VoicePacket]
    trailing_silence: int = 0

    @property
    def start(self) -> float:
        """Arrival of the first audio packet."""
        return self.packets[0].arrival

    @property
    def end(self) -> float:
        """Arrival of the last audio packet."""
        return self.packets[-1].arrival

    @property
    def frames(self) -> int:
        """Audio packets (20 ms each)."""
        return len(self.packets)

    @property
    def duration(self) -> float:
        """Nominal duration of the audio: 20 ms per packet that is not a silence frame.

        A player whose producer is late (a loaded machine) fills in silence frames; they
        are counted by :attr:`silence_frames`, not here.
        """
        return (len(self.packets) - self.silence_frames) * FRAME_SECONDS

    @property
    def silence_frames(self) -> int:
        """Silence frames inside the audio (not the trailing ones)."""
        return sum(1 for p in self.packets if p.silence)

    def packets_per_second(self) -> float:
        """Arrival rate from the second packet on (the first gap is ~40 ms by design)."""
        if len(self.packets) < 3:
            return 0.0
        span = self.packets[-1].arrival - self.packets[1].arrival
        return (len(self.packets) - 2) / span if span > 0 else 0.0

    def late_packets(self, tolerance: float = 0.015) -> list[LatePacket]:
        """Packets more than ``0.020 + tolerance`` s after their predecessor (first gap skipped)."""
        limit = FRAME_SECONDS + tolerance
        return [
            LatePacket(i, self.packets[i].arrival - self.packets[i - 1].arrival)
            for i in range(2, len(self.packets))
            if self.packets[i].arrival - self.packets[i - 1].arrival > limit
        ]

    def sequence_gaps(self) -> int:
        """Sequence numbers missing between consecutive packets (lost or never sent)."""
        return sum(
            (b.sequence - a.sequence - 1) % 65536 for a, b in itertools.pairwise(self.packets)
        )

    @cached_property
    def audio(self) -> DecodedAudio:
        """The decoded audio (computed once, on first use)."""
        return decode_opus(p.payload for p in self.packets)

    def rms(self) -> float:
        """RMS of the decoded audio."""
        return rms(self.audio.samples)

    def dominant_frequency(self) -> float:
        """The strongest frequency of the decoded audio, in Hz."""
        return dominant_frequency(self.audio.samples, self.audio.sample_rate)


def split_utterances(
    packets: Iterable[VoicePacket], *, gap: float = 0.25, trailing: int = TRAILING_SILENCE
) -> list[Utterance]:
    """Split packets (arrival order) into utterances.

    A new utterance starts after an arrival gap longer than ``gap`` or after a run of
    ``trailing`` silence frames; each utterance's final run of silence frames is counted
    in ``trailing_silence`` and left out of its packets. Silence-only runs are dropped.
    """
    groups: list[list[VoicePacket]] = []
    current: list[VoicePacket] = []
    silent_run = 0
    previous: float | None = None
    for packet in packets:
        is_silence = packet.silence
        if current and (
            (previous is not None and packet.arrival - previous > gap)
            or (silent_run >= trailing and not is_silence)
        ):
            groups.append(current)
            current, silent_run = [], 0
        current.append(packet)
        silent_run = silent_run + 1 if is_silence else 0
        previous = packet.arrival
    if current:
        groups.append(current)
    result = []
    for group in groups:
        count = 0
        while count < len(group) and group[-1 - count].silence:
            count += 1
        if count < len(group):
            result.append(Utterance(group[: len(group) - count], count))
    return result


@dataclass(eq=False)
class VoiceStream:
    """The packets one SSRC sent in one guild, and how many failed to decrypt."""

    guild_id: int
    ssrc: int
    packets: list[VoicePacket] = field(default_factory=list)
    decrypt_failures: int = 0

    @property
    def first_packet_time(self) -> float | None:
        """Arrival of the first packet (``time.monotonic()``), if any."""
        return self.packets[0].arrival if self.packets else None

    @property
    def audio_packets(self) -> int:
        """Packets that are not Opus silence."""
        return sum(1 for p in self.packets if not p.silence)

    def utterances(self, *, gap: float = 0.25) -> list[Utterance]:
        """See :func:`split_utterances`."""
        return split_utterances(self.packets, gap=gap)

    def silence_frames_mid_stream(self, *, gap: float = 0.25) -> int:
        """Silence frames inside utterances (the trailing 5 per utterance excluded)."""
        return sum(u.silence_frames for u in self.utterances(gap=gap))


def merged(guild_id: int, streams: Sequence[VoiceStream]) -> VoiceStream:
    """One stream of every packet of ``streams`` (e.g. across an SSRC change), by arrival."""
    packets = sorted((p for s in streams for p in s.packets), key=lambda p: p.arrival)
    ssrc = streams[-1].ssrc if streams else 0
    failures = sum(s.decrypt_failures for s in streams)
    return VoiceStream(guild_id, ssrc, packets, failures)


def opus_tone(
    frequency: float = 440.0, seconds: float = 2.0, *, amplitude: float = 0.3, bitrate: int = 64_000
) -> list[bytes]:
    """A stereo sine tone encoded with PyAV's libopus: one 20 ms packet per list item."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = SAMPLE_RATE
    encoder.layout = "stereo"
    encoder.format = "s16"
    encoder.bit_rate = bitrate
    frames = round(seconds / FRAME_SECONDS)
    packets: list[bytes] = []
    step = 2 * math.pi * frequency / SAMPLE_RATE
    for index in range(frames):
        pcm = array.array("h")
        base = index * FRAME_SAMPLES
        for i in range(FRAME_SAMPLES):
            value = int(32767 * amplitude * math.sin(step * (base + i)))
            pcm.append(value)
            pcm.append(value)
        frame = av.AudioFrame(format="s16", layout="stereo", samples=FRAME_SAMPLES)
        frame.planes[0].update(pcm.tobytes())
        frame.sample_rate = SAMPLE_RATE
        frame.pts = base
        packets.extend(bytes(p) for p in encoder.encode(frame))
    packets.extend(bytes(p) for p in encoder.encode(None))
    return packets

"""Real, audible MP3 in the exact shape Edge sends, made with PyAV's libmp3lame.

Edge (as asked by edge-tts 7.3.1) streams ``audio-24khz-48kbitrate-mono-mp3``: bare
MPEG-2 Layer III frames, 24 kHz mono, 48 kbps CBR, so every frame is 144 bytes and
holds 576 samples (24 ms). No ID3 tag and no Xing header: encoder packets are
concatenated as they come, which is what the service puts on the wire.
"""

from __future__ import annotations

import array
import io
import math
from functools import lru_cache

import av

SAMPLE_RATE = 24_000
BIT_RATE = 48_000
FRAME_SAMPLES = 576
FRAME_BYTES = 144
"""Size of every frame at 48 kbps / 24 kHz (no padding slot is ever needed)."""


@lru_cache(maxsize=16)
def edge_like_mp3(seconds: float = 1.0) -> bytes:
    """A rising sine sweep (220 -> 880 Hz) of about ``seconds``, MP3-encoded like Edge.

    Cached per duration, so serving it from a fake server costs nothing after the
    first call. The length is a whole number of 144-byte frames.
    """
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    encoder = av.CodecContext.create("libmp3lame", "w")
    encoder.sample_rate = SAMPLE_RATE
    encoder.layout = "mono"
    encoder.format = "s16p"
    encoder.bit_rate = BIT_RATE
    encoder.open()

    total = max(1, round(seconds * SAMPLE_RATE / FRAME_SAMPLES)) * FRAME_SAMPLES
    pcm = _sweep(total, 220.0, 880.0)
    out = bytearray()
    for start in range(0, total, FRAME_SAMPLES):
        frame = av.AudioFrame(format="s16p", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(pcm[start : start + FRAME_SAMPLES].tobytes())
        frame.sample_rate = SAMPLE_RATE
        frame.pts = start
        for packet in encoder.encode(frame):
            out += bytes(packet)
    for packet in encoder.encode(None):
        out += bytes(packet)
    return bytes(out)


def _sweep(samples: int, low_hz: float, high_hz: float) -> array.array[int]:
    """Signed 16-bit samples of a linear sweep at about -12 dBFS."""
    pcm = array.array("h")
    phase = 0.0
    for index in range(samples):
        frequency = low_hz + (high_hz - low_hz) * index / samples
        phase += 2 * math.pi * frequency / SAMPLE_RATE
        pcm.append(int(8000 * math.sin(phase)))
    return pcm


def decode_mp3(data: bytes) -> tuple[int, int, list[float]]:
    """Decode MP3 bytes with PyAV: ``(sample_rate, channels, mono float samples)``."""
    samples: list[float] = []
    rate = channels = 0
    with av.open(io.BytesIO(data), format="mp3") as container:
        stream = container.streams.audio[0]
        rate, channels = stream.rate, stream.channels
        for frame in container.decode(stream):
            if frame.format.name != "fltp":
                raise ValueError(f"unexpected decoded sample format {frame.format.name}")
            # Planes are padded for SIMD: keep only this frame's samples of channel 0.
            plane = array.array("f", bytes(frame.planes[0])[: frame.samples * 4])
            samples.extend(plane)
    return rate, channels, samples


def rms(samples: list[float]) -> float:
    """Root mean square of float samples (1.0 = full scale)."""
    if not samples:
        return 0.0
    return math.sqrt(sum(value * value for value in samples) / len(samples))


WEBM_FORMAT = "webm-24khz-16bit-mono-opus"
"""The output format name Edge is asked for when audio should pass through as Opus."""


@lru_cache(maxsize=8)
def edge_like_webm(seconds: float = 1.0) -> bytes:
    """The same sweep as :func:`edge_like_mp3`, as Opus (24 kHz mono, 20 ms frames) in WebM.

    Muxed by PyAV's FFmpeg (EBML header, Segment, Tracks with an OpusHead, Clusters of
    SimpleBlocks), the shape Edge's ``webm-24khz-16bit-mono-opus`` is reported to have.
    """
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    total = max(1, round(seconds * SAMPLE_RATE / 480)) * 480
    pcm = _sweep(total, 220.0, 880.0)
    out = io.BytesIO()
    with av.open(out, "w", format="webm") as container:
        stream = container.add_stream("libopus", rate=SAMPLE_RATE, layout="mono")
        stream.bit_rate = 32_000
        for start in range(0, total, 480):
            frame = av.AudioFrame(format="s16", layout="mono", samples=480)
            frame.planes[0].update(pcm[start : start + 480].tobytes())
            frame.sample_rate = SAMPLE_RATE
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()

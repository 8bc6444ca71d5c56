"""Streaming conversion of provider audio into the Opus packets Discord plays.

Discord wants 20 ms Opus packets at 48 kHz stereo. Linux has no libopus from pip,
so discord.py cannot encode PCM itself; PyAV's bundled FFmpeg (``mp3`` decoder,
``libopus`` encoder) does it in process, chunk by chunk, so playback can start
while synthesis is still running.

Pieces, in the order audio flows through them:

- :class:`OpusStreamEncoder`: bytes in, finished packets out (synchronous).
- :func:`opus_packets`: the same over an async iterator of chunks.
- :mod:`core.packet_buffer` then hands the packets to discord.py's player thread.

:func:`decode_opus_packets` and :func:`rms` go the other way, to check what came out.

This module is the one place PyAV errors become :class:`TTSError` kinds.
"""

from __future__ import annotations

import array
import asyncio
import math
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from typing import Literal

import av
import av.error
from av.codec.codec import UnknownCodecError

from edge_voice.core.tts.errors import ErrorKind, TTSError
from edge_voice.core.tts.provider import AudioFormat
from edge_voice.core.webm import WebmError, WebmOpusReader

OPUS_SAMPLE_RATE = 48_000
OPUS_CHANNELS = 2
OPUS_FRAME_SAMPLES = 960
"""Samples per channel in one 20 ms packet at 48 kHz."""
OPUS_FRAME_SECONDS = OPUS_FRAME_SAMPLES / OPUS_SAMPLE_RATE
OPUS_SILENCE_FRAME = b"\xf8\xff\xfe"
"""One 20 ms Opus packet of silence (the frame discord.py itself sends)."""
DEFAULT_BITRATE = 64_000
DEFAULT_COMPLEXITY = 10
"""libopus's own default (0 cheapest .. 10 best); ``[player] opus_complexity``."""

SUPPORTED_CODECS = ("mp3", "pcm_s16le")
"""What :class:`OpusStreamEncoder` converts; ``webm_opus`` passes through without it."""
WEBM_OPUS = "webm_opus"

_LAYOUTS = {1: "mono", 2: "stereo"}
# The largest MP3 frame is under 3 KiB; this much input without one decoded frame
# means the stream is not MP3, and waiting for the end would only buffer garbage.
_MAX_UNDECODED_BYTES = 16 * 1024
# Conversion runs on worker threads, never on the event loop: with many guilds
# converting at once, even small inline steps add up to stalls (20 offline-voice
# guilds stalled the loop for 1.1 s, tests/test_loop_lag.py). Each job converts at
# most this much audio, so one stream's long chunk (a whole eSpeak utterance) never
# holds a worker while other streams wait, and streams interleave fairly.
_PIECE_AUDIO_SECONDS = 0.5
_MP3_NOMINAL_BYTES_PER_SECOND = 48_000 // 8


class AudioDecodeError(TTSError):
    """The provider's bytes could not be converted: not the audio they claim to be.

    A :class:`TTSError` of kind ``PROTOCOL``, so callers handle it like any other
    synthesis failure (retry, backup voice, text fallback).
    """

    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.PROTOCOL, message)


def missing_codecs() -> list[str]:
    """Names of the FFmpeg codecs this module needs that PyAV lacks (for diagnostics)."""
    needed: tuple[tuple[str, Literal["r", "w"]], ...] = (
        ("mp3", "r"),
        ("libopus", "w"),
        ("opus", "r"),
    )
    missing: list[str] = []
    for name, mode in needed:
        try:
            av.codec.Codec(name, mode)
        except UnknownCodecError:
            missing.append(f"{name} {'decoder' if mode == 'r' else 'encoder'}")
    return missing


class OpusStreamEncoder:
    """Incremental converter from one provider stream to 20 ms Opus packets.

    ``feed`` each chunk as it arrives and send the packets it returns; call
    ``flush`` once at the end for the rest (the last packet is padded with
    silence). The first packet is out as soon as 20 ms of audio has been
    decoded. Not thread-safe: use one instance from one thread at a time.
    """

    def __init__(
        self,
        audio_format: AudioFormat,
        *,
        bitrate: int = DEFAULT_BITRATE,
        complexity: int = DEFAULT_COMPLEXITY,
    ) -> None:
        if audio_format.codec not in SUPPORTED_CODECS:
            raise ValueError(f"unsupported codec {audio_format.codec!r}; use {SUPPORTED_CODECS}")
        if audio_format.channels not in _LAYOUTS:
            raise ValueError(f"unsupported channel count {audio_format.channels}")
        if not 6_000 <= bitrate <= 510_000:
            raise ValueError(f"Opus bitrate must be 6000..510000 bit/s, got {bitrate}")
        if not 0 <= complexity <= 10:
            raise ValueError(f"Opus complexity must be 0..10, got {complexity}")
        self.audio_format = audio_format
        self.bitrate = bitrate
        self.bytes_fed = 0
        self.packets_out = 0
        self._flushed = False
        self._bytes_since_audio = 0
        self._pcm_remainder = b""
        self._pcm_samples = 0
        self._mp3 = av.CodecContext.create("mp3", "r") if audio_format.codec == "mp3" else None
        self._resampler = av.AudioResampler(
            format="s16", layout="stereo", rate=OPUS_SAMPLE_RATE, frame_size=OPUS_FRAME_SAMPLES
        )
        self._opus = av.CodecContext.create("libopus", "w")
        self._opus.sample_rate = OPUS_SAMPLE_RATE
        self._opus.layout = "stereo"
        self._opus.format = "s16"
        self._opus.bit_rate = bitrate
        self._opus.options = {"compression_level": str(complexity)}
        self._opus.open()

    def feed(self, chunk: bytes) -> list[bytes]:
        """Convert ``chunk``; return the Opus packets it completed (often none).

        Raises :class:`AudioDecodeError` when the bytes are not valid audio.
        """
        if self._flushed:
            raise RuntimeError("feed() after flush()")
        self.bytes_fed += len(chunk)
        if not chunk:
            return []
        try:
            frames = self._decode(chunk)
            packets = self._encode(frames)
        except av.error.FFmpegError as exc:
            raise self._conversion_error(exc) from exc
        if frames:
            self._bytes_since_audio = 0
        else:
            self._bytes_since_audio += len(chunk)
            if self._bytes_since_audio > _MAX_UNDECODED_BYTES:
                raise AudioDecodeError(
                    f"no {self.audio_format.codec} audio in {self._bytes_since_audio} bytes"
                )
        return packets

    def flush(self) -> list[bytes]:
        """End the stream: return the remaining packets, the last one padded with silence.

        Empty input gives no packets. MP3 cut inside a frame keeps what arrived;
        bytes that are not MP3, or PCM that ends mid-sample, raise
        :class:`AudioDecodeError`.
        """
        if self._flushed:
            return []
        self._flushed = True
        if self._pcm_remainder:
            raise AudioDecodeError(
                f"PCM stream ended mid-sample ({len(self._pcm_remainder)} stray bytes)"
            )
        try:
            frames = self._drain_decoder()
            packets = self._encode(frames)
            # The resampler's last frame is short; FFmpeg's libopus wrapper pads it
            # with silence and, knowing the true length, adds a packet only when the
            # encoder's lookahead spills over.
            packets += self._encode_resampled(self._resampler.resample(None))
            final = [bytes(packet) for packet in self._opus.encode(None)]
        except av.error.FFmpegError as exc:
            raise self._conversion_error(exc) from exc
        self.packets_out += len(final)
        return packets + final

    def _conversion_error(self, exc: av.error.FFmpegError) -> AudioDecodeError:
        return AudioDecodeError(f"cannot convert {self.audio_format.codec} audio: {exc}")

    def _decode(self, chunk: bytes) -> list[av.AudioFrame]:
        if self._mp3 is not None:
            frames: list[av.AudioFrame] = []
            for packet in self._mp3.parse(chunk):
                frames.extend(self._mp3.decode(packet))
            return frames
        return self._pcm_frames(chunk)

    def _drain_decoder(self) -> list[av.AudioFrame]:
        if self._mp3 is None:
            return []
        frames: list[av.AudioFrame] = []
        for packet in self._mp3.parse(None):
            frames.extend(self._mp3.decode(packet))
        frames.extend(self._mp3.decode(None))
        return frames

    def _pcm_frames(self, chunk: bytes) -> list[av.AudioFrame]:
        fmt = self.audio_format
        data = self._pcm_remainder + chunk
        block = 2 * fmt.channels
        usable = len(data) - len(data) % block
        self._pcm_remainder = data[usable:]
        if not usable:
            return []
        samples = usable // block
        frame = av.AudioFrame(format="s16", layout=_LAYOUTS[fmt.channels], samples=samples)
        frame.planes[0].update(data[:usable])
        frame.sample_rate = fmt.sample_rate
        frame.time_base = Fraction(1, fmt.sample_rate)
        frame.pts = self._pcm_samples
        self._pcm_samples += samples
        return [frame]

    def _encode(self, frames: list[av.AudioFrame]) -> list[bytes]:
        resampled: list[av.AudioFrame] = []
        for frame in frames:
            resampled.extend(self._resampler.resample(frame))
        return self._encode_resampled(resampled)

    def _encode_resampled(self, frames: list[av.AudioFrame]) -> list[bytes]:
        packets = [bytes(packet) for frame in frames for packet in self._opus.encode(frame)]
        self.packets_out += len(packets)
        return packets


def _piece_bytes(audio_format: AudioFormat) -> int:
    """The most input bytes one conversion job takes (``_PIECE_AUDIO_SECONDS`` of audio)."""
    if audio_format.codec == "pcm_s16le":
        per_second = audio_format.sample_rate * audio_format.channels * 2
    else:
        per_second = _MP3_NOMINAL_BYTES_PER_SECOND
    return int(per_second * _PIECE_AUDIO_SECONDS)


async def opus_packets(
    chunks: AsyncIterator[bytes],
    audio_format: AudioFormat,
    *,
    bitrate: int = DEFAULT_BITRATE,
    complexity: int = DEFAULT_COMPLEXITY,
    converter: Converter | None = None,
) -> AsyncGenerator[bytes, None]:
    """Yield 20 ms Opus packets for ``chunks`` (in ``audio_format``) as they arrive.

    Every conversion runs on a worker thread (``converter``'s, else asyncio's default
    pool), in pieces of at most half a second of audio. Errors from ``chunks`` pass
    through unchanged; bad audio raises :class:`AudioDecodeError`. Closing this
    generator closes ``chunks`` too, so an abandoned utterance stops its synthesis.
    """
    if audio_format.codec == WEBM_OPUS:
        async for packet in _passed_through(chunks):
            yield packet
        return
    encoder = OpusStreamEncoder(audio_format, bitrate=bitrate, complexity=complexity)
    piece = _piece_bytes(audio_format)
    convert = asyncio.to_thread if converter is None else converter.run
    try:
        async for chunk in chunks:
            for start in range(0, len(chunk), piece):
                packets = await convert(encoder.feed, chunk[start : start + piece])
                for packet in packets:
                    yield packet
        for packet in await convert(encoder.flush):
            yield packet
    finally:
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()


class Converter:
    """One worker thread on which every stream's conversions run, piece by piece.

    The work is CPU-bound, so more threads would not finish it sooner on one core, but
    each would compete with the event loop for the GIL: with asyncio.to_thread's pool
    (six threads on 2 cores) tests/test_loop_lag.py saw a p99 loop lag of 16-29 ms,
    with one worker it passes. Jobs run in the order they were submitted, so streams
    take turns. The thread starts on first use; :meth:`close` joins it.
    """

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self.jobs = 0
        """Conversion jobs run so far."""

    async def run(self, step: Callable[..., list[bytes]], *args: bytes) -> list[bytes]:
        """``step(*args)`` on the worker thread."""
        if self._closed:
            raise RuntimeError("the converter is closed")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opus-convert")
        self.jobs += 1
        return await asyncio.get_running_loop().run_in_executor(self._executor, step, *args)

    def close(self) -> None:
        """Finish the job in hand and join the thread (blocks for at most one piece)."""
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


async def _passed_through(chunks: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """Opus frames out of WebM as they are: no decoding, no encoding, on the loop (taking
    a block apart is a slice; bench/opus_levers.py measures it)."""
    reader = WebmOpusReader()
    try:
        async for chunk in chunks:
            try:
                frames = reader.feed(chunk)
            except WebmError as exc:
                raise AudioDecodeError(f"cannot read WebM: {exc}") from exc
            for frame in frames:
                if opus_frame_ms(frame) != OPUS_FRAME_SECONDS * 1000:
                    # Discord plays 20 ms packets; repacketizing is not done here.
                    raise AudioDecodeError(
                        f"Opus packet of {opus_frame_ms(frame):g} ms, not one 20 ms frame"
                    )
                yield frame
    finally:
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()


def opus_frame_ms(packet: bytes) -> float:
    """The audio in an Opus packet, in ms, from its TOC byte (RFC 6716, section 3.1)."""
    if not packet:
        return 0.0
    toc = packet[0]
    config = toc >> 3
    if config < 12:
        per_frame = (10.0, 20.0, 40.0, 60.0)[config % 4]
    elif config < 16:
        per_frame = (10.0, 20.0)[config % 2]
    else:
        per_frame = (2.5, 5.0, 10.0, 20.0)[config % 4]
    code = toc & 0x03
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        frames = packet[1] & 0x3F if len(packet) > 1 else 0
    return per_frame * frames


def decode_opus_packets(packets: list[bytes]) -> tuple[bytes, float]:
    """Decode Opus packets to interleaved s16 stereo 48 kHz PCM and its duration (s)."""
    decoder = av.CodecContext.create("opus", "r")
    decoder.sample_rate = OPUS_SAMPLE_RATE
    decoder.layout = "stereo"
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=OPUS_SAMPLE_RATE)
    pcm = bytearray()
    frames: list[av.AudioFrame] = []
    for packet in packets:
        frames.extend(decoder.decode(av.Packet(packet)))
    frames.extend(decoder.decode(None))
    converted = [out for frame in frames for out in resampler.resample(frame)]
    converted.extend(resampler.resample(None))
    for frame in converted:
        # Planes are padded for SIMD: keep only this frame's samples.
        pcm += bytes(frame.planes[0])[: frame.samples * OPUS_CHANNELS * 2]
    return bytes(pcm), len(pcm) / (OPUS_CHANNELS * 2 * OPUS_SAMPLE_RATE)


def rms(pcm: bytes) -> float:
    """Root mean square of s16 little-endian samples, in sample units (0..32768)."""
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if not samples:
        return 0.0
    if sys.byteorder == "big":
        samples.byteswap()
    return math.sqrt(math.fsum(value * value for value in samples) / len(samples))

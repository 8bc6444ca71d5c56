"""core.audio against real PyAV: MP3/PCM in, Opus out, decoded back and measured."""

from __future__ import annotations

import array
import asyncio
import itertools
import math
import threading
import time
from collections.abc import AsyncIterator, Iterator

import av
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_voice.core.audio import (
    OPUS_FRAME_SECONDS,
    OPUS_SILENCE_FRAME,
    AudioDecodeError,
    OpusStreamEncoder,
    decode_opus_packets,
    missing_codecs,
    opus_packets,
    rms,
)
from edge_voice.core.clock import FakeClock
from edge_voice.core.packet_buffer import PacketBuffer, pump
from edge_voice.core.tts.errors import ErrorKind, TTSError
from edge_voice.core.tts.provider import EDGE_MP3, AudioFormat

MP3_RATE = 24_000
MP3_FRAME_BYTES = 144  # 48 kbps, 24 kHz MPEG-2 Layer III: every frame is 144 bytes
ESPEAK_PCM = AudioFormat(codec="pcm_s16le", sample_rate=22_050, channels=1)
DURATION_TOLERANCE = 0.06


def sine_s16(rate: int, seconds: float, hz: float = 440.0, amplitude: int = 10_000) -> bytes:
    """Mono signed 16-bit little-endian samples of a sine tone."""
    count = round(rate * seconds)
    samples = array.array(
        "h", (int(amplitude * math.sin(2 * math.pi * hz * i / rate)) for i in range(count))
    )
    return samples.tobytes()


def encode_mp3(pcm: bytes) -> bytes:
    """Bare MP3 frames (as Edge sends them) from 24 kHz mono s16 PCM, via libmp3lame."""
    encoder = av.CodecContext.create("libmp3lame", "w")
    encoder.sample_rate = MP3_RATE
    encoder.layout = "mono"
    encoder.format = "s16p"
    encoder.bit_rate = 48_000
    encoder.open()
    frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
    frame.planes[0].update(pcm)
    frame.sample_rate = MP3_RATE
    out = b"".join(bytes(p) for p in encoder.encode(frame))
    return out + b"".join(bytes(p) for p in encoder.encode(None))


def mp3_seconds(data: bytes) -> float:
    """Duration of MP3 bytes as FFmpeg's own decoder sees them (includes codec delay)."""
    decoder = av.CodecContext.create("mp3", "r")
    samples = sum(f.samples for p in decoder.parse(data) for f in decoder.decode(p))
    samples += sum(f.samples for f in decoder.decode(None))
    return samples / MP3_RATE


@pytest.fixture(scope="module")
def tone_mp3() -> bytes:
    return encode_mp3(sine_s16(MP3_RATE, 1.5))


def convert(audio_format: AudioFormat, chunks: list[bytes], **kwargs: int) -> list[bytes]:
    encoder = OpusStreamEncoder(audio_format, **kwargs)
    packets = [p for chunk in chunks for p in encoder.feed(chunk)]
    return packets + encoder.flush()


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def frame_ms(toc: int) -> float:
    """Frame duration coded in an Opus TOC byte (RFC 6716, section 3.1)."""
    config = toc >> 3
    if config < 12:
        return (10, 20, 40, 60)[config % 4]
    if config < 16:
        return (10, 20)[config % 2]
    return (2.5, 5, 10, 20)[config % 4]


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2
    while (extra := set(threading.enumerate()) - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not extra, f"threads left running: {extra}"


# --- OpusStreamEncoder -------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 100, MP3_FRAME_BYTES, 10**9])
def test_mp3_in_any_chunking_becomes_audible_20ms_packets(tone_mp3: bytes, chunk_size: int) -> None:
    packets = convert(EDGE_MP3, split(tone_mp3, chunk_size))

    pcm, seconds = decode_opus_packets(packets)
    assert seconds == pytest.approx(len(packets) * OPUS_FRAME_SECONDS)
    assert abs(seconds - mp3_seconds(tone_mp3)) <= DURATION_TOLERANCE
    assert abs(seconds - 1.5) <= 0.15  # the tone plus MP3 encoder delay and padding
    assert rms(pcm) > 2000  # a 10 000-amplitude sine, not silence
    assert all(frame_ms(p[0]) == 20 and p[0] & 0b11 == 0 for p in packets)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(min_value=0, max_value=9_360), max_size=40))
def test_packets_do_not_depend_on_how_the_mp3_is_split(tone_mp3: bytes, cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(tone_mp3)]
    chunks = [tone_mp3[a:b] for a, b in itertools.pairwise(bounds)]
    assert convert(EDGE_MP3, chunks) == convert(EDGE_MP3, [tone_mp3])


def test_first_packet_comes_after_the_first_frames_not_the_whole_stream(tone_mp3: bytes) -> None:
    encoder = OpusStreamEncoder(EDGE_MP3)
    fed = 0
    for chunk in split(tone_mp3, MP3_FRAME_BYTES):
        fed += len(chunk)
        if encoder.feed(chunk):
            break
    # One 24 ms MP3 frame already holds more than one 20 ms packet.
    assert fed <= 2 * MP3_FRAME_BYTES < len(tone_mp3)


def test_pcm_s16le_in_odd_chunks_becomes_audio_of_the_same_length() -> None:
    pcm_in = sine_s16(ESPEAK_PCM.sample_rate, 1.0, hz=300)
    packets = convert(ESPEAK_PCM, split(pcm_in, 1001))

    pcm, seconds = decode_opus_packets(packets)
    assert abs(seconds - 1.0) <= DURATION_TOLERANCE
    assert rms(pcm) > 2000
    assert packets == convert(ESPEAK_PCM, [pcm_in])


def test_the_last_partial_packet_is_padded_with_silence() -> None:
    ten_ms = sine_s16(ESPEAK_PCM.sample_rate, 0.01, hz=300)
    packets = convert(ESPEAK_PCM, [ten_ms])
    pcm, seconds = decode_opus_packets(packets)
    assert len(packets) == 1
    assert seconds == pytest.approx(OPUS_FRAME_SECONDS)
    # Samples 0-311 are the encoder's lookahead, 312-791 the tone, the rest padding.
    assert rms(pcm) > 1000
    assert rms(pcm[-100 * 4 :]) < rms(pcm) / 10


def test_bitrate_is_applied(tone_mp3: bytes) -> None:
    low = convert(EDGE_MP3, [tone_mp3], bitrate=24_000)
    high = convert(EDGE_MP3, [tone_mp3], bitrate=128_000)
    assert len(low) == len(high)
    assert sum(map(len, high)) > 2.5 * sum(map(len, low))


def test_no_input_gives_no_packets() -> None:
    assert convert(EDGE_MP3, []) == []
    assert convert(ESPEAK_PCM, [b""]) == []


@pytest.mark.parametrize(
    "blob",
    [
        pytest.param(b"<html>403 Forbidden</html>\n" * 40, id="html"),
        pytest.param(bytes(3000), id="zeros"),
        pytest.param(bytes((i * 7919) % 251 for i in range(3000)), id="noise"),
    ],
)
def test_input_that_is_not_mp3_raises_a_protocol_error_at_the_latest_on_flush(blob: bytes) -> None:
    with pytest.raises(AudioDecodeError) as caught:
        convert(EDGE_MP3, [blob])
    assert isinstance(caught.value, TTSError)
    assert caught.value.kind is ErrorKind.PROTOCOL
    assert "mp3" in str(caught.value)


def test_an_endless_non_mp3_stream_fails_before_it_ends() -> None:
    encoder = OpusStreamEncoder(EDGE_MP3)
    chunk = b"not audio " * 100
    for _ in range(16):
        encoder.feed(chunk)  # the parser keeps this, waiting for a frame
    with pytest.raises(AudioDecodeError, match="no mp3 audio"):
        encoder.feed(chunk)


def test_garbage_in_the_middle_of_mp3_raises(tone_mp3: bytes) -> None:
    corrupt = tone_mp3[:1440] + b"\x00\x11garbage" * 50 + tone_mp3[1440:]
    with pytest.raises(AudioDecodeError):
        convert(EDGE_MP3, split(corrupt, 500))


@pytest.mark.parametrize("cut", [10 * MP3_FRAME_BYTES, 10 * MP3_FRAME_BYTES + 50])
def test_mp3_cut_short_plays_what_arrived(tone_mp3: bytes, cut: int) -> None:
    packets = convert(EDGE_MP3, split(tone_mp3[:cut], 100))
    _, seconds = decode_opus_packets(packets)
    assert abs(seconds - mp3_seconds(tone_mp3[:cut])) <= DURATION_TOLERANCE
    assert seconds < 0.35


def test_pcm_that_ends_mid_sample_raises() -> None:
    encoder = OpusStreamEncoder(ESPEAK_PCM)
    encoder.feed(bytes(2001))
    with pytest.raises(AudioDecodeError, match="mid-sample"):
        encoder.flush()


def test_bad_arguments_and_misuse_are_rejected() -> None:
    with pytest.raises(ValueError, match="codec"):
        OpusStreamEncoder(AudioFormat(codec="ogg", sample_rate=48_000, channels=2))
    with pytest.raises(ValueError, match="channel"):
        OpusStreamEncoder(AudioFormat(codec="pcm_s16le", sample_rate=48_000, channels=6))
    with pytest.raises(ValueError, match="bitrate"):
        OpusStreamEncoder(EDGE_MP3, bitrate=1_000_000)
    encoder = OpusStreamEncoder(EDGE_MP3)
    encoder.flush()
    with pytest.raises(RuntimeError):
        encoder.feed(b"\xff")


def test_helpers_decode_silence_and_measure_rms() -> None:
    pcm, seconds = decode_opus_packets([OPUS_SILENCE_FRAME] * 3)
    assert seconds == pytest.approx(0.06)
    assert rms(pcm) == 0.0
    assert rms(array.array("h", [1000, -1000] * 50).tobytes()) == pytest.approx(1000.0)
    assert rms(b"") == 0.0
    assert missing_codecs() == []


# --- opus_packets ------------------------------------------------------------


async def from_chunks(
    chunks: list[bytes], done: asyncio.Event | None = None
) -> AsyncIterator[bytes]:
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk
    if done is not None:
        done.set()


async def test_async_packets_match_the_sync_encoder(tone_mp3: bytes) -> None:
    chunks = [*split(tone_mp3, 100), b"", *split(tone_mp3, 4000)]  # inline and threaded
    expected = convert(EDGE_MP3, chunks)
    assert [p async for p in opus_packets(from_chunks(chunks), EDGE_MP3)] == expected


async def test_async_first_packet_arrives_while_the_source_is_still_streaming(
    tone_mp3: bytes,
) -> None:
    done = asyncio.Event()
    packets = opus_packets(from_chunks(split(tone_mp3, MP3_FRAME_BYTES), done), EDGE_MP3)
    first = await anext(packets)
    assert first
    assert not done.is_set()
    await packets.aclose()


async def test_closing_the_packets_closes_the_source(tone_mp3: bytes) -> None:
    source_closed = asyncio.Event()

    async def source() -> AsyncIterator[bytes]:
        try:
            while True:
                yield tone_mp3
        finally:
            source_closed.set()

    packets = opus_packets(source(), EDGE_MP3)
    await anext(packets)
    await packets.aclose()
    assert source_closed.is_set()


async def test_source_errors_pass_through_and_bad_audio_raises() -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b""
        raise TTSError(ErrorKind.TIMEOUT, "read deadline")

    with pytest.raises(TTSError) as caught:
        _ = [p async for p in opus_packets(failing(), EDGE_MP3)]
    assert caught.value.kind is ErrorKind.TIMEOUT

    with pytest.raises(AudioDecodeError):
        _ = [p async for p in opus_packets(from_chunks([b"junk" * 5000]), EDGE_MP3)]


async def test_big_chunks_are_converted_without_blocking_the_loop() -> None:
    utterance = sine_s16(ESPEAK_PCM.sample_rate, 30.0, hz=300)  # ~0.3 s of encoding work
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    packets = [p async for p in opus_packets(from_chunks([utterance]), ESPEAK_PCM)]
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    assert len(packets) >= 1500
    assert max(gaps) < elapsed / 2, f"loop blocked {max(gaps):.3f}s of {elapsed:.3f}s"


# --- PacketBuffer and pump ---------------------------------------------------


def read_all_in_thread(
    buffer: PacketBuffer, timeout: float = 0.02
) -> tuple[threading.Thread, list[object]]:
    """Drain ``buffer`` like discord.py's player thread; results (or the error) land in the list."""
    results: list[object] = []

    def run() -> None:
        try:
            while packet := buffer.read(timeout):
                results.append(packet)
        except BaseException as exc:
            results.append(exc)

    thread = threading.Thread(target=run, name="test-player")
    thread.start()
    return thread, results


async def test_player_thread_gets_every_packet_then_the_end(tone_mp3: bytes) -> None:
    buffer = PacketBuffer(stall_limit=10)
    thread, results = read_all_in_thread(buffer)
    count = await pump(opus_packets(from_chunks(split(tone_mp3, 500)), EDGE_MP3), buffer)
    await asyncio.to_thread(thread.join, 5)
    assert not thread.is_alive()
    real = [r for r in results if r != OPUS_SILENCE_FRAME]
    assert real == convert(EDGE_MP3, [tone_mp3])
    assert count == len(real) == buffer.packets_read
    assert buffer.first_packet_event.is_set()
    assert buffer.first_packet_at is not None
    assert buffer.first_read_at is not None
    assert buffer.first_packet_at <= buffer.first_read_at


def test_stall_plays_silence_then_ends_at_the_limit() -> None:
    clock = FakeClock()
    buffer = PacketBuffer(stall_limit=5, clock=clock)
    assert buffer.read(0) == OPUS_SILENCE_FRAME
    clock.advance(4.9)
    assert buffer.read(0) == OPUS_SILENCE_FRAME
    assert buffer.put(b"audio")
    assert buffer.read(0) == b"audio"  # a packet resets the stall
    clock.advance(4.9)
    assert buffer.read(0) == OPUS_SILENCE_FRAME
    clock.advance(5.0)
    assert buffer.read(0) == b""
    assert buffer.stalled_out
    assert buffer.closed
    assert buffer.silence_frames == 3
    assert not buffer.put(b"late")


def test_stall_in_a_real_player_thread_ends_with_silence_frames() -> None:
    buffer = PacketBuffer(stall_limit=0.15)
    buffer.put(b"one")
    thread, results = read_all_in_thread(buffer, timeout=0.02)
    thread.join(5)
    assert not thread.is_alive()
    assert results[0] == b"one"
    assert len(results) >= 3
    assert set(results[1:]) == {OPUS_SILENCE_FRAME}
    assert buffer.stalled_out


def test_finish_error_reaches_the_reader_after_the_queued_packets() -> None:
    clock = FakeClock()
    buffer = PacketBuffer(clock=clock)
    buffer.put(b"a")
    clock.advance(0.5)
    buffer.put(b"b")
    error = TTSError(ErrorKind.NETWORK, "reset")
    buffer.finish(error)
    assert buffer.first_packet_at == 1000.0
    assert buffer.finished_at == 1000.5
    assert buffer.read(0) == b"a"
    assert buffer.read(0) == b"b"
    with pytest.raises(TTSError) as caught:
        buffer.read(0)
    assert caught.value is error is buffer.error
    assert buffer.read(0) == b""


def test_close_wakes_a_blocked_reader() -> None:
    buffer = PacketBuffer(stall_limit=60)
    thread, results = read_all_in_thread(buffer, timeout=30)
    time.sleep(0.05)  # let the reader block inside read()
    started = time.monotonic()
    buffer.close()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 1
    assert results == []


async def test_pump_finishes_the_buffer_with_the_source_error() -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"p1"
        raise TTSError(ErrorKind.PROTOCOL, "cut")

    buffer = PacketBuffer()
    assert await pump(failing(), buffer) == 1
    assert buffer.read(0) == b"p1"
    with pytest.raises(TTSError, match="cut"):
        buffer.read(0)


async def test_pump_stops_and_closes_the_source_when_the_reader_is_gone() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            while True:
                await asyncio.sleep(0)
                yield b"p"
        finally:
            closed.set()

    buffer = PacketBuffer()
    task = asyncio.create_task(pump(endless(), buffer))
    while buffer.packets_put < 3:
        await asyncio.sleep(0)
    buffer.close()
    assert await asyncio.wait_for(task, 5) >= 3
    assert closed.is_set()


async def test_cancelling_the_pump_closes_the_buffer() -> None:
    async def silent() -> AsyncIterator[bytes]:
        await asyncio.Event().wait()
        yield b""

    buffer = PacketBuffer()
    task = asyncio.create_task(pump(silent(), buffer))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert buffer.closed
    assert buffer.read(0) == b""

"""Time to first sound for a 300-character message: streaming versus whole-file, same run.

Run ``.venv/bin/python bench/voice_latency.py`` from the repo root. A local FakeEdgeServer
(127.0.0.1, the real edge-tts 7.3.1 client) serves 20 s of Edge-shaped MP3 at a realistic pace:
a first-chunk delay (Edge's synthesis latency) and then faster than real time. Each sample
starts when the message "arrives" (its raw Discord text is cleaned first) and ends when the
first Opus packet is ready to send, through the real pieces:

- streaming: ``GuildPlayer`` -> ``TTSService.stream`` -> ``opus_packets`` -> ``PacketBuffer``
  (the moment the player hands the buffer, first packet inside, to the voice connection);
- whole file: ``TTSService.synthesize`` (the whole MP3) -> ``opus_packets`` over it in
  1440-byte pieces -> first packet into a ``PacketBuffer`` (generous to this approach: a real
  one would also write and reopen a file);
- baseline: ``edge_tts.Communicate(...).stream()`` used directly, to its first audio chunk:
  what the fake server's first chunk costs the client with nothing of ours around it.

Rounds interleave the paths (the order flips every round) so drift hits them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import edge_tts  # noqa: E402

from bench._common import percentile  # noqa: E402
from edge_voice.core.audio import opus_packets  # noqa: E402
from edge_voice.core.config import Config, PlayerConfig  # noqa: E402
from edge_voice.core.packet_buffer import PacketBuffer  # noqa: E402
from edge_voice.core.player import GuildPlayer  # noqa: E402
from edge_voice.core.posting import PostOutcome  # noqa: E402
from edge_voice.core.speech import Utterance  # noqa: E402
from edge_voice.core.tts.edge import EdgeProvider, edge_tts_version  # noqa: E402
from edge_voice.core.tts.provider import SynthesisRequest  # noqa: E402
from edge_voice.core.tts.service import TTSService  # noqa: E402
from edge_voice.core.tts.service_from_config import service_from_config  # noqa: E402
from edge_voice.core.tts.text import clean_discord_message  # noqa: E402
from tests.fakes.audio_samples import edge_like_mp3  # noqa: E402
from tests.fakes.edge_server import FakeEdgeServer, Pacing, edge_client_pointed_at  # noqa: E402

MESSAGE = (
    "Hallo <@1234>, kurzer Stand zum Spieleabend am Freitag: Wir treffen uns um acht Uhr im "
    "Sprachkanal, die Regeln stehen hier https://example.com/regeln und wer noch ein Headset "
    "braucht, meldet sich bitte bis Donnerstag. Snacks bringt diesmal jeder selbst mit, "
    "Getränke auch. Wenn es später wird, spielen wir die zweite Runde am Samstagnachmittag "
    "weiter, gleiche Zeit, gleicher Ort, gleiche Leute, und danach wird gemeinsam gekocht."
)
MAX_CHARS = 300
AUDIO_SECONDS = 20.0
"""About how long a 300-character message takes to say."""
REQUEST_DEADLINE = 30.0
MP3_PIECE = 1440
OVERHEAD_TARGET_MS = 20.0
CONVERSION_P90_TARGET_MS = 10.0
"""Provider's first chunk -> first Opus packet at the 90th percentile: the pipeline's own
cost before sound can start (decoder and encoder start-up, the first 20 ms encoded)."""

Sample = Callable[[], Awaitable[float]]


def cleaned_message() -> str:
    """The message as the cog cleans it (the mention resolves to a name)."""
    return clean_discord_message(MESSAGE, max_chars=MAX_CHARS, resolve_user=lambda _id: "Anna")


class FirstChunkTap:
    """Wraps a provider to note when its first audio chunk of a request arrived."""

    def __init__(self, inner: EdgeProvider) -> None:
        self.inner = inner
        self.name = inner.name
        self.audio_format = inner.audio_format
        self.first_chunk_at: float | None = None

    async def stream(self, request: SynthesisRequest) -> AsyncGenerator[bytes, None]:
        async with contextlib.aclosing(self.inner.stream(request)) as chunks:
            async for chunk in chunks:
                if self.first_chunk_at is None:
                    self.first_chunk_at = time.monotonic()
                yield chunk


class FirstPacketVoice:
    """A voice connection that notes when the first packet was ready, then ends playback."""

    def __init__(self) -> None:
        self.first_packet_at: float | None = None

    def is_connected(self) -> bool:
        return True

    async def play(self, buffer: PacketBuffer) -> None:
        self.first_packet_at = buffer.first_packet_at

    def stop(self) -> None:
        return None


class Posts:
    def __init__(self) -> None:
        self.posts: list[str] = []

    async def post(self, text: str) -> PostOutcome:
        self.posts.append(text)
        return PostOutcome(delivered=True, attempts=1)


def streaming(service: TTSService, tap: FirstChunkTap, conversions: list[float]) -> Sample:
    """Streaming-path samples; each also appends first chunk -> first packet to ``conversions``."""
    voice, text = FirstPacketVoice(), Posts()
    player = GuildPlayer(service, voice, text, PlayerConfig(max_wait=REQUEST_DEADLINE))

    async def sample() -> float:
        voice.first_packet_at = tap.first_chunk_at = None
        async with asyncio.timeout(REQUEST_DEADLINE):
            arrived = time.monotonic()
            utterance = Utterance(cleaned_message(), 1, "Anna", arrived)
            result = await player.speak(utterance)
        if not result.spoken or voice.first_packet_at is None or tap.first_chunk_at is None:
            raise RuntimeError(f"not spoken: {result} {text.posts}")
        conversions.append(voice.first_packet_at - tap.first_chunk_at)
        return voice.first_packet_at - arrived

    return sample


async def _pieces(audio: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(audio), MP3_PIECE):
        yield audio[start : start + MP3_PIECE]


def whole_file(service: TTSService) -> Sample:
    async def sample() -> float:
        async with asyncio.timeout(REQUEST_DEADLINE):
            arrived = time.monotonic()
            audio = await service.synthesize(cleaned_message())
            buffer = PacketBuffer()
            packets = opus_packets(_pieces(audio), service.provider.audio_format)
            async with contextlib.aclosing(packets):
                buffer.put(await anext(packets))
        if buffer.first_packet_at is None:
            raise RuntimeError("no packet")
        return buffer.first_packet_at - arrived

    return sample


def direct(voice: str) -> Sample:
    async def sample() -> float:
        async with asyncio.timeout(REQUEST_DEADLINE):
            arrived = time.monotonic()
            stream: AsyncGenerator[dict[str, object], None] = edge_tts.Communicate(
                cleaned_message(), voice
            ).stream()
            async with contextlib.aclosing(stream):
                async for event in stream:
                    if event["type"] == "audio":
                        return time.monotonic() - arrived
        raise AssertionError("no audio")

    return sample


async def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    """Seconds to first sound per path, interleaved in one run against one server."""
    pacing = Pacing.faster_than_realtime(args.factor, first_chunk_delay=args.first_chunk_delay)
    config = Config()
    async with FakeEdgeServer(pacing=pacing, audio=edge_like_mp3(AUDIO_SECONDS)) as server:
        with edge_client_pointed_at(server.url):
            tap = FirstChunkTap(
                EdgeProvider(
                    connect_timeout=config.deadlines.connect, read_timeout=config.deadlines.read
                )
            )
            service = service_from_config(config, tap)
            conversions: list[float] = []
            paths = {
                "baseline": direct(config.speech.voice_chain[0]),
                "streaming": streaming(service, tap, conversions),
                "whole file": whole_file(service),
            }
            times: dict[str, list[float]] = {name: [] for name in paths}
            try:
                for _ in range(args.warmup):
                    await paths["baseline"]()
                    await paths["streaming"]()
                whole_every = max(1, args.n // max(1, args.n_whole))
                for index in range(args.n):
                    pair = ["baseline", "streaming"]
                    for name in pair if index % 2 else reversed(pair):
                        times[name].append(await paths[name]())
                    if index % whole_every == 0 and len(times["whole file"]) < args.n_whole:
                        times["whole file"].append(await paths["whole file"]())
                await server.wait_idle()
            finally:
                await service.close()
            times["conversion"] = conversions[args.warmup :]
            return times


def report(times: dict[str, list[float]], args: argparse.Namespace) -> bool:
    """Print the table and the verdicts; True if both targets were met."""
    print("| path | N | median ms | p90 ms |\n|---|---:|---:|---:|")
    labels = {
        "baseline": "edge-tts directly, first audio chunk (the fake server's first chunk)",
        "streaming": "streaming: message -> first Opus packet in the PacketBuffer",
        "whole file": "whole file: message -> whole MP3 -> first Opus packet",
        "conversion": "of streaming: provider's first chunk -> first Opus packet",
    }
    for name, label in labels.items():
        values = times[name]
        median, p90 = statistics.median(values) * 1e3, percentile(values, 0.9) * 1e3
        print(f"| {label} | {len(values)} | {median:.1f} | {p90:.1f} |")
    stream, base = times["streaming"], times["baseline"]
    overhead = (statistics.median(stream) - statistics.median(base)) * 1e3
    paired = statistics.median(s - b for s, b in zip(stream, base, strict=True)) * 1e3
    conversion_p90 = percentile(times["conversion"], 0.9) * 1e3
    overhead_ok = overhead <= OVERHEAD_TARGET_MS
    conversion_ok = conversion_p90 <= CONVERSION_P90_TARGET_MS
    print(
        f"\nstreaming overhead over the server's first chunk at the median: {overhead:+.1f} ms "
        f"(median of per-round differences {paired:+.1f} ms); target <= "
        f"{OVERHEAD_TARGET_MS:g} ms: {'met' if overhead_ok else 'MISSED'}"
    )
    print(
        f"provider's first chunk -> first Opus packet, p90: {conversion_p90:.1f} ms; "
        f"target <= {CONVERSION_P90_TARGET_MS:g} ms: {'met' if conversion_ok else 'MISSED'}"
    )
    # Not a target: whole-file time is the server's pace by construction.
    expected = args.first_chunk_delay + AUDIO_SECONDS / args.factor
    whole = statistics.median(times["whole file"])
    print(
        f"(context, not a target: whole file takes {whole:.2f} s to first sound, which is the "
        f"fake server's pace by construction, {expected:.2f} s = first-chunk delay + "
        f"{AUDIO_SECONDS:g} s / {args.factor:g}; streaming starts "
        f"{whole / statistics.median(stream):.0f}x sooner.)"
    )
    return overhead_ok and conversion_ok


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="baseline/streaming rounds")
    parser.add_argument("--n-whole", type=int, default=6, help="whole-file samples")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--factor", type=float, default=3.0, help="delivery speed x real time")
    parser.add_argument("--first-chunk-delay", type=float, default=0.15, help="seconds")
    args = parser.parse_args()
    text = cleaned_message()
    print(
        f"Python {sys.version.split()[0]}, edge-tts {edge_tts_version()}; FakeEdgeServer on "
        f"127.0.0.1 serving {AUDIO_SECONDS:g} s of 24 kHz 48 kbps MP3 in 1440-byte frames, "
        f"first chunk after {args.first_chunk_delay * 1e3:.0f} ms, then {args.factor:g}x "
        f"faster than real time; message of {len(MESSAGE)} characters, {len(text)} after "
        "cleaning; TTSService with core.config.Config() defaults over EdgeProvider.\n"
    )
    return 0 if report(await measure(args), args) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

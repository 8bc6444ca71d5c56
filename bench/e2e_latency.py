"""MESSAGE_CREATE to the first RTP packet: the whole bot, through the real discord.py voice client.

Run ``.venv/bin/python bench/e2e_latency.py`` from the repo root (``make bench`` runs it).

One process, one event loop: the fake Discord (``tests/fakes/discord``: REST, gateway,
TLS voice gateway, UDP voice server on its own reader thread), the fake Edge server
(``tests/fakes/edge_server.py``, the real edge-tts 7.3.1 client), and the reference host's
``TTSBot`` from ``bot.py`` with both cogs, logged in to the fake over real sockets. A
member is in the voice channel and has run ``/join``; then, one message at a time:

* **start**: ``time.monotonic()`` just before the fake Discord writes the MESSAGE_CREATE
  dispatch for a member's message in the bound channel to the bot's gateway socket;
* **end**: the arrival time (``time.monotonic()`` on the fake voice server's UDP reader
  thread, after decryption) of the first RTP packet of that message's utterance.

Everything between is the production path: discord.py parses the dispatch, the voice
cog cleans the text and queues it, the guild's player asks the service, edge-tts
connects to the fake Edge, MP3 is decoded and Opus-encoded as it arrives, the first
packet goes into the PacketBuffer, discord.py's AudioPlayer thread reads, encrypts and
sends it.

**Edge's first byte** is measured at the fake Edge, for the same request: from the
moment the connection reached it to just after it wrote the first audio frame. It
waits ``--first-chunk-delay`` (150 ms by default, Edge's synthesis latency as
``bench/voice_latency.py`` assumes) before that frame, then delivers faster than real
time. The **overhead** is the bot's share: end-to-end minus Edge's first byte, per
message. Messages are distinct (no cache hits; the cache is off anyway), each waits
for the previous one to finish, and the first ``--warmup`` are not counted.

Target: p50 of the end-to-end time at most 30 ms over Edge's first byte at p50. Exit 1
when it is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import discord  # noqa: E402

from bench._common import percentile  # noqa: E402
from edge_voice.bot import TTSBot  # noqa: E402
from edge_voice.core.config import parse_config  # noqa: E402
from edge_voice.core.tts.edge import edge_tts_version  # noqa: E402
from tests.fake_discord_support import build_scene  # noqa: E402
from tests.fakes.audio_samples import edge_like_mp3  # noqa: E402
from tests.fakes.discord import FakeDiscord, discord_client_options, running_bot  # noqa: E402
from tests.fakes.discord.audio import OPUS_SILENCE  # noqa: E402
from tests.fakes.edge_server import FakeEdgeServer, Pacing, edge_client_pointed_at  # noqa: E402

TARGET_MS = 30.0
AUDIO_SECONDS = 0.3
STEP_TIMEOUT = 10.0


def bot_config(guild_id: int, data_dir: str) -> Any:
    """The host's config for the run: defaults, minus what would blur the figure."""
    return parse_config(
        {
            "discord": {"sync_guild_ids": [guild_id]},
            "cache": {"enabled": False},
            "state": {"persist": False, "data_dir": data_dir},
            "canary": {"enabled": False},
            "text": {"announce_speaker": False},
            "player": {"idle_timeout": 0.0},
            "edge": {"host": "127.0.0.1", "port": 9},  # the startup check fails fast, offline
        },
        "<bench>",
    )


async def measure(args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """Per counted message: (end-to-end seconds, Edge's first-byte seconds)."""
    pacing = Pacing.faster_than_realtime(args.factor, first_chunk_delay=args.first_chunk_delay)
    async with (
        FakeDiscord() as fake,
        FakeEdgeServer(pacing=pacing, audio=edge_like_mp3(AUDIO_SECONDS)) as edge,
    ):
        scene = build_scene(fake)
        with tempfile.TemporaryDirectory() as data, edge_client_pointed_at(edge.url):
            bot = TTSBot(bot_config(scene.guild.id, data), **discord_client_options(fake))
            async with running_bot(fake, bot):
                startup = bot.get_cog("TTS admin").startup_task  # type: ignore[union-attr]
                if startup is not None:
                    await asyncio.wait_for(asyncio.shield(startup), STEP_TIMEOUT)
                await fake.set_voice_state(scene.alice, scene.voice)
                joined = await fake.invoke_slash(scene.alice, scene.text, "join")
                if not joined.texts or "Joined" not in joined.texts[-1]:
                    raise RuntimeError(f"/join failed: {joined.texts}")
                guild = bot.get_guild(scene.guild.id)
                assert guild is not None
                await fake.wait_for(lambda: _connected(guild), STEP_TIMEOUT)
                ends, edges = [], []
                for index in range(args.warmup + args.n):
                    e2e, first_byte = await one_message(fake, edge, scene, guild, index)
                    if index >= args.warmup:
                        ends.append(e2e)
                        edges.append(first_byte)
                return ends, edges


def _connected(guild: discord.Guild) -> bool:
    client: Any = guild.voice_client
    return client is not None and bool(client.is_connected())


async def one_message(
    fake: FakeDiscord, edge: FakeEdgeServer, scene: Any, guild: discord.Guild, index: int
) -> tuple[float, float]:
    """Send message ``index``; wait for its first packet and for it to finish."""
    streams = fake.voice_streams(scene.guild)
    seen = sum(len(s.packets) for s in streams)
    requests = len(edge.requests)
    started = time.monotonic()
    await fake.send_message(scene.alice, scene.text, f"Nachricht Nummer {index} für alle")

    def first_audio() -> float | None:
        packets = [p for s in fake.voice_streams(scene.guild) for p in s.packets][seen:]
        return next((p.arrival for p in packets if p.payload != OPUS_SILENCE), None)

    arrived = await fake.wait_for(first_audio, STEP_TIMEOUT, poll=0.001)

    def finished() -> bool:
        packets = [p for s in fake.voice_streams(scene.guild) for p in s.packets][seen:]
        tail = packets[-5:]
        return len(tail) == 5 and all(p.payload == OPUS_SILENCE for p in tail)

    await fake.wait_for(finished, STEP_TIMEOUT, poll=0.01)
    (request,) = edge.requests[requests:]
    if request.first_audio_at is None:
        raise RuntimeError(f"Edge sent no audio for message {index}")
    return arrived - started, request.first_audio_at - request.arrived


def report(ends: list[float], edges: list[float]) -> bool:
    """Print the figures and the verdict; True if the target was met."""
    overheads = [e - f for e, f in zip(ends, edges, strict=True)]
    rows = [
        ("MESSAGE_CREATE -> first RTP packet at the voice server", ends),
        ("fake Edge: connection -> first audio byte written", edges),
        ("the bot's share (per message: the first minus the second)", overheads),
    ]
    print("| measured | N | p50 ms | p95 ms | min ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, values in rows:
        print(
            f"| {label} | {len(values)} | {statistics.median(values) * 1e3:.1f} "
            f"| {percentile(values, 0.95) * 1e3:.1f} | {min(values) * 1e3:.1f} "
            f"| {max(values) * 1e3:.1f} |"
        )
    over = (statistics.median(ends) - statistics.median(edges)) * 1e3
    met = over <= TARGET_MS
    print(
        f"\np50 end to end is {over:+.1f} ms over Edge's first byte at p50; target <= "
        f"{TARGET_MS:g} ms: {'met' if met else 'MISSED'}"
    )
    return met


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="messages counted")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--factor", type=float, default=3.0, help="delivery speed x real time")
    parser.add_argument("--first-chunk-delay", type=float, default=0.15, help="seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the startup check's offline warning is expected
    print(
        f"Python {sys.version.split()[0]}, discord.py {discord.__version__}, edge-tts "
        f"{edge_tts_version()}; bot.py's TTSBot against the fake Discord (gateway, TLS voice "
        f"gateway, UDP) and the fake Edge ({AUDIO_SECONDS:g} s of MP3 per message, first "
        f"chunk after {args.first_chunk_delay * 1e3:.0f} ms, then {args.factor:g}x faster "
        f"than real time), all on 127.0.0.1 in one process; {args.n} messages after "
        f"{args.warmup} warm-up.\n"
    )
    ends, edges = await measure(args)
    return 0 if report(ends, edges) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

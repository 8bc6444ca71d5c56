"""Time to the first audio chunk: our TTSService + EdgeProvider against edge-tts used directly.

Run ``.venv/bin/python bench/first_audio.py`` from the repo root. Both paths talk
to the same local FakeEdgeServer (127.0.0.1) with the real edge-tts 7.3.1 client,
in the same run, requests interleaved (the order flips every pair) so drift hits
both alike. Each request reads its stream to the end, as playback would, but only
the time from the call to the first audio chunk is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import edge_tts  # noqa: E402

from bench._common import percentile  # noqa: E402
from edge_voice.core.config import Config  # noqa: E402
from edge_voice.core.tts.edge import edge_tts_version  # noqa: E402
from edge_voice.core.tts.service import TTSService  # noqa: E402
from edge_voice.core.tts.service_from_config import service_from_config  # noqa: E402
from tests.fakes.edge_server import FakeEdgeServer, Pacing, edge_client_pointed_at  # noqa: E402

TEXT = "Hallo zusammen, das ist ein kurzer Test der Sprachausgabe."
REQUEST_DEADLINE = 10.0
"""Seconds one measured request may take; it bounds both paths alike."""
WARMUP = 10
TARGET_MS = 5.0

Measure = Callable[[], Awaitable[float]]


def build_service(config: Config) -> TTSService:
    """Our layer as the bot builds it from the default configuration."""
    return service_from_config(config)


def via_service(service: TTSService) -> Measure:
    async def measure() -> float:
        first = None
        async with asyncio.timeout(REQUEST_DEADLINE):
            start = time.perf_counter()
            async with contextlib.aclosing(service.stream(TEXT)) as chunks:
                async for _ in chunks:
                    if first is None:
                        first = time.perf_counter() - start
        assert first is not None, "no audio"
        return first

    return measure


def direct(voice: str) -> Measure:
    async def measure() -> float:
        first = None
        async with asyncio.timeout(REQUEST_DEADLINE):
            start = time.perf_counter()
            async for event in edge_tts.Communicate(TEXT, voice).stream():
                if event["type"] == "audio" and first is None:
                    first = time.perf_counter() - start
        assert first is not None, "no audio"
        return first

    return measure


async def compare(pacing: Pacing, n: int) -> tuple[list[float], list[float], int]:
    """Seconds to first audio for ``n`` interleaved pairs; also the connections served."""
    config = Config()
    async with FakeEdgeServer(pacing=pacing) as server:
        with edge_client_pointed_at(server.url):
            ours, theirs = via_service(build_service(config)), direct(config.speech.voice_chain[0])
            for _ in range(WARMUP):
                await ours()
                await theirs()
            ours_s: list[float] = []
            direct_s: list[float] = []
            for i in range(n):
                if i % 2:
                    ours_s.append(await ours())
                    direct_s.append(await theirs())
                else:
                    direct_s.append(await theirs())
                    ours_s.append(await ours())
            await server.wait_idle()
            return ours_s, direct_s, server.connection_count


def report(title: str, n: int, ours_s: list[float], direct_s: list[float], served: int) -> bool:
    """Print one table; True if the overhead at the median is under the target."""
    expected = 2 * (n + WARMUP)
    print(
        f"\n{title}: N={n} pairs after {WARMUP} warm-up pairs; connections {served} of {expected}"
    )
    print("| path | median ms | p90 ms |\n|---|---:|---:|")
    rows = {
        "edge_tts.Communicate(...).stream() directly": direct_s,
        "TTSService.stream() + EdgeProvider (ours)": ours_s,
    }
    for name, values in rows.items():
        median, p90 = statistics.median(values) * 1e3, percentile(values, 0.9) * 1e3
        print(f"| {name} | {median:.2f} | {p90:.2f} |")
    overhead = (statistics.median(ours_s) - statistics.median(direct_s)) * 1e3
    paired = statistics.median(o - d for o, d in zip(ours_s, direct_s, strict=True)) * 1e3
    ok = overhead < TARGET_MS and served == expected
    print(
        f"overhead of our layer at the median: {overhead:+.2f} ms "
        f"(median of per-pair differences {paired:+.2f} ms); "
        f"target < {TARGET_MS:g} ms: {'met' if ok else 'MISSED'}"
    )
    return ok


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="pairs with no first-chunk delay")
    parser.add_argument("--n-delayed", type=int, default=60, help="pairs with the delay (0: skip)")
    parser.add_argument("--delay", type=float, default=0.15, help="first-chunk delay, seconds")
    args = parser.parse_args()
    print(
        f"Python {sys.version.split()[0]}, edge-tts {edge_tts_version()}, FakeEdgeServer on "
        f"127.0.0.1 sending 1 s of MP3 in 1440-byte frames with no gaps; text of {len(TEXT)} "
        "characters; ours = TTSService with core.config.Config() defaults (breakers, retries, "
        "validation, deadlines) over EdgeProvider."
    )
    verdicts = []
    ours_s, direct_s, served = await compare(Pacing(first_chunk_delay=0.0), args.n)
    verdicts.append(
        report("first_chunk_delay=0 (isolates our overhead)", args.n, ours_s, direct_s, served)
    )
    if args.n_delayed:
        pacing = Pacing(first_chunk_delay=args.delay)
        ours_s, direct_s, served = await compare(pacing, args.n_delayed)
        title = f"first_chunk_delay={args.delay * 1e3:.0f} ms (Edge-like synthesis latency)"
        verdicts.append(report(title, args.n_delayed, ours_s, direct_s, served))
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

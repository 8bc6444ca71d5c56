"""CPU per second of audio: MP3 -> Opus at libopus's default complexity, at 5, and passthrough.

Run ``.venv/bin/python bench/opus_levers.py`` from the repo root (``make bench`` runs it).

Each row converts the same 5 s of Edge-like MP3 (``tests/fakes/audio_samples.py``: 24 kHz
mono, 48 kbit/s, fed in Edge's 1440-byte chunks) with :class:`OpusStreamEncoder`, the
player's converter, and reads the process's CPU time (``time.process_time``) around
``--rounds`` conversions; the figure is ms of CPU per second of audio, best round and
median. The passthrough row takes the same sweep as Edge's WebM Opus
(``tests/fakes/audio_samples.py``, the same 1440-byte chunks) apart with
:class:`WebmOpusReader` and checks each frame's duration, as ``opus_packets`` does for
``[edge] output_format = "webm-24khz-16bit-mono-opus"``. The last row is what a stream
costs whose packets are ready (a cached phrase): put into a :class:`PacketBuffer` and
read back as discord.py's player thread would.

Targets: complexity 5 costs at most 80 % of the default (else ``[player]
opus_complexity`` is not worth its quality loss); passthrough and ready packets at most
1 ms per second of audio. Exit 1 when one is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_voice.core.audio import DEFAULT_COMPLEXITY, OpusStreamEncoder, opus_frame_ms  # noqa: E402
from edge_voice.core.packet_buffer import PacketBuffer  # noqa: E402
from edge_voice.core.tts.provider import AudioFormat  # noqa: E402
from edge_voice.core.webm import WebmOpusReader  # noqa: E402
from tests.fakes.audio_samples import edge_like_mp3, edge_like_webm  # noqa: E402

AUDIO_SECONDS = 5.0
CHUNK = 1440
EDGE_MP3 = AudioFormat("mp3", 24_000, 1)
COMPLEXITY_TARGET = 0.80
READY_TARGET_MS = 1.0


def convert(mp3: bytes, complexity: int) -> list[bytes]:
    """The player's conversion of ``mp3``, chunk by chunk."""
    encoder = OpusStreamEncoder(EDGE_MP3, complexity=complexity)
    packets: list[bytes] = []
    for start in range(0, len(mp3), CHUNK):
        packets += encoder.feed(mp3[start : start + CHUNK])
    return packets + encoder.flush()


def pass_through(webm: bytes) -> list[bytes]:
    """Edge's WebM taken apart into its Opus frames, each checked to be 20 ms."""
    reader = WebmOpusReader()
    frames: list[bytes] = []
    for start in range(0, len(webm), CHUNK):
        frames += reader.feed(webm[start : start + CHUNK])
    if any(opus_frame_ms(frame) != 20.0 for frame in frames):
        raise RuntimeError("the sample's frames are not 20 ms")
    return frames


def move_ready(packets: list[bytes]) -> None:
    """Ready packets through the hand-over buffer, as a cache hit plays."""
    buffer = PacketBuffer()
    for packet in packets:
        buffer.put(packet)
    buffer.finish()
    while buffer.read(0.0):
        pass


def costs(works: list[Callable[[], object]], rounds: int) -> list[tuple[float, float]]:
    """(best, median) ms of CPU per second of audio of each of ``works``, run in turns
    (one of each per round), so a change in the machine's load hits them alike."""
    figures: list[list[float]] = [[] for _ in works]
    for _ in range(rounds):
        for work, seen in zip(works, figures, strict=True):
            started = time.process_time()
            work()
            seen.append((time.process_time() - started) * 1e3 / AUDIO_SECONDS)
    return [(min(seen), statistics.median(seen)) for seen in figures]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    mp3 = edge_like_mp3(AUDIO_SECONDS)
    webm = edge_like_webm(AUDIO_SECONDS)
    packets = convert(mp3, DEFAULT_COMPLEXITY)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(
        f"{AUDIO_SECONDS:g} s of Edge-like MP3 ({len(mp3)} bytes, {len(packets)} Opus packets), "
        f"{args.rounds} rounds each; loadavg {load}\n"
    )
    rows = [
        (f"MP3 -> Opus, complexity {DEFAULT_COMPLEXITY} (default)", DEFAULT_COMPLEXITY),
        ("MP3 -> Opus, complexity 5", 5),
    ]
    print("| path | best ms CPU / s audio | median | vs default (median) |")
    print("|---|---:|---:|---:|")
    works: list[Callable[[], object]] = [
        lambda: convert(mp3, DEFAULT_COMPLEXITY),
        lambda: convert(mp3, 5),
        lambda: pass_through(webm),
        lambda: move_ready(packets),
    ]
    *converted, passed, ready = costs(works, args.rounds)
    results = dict(zip((DEFAULT_COMPLEXITY, 5), converted, strict=True))
    default = results[DEFAULT_COMPLEXITY][1]
    for (label, _), (best, median) in zip(rows, results.values(), strict=True):
        print(f"| {label} | {best:.2f} | {median:.2f} | {median / default:.2f}x |")
    print(
        f"| WebM Opus passthrough: block reader, no decoding | {passed[0]:.3f} "
        f"| {passed[1]:.3f} | {passed[1] / default:.3f}x |"
    )
    print(
        f"| ready Opus packets (cache hit): buffer in and out | {ready[0]:.3f} | {ready[1]:.3f} "
        f"| {ready[1] / default:.3f}x |"
    )
    share = results[5][1] / default
    met_complexity = share <= COMPLEXITY_TARGET
    met_ready = ready[1] <= READY_TARGET_MS
    met_passed = passed[1] <= READY_TARGET_MS
    print(
        f"\ncomplexity 5 costs {share * 100:.0f} % of the default; target <= "
        f"{COMPLEXITY_TARGET * 100:.0f} %: {'met' if met_complexity else 'MISSED'}"
    )
    print(
        f"passthrough costs {passed[1]:.3f} ms per s of audio; target <= "
        f"{READY_TARGET_MS:g} ms: {'met' if met_passed else 'MISSED'}"
    )
    print(
        f"ready packets cost {ready[1]:.3f} ms per s of audio; target <= "
        f"{READY_TARGET_MS:g} ms: {'met' if met_ready else 'MISSED'}"
    )
    return 0 if met_complexity and met_ready and met_passed else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Concurrent voices on one core: the ladder N = 25 ... 200 through the real discord.py client.

Run ``.venv/bin/python bench/voice_load.py`` from the repo root (``make bench-load``;
not in ``make bench``: one path takes about two minutes).

Two processes. This one runs the fakes, pinned to the other CPUs: the protocol fake
Discord (``tests/fakes/discord``: gateway, TLS voice gateway, UDP voice server that
decrypts every RTP packet on its reader thread) and the fake Edge
(``tests/fakes/edge_server.py``) serving the same 5 s of Edge-like MP3 to every request,
first chunk after 150 ms, then 3x faster than real time. The bot is the reference host's
``TTSBot`` (``bench/voice_load_host.py``) in a child process pinned to CPU 0 alone, with
the cache off, so every message is synthesized and converted. Each guild has a member
in voice who ran ``/join``.

Per level N, N members each post one message at the same moment in N guilds; the level
ends when every guild has finished (discord.py's 5 trailing silence frames) or posted
the message as text. Per level:

* **heard**: streams whose every audio packet arrived (as many as the 5 s encode to);
* **first p50/p95**: MESSAGE_CREATE written to the bot's socket -> first RTP packet;
* **late %**: audio packets more than 20 ms behind the 20 ms schedule of their stream
  (the schedule is anchored on the stream's earliest packet, the designed 40 ms first
  gap skipped): what a listener's 20 ms jitter buffer would not cover;
* **gaps %**: audio packets more than 20 ms late against their predecessor (a gap over
  40 ms): hiccups, without counting the packets after one that a jitter buffer which
  adapts would play fine (shown beside the target's stricter figure, not instead);
* **silence**: silence frames inside the audio (the bot's buffer ran dry);
* **lag p99**: the bot's event loop: how late a 5 ms sleep woke, 99th percentile, max;
* **CPU**: the bot process's CPU time over the level, as % of its core and as ms per
  second of audio per stream; **RSS/stream**: peak RSS over the idle RSS, per stream;
* **text**: messages the bot posted as text instead.

``--paths`` names the configurations to run (each a fresh bot, default ``main,mp3``):
``main`` is the code before this work (commit :data:`BASELINE`: MP3 -> PCM -> Opus,
converted on the loop or on
asyncio's default pool, one discord.py player thread per guild); ``mp3`` is this
checkout's with the default config; ``shared`` adds the shared pacer (one thread sends
every guild's packets), ``c5`` libopus complexity 5, ``shared-c5`` both; ``webm`` asks
Edge for WebM Opus and passes its frames through (the fake Edge serves the same sweep,
5 s, as Opus in WebM), ``webm-shared`` adds the shared pacer.

``VOICE_LOAD_DUMP=1`` prints, per level, how far behind its schedule every 10th packet of
the first guild arrived (where a late share comes from).

Target, for the last path named: at N = 150 every stream fully heard, at most 1 % of
packets late, no silence inserted. Exit 1 when it is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import percentile  # noqa: E402
from edge_voice.core.audio import OpusStreamEncoder  # noqa: E402
from edge_voice.core.tts.provider import AudioFormat  # noqa: E402
from edge_voice.core.webm import WebmOpusReader  # noqa: E402
from tests.fakes.audio_samples import WEBM_FORMAT, edge_like_mp3, edge_like_webm  # noqa: E402
from tests.fakes.discord import FakeDiscord  # noqa: E402
from tests.fakes.discord.audio import FRAME_SECONDS, OPUS_SILENCE, VoicePacket  # noqa: E402
from tests.fakes.discord.launch import launch_env  # noqa: E402
from tests.fakes.discord.model import Channel, Guild, Member  # noqa: E402
from tests.fakes.edge_server import FakeEdgeServer, Pacing  # noqa: E402

LEVELS = (25, 50, 75, 100, 150, 200)
TARGET_STREAMS = 150
TARGET_LATE_SHARE = 0.01
LATE_AFTER = 0.020
AUDIO_SECONDS = 5.0
TRAILING = 5
LEVEL_DEADLINE = 40.0
JOIN_CONCURRENCY = 8
SPARE_ROOMS = 5
BOT_CPU = 0

PATHS: dict[str, dict[str, Any]] = {
    "main": {},
    "mp3": {},
    "shared": {"player": {"pacer": "shared"}},
    "c5": {"player": {"opus_complexity": 5}},
    "shared-c5": {"player": {"pacer": "shared", "opus_complexity": 5}},
    "webm": {"edge": {"output_format": WEBM_FORMAT}},
    "webm-shared": {"edge": {"output_format": WEBM_FORMAT}, "player": {"pacer": "shared"}},
}
"""Config overlays per path (merged into the config's sections). ``main`` runs the code
of :data:`BASELINE` (``git archive``), the path before this work; the others run this
checkout's."""

BASELINE = "ffc746198263bac65738084932794f772b3f0eef"
"""main before the voice-load work of issue 11 (merged in 8308a78): its MP3 -> Opus path."""


def bot_config(guild_ids: Sequence[int], data_dir: str, overlay: dict[str, Any]) -> dict[str, Any]:
    """The child bot's config (JSON-able), defaults minus what would blur the figures."""
    config: dict[str, Any] = {
        "discord": {"sync_guild_ids": [], "sync_commands": True},
        "cache": {"enabled": False},
        "state": {"persist": False, "data_dir": data_dir},
        "canary": {"enabled": False},
        "text": {"announce_speaker": False},
        # discord.py sends at most 110 gateway frames a minute: 200 joins take two.
        "player": {"idle_timeout": 0.0, "voice_connect_timeout": 170.0},
        "edge": {"host": "127.0.0.1", "port": 9},  # the startup check fails fast, offline
    }
    for section, values in overlay.items():
        config.setdefault(section, {}).update(values)
    return config


@dataclass(eq=False)
class Room:
    """One guild of the run: its channels, its member, where its packets stood."""

    guild: Guild
    text: Channel
    voice: Channel
    member: Member
    seen: int = 0
    posts: int = 0
    sent_at: float = 0.0


@dataclass
class Level:
    """The figures of one ladder level."""

    path: str
    n: int
    heard: int = 0
    first: list[float] = field(default_factory=list)
    packets: int = 0
    late: int = 0
    gaps: int = 0
    silence: int = 0
    lag_p99: float = 0.0
    lag_max: float = 0.0
    cpu_share: float = 0.0
    cpu_per_stream: float = 0.0
    rss_per_stream: float = 0.0
    as_text: int = 0
    unfinished: int = 0

    @property
    def late_share(self) -> float:
        """Late packets over all audio packets."""
        return self.late / self.packets if self.packets else 0.0

    def meets_target(self) -> bool:
        """Every stream heard whole, at most 1 % late, no silence inserted."""
        return self.heard == self.n and self.late_share <= TARGET_LATE_SHARE and not self.silence


class BotProcess:
    """The child running the bot; reads its CPU time, RSS and loop lag."""

    def __init__(
        self,
        fake: FakeDiscord,
        edge: FakeEdgeServer,
        config: dict[str, Any],
        code: Path | None = None,
    ) -> None:
        self._lag = tempfile.NamedTemporaryFile("r", suffix=".lag", delete=False)  # noqa: SIM115
        env = launch_env(fake, edge_url=edge.url)
        if code is not None:
            # A folder holding an ``edge_voice`` link comes first on the path, before the
            # editable install's finder: the child imports that code.
            env["PYTHONPATH"] = os.pathsep.join([str(code), env["PYTHONPATH"]])
        command = [
            sys.executable,
            str(ROOT / "bench" / "voice_load_host.py"),
            json.dumps(config),
            self._lag.name,
            str(BOT_CPU),
        ]
        self.process = subprocess.Popen(command, env=env, cwd=ROOT)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the child (all its threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        """The child's resident set size."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def lags(self, start: float, end: float) -> list[float]:
        """Loop-lag samples the child wrote for wake-ups between ``start`` and ``end``."""
        values = []
        for line in self._lag.readlines():
            stamp, _, lag = line.partition(" ")
            with contextlib.suppress(ValueError):
                if start <= float(stamp) <= end:
                    values.append(float(lag))
        return values

    async def stop(self) -> None:
        """SIGTERM, wait, delete the lag file.

        The wait must not block this loop: the child's shutdown talks to the fakes it runs.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.process.wait, 15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._lag.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._lag.name)


def expected_packets(path: str, mp3: bytes, webm: bytes) -> int:
    """How many 20 ms Opus packets a stream of ``path`` has: the MP3 converted, or the
    WebM's frames."""
    if "output_format" in PATHS[path].get("edge", {}):
        return len(WebmOpusReader().feed(webm))
    encoder = OpusStreamEncoder(AudioFormat("mp3", 24_000, 1))
    return len(encoder.feed(mp3)) + len(encoder.flush())


def build_rooms(fake: FakeDiscord, count: int) -> list[Room]:
    """``count`` guilds, each with a text and a voice channel and one member."""
    rooms = []
    for index in range(count):
        guild = fake.add_guild(f"Load {index}")
        rooms.append(
            Room(
                guild,
                fake.add_text_channel(guild, "general"),
                fake.add_voice_channel(guild, "Lounge"),
                fake.add_member(guild, f"member{index}"),
            )
        )
    return rooms


async def join_all(fake: FakeDiscord, rooms: Sequence[Room], needed: int) -> list[Room]:
    """Each member enters voice and runs ``/join``; the first ``needed`` rooms joined.

    discord.py sends at most 110 gateway frames a minute, so hundreds of joins take
    minutes, and now and then one is not answered: a room that fails twice is left out
    (there are spares).
    """
    gate = asyncio.Semaphore(JOIN_CONCURRENCY)

    async def join(room: Room) -> bool:
        async with gate:
            await fake.set_voice_state(room.member, room.voice)
            for _ in range(2):
                with contextlib.suppress(TimeoutError):
                    reply = await fake.invoke_slash(room.member, room.text, "join", timeout=60.0)
                    if reply.texts and "Joined" in reply.texts[-1]:
                        return True
            return False

    joined = await asyncio.gather(*(join(room) for room in rooms))
    ready = [room for room, ok in zip(rooms, joined, strict=True) if ok][:needed]
    if len(ready) < needed:
        raise RuntimeError(f"only {len(ready)} of {len(rooms)} guilds joined voice")
    await fake.wait_for(lambda: all(fake.voice_streams(r.guild) for r in ready), 30.0)
    await asyncio.sleep(1.0)
    return ready


def _new_packets(fake: FakeDiscord, room: Room) -> list[VoicePacket]:
    return [p for s in fake.voice_streams(room.guild) for p in s.packets][room.seen :]


def _finished(fake: FakeDiscord, room: Room) -> bool:
    if len(fake.posted(room.text)) > room.posts:
        return True
    packets = _new_packets(fake, room)
    tail = packets[-TRAILING:]
    return len(packets) > TRAILING and all(p.payload == OPUS_SILENCE for p in tail)


def late_packets(packets: Sequence[VoicePacket]) -> int:
    """Packets more than 20 ms behind their stream's 20 ms schedule (first gap skipped)."""
    if len(packets) < 3:
        return 0
    anchor = min(p.arrival - i * FRAME_SECONDS for i, p in enumerate(packets) if i)
    return sum(
        1
        for i, p in enumerate(packets)
        if i and p.arrival - (anchor + i * FRAME_SECONDS) > LATE_AFTER
    )


async def run_level(
    fake: FakeDiscord, bot: BotProcess, rooms: Sequence[Room], path: str, expected: int
) -> Level:
    """One ladder level: every room speaks once, at once."""
    level = Level(path, len(rooms))
    for room in rooms:
        room.seen = sum(len(s.packets) for s in fake.voice_streams(room.guild))
        room.posts = len(fake.posted(room.text))
    idle_rss = bot.rss_kib()
    cpu_before, started = bot.cpu_seconds(), time.monotonic()

    async def send(index: int, room: Room) -> None:
        room.sent_at = time.monotonic()
        await fake.send_message(room.member, room.text, f"Nachricht {index} der Stufe {len(rooms)}")

    await asyncio.gather(*(send(i, room) for i, room in enumerate(rooms)))
    peak_rss = idle_rss
    deadline = started + LEVEL_DEADLINE
    while time.monotonic() < deadline and not all(_finished(fake, r) for r in rooms):
        peak_rss = max(peak_rss, bot.rss_kib())
        await asyncio.sleep(0.1)
    ended = time.monotonic()
    cpu = bot.cpu_seconds() - cpu_before
    for room in rooms:
        if not _finished(fake, room):
            level.unfinished += 1
        if len(fake.posted(room.text)) > room.posts:
            level.as_text += 1
        packets = _new_packets(fake, room)
        while packets and packets[-1].payload == OPUS_SILENCE:
            packets.pop()
        if not packets:
            continue
        level.first.append(packets[0].arrival - room.sent_at)
        if os.environ.get("VOICE_LOAD_DUMP") and room is rooms[0]:
            # Diagnosis: how far behind its own schedule each 10th packet arrived.
            anchor = packets[1].arrival - FRAME_SECONDS
            behind = [p.arrival - anchor - i * FRAME_SECONDS for i, p in enumerate(packets)]
            print("offsets ms:", [round(b * 1e3) for b in behind][1::10])
        audio = sum(1 for p in packets if p.payload != OPUS_SILENCE)
        level.heard += audio >= expected
        level.packets += len(packets)
        level.silence += len(packets) - audio
        level.late += late_packets(packets)
        level.gaps += sum(
            1
            for i in range(2, len(packets))
            if packets[i].arrival - packets[i - 1].arrival > FRAME_SECONDS + LATE_AFTER
        )
    lags = bot.lags(started, ended) or [0.0]
    level.lag_p99, level.lag_max = percentile(lags, 0.99), max(lags)
    level.cpu_share = cpu / (ended - started)
    level.cpu_per_stream = cpu / (len(rooms) * AUDIO_SECONDS)
    level.rss_per_stream = max(0, peak_rss - idle_rss) / len(rooms)
    return level


@contextlib.contextmanager
def code_of(path: str) -> Iterator[Path | None]:
    """For ``main``: a folder with ``edge_voice`` linked to :data:`BASELINE`'s files; else
    None."""
    if path != "main":
        yield None
        return
    with tempfile.TemporaryDirectory() as folder:
        tree = Path(folder, "tree")
        tree.mkdir()
        archive = subprocess.run(
            ["git", "archive", BASELINE], cwd=ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        Path(folder, "edge_voice").symlink_to(tree)
        yield Path(folder)


async def run_path(
    path: str, levels: Sequence[int], mp3: bytes, webm: bytes, warmup: int
) -> list[Level]:
    """A fresh fake Discord and bot for ``path``; the whole ladder on it."""
    pacing = Pacing.faster_than_realtime(3.0, first_chunk_delay=0.15)
    expected = expected_packets(path, mp3, webm)
    async with FakeDiscord() as fake, FakeEdgeServer(pacing=pacing, audio=mp3) as edge:
        edge.webm_audio = webm
        rooms = build_rooms(fake, max(levels) + SPARE_ROOMS)
        with tempfile.TemporaryDirectory() as data, code_of(path) as code:
            config = bot_config([r.guild.id for r in rooms], data, PATHS[path])
            bot = BotProcess(fake, edge, config, code)
            try:
                await fake.wait_for(lambda: fake.gateway.live_sessions(), 60.0)
                await asyncio.sleep(2.0)  # the GUILD_CREATEs read, on_ready past
                rooms = await join_all(fake, rooms, max(levels))
                if warmup:
                    await run_level(fake, bot, rooms[:warmup], path, expected)
                results = []
                for n in levels:
                    level = await run_level(fake, bot, rooms[:n], path, expected)
                    print_row(level)
                    results.append(level)
                    await asyncio.sleep(1.0)
                return results
            finally:
                await bot.stop()


HEADER = (
    "| path | N | heard | first p50 ms | first p95 ms | late % | gaps % | silence | lag p99 ms "
    "| lag max ms | CPU % core | CPU ms/s/stream | RSS KiB/stream | text | unfinished |"
)


def print_row(level: Level) -> None:
    """One table row, printed as soon as the level ends."""
    first = level.first or [float("nan")]
    gaps = level.gaps / level.packets if level.packets else 0.0
    print(
        f"| {level.path} | {level.n} | {level.heard}/{level.n} "
        f"| {statistics.median(first) * 1e3:.0f} | {percentile(first, 0.95) * 1e3:.0f} "
        f"| {level.late_share * 100:.2f} | {gaps * 100:.2f} | {level.silence} "
        f"| {level.lag_p99 * 1e3:.1f} "
        f"| {level.lag_max * 1e3:.1f} | {level.cpu_share * 100:.0f} "
        f"| {level.cpu_per_stream * 1e3:.1f} | {level.rss_per_stream:.0f} | {level.as_text} "
        f"| {level.unfinished} |",
        flush=True,
    )


def loadavg() -> str:
    """The first three fields of /proc/loadavg."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", default="main,mp3", help=f"comma-separated, of {sorted(PATHS)}")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--warmup", type=int, default=3, help="streams spoken before the ladder")
    args = parser.parse_args()
    # SIGTERM (a CI timeout, kill) unwinds like Ctrl-C, so the child bot is stopped too.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    paths = [p for p in args.paths.split(",") if p]
    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        parser.error(f"unknown paths {unknown}; known: {sorted(PATHS)}")
    levels = [int(n) for n in args.levels.split(",")]
    cpus = os.sched_getaffinity(0)
    others = cpus - {BOT_CPU}
    if others:
        os.sched_setaffinity(0, others)
    mp3 = edge_like_mp3(AUDIO_SECONDS)
    webm = edge_like_webm(AUDIO_SECONDS)
    expected = expected_packets("mp3", mp3, webm)
    print(
        f"bot on CPU {BOT_CPU} alone, fakes on CPUs {sorted(others) or [BOT_CPU]}; "
        f"{AUDIO_SECONDS:g} s utterances ({expected} packets from MP3, "
        f"{expected_packets('webm', mp3, webm)} in WebM), Edge 3x real time after "
        f"150 ms; loadavg before: {loadavg()}\n"
    )
    print(HEADER)
    print("|---|" + "---:|" * 14)
    results: dict[str, list[Level]] = {}
    for path in paths:
        results[path] = await run_path(path, levels, mp3, webm, args.warmup)
    print(f"\nloadavg after: {loadavg()}")
    target_path = paths[-1]
    at_target = [lv for lv in results[target_path] if lv.n == TARGET_STREAMS]
    if not at_target:
        print(f"target: N = {TARGET_STREAMS} was not run")
        return 1
    met = at_target[0].meets_target()
    print(
        f"target ({target_path}): {TARGET_STREAMS} streams all heard, <= "
        f"{TARGET_LATE_SHARE * 100:g} % late, no silence inserted: {'met' if met else 'MISSED'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    try:
        raise SystemExit(asyncio.run(main()))
    except asyncio.CancelledError:
        print("stopped by SIGTERM; the bot process was stopped too", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM) from None

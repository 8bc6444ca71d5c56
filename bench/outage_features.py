"""The outage features, measured: cached and offline speech, canaries, restarts.

Run ``.venv/bin/python bench/outage_features.py`` from the repo root (``bench/outage.py``
runs it after its own table). Two simulations on the FakeClock-driven loop of
``bench._common.run_simulated``:

1. Voice share: real ``GuildPlayer`` objects (one per guild) with a shared
   ``AudioCache``, the real ``EspeakProvider`` as offline voice and real PyAV
   conversion to Opus, against an Edge double that serves real MP3 until the
   outage starts. The voice output drains each ``PacketBuffer`` as fast as packets
   come; eSpeak and PyAV run in real time on worker threads while the simulated
   clock waits for them (it never jumps while a thread's result is pending).
2. Restart loop: a fresh ``TTSService`` every ``--restart-every`` seconds of the
   outage, with and without a ``BreakerStateStore`` (FakeClock as its wall clock).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import ThreadAwareProvider, run_simulated  # noqa: E402
from edge_voice.core.audio import OPUS_FRAME_SECONDS  # noqa: E402
from edge_voice.core.breaker import CircuitState, TransitionEvent  # noqa: E402
from edge_voice.core.cache import AudioCache  # noqa: E402
from edge_voice.core.clock import FakeClock  # noqa: E402
from edge_voice.core.config import CacheConfig, Config, FallbackConfig  # noqa: E402
from edge_voice.core.packet_buffer import PacketBuffer  # noqa: E402
from edge_voice.core.player import OFFLINE_VOICE_REASON, GuildPlayer, OfflineVoice  # noqa: E402
from edge_voice.core.posting import PostOutcome  # noqa: E402
from edge_voice.core.speech import SpeechOutcome, SpeechResult, Utterance  # noqa: E402
from edge_voice.core.tts.errors import ErrorKind, TTSError  # noqa: E402
from edge_voice.core.tts.espeak import EspeakProvider  # noqa: E402
from edge_voice.core.tts.outcomes import SynthesisReport  # noqa: E402
from edge_voice.core.tts.provider import EDGE_MP3, SynthesisRequest  # noqa: E402
from edge_voice.core.tts.service import TTSService  # noqa: E402
from edge_voice.core.tts.service_from_config import service_from_config  # noqa: E402
from tests.fakes.audio_samples import edge_like_mp3  # noqa: E402

FAILURE_COST = 0.2
"""Seconds one failing attempt takes: a 503 on the handshake."""
FIRST_CHUNK_AFTER, REST_OF_AUDIO_AFTER = 0.25, 0.3
AUDIO_SECONDS = 1.0
PHRASES = (
    "Guten Morgen zusammen!", "Hallo an alle!", "Gute Nacht!", "Bin gleich wieder da.",
    "Willkommen im Kanal!", "Das Spiel startet in fünf Minuten.", "Bitte alle in den Sprachkanal.",
    "Zehn Minuten Pause.", "Danke fürs Zuhören!", "Wir sind jetzt live.", "Bis später!",
    "Viel Glück euch allen!", "Gut gemacht, Team!", "Achtung, der Raid beginnt.",
    "Bitte das Mikrofon stummschalten.", "Neue Runde, neues Glück.", "Herzlich willkommen!",
    "Tschüss, bis morgen!", "Wer ist heute dabei?", "Gleich geht es weiter.",
)  # fmt: skip
WORDS = (
    "heute", "morgen", "abend", "wir", "ihr", "die", "Karte", "der", "Boss", "das", "Level",
    "ein", "Schwert", "neue", "Quest", "links", "rechts", "oben", "unten", "schnell", "langsam",
    "zurück", "vorwärts", "Heiltrank", "Schild", "Bogen", "Gold", "Punkte", "zwei", "drei",
    "vier", "Runde", "Team", "Basis", "Turm", "Brücke", "Norden", "Süden", "warten",
)  # fmt: skip

_delivery: ContextVar[Delivery | None] = ContextVar("delivery", default=None)


@dataclass
class Delivery:
    """One listener message as the service saw it."""

    first_edge_at: float | None = None
    edge_calls: int = 0


class ObservedService(TTSService):
    """``TTSService`` that notes, per listener message, when it first reached Edge."""

    async def stream(
        self,
        text: str,
        settings: Any = None,
        *,
        report: SynthesisReport | None = None,
        stall_limit: float | None = None,
    ) -> AsyncGenerator[bytes, None]:
        _delivery.set(Delivery())  # the caller's task context: one message at a time
        stream = super().stream(text, settings, report=report, stall_limit=stall_limit)
        async with contextlib.aclosing(stream) as chunks:
            async for chunk in chunks:
                yield chunk


class EdgeDouble:
    """A ``TTSProvider`` standing in for Edge: 503 inside ``[down_from, down_until)``,
    otherwise real Edge-shaped MP3 in two chunks. Counts canaries apart from listeners."""

    name = "edge"
    audio_format = EDGE_MP3

    def __init__(self, clock: FakeClock, down_from: float, down_until: float, canary: str) -> None:
        self._clock = clock
        self.down_from, self.down_until, self.canary_text = down_from, down_until, canary
        self.canaries_in_outage = 0
        self.listener_calls_in_outage: list[float] = []
        self.deliveries: list[Delivery] = []
        audio = edge_like_mp3(AUDIO_SECONDS)
        self._chunks = (audio[: len(audio) // 4], audio[len(audio) // 4 :])

    def is_down(self) -> bool:
        """Whether Edge fails right now."""
        return self.down_from <= self._clock() < self.down_until

    async def stream(self, request: SynthesisRequest) -> AsyncGenerator[bytes, None]:
        """Fail like Edge in an outage, or yield real MP3."""
        canary = request.text == self.canary_text
        delivery = None if canary else _delivery.get()
        if delivery is not None:
            delivery.edge_calls += 1
            if delivery.first_edge_at is None:
                delivery.first_edge_at = self._clock()
                self.deliveries.append(delivery)
        if self.is_down():
            if canary:
                self.canaries_in_outage += 1
            else:
                self.listener_calls_in_outage.append(self._clock())
            await asyncio.sleep(FAILURE_COST)
            raise TTSError(ErrorKind.UNAVAILABLE, "simulated outage", status=503)
        await asyncio.sleep(FIRST_CHUNK_AFTER)
        yield self._chunks[0]
        await asyncio.sleep(REST_OF_AUDIO_AFTER)
        yield self._chunks[1]


class DrainingVoice:
    """A voice connection that reads each buffer as fast as packets arrive, counting
    the audio packets read while ``counting()`` is true."""

    def __init__(self, counting: Callable[[], bool]) -> None:
        self.packets = 0
        self._counting = counting
        self._stopped = False

    def is_connected(self) -> bool:
        """Always connected."""
        return True

    def stop(self) -> None:
        """End the current playback at the next packet."""
        self._stopped = True

    async def play(self, buffer: PacketBuffer) -> None:
        """Read to the end; the buffer's error (if synthesis failed) is raised."""
        self._stopped = False
        while not self._stopped:
            fillers = buffer.silence_frames
            packet = buffer.read(0)
            if not packet:
                return
            if buffer.silence_frames > fillers:  # nothing queued yet: wait one packet
                await asyncio.sleep(OPUS_FRAME_SECONDS)
            elif self._counting():
                self.packets += 1
        buffer.close()


class RecordingText:
    """The text channel: keeps every post."""

    def __init__(self) -> None:
        self.posts: list[str] = []

    async def post(self, text: str) -> PostOutcome:
        """Keep ``text``."""
        self.posts.append(text)
        return PostOutcome(delivered=True, attempts=1)


@dataclass
class Message:
    """One scheduled message and what became of it."""

    guild: int
    arrival: float
    text: str
    result: SpeechResult | None = None


def schedule(args: argparse.Namespace, seconds: float) -> list[Message]:
    """Every guild's messages: ``--repeated-share`` of them from :data:`PHRASES`."""
    rng = random.Random(args.seed)
    seen: set[str] = set(PHRASES)
    messages = []
    for start in range(0, int(seconds), args.interval):
        for guild in range(args.guilds):
            if rng.random() < args.repeated_share:
                text = rng.choice(PHRASES)
            else:
                while (text := " ".join(rng.choices(WORDS, k=rng.randint(4, 8))) + ".") in seen:
                    pass
                seen.add(text)
            messages.append(Message(guild, start + guild * args.interval / args.guilds, text))
    return messages


@dataclass
class ShareResult:
    """What one configuration did with the outage."""

    heard: Counter[str] = field(default_factory=Counter)
    heard_after: Counter[str] = field(default_factory=Counter)
    during: int = 0
    packets: int = 0
    canaries: int = 0
    before_open: int = 0
    after_open: int = 0
    retries_after_open: int = 0
    opened_at: float | None = None
    after: int = 0
    first_edge_after: float | None = None

    def voiced(self, heard: Counter[str]) -> int:
        """Messages in ``heard`` that listeners heard as speech."""
        return heard["cached"] + heard["offline"] + heard["edge"]


def _kind(result: SpeechResult | None) -> str:
    if result is None or not result.spoken:
        posted = result is not None and result.outcome is SpeechOutcome.POSTED_AS_TEXT
        return "text" if posted else "other"
    return {"cached": "cached", OFFLINE_VOICE_REASON: "offline"}.get(result.reason, "edge")


def voice_share(config: Config, args: argparse.Namespace) -> ShareResult:
    """Run the warm-up, outage and recovery through real players under ``config``."""
    clock = FakeClock(start=0.0)
    start, end = args.warmup_minutes * 60.0, (args.warmup_minutes + args.outage_minutes) * 60.0
    messages = schedule(args, end + args.recovery_minutes * 60.0)
    edge = EdgeDouble(clock, start, end, config.canary.text)
    offline = config.fallback.on_open != "text"
    espeak = EspeakProvider(config.fallback.offline_voices) if offline else None
    result = ShareResult()

    def on_transition(event: TransitionEvent) -> None:
        if event.new is CircuitState.OPEN and result.opened_at is None and edge.is_down():
            result.opened_at = clock()

    async def run() -> None:
        service = service_from_config(
            config,
            edge,
            service_type=ObservedService,
            clock=clock,
            wall_clock=clock.wall,
            jitter=random.Random(args.seed).random,
        )
        service.service_breaker.add_listener(on_transition)
        cache = AudioCache(config.cache.max_bytes) if config.cache.enabled else None
        offline_voice = None if espeak is None else OfflineVoice(ThreadAwareProvider(espeak))
        settings = config.player
        voices = [DrainingVoice(edge.is_down) for _ in range(args.guilds)]
        players = [
            GuildPlayer(service, voice, RecordingText(), settings,
                        cache=cache, offline_voice=offline_voice, clock=clock)
            for voice in voices
        ]  # fmt: skip

        async def speak(message: Message) -> None:
            utterance = Utterance(message.text, message.guild, f"member {message.guild}", clock())
            message.result = await players[message.guild].speak(utterance)

        tasks = []
        for message in messages:
            await asyncio.sleep(message.arrival - clock())
            tasks.append(asyncio.create_task(speak(message)))
        await asyncio.gather(*tasks)
        for player in players:
            await player.close()
        await service.close()
        result.packets = sum(voice.packets for voice in voices)

    try:
        run_simulated(clock, run())
    finally:
        if espeak is not None:
            espeak.close()
    during = [m for m in messages if start <= m.arrival < end]
    result.during = len(during)
    result.heard = Counter(_kind(m.result) for m in during)
    result.canaries = edge.canaries_in_outage
    opened = result.opened_at if result.opened_at is not None else end
    firsts = [d.first_edge_at for d in edge.deliveries if d.first_edge_at is not None]
    result.before_open = sum(start <= t < opened for t in firsts)
    result.after_open = sum(opened <= t < end for t in firsts)
    result.retries_after_open = sum(t >= opened for t in edge.listener_calls_in_outage)
    after = [m for m in messages if m.arrival >= end]
    result.after = len(after)
    result.heard_after = Counter(_kind(m.result) for m in after)
    spoken_by_edge = [m.arrival - end for m in after if _kind(m.result) == "edge"]
    result.first_edge_after = min(spoken_by_edge, default=None)
    return result


TEXT_ONLY = "(a) text only, no cache"
TEXT_AND_CACHE = "(b) text + cache (product default)"
OFFLINE_AND_CACHE = "(c) offline_voice + cache"


def configurations() -> dict[str, Config]:
    """The three setups compared."""
    text, offline = FallbackConfig(on_open="text"), FallbackConfig(on_open="offline_voice")
    return {
        TEXT_ONLY: Config(cache=CacheConfig(enabled=False), fallback=text),
        TEXT_AND_CACHE: Config(fallback=text),
        OFFLINE_AND_CACHE: Config(fallback=offline),
    }


def describe(args: argparse.Namespace) -> str:
    """The header: the scenario and what is real in it."""
    warm, out, rec = args.warmup_minutes, args.outage_minutes, args.recovery_minutes
    return (
        "\n## Voice share during an outage (bench/outage_features.py)\n\n"
        "Simulated time: the FakeClock loop; eSpeak and PyAV run for real on worker threads "
        f"while the clock waits. {args.guilds} guilds, one message each every {args.interval} s, "
        f"{args.repeated_share:.0%} drawn from {len(PHRASES)} repeated phrases, the rest unique "
        "(4-8 words); no 'NAME said' prefix.\n"
        f"Edge healthy for {warm:g} min (warm-up; real Edge-shaped MP3, {AUDIO_SECONDS:g} s of "
        f"audio), then 503 for {out:g} min ({FAILURE_COST} s per attempt), then healthy for "
        f"{rec:g} min. Per guild a real GuildPlayer (PlayerConfig from Config) whose voice "
        "output drains each PacketBuffer as fast as packets come; one AudioCache shared by "
        "the guilds; the real EspeakProvider as offline voice; service_from_config "
        "(canaries on, breaker defaults); no restart, so no state file."
    )


def report(args: argparse.Namespace) -> bool:
    """Run the three configurations, print them and the targets; True if all are met."""
    print(describe(args))
    results = {name: voice_share(config, args) for name, config in configurations().items()}
    print(
        "\n| configuration | messages during outage | heard as voice: cached / offline / Edge "
        "| audio played during outage | posted as text | share heard as voice "
        "| Edge calls during outage: canaries | listener messages first reaching Edge "
        "before / after the breaker opened | retries after it opened (of messages admitted "
        "before) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    for name, r in results.items():
        voiced = r.voiced(r.heard)
        into = None if r.opened_at is None else r.opened_at - args.warmup_minutes * 60
        opened = "never" if into is None else f"{into:.1f} s"
        print(
            f"| {name} | {r.during} | {voiced} = {r.heard['cached']} / {r.heard['offline']} / "
            f"{r.heard['edge']} | {r.packets * OPUS_FRAME_SECONDS:.0f} s | {r.heard['text']} "
            f"| {voiced / r.during:.1%} | {r.canaries} | {r.before_open} / {r.after_open} "
            f"(opened after {opened}) | {r.retries_after_open} |"
        )
    print()
    for name, r in results.items():
        after, first = r.heard_after, r.first_edge_after
        print(
            f"{name}: outage messages neither spoken nor posted: {r.heard['other']}; after the "
            f"outage {r.voiced(after)} / {r.after} heard as voice ({after['cached']} cached, "
            f"{after['offline']} offline, {after['edge']} Edge), {after['text']} as text; first "
            f"Edge speech for a message sent {'never' if first is None else f'{first:.0f} s'} "
            "after Edge recovered"
        )
    text_only, cached = results[TEXT_ONLY], results[TEXT_AND_CACHE]
    offline = results[OFFLINE_AND_CACHE]
    share = {name: r.voiced(r.heard) / r.during for name, r in results.items()}
    trials = sum(r.after_open for r in results.values())
    checks = [
        (
            f"voice share with offline_voice + cache >= 99 %: {share[OFFLINE_AND_CACHE]:.1%} "
            f"(text only {share[TEXT_ONLY]:.1%}, text + cache {share[TEXT_AND_CACHE]:.1%})",
            share[OFFLINE_AND_CACHE] >= 0.99 and text_only.voiced(text_only.heard) == 0,
        ),
        (
            "listener messages used as trials once the breaker opened = 0 (canaries test "
            f"instead): {trials}; canaries sent: {text_only.canaries}, {cached.canaries}, "
            f"{offline.canaries}",
            trials == 0 and all(r.canaries > 0 for r in results.values()),
        ),
    ]
    print()
    for text, ok in checks:
        print(f"target: {text}: {'met' if ok else 'MISSED'}")
    return all(ok for _, ok in checks)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This scenario's own knobs; ``bench/outage.py`` shares the others."""
    parser.add_argument("--warmup-minutes", type=float, default=5.0)
    parser.add_argument("--recovery-minutes", type=float, default=5.0)
    parser.add_argument("--repeated-share", type=float, default=0.3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guilds", type=int, default=10)
    parser.add_argument("--interval", type=int, default=10, help="seconds between messages")
    parser.add_argument("--outage-minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    add_arguments(parser)
    return 0 if report(parser.parse_args()) else 1


if __name__ == "__main__":
    raise SystemExit(main())

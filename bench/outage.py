"""A simulated Edge outage: what each client design asks of the service, and of users.

Run ``.venv/bin/python bench/outage.py [--kind unavailable]`` from the repo root. It
prints four parts: the client designs compared; the bot restarting every 30 s during
the outage, with and without saved breaker state; the count and time windows under
bursty traffic (``bench/outage_windows.py``, which picked the default window); and
what listeners hear (the last part is ``bench/outage_features.py``, runnable on its
own; skip it with ``--no-voice-share``, it takes most of the run time).
Nothing waits in real time: the event loop's clock *is* a FakeClock, and whenever
no task is ready the loop moves that clock to its next timer. So every
``asyncio.sleep`` (backoff, the cost of each attempt) and every ``asyncio.timeout``
(the service's total deadline) runs in simulated seconds, and concurrent messages
overlap exactly as they would on a real loop. The same FakeClock is the clock and
wall clock of every breaker and of ``TTSService``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import outage_features, outage_windows  # noqa: E402
from bench._common import run_simulated  # noqa: E402
from bench.outage_features import EdgeDouble, schedule  # noqa: E402
from edge_voice.core.breaker import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError  # noqa: E402
from edge_voice.core.breaker.state import CircuitState  # noqa: E402
from edge_voice.core.breaker.store import BreakerStateStore  # noqa: E402
from edge_voice.core.clock import FakeClock  # noqa: E402
from edge_voice.core.config import Config  # noqa: E402
from edge_voice.core.tasks import cancel_and_wait  # noqa: E402
from edge_voice.core.tts.errors import ErrorKind, TTSError  # noqa: E402
from edge_voice.core.tts.policy import Backoff  # noqa: E402
from edge_voice.core.tts.provider import EDGE_MP3, SynthesisRequest, VoiceSettings  # noqa: E402
from edge_voice.core.tts.service_from_config import service_from_config  # noqa: E402

CONFIG = Config()
ANSWER_LIMIT = 0.1
"""A message counts as answered at once if it is settled this fast without any network attempt."""
FIRST_CHUNK_AFTER, REST_OF_AUDIO_AFTER = 0.25, 0.3
"""A healthy request: first audio after 0.25 s, the rest 0.3 s later."""
FAILURE_COST: dict[ErrorKind, tuple[float, str]] = {
    ErrorKind.UNAVAILABLE: (0.2, "503 on the handshake"),
    ErrorKind.RATE_LIMITED: (0.2, "429 on the handshake"),
    ErrorKind.REJECTED: (0.4, "403, edge-tts fixes its clock skew and connects once more"),
    ErrorKind.NETWORK: (0.05, "connection refused"),
    ErrorKind.NO_AUDIO: (0.6, "turn.start, response, turn.end and no audio"),
    ErrorKind.PROTOCOL: (0.6, "a frame edge-tts cannot parse"),
    ErrorKind.TIMEOUT: (
        CONFIG.deadlines.connect + CONFIG.deadlines.read,
        "silence until EdgeProvider's first-frame deadline (connect + read)",
    ),
}
STATUS = {ErrorKind.UNAVAILABLE: 503, ErrorKind.RATE_LIMITED: 429, ErrorKind.REJECTED: 403}
SEED_1 = CircuitBreakerConfig(
    consecutive_failures=5,
    failure_threshold=0,
    cooldown_period=300,
    max_cooldown_period=300,
    success_threshold=1,
)
SEED_2 = CircuitBreakerConfig(
    failure_threshold=0.5,
    window_size=10,
    minimum_calls=10,
    consecutive_failures=0,
    cooldown_period=60,
    max_cooldown_period=60,
    success_threshold=3,
)


@dataclass
class Message:
    """One request for speech and what became of it."""

    guild: int
    arrival: float
    attempts: int = 0
    state_at_arrival: str = ""
    answered_at: float | None = None  # first audio chunk, or the error
    spoken: bool = False


_current: ContextVar[Message] = ContextVar("current_message")


class OutageProvider:
    """A ``TTSProvider`` double: fails with ``kind`` until ``outage_end``, then speaks.

    Every failing attempt takes the time the real one takes (``FAILURE_COST``).
    """

    name = "edge"
    audio_format = EDGE_MP3

    def __init__(self, clock: FakeClock, kind: ErrorKind, outage_end: float) -> None:
        self._clock = clock
        self.kind = kind
        self.outage_end = outage_end
        self.attempts_in_outage = 0

    async def stream(self, request: SynthesisRequest) -> AsyncGenerator[bytes, None]:
        """Fail like Edge in an outage, or yield two chunks of audio (noting the first)."""
        _current.get().attempts += 1
        voice = request.settings.voice
        if self._clock() < self.outage_end:
            self.attempts_in_outage += 1
            await asyncio.sleep(FAILURE_COST[self.kind][0])
            status = STATUS.get(self.kind)
            raise TTSError(self.kind, "simulated outage", voice=voice, status=status)
        await asyncio.sleep(FIRST_CHUNK_AFTER)
        message = _current.get()
        if message.answered_at is None:
            message.answered_at, message.spoken = self._clock(), True
        yield b"\xff\xf3\x64\xc4" + bytes(140)
        await asyncio.sleep(REST_OF_AUDIO_AFTER)
        yield b"\xff\xf3\x64\xc4" + bytes(140)


class NaiveClient:
    """Every voice of the chain, ``attempts`` tries each with backoff, whatever the error."""

    def __init__(self, provider: OutageProvider, jitter: Callable[[], float]) -> None:
        self.provider = provider
        self.jitter = jitter
        self.backoff = Backoff(CONFIG.retry.backoff_base, CONFIG.retry.backoff_max)

    async def synthesize(self, text: str) -> bytes:
        """The audio of the first attempt that works; raise the last error."""
        last: TTSError | None = None
        for voice in CONFIG.speech.voice_chain:
            request = SynthesisRequest(text, VoiceSettings(voice))
            for number in range(1, CONFIG.retry.attempts + 1):
                try:
                    return b"".join([chunk async for chunk in self.provider.stream(request)])
                except TTSError as error:
                    last = error
                    if number < CONFIG.retry.attempts:
                        await asyncio.sleep(self.backoff.delay(number, self.jitter()))
        assert last is not None
        raise last


def _label(breaker: CircuitBreaker) -> str:
    if breaker.state is CircuitState.CLOSED:
        return "while CLOSED"
    return "as trial call after a cooldown" if breaker.would_admit() else breaker.state.value


Contender = tuple[Callable[[str], Awaitable[bytes]], Callable[[], str]]


def naive(provider: OutageProvider, clock: FakeClock, rng: random.Random) -> Contender:
    return NaiveClient(provider, rng.random).synthesize, lambda: "no breaker"


def seed(config: CircuitBreakerConfig) -> Callable[..., Contender]:
    def build(provider: OutageProvider, clock: FakeClock, rng: random.Random) -> Contender:
        breaker = CircuitBreaker("seed", config, clock, wall_clock=clock.wall, jitter=rng.random)
        client = NaiveClient(provider, rng.random)
        return (lambda text: breaker.call(client.synthesize, text)), lambda: _label(breaker)

    return build


def ours(provider: OutageProvider, clock: FakeClock, rng: random.Random) -> Contender:
    return _ours(provider, clock, rng, canaries=False)


def ours_canary(provider: OutageProvider, clock: FakeClock, rng: random.Random) -> Contender:
    return _ours(provider, clock, rng, canaries=True)


def _ours(
    provider: OutageProvider,
    clock: FakeClock,
    rng: random.Random,
    *,
    canaries: bool,
) -> Contender:
    service = service_from_config(
        CONFIG,
        provider,
        validate=None,
        clock=clock,
        wall_clock=clock.wall,
        sleep=asyncio.sleep,  # on this loop, sleeping advances the FakeClock
        jitter=rng.random,
        canary=dataclasses.replace(CONFIG.canary, enabled=canaries),
    )
    return service.synthesize, lambda: _label(service.service_breaker)


async def deliver(message: Message, contender: Contender, clock: FakeClock) -> None:
    """Ask for speech; the provider notes the first audio, an error is noted here."""
    speak, state = contender
    _current.set(message)
    message.state_at_arrival = state()
    try:
        await speak(f"Nachricht aus Gilde {message.guild}")
    except (TTSError, CircuitOpenError):
        message.answered_at = clock()


def simulate(build: Callable[..., Contender], args: argparse.Namespace) -> dict[str, Any]:
    """Run one contender through the whole schedule on its own simulated loop."""
    clock = FakeClock(start=0.0)
    outage_end = args.outage_minutes * 60.0
    provider = OutageProvider(clock, ErrorKind(args.kind), outage_end)
    contender = build(provider, clock, random.Random(args.seed))
    messages = [
        Message(guild, start + guild * args.interval / args.guilds)
        for start in range(0, int(args.total_minutes * 60), args.interval)
        for guild in range(args.guilds)
    ]

    async def run() -> None:
        tasks = []
        for message in messages:
            await asyncio.sleep(message.arrival - clock())
            tasks.append(asyncio.create_task(deliver(message, contender, clock)))
        await asyncio.gather(*tasks)

    run_simulated(clock, run())

    during = [m for m in messages if m.arrival < outage_end]
    after = [m for m in messages if m.arrival >= outage_end]
    waits = [m.answered_at - m.arrival for m in during if m.answered_at is not None]
    assert len(waits) == len(during), "every message must be answered"
    spoken_at = [m.answered_at for m in messages if m.spoken and m.answered_at is not None]
    recovered = [t - outage_end for t in spoken_at if t >= outage_end]
    return {
        "attempts": provider.attempts_in_outage,
        "fast": sum(
            m.attempts == 0 and w <= ANSWER_LIMIT for m, w in zip(during, waits, strict=True)
        ),
        "during": len(during),
        "longest": max(waits),
        "first": min(recovered) if recovered else None,
        "spoken_after": sum(m.spoken for m in after),
        "after": len(after),
        "networked": Counter(m.state_at_arrival for m in during if m.attempts),
        "tripped": sum(m.state_at_arrival != "while CLOSED" for m in during),
        "tripped_fast": sum(
            m.state_at_arrival != "while CLOSED" and m.attempts == 0 and w <= ANSWER_LIMIT
            for m, w in zip(during, waits, strict=True)
        ),
    }


def describe(args: argparse.Namespace) -> list[str]:
    """The header: the scenario, then exactly what each row is."""
    cost, what = FAILURE_COST[ErrorKind(args.kind)]
    retry, brk, voices = CONFIG.retry, CONFIG.breaker, CONFIG.speech.voice_chain
    return [
        f"Simulated time: a FakeClock drives the event loop, nothing waits. {args.guilds} guilds, "
        f"one message each every {args.interval} s, staggered; each message is its own task.",
        f"Edge fails from t=0 to t={args.outage_minutes * 60:g} s with `{args.kind}` ({what}: "
        f"{cost:g} s per attempt), then speaks (first audio after {FIRST_CHUNK_AFTER} s); "
        f"the run ends at t={args.total_minutes * 60:g} s.",
        f"Voice chain {' -> '.join(voices)}; backoff {retry.backoff_base}*2^(n-1) s capped at "
        f"{retry.backoff_max} s, x [0.5, 1) jitter from random.Random({args.seed}).",
        f"(a) naive: {retry.attempts} attempts x {len(voices)} voices per message with that "
        "backoff, whatever the error; no breaker, no total deadline.",
        "(b) seed 1: our CircuitBreaker configured as the first seed (5 consecutive failures, "
        "fixed 300 s cooldown, 1 success closes) around the naive loop, one call per message.",
        "(c) seed 2: our CircuitBreaker configured as the second seed (50 % of the last 10, "
        "at least 10 calls, fixed 60 s cooldown, 3 successes close) around the naive loop.",
        f"(d) ours: TTSService with core.config.Config() defaults: breaker "
        f"{brk.consecutive_failures} consecutive or {brk.failure_threshold:.0%} of the "
        + (
            f"last {brk.window_size} calls"
            if brk.window_type == "count"
            else f"calls of the last {brk.window_duration:g} s"
        )
        + f", cooldown {brk.cooldown_period:g} s x{brk.cooldown_multiplier:g} up "
        f"to {brk.max_cooldown_period:g} s, {brk.success_threshold} trial successes close; "
        f"{retry.attempts} attempts per voice, total deadline {CONFIG.deadlines.total:g} s; "
        "canaries off: trial calls are user messages.",
        f"(e) ours, canaries: the same with canaries on (the product default): after a "
        f"cooldown the service sends '{CONFIG.canary.text}' itself (counted as downstream "
        "attempts) and listeners are never the trial call.",
        f"'answered at once' = settled within {ANSWER_LIMIT * 1000:.0f} ms of simulated time "
        "without any network attempt (OPEN rejects at once).",
    ]


@dataclass
class RestartResult:
    """Downstream attempts during an outage in which the bot keeps restarting."""

    listener_attempts: int = 0
    canaries: int = 0
    restored: Counter[str] = field(default_factory=Counter)

    @property
    def attempts(self) -> int:
        """Every call that reached the downstream."""
        return self.listener_attempts + self.canaries


def restart_loop(persist: bool, args: argparse.Namespace) -> RestartResult:
    """A whole outage, the bot restarting every ``--restart-every`` s with fresh breakers
    (restored from a ``BreakerStateStore`` when ``persist``). Messages in flight at a
    restart are cancelled, as a killed process drops them."""
    clock = FakeClock(start=0.0)
    outage = args.outage_minutes * 60.0
    edge = EdgeDouble(clock, 0.0, outage, CONFIG.canary.text)
    pending = schedule(args, outage)
    result = RestartResult()

    async def one_run(directory: str, until: float) -> None:
        service = service_from_config(
            CONFIG, edge, clock=clock, wall_clock=clock.wall, jitter=random.Random(args.seed).random
        )
        store = None
        if persist:
            store = BreakerStateStore.in_data_dir(directory, wall_clock=clock.wall)
            result.restored[
                store.attach_service(service.breakers)[service.service_breaker.name]
            ] += 1

        async def deliver(text: str) -> None:
            try:
                await service.synthesize(text)
            except (TTSError, CircuitOpenError):
                pass

        tasks = []
        while pending and pending[0].arrival < until:
            message = pending.pop(0)
            await asyncio.sleep(message.arrival - clock())
            tasks.append(asyncio.create_task(deliver(message.text)))
        await asyncio.sleep(until - clock())
        for task in tasks:
            await cancel_and_wait(task)
        await service.close()
        if store is not None:
            store.close()

    async def run(directory: str) -> None:
        started = 0.0
        while started < outage:
            stop = min(started + args.restart_every, outage)
            await one_run(directory, stop)
            started = stop

    with tempfile.TemporaryDirectory(prefix="breaker-state-") as directory:
        run_simulated(clock, run(directory))
    result.listener_attempts = len(edge.listener_calls_in_outage)
    result.canaries = edge.canaries_in_outage
    return result


def report_restarts(args: argparse.Namespace) -> bool:
    """Print the restart loop with and without saved state; True if saving helps."""
    print(
        f"\n## Restarts during the outage\n\nEdge answers 503 for {args.outage_minutes:g} min "
        f"({outage_features.FAILURE_COST} s per attempt); the bot restarts every "
        f"{args.restart_every:g} s: a fresh service_from_config(Config()) each time ("
        "canaries, breaker defaults), messages in flight dropped. Same message schedule as the "
        "voice share below. The store's wall clock is the FakeClock."
    )
    plain, saved = restart_loop(False, args), restart_loop(True, args)
    print(
        "\n| restart loop | downstream attempts during outage | listener attempts | canaries "
        "| service breaker restored as |\n|---|---:|---:|---:|---|"
    )
    rows = {
        "(i) no persisted state": plain,
        "(ii) BreakerStateStore in a temp dir": saved,
    }
    for name, r in rows.items():
        restored = ", ".join(f"{n} x {outcome}" for outcome, n in r.restored.most_common())
        print(
            f"| {name} | {r.attempts} | {r.listener_attempts} | {r.canaries} "
            f"| {restored or 'nothing (every start CLOSED)'} |"
        )
    ratio = saved.attempts / plain.attempts if plain.attempts else 0.0
    ok = saved.attempts < plain.attempts
    print(
        f"\ntarget: persisted state makes fewer downstream attempts than none: "
        f"{saved.attempts} vs {plain.attempts} ({ratio:.1%}): {'met' if ok else 'MISSED'}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=[k.value for k in FAILURE_COST], default="unavailable")
    parser.add_argument("--guilds", type=int, default=10)
    parser.add_argument("--interval", type=int, default=10, help="seconds between messages")
    parser.add_argument("--outage-minutes", type=float, default=30.0)
    parser.add_argument("--total-minutes", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--restart-every", type=float, default=30.0, help="seconds")
    parser.add_argument("--window-days", type=int, default=20, help="bursty-traffic days")
    parser.add_argument("--no-voice-share", action="store_true", help="skip the slow part")
    outage_features.add_arguments(parser)
    args = parser.parse_args()
    print("\n".join(describe(args)))
    rows = {"(a) naive": naive, "(b) seed 1": seed(SEED_1), "(c) seed 2": seed(SEED_2)}
    rows |= {"(d) ours": ours, "(e) ours, canaries": ours_canary}
    results = {name: simulate(build, args) for name, build in rows.items()}
    print(
        "\n| contender | downstream attempts during outage | answered at once during outage "
        "| longest wait during outage (s) | first speech after recovery (s) "
        "| spoken after recovery |\n|---|---:|---:|---:|---:|---:|"
    )
    for name, r in results.items():
        first = "never" if r["first"] is None else f"{r['first']:.2f}"
        print(
            f"| {name} | {r['attempts']} | {r['fast']} / {r['during']} | {r['longest']:.1f} "
            f"| {first} | {r['spoken_after']} / {r['after']} |"
        )
    print()
    for name, r in results.items():
        parts = ", ".join(f"{n} {state}" for state, n in r["networked"].most_common())
        print(f"{name}: outage messages that went to the network: {parts or 'none'}")

    naive_attempts = results["(a) naive"]["attempts"]
    checks = []
    for row in ("(d) ours", "(e) ours, canaries"):
        mine = results[row]
        share = mine["attempts"] / naive_attempts if naive_attempts else 0.0
        checks += [
            (f"{row} <= 1 % of naive attempts: {mine['attempts']} / {naive_attempts} = "
             f"{share:.2%}", share <= 0.01),
            *(
                (f"{row} <= {name} attempts: {mine['attempts']} vs {results[name]['attempts']}",
                 mine["attempts"] <= results[name]["attempts"])
                for name in ("(b) seed 1", "(c) seed 2")
            ),
        ]  # fmt: skip
    # Messages that arrive before the breaker has seen enough failures to open must go to
    # the network (nothing can know yet); once it is not CLOSED, a listener should never
    # wait on Edge again. Canaries make that hold; without them the next message after
    # each cooldown is the trial call, so that row only prints its figure.
    canary = results["(e) ours, canaries"]
    checks.append(
        (
            f"(e) ours, canaries answers at once every outage message that arrives once the "
            f"breaker is no longer CLOSED: {canary['tripped_fast']} / {canary['tripped']}",
            canary["tripped_fast"] == canary["tripped"] > 0,
        )
    )
    traffic = results["(d) ours"]
    print(
        f"(context) (d) ours answers at once {traffic['tripped_fast']} / {traffic['tripped']} "
        "outage messages arriving once its breaker is no longer CLOSED (the rest were "
        "trial calls)"
    )
    print()
    for text, ok in checks:
        print(f"target: {text}: {'met' if ok else 'MISSED'}")
    met = all(ok for _, ok in checks)
    met = report_restarts(args) and met
    met = outage_windows.report(args.window_days, args.seed) and met
    if not args.no_voice_share:
        met = outage_features.report(args) and met
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())

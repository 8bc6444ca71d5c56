"""A simulated Edge outage: what each client design asks of the service, and of users.

Run ``.venv/bin/python bench/outage.py [--kind unavailable]`` from the repo root.
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
import contextlib
import random
import selectors
import sys
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.breaker import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError  # noqa: E402
from core.breaker.state import CircuitState  # noqa: E402
from core.clock import FakeClock  # noqa: E402
from core.config import Config  # noqa: E402
from core.tts.errors import ErrorKind, TTSError  # noqa: E402
from core.tts.policy import Backoff  # noqa: E402
from core.tts.provider import EDGE_MP3, SynthesisRequest, VoiceSettings  # noqa: E402
from core.tts.service import TTSService  # noqa: E402

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
SEED_A = CircuitBreakerConfig(
    consecutive_failures=5,
    failure_threshold=None,
    cooldown_period=300,
    max_cooldown_period=300,
    success_threshold=1,
)
SEED_B = CircuitBreakerConfig(
    failure_threshold=0.5,
    window_size=10,
    minimum_calls=10,
    consecutive_failures=None,
    cooldown_period=60,
    max_cooldown_period=60,
    success_threshold=3,
)


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Polls without blocking; when nothing is ready, jumps the clock to the next timer."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[Any]:
        ready: list[Any] = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("simulation stalled: no task is ready and no timer is set")
        self._clock.advance(timeout)
        return []


class SimulatedLoop(asyncio.SelectorEventLoop):
    """An event loop whose time is ``clock.now``."""

    def __init__(self, clock: FakeClock) -> None:
        self._fake_clock = clock
        super().__init__(_JumpingSelector(clock))

    def time(self) -> float:
        return self._fake_clock.now


@dataclass
class Message:
    """One request for speech and what became of it."""

    guild: int
    arrival: float
    attempts: int = 0
    state_at_arrival: str = ""
    answered_at: float | None = None
    """When the first audio chunk came, or the error."""
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
        """Fail like Edge in an outage, or yield two chunks of audio."""
        _current.get().attempts += 1
        voice = request.settings.voice
        if self._clock() < self.outage_end:
            self.attempts_in_outage += 1
            await asyncio.sleep(FAILURE_COST[self.kind][0])
            status = STATUS.get(self.kind)
            raise TTSError(self.kind, "simulated outage", voice=voice, status=status)
        await asyncio.sleep(FIRST_CHUNK_AFTER)
        yield b"\xff\xf3\x64\xc4" + bytes(140)
        await asyncio.sleep(REST_OF_AUDIO_AFTER)
        yield b"\xff\xf3\x64\xc4" + bytes(140)


class NaiveClient:
    """Every voice of the chain, ``attempts`` tries each with backoff, whatever the error."""

    def __init__(self, provider: OutageProvider, jitter: Callable[[], float]) -> None:
        self.provider = provider
        self.jitter = jitter
        self.backoff = Backoff(CONFIG.retry.backoff_base, CONFIG.retry.backoff_max)

    async def stream(self, text: str) -> AsyncGenerator[bytes, None]:
        """Yield the audio of the first attempt that works; raise the last error."""
        last: TTSError | None = None
        for voice in CONFIG.speech.voice_chain:
            request = SynthesisRequest(text, VoiceSettings(voice))
            for number in range(1, CONFIG.retry.attempts + 1):
                try:
                    async with contextlib.aclosing(self.provider.stream(request)) as chunks:
                        async for chunk in chunks:
                            yield chunk
                    return
                except TTSError as error:
                    last = error
                    if number < CONFIG.retry.attempts:
                        await asyncio.sleep(self.backoff.delay(number, self.jitter()))
        assert last is not None
        raise last


async def _guarded(breaker: CircuitBreaker, client: NaiveClient, text: str) -> Any:
    """The naive loop as one call under ``breaker`` (CircuitOpenError at once while OPEN)."""
    permit = breaker.acquire()
    try:
        async with contextlib.aclosing(client.stream(text)) as chunks:
            async for chunk in chunks:
                yield chunk
    except TTSError as error:
        breaker.record_failure(permit, str(error))
        raise
    except BaseException:
        breaker.release(permit)
        raise
    breaker.record_success(permit)


def _label(breaker: CircuitBreaker) -> str:
    if breaker.state is CircuitState.CLOSED:
        return "while CLOSED"
    return "as trial call after a cooldown" if breaker.would_admit() else breaker.state.value


Contender = tuple[Callable[[str], AsyncGenerator[bytes, None]], Callable[[], str]]


def naive(provider: OutageProvider, clock: FakeClock, rng: random.Random) -> Contender:
    return NaiveClient(provider, rng.random).stream, lambda: "no breaker"


def seed(config: CircuitBreakerConfig) -> Callable[..., Contender]:
    def build(provider: OutageProvider, clock: FakeClock, rng: random.Random) -> Contender:
        breaker = CircuitBreaker("seed", config, clock, wall_clock=clock.wall, jitter=rng.random)
        client = NaiveClient(provider, rng.random)
        return (lambda text: _guarded(breaker, client, text)), lambda: _label(breaker)

    return build


def ours(provider: OutageProvider, clock: FakeClock, rng: random.Random) -> Contender:
    speech = CONFIG.speech
    service = TTSService(
        provider,
        voices=speech.voice_chain,
        prosody=VoiceSettings(speech.voice, speech.rate, speech.volume, speech.pitch),
        breaker_config=CONFIG.breaker,
        attempts=CONFIG.retry.attempts,
        backoff=Backoff(CONFIG.retry.backoff_base, CONFIG.retry.backoff_max),
        total_deadline=CONFIG.deadlines.total,
        max_chars=CONFIG.text.max_chars,
        clock=clock,
        wall_clock=clock.wall,
        sleep=asyncio.sleep,  # on this loop, sleeping advances the FakeClock
        jitter=rng.random,
    )
    return service.stream, lambda: _label(service.service_breaker)


async def deliver(message: Message, contender: Contender, clock: FakeClock) -> None:
    """Ask for speech and note when it was answered, with audio or an error."""
    stream, state = contender
    _current.set(message)
    message.state_at_arrival = state()
    try:
        async with contextlib.aclosing(stream(f"Nachricht aus Gilde {message.guild}")) as chunks:
            async for _ in chunks:
                if message.answered_at is None:
                    message.answered_at = clock()
                    message.spoken = True
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

    loop = SimulatedLoop(clock)
    try:
        loop.run_until_complete(run())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()

    during = [m for m in messages if m.arrival < outage_end]
    after = [m for m in messages if m.arrival >= outage_end]
    waits = [m.answered_at - m.arrival for m in during if m.answered_at is not None]
    assert len(waits) == len(during), "every message must be answered"
    spoken_at = [m.answered_at for m in messages if m.spoken and m.answered_at is not None]
    recovered = [t - outage_end for t in spoken_at if t >= outage_end]
    return {
        "attempts": provider.attempts_in_outage,
        "fast": sum(m.attempts == 0 and w <= ANSWER_LIMIT for m, w in zip(during, waits)),
        "during": len(during),
        "longest": max(waits),
        "first": min(recovered) if recovered else None,
        "spoken_after": sum(m.spoken for m in after),
        "after": len(after),
        "networked": Counter(m.state_at_arrival for m in during if m.attempts),
    }


ROWS = {
    "(a) naive": naive,
    "(b) seed 1": seed(SEED_A),
    "(c) seed 2": seed(SEED_B),
    "(d) ours": ours,
}


def main() -> int:
    kinds = [k.value for k in FAILURE_COST]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=kinds, default=ErrorKind.UNAVAILABLE.value)
    parser.add_argument("--guilds", type=int, default=10)
    parser.add_argument("--interval", type=int, default=10, help="seconds between a guild's messages")
    parser.add_argument("--outage-minutes", type=float, default=30.0)
    parser.add_argument("--total-minutes", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    cost, what = FAILURE_COST[ErrorKind(args.kind)]
    chain = " -> ".join(CONFIG.speech.voice_chain)
    print(
        f"Simulated time (FakeClock drives the event loop; no real waiting). {args.guilds} guilds, "
        f"one message each every {args.interval} s, staggered by {args.interval / args.guilds:g} s.\n"
        f"Edge fails from t=0 to t={args.outage_minutes * 60:g} s with `{args.kind}` "
        f"({what}: {cost:g} s per attempt), then answers (first audio after "
        f"{FIRST_CHUNK_AFTER} s); run ends at t={args.total_minutes * 60:g} s.\n"
        f"Every message is its own task (no per-guild queue). Voice chain: {chain}. "
        f"Backoff {CONFIG.retry.backoff_base}*2^(n-1) s capped at {CONFIG.retry.backoff_max} s, "
        f"x [0.5, 1) jitter from random.Random({args.seed}).\n"
        f"(a) naive: {CONFIG.retry.attempts} attempts x {len(CONFIG.speech.voice_chain)} voices "
        f"per message with that backoff, whatever the error; no breaker, no total deadline.\n"
        "(b) seed 1: our CircuitBreaker with the first seed's config (5 consecutive failures, "
        "fixed 300 s cooldown, 1 success closes) around the naive loop, one breaker call per "
        "message.\n"
        "(c) seed 2: our CircuitBreaker with the second seed's config (50 % of the last 10, "
        "minimum 10 calls, fixed 60 s cooldown, 3 successes close) around the naive loop, "
        "one call per message.\n"
        "(d) ours: TTSService with core.config.Config() defaults (breaker "
        f"{CONFIG.breaker.consecutive_failures} consecutive or "
        f"{CONFIG.breaker.failure_threshold:.0%} of {CONFIG.breaker.window_size}, cooldown "
        f"{CONFIG.breaker.cooldown_period:g} s x{CONFIG.breaker.cooldown_multiplier:g} up to "
        f"{CONFIG.breaker.max_cooldown_period:g} s, {CONFIG.breaker.success_threshold} trial "
        f"successes close; {CONFIG.retry.attempts} attempts per voice; total deadline "
        f"{CONFIG.deadlines.total:g} s; service + per-voice breakers; trial calls are user "
        "messages).\n"
        f"'answered at once' = settled within {ANSWER_LIMIT * 1000:.0f} ms of simulated time "
        "with no network attempt."
    )
    results = {name: simulate(build, args) for name, build in ROWS.items()}
    print()
    print(
        "| contender | downstream attempts during outage | answered at once during outage "
        "| longest wait during outage (s) | first speech after recovery (s) "
        "| spoken after recovery |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        first = "never" if r["first"] is None else f"{r['first']:.1f}"
        print(
            f"| {name} | {r['attempts']} | {r['fast']} / {r['during']} | {r['longest']:.1f} "
            f"| {first} | {r['spoken_after']} / {r['after']} |"
        )
    print()
    for name, r in results.items():
        parts = ", ".join(f"{n} {state}" for state, n in r["networked"].most_common())
        print(f"{name}: messages during the outage that went to the network: {parts or 'none'}")

    print()
    mine, naive_attempts = results["(d) ours"], results["(a) naive"]["attempts"]
    share = mine["attempts"] / naive_attempts if naive_attempts else 0.0
    verdicts = [share <= 0.01]
    print(
        f"target: ours <= 1 % of naive attempts: {mine['attempts']} / {naive_attempts} = "
        f"{share:.2%}: {'met' if verdicts[-1] else 'MISSED'}"
    )
    for name in ("(b) seed 1", "(c) seed 2"):
        verdicts.append(mine["attempts"] <= results[name]["attempts"])
        print(
            f"target: ours <= {name} attempts: {mine['attempts']} vs {results[name]['attempts']}: "
            f"{'met' if verdicts[-1] else 'MISSED'}"
        )
    verdicts.append(mine["fast"] == mine["during"])
    print(
        f"target: ours answers every outage message at once: {mine['fast']} / {mine['during']}: "
        f"{'met' if verdicts[-1] else 'MISSED'}"
    )
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Four processes x 25 guilds through a 30-minute Edge outage: shared breakers or not.

Run ``.venv/bin/python bench/shards.py`` from the repo root. Each "process" is a full
``TTSService`` (the default config's breaker, retries and canaries) in front of its own
simulated Edge, which fails every request with a 503 during the outage. With
``--mode shared`` semantics the four services share their breakers through a
:class:`~edge_voice.core.shared_state.MemoryHub` (the Redis store's semantics in one
process, 2 ms per round trip) with the real :class:`SharedBreakers` coordinator; the
independent run is the same fleet without it. Simulated time (``bench/_common.py``):
the loop's clock jumps to its next timer, so 35 minutes take a few seconds.

Printed side by side: downstream attempts during the outage (listener messages and
canaries), the time from the first trip until every process rejects, and the time
until every process speaks again after the outage. Targets (exit 1 when missed):
shared makes no more attempts than one independent process's worth (the independent
total / 4), and every process rejects within 1 s of the first trip.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import run_simulated  # noqa: E402
from edge_voice.core.breaker import CircuitState, TransitionEvent  # noqa: E402
from edge_voice.core.clock import FakeClock  # noqa: E402
from edge_voice.core.config import Config  # noqa: E402
from edge_voice.core.shared_state import MemoryHub, SharedBreakers  # noqa: E402
from edge_voice.core.tts.breakers import ServiceBreakers  # noqa: E402
from edge_voice.core.tts.errors import ErrorKind, TTSError  # noqa: E402
from edge_voice.core.tts.policy import Backoff, RetryPolicy  # noqa: E402
from edge_voice.core.tts.provider import EDGE_MP3, SynthesisRequest  # noqa: E402
from edge_voice.core.tts.service import TTSService  # noqa: E402

CONFIG = Config()
VOICE = "de-DE-KillianNeural"
CANARY = CONFIG.canary.text
WARM_UP, OUTAGE, AFTER = 120.0, 1800.0, 600.0
FAILURE_COST, FIRST_AUDIO = 0.2, 0.25
"""A 503 handshake takes 0.2 s; a healthy answer's audio comes after 0.25 s."""
STORE_LATENCY = 0.002
"""Simulated seconds per shared-store round trip (a parameter, not a measurement)."""
REJECT_TARGET = 1.0


class SimulatedEdge:
    """One process's Edge: 503 during ``[down_from, down_until)``; counts what reached it."""

    name = "edge"
    audio_format = EDGE_MP3

    def __init__(self, clock: FakeClock, down_from: float, down_until: float) -> None:
        self._clock = clock
        self.down_from, self.down_until = down_from, down_until
        self.listener_attempts = 0
        self.canary_attempts = 0

    async def stream(self, request: SynthesisRequest) -> AsyncGenerator[bytes, None]:
        """Fail like Edge in an outage, or yield one chunk."""
        if self.down_from <= self._clock() < self.down_until:
            if request.text == CANARY:
                self.canary_attempts += 1
            else:
                self.listener_attempts += 1
            await asyncio.sleep(FAILURE_COST)
            raise TTSError(ErrorKind.UNAVAILABLE, "simulated outage", status=503)
        await asyncio.sleep(FIRST_AUDIO)
        yield b"\xff\xf3" + bytes(200)


@dataclass
class Process:
    """One process of the fleet and what it saw."""

    edge: SimulatedEdge
    service: TTSService
    left_closed_at: float | None = None
    closed_again_at: float | None = None
    spoken: int = 0
    not_spoken: int = 0

    def on_transition(self, event: TransitionEvent, clock: FakeClock) -> None:
        """Note when the service breaker first left CLOSED in the outage, and when it
        closed again after it."""
        if event.breaker != self.service.service_breaker.name:
            return
        outage_running = self.edge.down_from <= clock() < self.edge.down_until
        if event.old is CircuitState.CLOSED and outage_running and self.left_closed_at is None:
            self.left_closed_at = clock()
        if event.new is CircuitState.CLOSED and clock() >= self.edge.down_until:
            self.closed_again_at = self.closed_again_at or clock()


@dataclass
class Result:
    """One fleet's run."""

    processes: list[Process] = field(default_factory=list)

    @property
    def attempts(self) -> int:
        """Downstream attempts during the outage, listener messages and canaries."""
        return sum(p.edge.listener_attempts + p.edge.canary_attempts for p in self.processes)

    @property
    def listener_attempts(self) -> int:
        """Downstream attempts for listener messages during the outage."""
        return sum(p.edge.listener_attempts for p in self.processes)

    @property
    def canary_attempts(self) -> int:
        """Canaries sent during the outage."""
        return sum(p.edge.canary_attempts for p in self.processes)

    @property
    def reject_spread(self) -> float:
        """Seconds from the first process leaving CLOSED to the last (inf: one never did)."""
        times = [p.left_closed_at for p in self.processes]
        if any(t is None for t in times):
            return float("inf")
        known = [t for t in times if t is not None]
        return max(known) - min(known)

    def recovered_after(self, outage_end: float) -> float:
        """Seconds from the outage's end until every process was CLOSED again."""
        times = [p.closed_again_at for p in self.processes]
        if any(t is None for t in times):
            return float("inf")
        return max(t for t in times if t is not None) - outage_end


def make_service(edge: SimulatedEdge, clock: FakeClock, rng: random.Random) -> TTSService:
    """One process's service with the default config, on the simulated clock."""
    retry = CONFIG.retry
    return TTSService(
        edge,
        voices=[VOICE],
        breakers=ServiceBreakers(
            edge.name, CONFIG.breaker, clock=clock, wall_clock=clock.wall, jitter=rng.random
        ),
        retry=RetryPolicy(
            retry.attempts,
            Backoff(retry.backoff_base, retry.backoff_max),
            CONFIG.deadlines.total,
            rng.random,
        ),
        canary=CONFIG.canary,
    )


async def guild_traffic(
    process: Process, rng: random.Random, interval: float, until: float, clock: FakeClock
) -> None:
    """One guild: a message every ``interval`` seconds on average (Poisson), until ``until``."""
    number = 0
    while True:
        await asyncio.sleep(rng.expovariate(1 / interval))
        if clock() >= until:
            return
        number += 1
        try:
            await process.service.synthesize(f"Nachricht {number} von {id(rng)}.")
        except Exception:  # rejected or failed: the player posts it as text
            process.not_spoken += 1
        else:
            process.spoken += 1


async def run_fleet(
    clock: FakeClock,
    *,
    shared: bool,
    processes: int,
    guilds: int,
    interval: float,
    seed: int,
    latency: float = STORE_LATENCY,
    fleet_runs: bool = True,
) -> Result:
    """The whole fleet through warm-up, outage and recovery; independent unless ``shared``."""
    start = clock()
    down_from, down_until = start + WARM_UP, start + WARM_UP + OUTAGE
    end = down_until + AFTER
    hub = MemoryHub(clock, latency=latency)
    result = Result()
    coordinators: list[SharedBreakers] = []
    for index in range(processes):
        rng = random.Random(seed * 100 + index)
        edge = SimulatedEdge(clock, down_from, down_until)
        process = Process(edge, make_service(edge, clock, rng))
        process.service.breakers.add_listener(lambda e, p=process: p.on_transition(e, clock))
        if shared:
            coordinator = SharedBreakers(hub.member(), wall_clock=clock.wall)
            coordinator.attach_service(process.service)
            if not fleet_runs:
                process.service.outcomes = None  # each process counts its failures alone
            await coordinator.start()
            coordinators.append(coordinator)
        result.processes.append(process)
    traffic = [
        asyncio.create_task(
            guild_traffic(p, random.Random(seed * 1000 + i * 100 + g), interval, end, clock)
        )
        for i, p in enumerate(result.processes)
        for g in range(guilds)
    ]
    await asyncio.gather(*traffic)
    for p in result.processes:
        await p.service.close()
    for coordinator in coordinators:
        await coordinator.close()
    return result


def main(argv: list[str] | None = None) -> int:
    """Both fleets side by side; 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--guilds", type=int, default=25, help="per process")
    parser.add_argument(
        "--interval", type=float, default=20.0, help="mean seconds between one guild's messages"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--store-latency",
        type=float,
        default=STORE_LATENCY,
        help="seconds per shared-store round trip",
    )
    parser.add_argument(
        "--no-fleet-runs",
        action="store_true",
        help="share trips but count failures per process (the targets' foil)",
    )
    args = parser.parse_args(argv)
    results = {}
    for shared in (False, True):
        clock = FakeClock(start=0.0)
        results[shared] = run_simulated(
            clock,
            run_fleet(
                clock,
                shared=shared,
                processes=args.processes,
                guilds=args.guilds,
                interval=args.interval,
                seed=args.seed,
                latency=args.store_latency,
                fleet_runs=not args.no_fleet_runs,
            ),
        )
    alone, fleet = results[False], results[True]
    outage_end = WARM_UP + OUTAGE
    one_process = alone.attempts / args.processes
    print(
        f"{args.processes} processes x {args.guilds} guilds, a message per guild every "
        f"{args.interval:.0f} s on average, a {OUTAGE / 60:.0f}-minute outage (503s), "
        f"simulated time; shared store round trip {args.store_latency * 1000:.0f} ms"
        + ("; failures counted per process" if args.no_fleet_runs else "")
    )
    rows = [
        ("downstream attempts in the outage", alone.attempts, fleet.attempts, "{}"),
        ("  of them listener messages", alone.listener_attempts, fleet.listener_attempts, "{}"),
        ("  of them canaries", alone.canary_attempts, fleet.canary_attempts, "{}"),
        ("first trip -> every process rejects (s)", alone.reject_spread, fleet.reject_spread,
         "{:.3f}"),
        ("outage end -> every process speaks (s)", alone.recovered_after(outage_end),
         fleet.recovered_after(outage_end), "{:.1f}"),
        ("messages spoken", sum(p.spoken for p in alone.processes),
         sum(p.spoken for p in fleet.processes), "{}"),
    ]  # fmt: skip
    print(f"{'':42} {'independent':>12} {'shared':>12}")
    for label, a, b, form in rows:
        print(f"{label:42} {form.format(a):>12} {form.format(b):>12}")
    per_process = "  ".join(
        str(p.edge.listener_attempts + p.edge.canary_attempts) for p in alone.processes
    )
    print(f"independent attempts per process: {per_process}")
    targets = [
        (
            f"shared attempts <= one independent process's worth ({one_process:.1f})",
            f"{fleet.attempts}",
            fleet.attempts <= one_process,
        ),
        (
            f"every process rejects within {REJECT_TARGET:.0f} s of the first trip",
            f"{fleet.reject_spread:.3f} s",
            fleet.reject_spread <= REJECT_TARGET,
        ),
    ]
    missed = [what for what, _, met in targets if not met]
    for what, figure, met in targets:
        print(f"target: {what}: {figure} {'met' if met else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

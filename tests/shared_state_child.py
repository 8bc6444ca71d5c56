"""Another process of the fleet, for the shared-state tests.

    python -m tests.shared_state_child REDIS_URL BREAKER_NAME

Shares one breaker through Redis, prints ``ready``, then calls a healthy downstream
through it every 2 ms until the breaker rejects a call (a trip somewhere else), and
prints ``rejected WALL_TIME DOWNSTREAM_CALLS``; ``timeout`` after 20 s.
"""

from __future__ import annotations

import asyncio
import sys
import time

from edge_voice.core.breaker import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError
from edge_voice.core.shared_state import SharedBreakers
from edge_voice.core.shared_state.redis_backend import RedisBackend

GIVE_UP_AFTER = 20.0


def say(line: str) -> None:
    """One line to the test, at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(url: str, name: str) -> int:
    breaker = CircuitBreaker(name, CircuitBreakerConfig(consecutive_failures=3))
    shared = SharedBreakers(RedisBackend(url))
    shared.attach([breaker])
    await shared.start()
    calls = 0

    async def downstream() -> None:
        nonlocal calls
        calls += 1

    say("ready")
    try:
        deadline = time.monotonic() + GIVE_UP_AFTER
        while time.monotonic() < deadline:
            try:
                await breaker.call(downstream)
            except CircuitOpenError:
                say(f"rejected {time.time():.6f} {calls}")
                return 0
            await asyncio.sleep(0.002)
        say("timeout")
        return 1
    finally:
        await shared.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))

"""Shared by the breaker store tests: a breaker and store per simulated process.

A "restart" is a new FakeClock whose monotonic reading starts over while its
wall clock carries on, a new CircuitBreaker and a new store on the same file:
only what the file holds survives, as in a real restart.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edge_voice.core.breaker import CircuitBreaker, CircuitBreakerConfig, CircuitState
from edge_voice.core.breaker.store import BreakerStateStore, RestoreOutcome
from edge_voice.core.clock import FakeClock

CONFIG = CircuitBreakerConfig(
    consecutive_failures=2,
    cooldown_period=60,
    max_cooldown_period=600,
    success_threshold=1,
    cooldown_jitter=0.0,
)


class Downstream:
    """Counts every call that reached it."""

    def __init__(self) -> None:
        self.calls = 0

    async def ok(self) -> str:
        self.calls += 1
        return "ok"

    async def fail(self) -> str:
        self.calls += 1
        raise ConnectionError("down")


def new_breaker(
    clock: FakeClock, name: str = "edge", config: CircuitBreakerConfig = CONFIG
) -> CircuitBreaker:
    """A breaker on ``clock`` (monotonic and wall), with :data:`CONFIG` unless told."""
    return CircuitBreaker(name, config, clock, wall_clock=clock.wall)


def rebooted(clock: FakeClock, after: float) -> FakeClock:
    """A clock for the next process: monotonic starts over, wall time moved on by ``after``."""
    return FakeClock(start=5.0, epoch=clock.wall() + after - 5.0)


def start(
    path: Path, clock: FakeClock, config: CircuitBreakerConfig = CONFIG
) -> tuple[CircuitBreaker, BreakerStateStore, RestoreOutcome]:
    """One process's breaker and store, attached; returns (breaker, store, outcome)."""
    breaker = new_breaker(clock, config=config)
    store = BreakerStateStore(path, wall_clock=clock.wall)
    outcome = store.attach([breaker])[breaker.name]
    return breaker, store, outcome


async def trip(breaker: CircuitBreaker, down: Downstream) -> None:
    """Fail calls through ``breaker`` until it opens."""
    for _ in range(CONFIG.consecutive_failures or 1):
        with pytest.raises(ConnectionError):
            await breaker.call(down.fail)
    assert breaker.state is CircuitState.OPEN


def store_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The store's warnings (and worse) captured so far."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "edge_voice.core.breaker.store" and r.levelno >= logging.WARNING
    ]

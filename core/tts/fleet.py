"""What a fleet sharing its breakers plugs into the service (``[state] backend = "redis"``).

Alone, a process needs neither hook: the breaker's own ``half_open_max_calls`` limits
its trials, its own window decides when it trips. A fleet whose processes share their
breakers (:class:`edge_voice.core.shared_state.SharedBreakers`) sets both:

* the **trial gate**, asked before every trial call and canary: fleet-wide leases, so the
  limit holds across every process;
* the **outcome observer**, told of every failed attempt and every successful request:
  failures in a row are counted across the fleet, so the fleet trips after about as
  many failures as one process would, not after that many in every process.

Both are synchronous or lease-only on the CLOSED path: neither makes a call wait.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from edge_voice.core.breaker import CircuitBreaker

TrialGate = Callable[[CircuitBreaker], AbstractAsyncContextManager[bool]]
"""``async with gate(breaker) as granted``: run the trial only if ``granted``."""


@contextlib.asynccontextmanager
async def local_trial_gate(breaker: CircuitBreaker) -> AsyncIterator[bool]:
    """Always yes: the breaker's own permits are the limit."""
    yield True


class OutcomeObserver(Protocol):
    """Told of outcomes as the service sees them; must not block or raise."""

    def attempt_failed(self, breaker: CircuitBreaker, share: float) -> None:
        """One attempt of a request ``breaker`` guards failed in a way ``breaker`` would
        count; ``share`` is its part of a failed request (1 / attempts per request)."""
        ...

    def succeeded(self, breaker: CircuitBreaker) -> None:
        """A request ``breaker`` guarded succeeded."""
        ...

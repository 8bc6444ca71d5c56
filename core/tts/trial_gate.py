"""Who may run a trial call: one process alone, or a whole fleet sharing its breakers.

A trial call (HALF_OPEN) or a canary asks the gate first. Alone, the breaker's own
``half_open_max_calls`` is the whole story and the gate always says yes. A fleet whose
processes share their breakers (``[state] backend = "redis"``) hands out fleet-wide
leases instead, so the limit holds across every process (see
:meth:`edge_voice.core.shared_state.coordinator.SharedBreakers.trial`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from edge_voice.core.breaker import CircuitBreaker

TrialGate = Callable[[CircuitBreaker], AbstractAsyncContextManager[bool]]
"""``async with gate(breaker) as granted``: run the trial only if ``granted``."""


@contextlib.asynccontextmanager
async def local_trial_gate(breaker: CircuitBreaker) -> AsyncIterator[bool]:
    """Always yes: the breaker's own permits are the limit."""
    yield True

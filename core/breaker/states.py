"""A circuit's states, and the error a rejected call raises.

Three states are the breaker's own (CLOSED, OPEN, HALF_OPEN); three are
operator modes, as in Resilience4j, left only by ``reset()`` or another mode:
FORCED_OPEN rejects every call (no cooldown, no trial calls), DISABLED admits
every call and records nothing, METRICS_ONLY admits every call, records it, and
never trips.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, cast


class CircuitState(StrEnum):
    """The states of a circuit breaker."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"
    FORCED_OPEN = "FORCED_OPEN"
    DISABLED = "DISABLED"
    METRICS_ONLY = "METRICS_ONLY"

    @property
    def admits_all(self) -> bool:
        """Every call is admitted and none is a trial (CLOSED, DISABLED, METRICS_ONLY)."""
        return self in _ADMITS_ALL

    @property
    def recovering(self) -> bool:
        """Waiting for trial calls to show a recovery (OPEN, HALF_OPEN)."""
        return self in _RECOVERING

    @property
    def is_mode(self) -> bool:
        """Set by an operator, left only by ``reset()`` or another mode."""
        return self in _MODES


_ADMITS_ALL = frozenset({CircuitState.CLOSED, CircuitState.DISABLED, CircuitState.METRICS_ONLY})
_RECOVERING = frozenset({CircuitState.OPEN, CircuitState.HALF_OPEN})
_MODES = frozenset({CircuitState.FORCED_OPEN, CircuitState.DISABLED, CircuitState.METRICS_ONLY})


class CircuitOpenError(Exception):
    """Raised instead of calling the downstream while the circuit rejects calls.

    ``retry_after`` is the number of seconds until a trial call may be admitted
    (0 while HALF_OPEN with every trial permit taken; while FORCED_OPEN, whose end
    nobody knows, the base cooldown, as a polling interval).
    """

    # No Python-level __init__: BaseException keeps the arguments in C, which makes
    # a rejection (the hot path during an outage) about as cheap as a bare raise.
    if TYPE_CHECKING:

        def __init__(self, name: str, state: CircuitState, retry_after: float) -> None: ...

    @property
    def name(self) -> str:
        """The rejecting circuit's name."""
        return cast(str, self.args[0])

    @property
    def state(self) -> CircuitState:
        """The circuit's state when it rejected the call."""
        return cast(CircuitState, self.args[1])

    @property
    def retry_after(self) -> float:
        """Seconds until a trial call may be admitted."""
        return cast(float, self.args[2])

    def __str__(self) -> str:
        return f"circuit {self.name!r} is {self.state.value}; retry after {self.retry_after:.1f}s"

"""Circuit breaker: a pure state machine and its asyncio wrapper."""

from edge_voice.core.breaker.breaker import CircuitBreaker, counts_as_failure, describe_failure
from edge_voice.core.breaker.events import Listener, TransitionEvent
from edge_voice.core.breaker.state import (
    BreakerStateMachine,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    Permit,
    Transition,
)

TTSCircuitOpenError = CircuitOpenError
"""The name the seed code used for the same error."""

__all__ = [
    "BreakerStateMachine",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitOpenError",
    "CircuitState",
    "Listener",
    "Permit",
    "TTSCircuitOpenError",
    "Transition",
    "TransitionEvent",
    "counts_as_failure",
    "describe_failure",
]

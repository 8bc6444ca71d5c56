"""Circuit breaker: a pure state machine and its asyncio wrapper."""

from edge_voice.core.breaker.breaker import CircuitBreaker, counts_as_failure, describe_failure
from edge_voice.core.breaker.config import CircuitBreakerConfig
from edge_voice.core.breaker.events import Listener, TransitionEvent
from edge_voice.core.breaker.record import DurableState, TripCause, TripFigures
from edge_voice.core.breaker.snapshot import BreakerSnapshot
from edge_voice.core.breaker.state import BreakerStateMachine, Permit, Transition
from edge_voice.core.breaker.states import CircuitOpenError, CircuitState

TTSCircuitOpenError = CircuitOpenError
"""The name the seed code used for the same error."""

__all__ = [
    "BreakerSnapshot",
    "BreakerStateMachine",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitOpenError",
    "CircuitState",
    "DurableState",
    "Listener",
    "Permit",
    "TTSCircuitOpenError",
    "Transition",
    "TransitionEvent",
    "TripCause",
    "TripFigures",
    "counts_as_failure",
    "describe_failure",
]

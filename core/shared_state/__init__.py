"""Breaker state shared by every process of a bot (``[state] backend = "redis"``).

Never imports discord. :class:`SharedBreakers` keeps local breakers in step through a
:class:`SharedBackend`: :class:`RedisBackend` (``redis_backend``, the only importer of
the Redis client) or, in one process, a :class:`MemoryHub`.
"""

from edge_voice.core.shared_state.backend import MemoryBackend, MemoryHub, SharedBackend
from edge_voice.core.shared_state.coordinator import SharedBreakers
from edge_voice.core.shared_state.errors import SharedStateError, SharedStateErrorKind
from edge_voice.core.shared_state.names import InvalidBreakerName, KeySpace, check_name

__all__ = [
    "InvalidBreakerName",
    "KeySpace",
    "MemoryBackend",
    "MemoryHub",
    "SharedBackend",
    "SharedBreakers",
    "SharedStateError",
    "SharedStateErrorKind",
    "check_name",
]

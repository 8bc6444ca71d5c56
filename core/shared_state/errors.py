"""What can go wrong with the shared store, in our words.

The Redis client's exceptions are translated into :class:`SharedStateError` in one
place (:func:`edge_voice.core.shared_state.redis_backend.translated`); everything else
sees only these kinds. Every kind means the same to the coordinator: the shared store
cannot be trusted right now, so each process falls back to its own breakers.
"""

from __future__ import annotations

from enum import StrEnum


class SharedStateErrorKind(StrEnum):
    """Why the shared store did not answer."""

    UNREACHABLE = "unreachable"
    """Connection refused, reset or closed: no Redis there (or it went away)."""
    TIMEOUT = "timeout"
    """No answer within the deadline: a paused, overloaded or partitioned Redis."""
    REFUSED = "refused"
    """Redis answered with an error: authentication, read-only replica, script error."""
    PROTOCOL = "protocol"
    """An answer we could not read (a record written by something else)."""


class SharedStateError(Exception):
    """The shared store failed; ``kind`` says how."""

    def __init__(self, kind: SharedStateErrorKind, detail: str) -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.detail}"

"""What a failed attempt means: retry it, blame the voice, or blame the service.

Pure decisions on :class:`~core.tts.errors.ErrorKind`, kept apart from the
service so they can be read (and tested) as a table.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from edge_voice.core.tts.errors import NOT_RETRIED, ErrorKind

VOICE_SCOPED: frozenset[ErrorKind] = frozenset({ErrorKind.NO_AUDIO, ErrorKind.PROTOCOL})
"""Failures another voice may not have: Microsoft blocks single voices, and a
voice that keeps answering with no audio or broken frames is the voice's problem.
They count on that voice's breaker, and the request moves on to the next voice."""


def is_voice_scoped(kind: ErrorKind) -> bool:
    """Whether a failure of this kind is charged to the voice rather than the service."""
    return kind in VOICE_SCOPED


def is_retryable(kind: ErrorKind) -> bool:
    """Whether the same voice may be tried again after a failure of this kind."""
    return kind not in NOT_RETRIED


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: ``base * 2**(n-1)``, capped, then scaled
    by a factor in [0.5, 1) so that callers failing together do not retry together."""

    base: float = 0.5
    cap: float = 4.0

    def delay(self, failed_attempts: int, jitter: float) -> float:
        """Seconds to wait after ``failed_attempts`` failures; ``jitter`` is in [0, 1)."""
        exponential: float = min(self.cap, self.base * 2.0 ** max(0, failed_attempts - 1))
        return exponential * (0.5 + jitter / 2)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard one request tries: ``attempts`` per voice, ``backoff`` between them
    (scaled by ``jitter()``, in [0, 1)), everything within ``total_deadline`` seconds."""

    attempts: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    total_deadline: float = 45.0
    jitter: Callable[[], float] = field(default=random.random, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.total_deadline <= 0:
            raise ValueError("attempts and total_deadline must be positive")

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait after ``failed_attempts`` failures of one voice."""
        return self.backoff.delay(failed_attempts, self.jitter())

"""What one synthesis request came to: its attempts, its failure, its report.

Record types that :class:`core.tts.service.TTSService` fills in and its callers read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge_voice.core.tts.errors import ErrorKind, TTSError
from edge_voice.core.tts.provider import SynthesisRequest


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one voice within a request, for logs and diagnosis."""

    voice: str
    number: int
    kind: ErrorKind | None
    """None when the voice was skipped because its breaker was open."""
    detail: str


class SynthesisFailed(TTSError):
    """Every voice of the chain failed for one request; ``attempts`` says how."""

    def __init__(self, last: TTSError, attempts: Sequence[Attempt]) -> None:
        tried = ", ".join(f"{a.voice}#{a.number} {a.kind or 'skipped'}" for a in attempts)
        super().__init__(
            last.kind, f"{last.message} (tried: {tried})", voice=last.voice, status=last.status
        )
        self.last = last
        self.attempts = tuple(attempts)


@dataclass(slots=True)
class SynthesisReport:
    """Filled in by :meth:`TTSService.stream` for a caller that wants to know more."""

    request: SynthesisRequest | None = None
    """The request that was finally spoken: cleaned text, and the voice that spoke it."""

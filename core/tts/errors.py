"""The project's own error kinds for synthesis.

Every exception a provider's library can raise is translated into a
:class:`TTSError` with an :class:`ErrorKind` in exactly one place per provider
(for Edge: :mod:`core.tts.edge`). Kinds drive retry decisions, breaker counting
and the diagnosis, so nothing downstream inspects third-party exceptions.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """Why a synthesis failed."""

    NETWORK = "network"
    """DNS failure, connection refused or reset: the service was not reached."""
    TIMEOUT = "timeout"
    """A connect, read or total deadline ran out."""
    REJECTED = "rejected"
    """HTTP 401/403 on the handshake: stale client version or skewed clock."""
    RATE_LIMITED = "rate_limited"
    """HTTP 429."""
    UNAVAILABLE = "unavailable"
    """HTTP 5xx."""
    NO_AUDIO = "no_audio"
    """The turn ended without audio (service wave, or a voice Microsoft blocked)."""
    PROTOCOL = "protocol"
    """A frame the client could not understand, or a stream cut before its end."""
    INPUT = "input"
    """Text or voice settings that no service could speak: the caller's problem."""


NOT_RETRIED: frozenset[ErrorKind] = frozenset(
    {ErrorKind.INPUT, ErrorKind.REJECTED, ErrorKind.RATE_LIMITED}
)
"""Retrying these cannot help: bad input stays bad, a 403 after edge-tts's own
clock-skew retry means a stale client, and hammering a 429 prolongs it."""


class TTSError(Exception):
    """A classified synthesis failure.

    ``voice`` names the voice the failing attempt used, when there was one;
    ``status`` is the HTTP status of a failed handshake.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        voice: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.voice = voice
        self.status = status

    @property
    def retryable(self) -> bool:
        """Whether the same voice may be tried again: not for a kind in
        :data:`NOT_RETRIED` (input, a refused client, a rate limit), the table
        :func:`core.tts.policy.is_retryable` reads too."""
        return self.kind not in NOT_RETRIED

    def __str__(self) -> str:
        where = f" [{self.voice}]" if self.voice else ""
        return f"{self.kind.value}{where}: {self.message}"


class InvalidText(TTSError):
    """Text nothing can speak: empty, punctuation or emoji only, or too long."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.INPUT, message)


class InvalidVoiceSettings(TTSError):
    """An unknown voice or a malformed rate, volume or pitch string."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.INPUT, message)

"""Breaker names as Redis keys: only names the bot itself makes, checked before use.

A breaker's name becomes part of a key and a pub/sub payload. The names come from the
provider and the configured or catalogued voices (``edge``, ``edge:de-DE-KillianNeural``),
never from what someone typed; this check makes sure of it, so a name with spaces, glob
characters, braces (Redis Cluster hash tags) or a thousand characters never reaches Redis.
"""

from __future__ import annotations

import re

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}")
"""Letters, digits and ``_ . : + -``; at most 128 characters; no leading punctuation."""

DEFAULT_PREFIX = "edge_voice"


class InvalidBreakerName(ValueError):
    """A name that must not become a key."""


def check_name(name: str) -> str:
    """``name`` if it may become part of a key; raises :class:`InvalidBreakerName`."""
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise InvalidBreakerName(
            f"breaker name {name!r:.80} cannot be shared: use letters, digits and _ . : + - "
            "(at most 128 characters)"
        )
    return name


class KeySpace:
    """Where one bot's shared state lives in Redis: ``PREFIX:breaker:NAME`` (a hash),
    ``PREFIX:lease:NAME`` (a sorted set of trial leases), ``PREFIX:failures:NAME`` (each
    process's current run of failures), ``PREFIX:transitions`` (the pub/sub channel).
    Several bots may share a Redis with different prefixes."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = check_name(prefix)
        self.channel = f"{self.prefix}:transitions"

    def record(self, name: str) -> str:
        """The hash holding ``name``'s durable state."""
        return f"{self.prefix}:breaker:{check_name(name)}"

    def lease(self, name: str) -> str:
        """The sorted set of ``name``'s trial leases (member: token, score: expiry in ms)."""
        return f"{self.prefix}:lease:{check_name(name)}"

    def failures(self, name: str) -> str:
        """The hash of each process's current run of ``name``'s failures."""
        return f"{self.prefix}:failures:{check_name(name)}"

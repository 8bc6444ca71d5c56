"""The speakability guard and message cleanup, where the service and older callers find them.

The text code lives in :mod:`edge_voice.core.text`: the guard in
:mod:`~edge_voice.core.text.speakable`, the cleanup in :mod:`~edge_voice.core.text.cleanup`,
a whole message (prefix, length budget, attachments) in :mod:`~edge_voice.core.text.policy`.
This module keeps the names the service and earlier callers import.
"""

from __future__ import annotations

from edge_voice.core.text.cleanup import Lookups, NameResolver, clean_message
from edge_voice.core.text.policy import cut_at_word
from edge_voice.core.text.speakable import CheckedText, check_speakable, normalize_text
from edge_voice.core.text.words import ENGLISH, SpokenWords

__all__ = [
    "ENGLISH",
    "CheckedText",
    "NameResolver",
    "SpokenWords",
    "check_speakable",
    "clean_discord_message",
    "normalize_text",
]


def _resolve_nothing(_id: int) -> str | None:
    return None


def clean_discord_message(
    content: str,
    *,
    max_chars: int,
    resolve_user: NameResolver = _resolve_nothing,
    resolve_role: NameResolver = _resolve_nothing,
    resolve_channel: NameResolver = _resolve_nothing,
    words: SpokenWords = ENGLISH,
) -> str:
    """:func:`~edge_voice.core.text.cleanup.clean_message`, then cut to ``max_chars`` at a
    word boundary. For a whole message with its author, use
    :func:`~edge_voice.core.text.policy.speech_for`."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    lookups = Lookups(resolve_user, resolve_role, resolve_channel)
    return cut_at_word(clean_message(content, lookups=lookups, words=words), max_chars)

"""What ``/tts set`` and ``/myvoice`` ask for, as changes for the settings repository.

A slash command option cannot be "empty", so a few values stand for "not set" or for
"nothing": ``voice: auto`` unsets a voice (the server's, the guild's language or the
config decides again), ``required_role: @everyone`` reads everyone, ``skip_prefix:
none`` reads every message. Everything else is handed to
:class:`~edge_voice.core.storage.settings.SettingsRepository` as given, which validates
it (nearest voices included) before anything is written. Pure, no Discord.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from edge_voice.core.storage.settings import GUILD_KEYS, SettingsChange
from edge_voice.core.voices.locales import AUTO

UNSET_VOICE: Final = AUTO
"""``voice: auto`` forgets a chosen voice."""
UNSET_VOICE_WORDS: Final = frozenset({AUTO, "default"})
READ_EVERY_MESSAGE: Final = "none"
"""``skip_prefix: none``: no prefix, every message is read (the stored value is "")."""


def guild_changes(options: Mapping[str, object | None], everyone_role_id: int) -> dict[str, object]:
    """The ``/tts set`` options that were given (not None), as repository changes.

    ``everyone_role_id`` is the guild's @everyone role (its id is the guild's): as the
    required role it means nobody is left out, so the setting is unset.
    """
    changes: dict[str, object] = {}
    for key, value in options.items():
        if value is None:
            continue
        if key not in GUILD_KEYS:
            raise ValueError(f"not a server setting: {key}")
        unset_voice = key == "voice" and isinstance(value, str) and _is_unset_word(value)
        if unset_voice or (key == "required_role" and value == everyone_role_id):
            changes[key] = None
        elif (
            key == "skip_prefix"
            and isinstance(value, str)
            and value.strip().lower() == READ_EVERY_MESSAGE
        ):
            changes[key] = ""
        else:
            changes[key] = value
    return changes


def member_changes(voice: str | None, name: str | None) -> dict[str, object]:
    """The ``/myvoice`` options that were given, as repository changes."""
    changes: dict[str, object] = {}
    if voice is not None:
        changes["voice"] = None if _is_unset_word(voice) else voice
    if name is not None:
        changes["name"] = name
    return changes


def unchanged_keys(change: SettingsChange, asked: Iterable[str]) -> tuple[str, ...]:
    """The keys (of ``asked``: a mapping's or a sequence's) that already had that value."""
    return tuple(key for key in asked if key not in change.changed)


def _is_unset_word(value: str) -> bool:
    return value.strip().lower() in UNSET_VOICE_WORDS

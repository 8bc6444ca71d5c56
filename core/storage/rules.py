"""What a server or a person may store as a setting: one validator per value.

Every validator returns the value in the form it is stored and used (a voice spelled as
Edge spells it, ``"+10%"`` for ``10%``) or raises :class:`SettingError` with the key,
what was expected and what was given, plus the nearest voices for an unknown one. The
slash commands show that message as it is.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Final

from edge_voice.core.tts import prosody
from edge_voice.core.voices.catalogue import VoiceCatalogue

MIN_MAX_CHARS: Final = 10
"""A server may lower ``max_chars`` to this, and raise it up to ``[text] max_chars``."""
MAX_SKIP_PREFIX: Final = 5
MAX_SPOKEN_NAME: Final = 32
"""Discord's own limit for a nickname."""
MAX_SNOWFLAKE: Final = 2**63 - 1
"""Discord ids fit SQLite's signed 64-bit INTEGER."""


class SettingError(ValueError):
    """A setting value that cannot be stored; ``suggestions`` are the nearest voices."""

    def __init__(
        self, key: str, expected: str, got: object, suggestions: Sequence[str] = ()
    ) -> None:
        message = f"{key}: expected {expected}, got {got!r}"
        if suggestions:
            message += "; did you mean " + ", ".join(suggestions) + "?"
        super().__init__(message)
        self.key = key
        self.expected = expected
        self.got = got
        self.suggestions = tuple(suggestions)


def voice(value: object, catalogue: VoiceCatalogue, key: str = "voice") -> str:
    """A voice of ``catalogue`` (any letter case), spelled as Edge spells it."""
    if not isinstance(value, str) or not value.strip():
        raise SettingError(key, "a voice name such as 'de-DE-KillianNeural'", value)
    canonical = catalogue.canonical(value)
    if canonical is None:
        raise SettingError(key, "a voice from Edge's voice list", value, catalogue.nearest(value))
    return canonical


def rate(value: object) -> str:
    """A speaking rate in the documented range, as edge-tts wants it (``"+10%"``)."""
    try:
        return prosody.normalize(prosody.RATE, value)
    except prosody.ProsodyError:
        raise SettingError("rate", prosody.RATE.expected, value) from None


def flag(key: str, value: object) -> bool:
    """True or false (never 0/1 or "yes": a slash command gives a real boolean)."""
    if not isinstance(value, bool):
        raise SettingError(key, "true or false", value)
    return value


def max_chars(value: object, ceiling: int) -> int:
    """A message length limit from :data:`MIN_MAX_CHARS` to the operator's ``ceiling``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not (MIN_MAX_CHARS <= value <= max(ceiling, MIN_MAX_CHARS))
    ):
        raise SettingError("max_chars", f"a whole number from {MIN_MAX_CHARS} to {ceiling}", value)
    return value


def snowflake(key: str, value: object) -> int:
    """A Discord id (role, channel)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_SNOWFLAKE:
        raise SettingError(key, "a Discord id", value)
    return value


def skip_prefix(value: object) -> str:
    """At most :data:`MAX_SKIP_PREFIX` visible characters; "" reads every message."""
    if (
        not isinstance(value, str)
        or len(value) > MAX_SKIP_PREFIX
        or any(char.isspace() or _invisible(char) for char in value)
    ):
        raise SettingError(
            "skip_prefix",
            f'up to {MAX_SKIP_PREFIX} characters without spaces ("" reads every message)',
            value,
        )
    return value


def spoken_name(value: object) -> str:
    """The name spoken in "NAME said": 1 to :data:`MAX_SPOKEN_NAME` characters with a
    letter or digit, spaces collapsed."""
    text = " ".join(value.split()) if isinstance(value, str) else None
    if (
        text is None
        or not 0 < len(text) <= MAX_SPOKEN_NAME
        or any(_invisible(char) for char in text)
        or not any(char.isalnum() for char in text)
    ):
        raise SettingError(
            "name", f"1 to {MAX_SPOKEN_NAME} characters with a letter or digit", value
        )
    return text


def _invisible(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn")

"""Whether a voice can speak a text: invisible characters, normalization, the guard.

:func:`check_speakable` is the synthesis service's guard on raw text from any caller.
:class:`CheckedText` is text that already passed it: the text policy checks a message
once and hands the result on, and :meth:`TTSService.prepare` takes it without checking
it again.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Self

from edge_voice.core.tts.errors import InvalidText

__all__ = [
    "EMOJI_COMPONENTS",
    "CheckedText",
    "check_speakable",
    "has_speakable_char",
    "normalize_text",
    "strip_invisible",
    "unspeakable_reason",
]

# Characters that render as nothing (or as blank space) but are not whitespace:
# Hangul fillers and the Braille blank are what people use for "invisible" names
# and messages; selectors, skin tones and the keycap mark only modify an emoji.
_BLANK_LOOKALIKES = frozenset({0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800, 0x034F, 0x20E3})
_EMOJI_MODIFIERS = range(0x1F3FB, 0x1F400)
_VARIATION_SELECTORS = (range(0xFE00, 0xFE10), range(0xE0100, 0xE01F0), range(0x180B, 0x1810))
# Control, format (zero-width, bidi marks), surrogate, private-use, unassigned.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})

EMOJI_COMPONENTS = frozenset(
    {"\u200d", "\ufe0e", "\ufe0f", "\u20e3"}
    | {chr(code) for code in _EMOJI_MODIFIERS}
    | {chr(code) for code in range(0xE0020, 0xE0080)}
)
"""Invisible on their own, but part of an emoji: the joiner, presentation selectors, the
keycap mark, skin tones and the tag characters of subdivision flags."""


@lru_cache(maxsize=8192)
def _is_invisible(char: str) -> bool:
    if char.isspace():
        return False
    code = ord(char)
    if code in _BLANK_LOOKALIKES or code in _EMOJI_MODIFIERS:
        return True
    if any(code in selectors for selectors in _VARIATION_SELECTORS):
        return True
    return unicodedata.category(char) in _INVISIBLE_CATEGORIES


def strip_invisible(text: str, *, keep: frozenset[str] = frozenset()) -> str:
    """Remove control and invisible characters (except those in ``keep``), then compose (NFC).

    Linear: each distinct character is classified once, the text is rewritten by
    ``str.translate``.
    """
    if text.isascii() and text.isprintable():
        return text
    invisible = {ord(char): None for char in set(text) if char not in keep and _is_invisible(char)}
    # Removal comes before NFC so that marks separated from their base by a
    # zero-width character still compose with it.
    visible = text.translate(invisible) if invisible else text
    return visible if visible.isascii() else unicodedata.normalize("NFC", visible)


def normalize_text(text: str) -> str:
    """Remove control and invisible characters, compose (NFC), collapse whitespace.

    Nothing is escaped or un-escaped: ``&amp;`` and ``<speak>`` stay as written.
    """
    return " ".join(strip_invisible(text).split())


def has_speakable_char(text: str) -> bool:
    """Whether ``text`` has a letter or digit in any script (Unicode categories L* and N*)."""
    # str.isalnum is exactly L* and N* (every code point is compared in
    # tests/test_text_speakable.py), and runs in C.
    return any(map(str.isalnum, text))


def _describe_unspeakable(text: str) -> str:
    kinds = {unicodedata.category(char)[0] for char in text if not char.isspace()}
    if kinds == {"P"}:
        return "only punctuation"
    if kinds == {"S"}:
        return "only emoji or symbols"
    if kinds == {"M"}:
        return "only combining marks"
    return "only punctuation, symbols or marks"


def unspeakable_reason(normalized: str) -> str | None:
    """Why ``normalized`` (the output of :func:`normalize_text`) has nothing to speak, or
    ``None`` when it has a letter or digit. Length is not judged here."""
    if not normalized:
        return "text is only whitespace or invisible characters"
    if not has_speakable_char(normalized):
        return f"text has no letter or digit to speak: {_describe_unspeakable(normalized)}"
    return None


def check_speakable(text: str, *, max_chars: int) -> str:
    """Return ``text`` normalized (see :func:`normalize_text`) if a voice can speak it.

    Speakable means at least one letter or digit in any script (Unicode
    categories L* and N*). Raises :class:`InvalidText` for empty text,
    whitespace or invisible characters only, no letter or digit, or a
    normalized length over ``max_chars``; it never cuts.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    if not text:
        raise InvalidText("text is empty")
    normalized = normalize_text(text)
    if normalized and len(normalized) > max_chars:
        raise InvalidText(
            f"text is {len(normalized)} characters long, over the limit of {max_chars}"
        )
    reason = unspeakable_reason(normalized)
    if reason is not None:
        raise InvalidText(reason)
    return normalized


class CheckedText(str):
    """Text that passed :func:`check_speakable`: normalized, speakable, within a limit.

    Constructing one runs the check (``CheckedText(text, max_chars=300)`` raises
    :class:`InvalidText` like :func:`check_speakable`), so every instance has passed it
    and :meth:`TTSService.prepare` need not check it again. It is a ``str``, immutable,
    so it travels through ``Utterance.spoken_text`` and ``SynthesisRequest.text``
    unchanged; anything derived from it (slicing, concatenation, formatting) is a plain
    ``str`` again and gets checked.
    """

    __slots__ = ()

    def __new__(cls, text: str, *, max_chars: int) -> Self:
        return super().__new__(cls, check_speakable(text, max_chars=max_chars))

    def __getnewargs_ex__(self) -> tuple[tuple[str], dict[str, int]]:
        # Copies and pickles are checked again, against the length they already have.
        return (str(self),), {"max_chars": max(1, len(self))}

"""What to read aloud: Discord message cleanup and the speakability guard.

:func:`clean_discord_message` turns raw message content into plain words, the
way readers of TTS bots expect: mentions become names, links become "link",
emoji become their names, code and spoilers are not read, markdown disappears.
:func:`check_speakable` is the synthesis service's guard: it normalizes text
and rejects what no voice can speak.

Pure functions: no I/O, no Discord library. Guild lookups come in as plain
callables, so the cog decides how names are found.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from edge_voice.core.tts.errors import InvalidText

__all__ = [
    "ENGLISH",
    "NameResolver",
    "SpokenWords",
    "check_speakable",
    "clean_discord_message",
    "normalize_text",
]

NameResolver = Callable[[int], str | None]
"""Looks up the display name for a Discord id; ``None`` when it is unknown."""


@dataclass(frozen=True, slots=True)
class SpokenWords:
    """The words spoken in place of things that are not read literally.

    English by default; a guild with a German voice can pass German words.
    """

    someone: str = "someone"
    """An unknown user mention."""
    unknown_role: str = "a role"
    unknown_channel: str = "a channel"
    link: str = "link"
    code: str = "code"
    """Code blocks and inline code: their content is never read."""
    spoiler: str = "spoiler"
    """Spoilers: their content is never read."""
    everyone: str = "everyone"
    here: str = "here"
    flag: str = "flag"
    """Said before the two letters of a flag emoji."""


ENGLISH = SpokenWords()
"""The default words."""


def _resolve_nothing(_id: int) -> str | None:
    return None


# --- invisible characters -------------------------------------------------

# Characters that render as nothing (or as blank space) but are not whitespace:
# Hangul fillers and the Braille blank are what people use for "invisible" names
# and messages; selectors, skin tones and the keycap mark only modify an emoji.
_BLANK_LOOKALIKES = frozenset({0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800, 0x034F, 0x20E3})
_EMOJI_MODIFIERS = range(0x1F3FB, 0x1F400)
_VARIATION_SELECTORS = (range(0xFE00, 0xFE10), range(0xE0100, 0xE01F0), range(0x180B, 0x1810))
# Control, format (zero-width, bidi marks), surrogate, private-use, unassigned.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


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


def _strip_invisible(text: str) -> str:
    # Removal comes before NFC so that marks separated from their base by a
    # zero-width character still compose with it.
    if text.isascii() and text.isprintable():
        return text
    visible = "".join(char for char in text if not _is_invisible(char))
    return unicodedata.normalize("NFC", visible)


def _collapse_whitespace(text: str) -> str:
    return " ".join(text.split())


def normalize_text(text: str) -> str:
    """Remove control and invisible characters, compose (NFC), collapse whitespace.

    Nothing is escaped or un-escaped: ``&amp;`` and ``<speak>`` stay as written.
    """
    return _collapse_whitespace(_strip_invisible(text))


# --- the speakability guard -----------------------------------------------


def _is_speakable_char(char: str) -> bool:
    return unicodedata.category(char)[0] in "LN"


def _describe_unspeakable(text: str) -> str:
    kinds = {unicodedata.category(char)[0] for char in text if not char.isspace()}
    if kinds == {"P"}:
        return "only punctuation"
    if kinds == {"S"}:
        return "only emoji or symbols"
    if kinds == {"M"}:
        return "only combining marks"
    return "only punctuation, symbols or marks"


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
    if not normalized:
        raise InvalidText("text is only whitespace or invisible characters")
    if len(normalized) > max_chars:
        raise InvalidText(
            f"text is {len(normalized)} characters long, over the limit of {max_chars}"
        )
    if not any(_is_speakable_char(char) for char in normalized):
        raise InvalidText(
            f"text has no letter or digit to speak: {_describe_unspeakable(normalized)}"
        )
    return normalized


# --- Discord message cleanup ----------------------------------------------

_CODE_BLOCK = re.compile(r"```.*?```", re.DOTALL)
_INLINE_CODE = re.compile(r"``.+?``|`[^`]+`", re.DOTALL)
_SPOILER = re.compile(r"\|\|.+?\|\|", re.DOTALL)
# An escaped backtick or pipe can only have meant "show this literally", and
# neither is worth saying; a space keeps it from pairing with its neighbours.
_ESCAPED_FENCE = re.compile(r"(?<!\\)\\++[`|]")
_ESCAPE = re.compile(r"(?<!\\)\\++(?=[!-/:-@\[-`{-~])")

_MASKED_LINK = re.compile(r"\[([^\[\]\n]+)\]\(\s*<?https?://[^\s()<>]+>?\s*\)")
_URL = re.compile(r"<https?://[^\s<>]+>|https?://[^\s<>]+")
# Sentence punctuation and closing markup right after a URL belong to the text.
_URL_TRAILER = ".,:;!?'\")]}*_~|"

_ENTITY = re.compile(
    r"<@!?(?P<user>\d{1,20})>"
    r"|<@&(?P<role>\d{1,20})>"
    r"|<#(?P<channel>\d{1,20})>"
    r"|<a?:(?P<emoji>\w{1,64}):\d{1,20}>"
    r"|<t:(?P<time>-?\d{1,20})(?::(?P<style>[A-Za-z]))?>"
    r"|</(?P<command>[^\s:<>/][^:<>\n]{0,99}):\d{1,20}>"
    r"|<id:(?P<nav>\w{1,32})>"
)

_ENTITY_KINDS = ("user", "role", "channel", "emoji", "time", "command", "nav")

_LINE_MARKER = re.compile(r"^(?:[^\S\n]*(?:#{1,3}|-#|>(?:>>)?|[-*+])(?:[^\S\n]+|$))+", re.MULTILINE)
# A span never contains its own marker, so a marker without a partner costs a
# scan to the next marker, not to the end of the text (linear, not quadratic).
_EMPHASIS = (
    re.compile(r"\*\*(?=\S)((?:[^*]|\*(?!\*))+?)(?<=\S)\*\*"),
    re.compile(r"__(?=\S)((?:[^_]|_(?!_))+?)(?<=\S)__"),
    re.compile(r"~~(?=\S)((?:[^~]|~(?!~))+?)(?<=\S)~~"),
    re.compile(r"\*(?=[^\s*])([^*]+?)(?<=[^\s*])\*"),
    re.compile(r"(?<!\w)_(?=[^\s_])([^_]+?)(?<=[^\s_])_(?!\w)"),
)

# Four or more of a marker say nothing, and deep nesting would cost a pass per level.
_MARKER_RUN = re.compile(r"([*_~])\1{3,}")

_REGIONAL_A = 0x1F1E6
_EMOJI_RUN = re.compile(
    r"([\U0001F1E6-\U0001F1FF]{2}|[\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff\U0001F000-\U0001FAFF])"
    r"(?:\s*\1)*"
)

# Runs are matched from their first character only: quadratic rescans otherwise.
_MASS_MENTION = re.compile(r"(?<!@)@+(everyone|here)", re.IGNORECASE)
_MENTION_OPENER = re.compile(r"(?<!<)(<+)@+")


def _strip_code_and_spoilers(text: str, words: SpokenWords) -> str:
    text = _ESCAPED_FENCE.sub(" ", text)
    text = _CODE_BLOCK.sub(f" {words.code} ", text)
    text = _INLINE_CODE.sub(f" {words.code} ", text)
    text = _SPOILER.sub(f" {words.spoiler} ", text)
    text = _ESCAPE.sub("", text)
    # An unpaired backtick marks nothing and is not worth saying.
    return text.replace("`", " ")


def _replace_links(text: str, words: SpokenWords) -> str:
    text = _MASKED_LINK.sub(r"\1", text)

    def link(match: re.Match[str]) -> str:
        url = match.group()
        if url.startswith("<"):
            return words.link
        kept = url.rstrip(_URL_TRAILER)
        return words.link + url[len(kept) :]

    return _URL.sub(link, text)


def _spoken_timestamp(seconds: int, style: str | None) -> str:
    # Discord shows the reader's local time; a voice channel has many readers,
    # so say UTC, in ISO forms that voices read as dates in their own language.
    try:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    except OverflowError:
        return ""
    date = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
    if style in ("d", "D"):
        return date
    if style == "t":
        return f"{moment:%H:%M} UTC"
    if style == "T":
        return f"{moment:%H:%M:%S} UTC"
    return f"{date} {moment:%H:%M} UTC"


def _replace_entities(
    text: str,
    words: SpokenWords,
    resolve_user: NameResolver,
    resolve_role: NameResolver,
    resolve_channel: NameResolver,
) -> str:
    def entity(match: re.Match[str]) -> str:
        # lastgroup would name "style" for a styled timestamp: find the entity itself.
        kind = next(name for name in _ENTITY_KINDS if match.group(name) is not None)
        value = match.group(kind)
        if kind == "user":
            return _plain_name(resolve_user(int(value))) or words.someone
        if kind == "role":
            return _plain_name(resolve_role(int(value))) or words.unknown_role
        if kind == "channel":
            name = _plain_name(resolve_channel(int(value)))
            return name.replace("_", " ") if name else words.unknown_channel
        if kind == "time":
            return _spoken_timestamp(int(value), match.group("style"))
        # Custom emoji, slash commands and guild navigation: say their name.
        return value.replace("_", " ")

    return _ENTITY.sub(entity, text)


def _plain_name(name: str | None) -> str:
    return normalize_text(name) if name else ""


def _strip_markdown(text: str) -> str:
    # Each pass unwraps one level of nesting (***x*** is bold inside italic, and
    # _*_ leaves a lone bullet); every change shortens the text, so the loop ends.
    text = "\n".join(text.splitlines())  # \r, \u2028 and friends end lines too
    while True:
        unwrapped = _MARKER_RUN.sub("", _LINE_MARKER.sub("", text))
        for pattern in _EMPHASIS:
            unwrapped = pattern.sub(r"\1", unwrapped)
        if unwrapped == text:
            return text
        text = unwrapped


@lru_cache(maxsize=1024)
def _emoji_name(emoji: str, flag_word: str) -> str | None:
    if len(emoji) == 2:
        letters = " ".join(chr(ord("A") + ord(char) - _REGIONAL_A) for char in emoji)
        return f"{flag_word} {letters}"
    code = ord(emoji)
    if _REGIONAL_A <= code < _REGIONAL_A + 26:
        return chr(ord("A") + code - _REGIONAL_A)
    if unicodedata.category(emoji) != "So":
        return None
    name = unicodedata.name(emoji, "")
    return name.lower() or None


def _name_emoji(text: str, words: SpokenWords) -> str:
    def emoji(match: re.Match[str]) -> str:
        name = _emoji_name(match.group(1), words.flag)
        if not name:
            return match.group()
        # Spaced apart from words, but not from markdown, which is stripped after.
        before = " " if _needs_space(text, match.start() - 1) else ""
        after = " " if _needs_space(text, match.end()) else ""
        return f"{before}{name}{after}"

    return _EMOJI_RUN.sub(emoji, text)


def _needs_space(text: str, index: int) -> bool:
    return 0 <= index < len(text) and not text[index].isspace() and text[index] not in "*_~"


def _defuse_mentions(text: str, words: SpokenWords) -> str:
    # Whatever survived as "<@" or "@everyone" (a malformed mention, or one a
    # display name smuggled in) must not ping when the text is posted instead.
    text = _MENTION_OPENER.sub(r"\1 ", text)

    def mass(match: re.Match[str]) -> str:
        return words.everyone if match.group(1).lower() == "everyone" else words.here

    return _MASS_MENTION.sub(mass, text)


def _cut_at_word(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    space = text.rfind(" ", 0, max_chars + 1)
    if space > 0:
        return text[:space].rstrip()
    # One word longer than the limit: nothing better than a hard cut.
    return text[:max_chars]


def clean_discord_message(
    content: str,
    *,
    max_chars: int,
    resolve_user: NameResolver = _resolve_nothing,
    resolve_role: NameResolver = _resolve_nothing,
    resolve_channel: NameResolver = _resolve_nothing,
    words: SpokenWords = ENGLISH,
) -> str:
    """Turn raw Discord message content into the text to read aloud.

    - ``<@id>``/``<@!id>`` -> ``resolve_user(id)`` or "someone"; ``<@&id>`` -> the
      role name; ``<#id>`` -> the channel name; ``@everyone``/``@here`` -> "everyone"/"here".
    - URLs (bare or ``<...>``) -> "link"; masked links ``[text](url)`` -> their text.
    - Custom emoji ``<:name:id>`` -> "name" (underscores to spaces); Unicode emoji ->
      their lower-case Unicode name, a run of one emoji said once; flags -> "flag D E".
    - Code blocks and inline code -> "code", spoilers -> "spoiler": their content
      is never read, but listeners hear that something was there.
    - Markdown emphasis, headings, quotes and list bullets are removed; so are
      control and zero-width characters. ``<t:secs:style>`` -> the UTC date/time.
    - Whitespace is collapsed, and the result cut to ``max_chars`` at a word
      boundary with no marker (a hard cut when a single word is longer).

    The output never contains ``<@`` or ``@everyone``/``@here``. It may be empty;
    :func:`check_speakable` decides whether it is worth speaking. Cleaning the
    output again changes nothing (given names without markup). Resolvers'
    exceptions propagate; resolved names are read like the text around them
    (markdown stripped, emoji named) but never parsed for code, links or mentions.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    text = _strip_invisible(content)
    text = _strip_code_and_spoilers(text, words)
    text = _replace_links(text, words)
    text = _replace_entities(text, words, resolve_user, resolve_role, resolve_channel)
    text = _name_emoji(text, words)
    text = _strip_markdown(text)
    text = _defuse_mentions(text, words)
    return _cut_at_word(_collapse_whitespace(text), max_chars)

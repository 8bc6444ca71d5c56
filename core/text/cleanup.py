"""Discord message content -> plain words, the way readers of TTS bots expect.

Mentions become names, links become "link", emoji become their CLDR names, code and
spoilers are not read, markdown disappears, a character repeated on and on is said three
times. Every step is one regular-expression scan (or one pass over marker runs) with
bounded repetitions, so the whole cleanup is linear in the length of the message.

Pure: no I/O, no Discord library. Guild lookups come in as plain callables
(:class:`Lookups`), so the cog decides how names are found.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from edge_voice.core.text.emoji_names import drop_stray_components, name_emoji
from edge_voice.core.text.markdown import strip_markdown
from edge_voice.core.text.speakable import EMOJI_COMPONENTS, has_speakable_char, strip_invisible
from edge_voice.core.text.words import ENGLISH, SpokenWords

__all__ = [
    "NO_LOOKUPS",
    "Lookups",
    "NameResolver",
    "clean_message",
    "clean_name",
    "defuse_mentions",
]

NameResolver = Callable[[int], str | None]
"""Looks up the display name for a Discord id; ``None`` when it is unknown."""


def _resolve_nothing(_id: int) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class Lookups:
    """A guild's names for the ids in mentions; every one unknown by default."""

    user: NameResolver = _resolve_nothing
    role: NameResolver = _resolve_nothing
    channel: NameResolver = _resolve_nothing


NO_LOOKUPS = Lookups()

# --- characters and lines -------------------------------------------------


def _plain_lines(text: str) -> str:
    text = strip_invisible(text, keep=EMOJI_COMPONENTS)
    if not EMOJI_COMPONENTS.isdisjoint(text):
        text = drop_stray_components(text)
    # \r, \u2028 and friends end lines too; runs of blanks are one space from here on,
    # which keeps every later pattern free of ambiguous whitespace.
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


# --- code and spoilers ----------------------------------------------------

_CODE_BLOCK = re.compile(r"```.*?```", re.DOTALL)
_INLINE_CODE = re.compile(r"``.+?``|`[^`]+`", re.DOTALL)
_SPOILER = re.compile(r"\|\|.+?\|\|", re.DOTALL)
# An escaped backtick or pipe can only have meant "show this literally", and
# neither is worth saying; a space keeps it from pairing with its neighbours.
_ESCAPED_FENCE = re.compile(r"(?<!\\)\\++[`|]")
_ESCAPE = re.compile(r"(?<!\\)\\++(?=[!-/:-@\[-`{-~])")


def _strip_code_and_spoilers(text: str, words: SpokenWords) -> str:
    # Each pattern only runs when its marker is there at all: ``in`` is a memchr.
    if "\\" in text:
        text = _ESCAPED_FENCE.sub(" ", text)
    if "`" in text:
        text = _CODE_BLOCK.sub(f" {words.code} ", text)
        text = _INLINE_CODE.sub(f" {words.code} ", text)
        # An unpaired backtick marks nothing and is not worth saying.
        text = text.replace("`", " ")
    if "||" in text:
        text = _SPOILER.sub(f" {words.spoiler} ", text)
    if "\\" in text:
        text = _ESCAPE.sub("", text)
    return text


# --- links ----------------------------------------------------------------

# Phones capitalize the first letter of a message: "Https://..." is a link too.
_MASKED_LINK = re.compile(r"\[([^\[\]\n]{1,256})\]\( ?<?https?://[^\s()<>]+>? ?\)", re.IGNORECASE)
_URL = re.compile(r"<https?://[^\s<>]+>|https?://[^\s<>]+", re.IGNORECASE)
# Sentence punctuation and closing markup right after a URL belong to the text.
_URL_TRAILER = ".,:;!?'\")]}*_~|"


def _replace_links(text: str, words: SpokenWords) -> str:
    if "://" not in text:
        return text
    if "](" in text:
        text = _MASKED_LINK.sub(r"\1", text)

    def link(match: re.Match[str]) -> str:
        url = match.group()
        if url.startswith("<"):
            return words.link
        kept = url.rstrip(_URL_TRAILER)
        return words.link + url[len(kept) :]

    return _URL.sub(link, text)


# --- mentions, custom emoji, timestamps, commands -------------------------

_ENTITY = re.compile(
    r"<@!?(?P<user>\d{1,20})>"
    r"|<@&(?P<role>\d{1,20})>"
    r"|<#(?P<channel>\d{1,20})>"
    r"|<a?:(?P<emoji>\w{1,64}):\d{1,20}>"
    r"|<t:(?P<time>-?\d{1,20})(?::(?P<style>[A-Za-z]))?>"
    r"|</(?P<command>[^\s:<>/][^:<>\n]{0,99}):\d{1,20}>"
    r"|<id:(?P<nav>\w{1,32})>"
)


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


def _replace_entities(text: str, words: SpokenWords, lookups: Lookups) -> str:
    def entity(match: re.Match[str]) -> str:
        kind = "time" if match.lastgroup == "style" else str(match.lastgroup)
        value = match.group(kind)
        if kind == "user":
            return _resolved(lookups.user(int(value)), words) or words.someone
        if kind == "role":
            return _resolved(lookups.role(int(value)), words) or words.unknown_role
        if kind == "channel":
            return _resolved(lookups.channel(int(value)), words) or words.unknown_channel
        if kind == "time":
            return _spoken_timestamp(int(value), match.group("style")) or words.unknown_time
        # Custom emoji, slash commands and guild navigation: say their name.
        return value.replace("_", " ")

    return _ENTITY.sub(entity, text) if "<" in text else text


def _resolved(name: str | None, words: SpokenWords) -> str:
    # A name with nothing to say ("...", only invisible characters) is said as unknown:
    # a mention is never read as nothing.
    spoken = clean_name(name, words=words) if name else ""
    return spoken if has_speakable_char(spoken) else ""


# --- repeats and mentions -------------------------------------------------

# Digits are numbers ("1000000"), markers are markdown's: everything else said 3 times
# at most, which keeps "Schifffahrt" and "...".
_REPEAT = re.compile(r"(.)\1\1\1+")
_NOT_CAPPED = frozenset("0123456789 *_~")
_MASS_MENTION = re.compile(r"(?<!@)@+(everyone|here)", re.IGNORECASE)
_MENTION_SIGN = re.compile(r"(?<=<)[@#]+")


def _cap_repeats(text: str) -> str:
    # A class of what to skip would be tested at every character; runs are rare, so
    # the exceptions are decided per run.
    def cap(match: re.Match[str]) -> str:
        run = match.group()
        return run if run[0] in _NOT_CAPPED or run[0].isdigit() else run[:3]

    return _REPEAT.sub(cap, text)


def defuse_mentions(text: str, words: SpokenWords | None = None) -> str:
    """Make mentions inert: ``<@``, ``<@&``, ``<#`` lose their ``@``/``#``, and
    ``@everyone``/``@here`` become the words for them (without ``words``: the bare words).

    Whatever survived cleaning as ``<@`` (a malformed mention, or one a display name
    smuggled in) must neither ping nor show as a mention pill when it is posted as text.
    """
    if "<" in text:
        text = _MENTION_SIGN.sub(" ", text)
    if "@" not in text:
        return text
    if words is None:
        return _MASS_MENTION.sub(r"\1", text)

    def mass(match: re.Match[str]) -> str:
        return words.everyone if match.group(1).lower() == "everyone" else words.here

    return _MASS_MENTION.sub(mass, text)


# --- the pipelines ----------------------------------------------------------


def clean_message(
    content: str, *, lookups: Lookups = NO_LOOKUPS, words: SpokenWords = ENGLISH
) -> str:
    """Turn raw Discord message content into the words to read aloud (never cut).

    - ``<@id>``/``<@!id>`` -> the user's name (see :func:`clean_name`) or "someone";
      ``<@&id>`` -> the role; ``<#id>`` -> the channel; ``@everyone``/``@here`` -> words.
    - URLs, any case, bare or ``<...>`` -> "link"; masked links ``[text](url)`` -> text.
    - Custom emoji ``<:name:id>`` -> "name"; Unicode emoji -> their CLDR name in
      ``words.language`` (English where it has none), a run of one emoji said once.
    - Code blocks, inline code -> "code", spoilers -> "spoiler": their content is never
      read, but listeners hear that something was there.
    - Markdown emphasis, headings, quotes and bullets go; so do control and zero-width
      characters. ``<t:secs:style>`` -> the UTC date/time.
    - A character repeated four times or more is said three times (not digits).
    - Whitespace is collapsed.

    The output never contains ``<@``, ``<#`` or ``@everyone``/``@here``. It may be empty
    or unspeakable; the policy decides. Cleaning the output again changes nothing.
    Resolvers' exceptions propagate; resolved names are cleaned by :func:`clean_name`
    and never parsed for code, links or mentions of their own.
    """
    text = _plain_lines(content)
    text = _strip_code_and_spoilers(text, words)
    text = _replace_links(text, words)
    text = _replace_entities(text, words, lookups)
    text = name_emoji(text, language=words.language, flag_word=words.flag)
    text = strip_markdown(text)
    text = defuse_mentions(text, words)
    # Last: unwrapping markup and defusing mentions join runs ("**aaa**a", "e@everyone").
    return " ".join(_cap_repeats(text).split())


# Every character markdown, code or spoilers could pair up: a name is read as written,
# and must not pair with the markup of the message it is put into.
_NAME_MARKUP = re.compile(r"[*_~|`\\]+")


@lru_cache(maxsize=4096)
def clean_name(name: str, *, words: SpokenWords = ENGLISH) -> str:
    """A display, role or channel name as it is said: plain words, possibly empty.

    Invisible characters go, links are "link", emoji are named, markup characters and
    underscores are spaces (``bot_commands`` -> "bot commands"); a mention written in a
    name is not resolved (it would impersonate): it is "someone". Cached: names repeat.
    """
    text = _plain_lines(name)
    text = _replace_links(text, words)
    text = _replace_entities(text, words, NO_LOOKUPS)
    text = name_emoji(text, language=words.language, flag_word=words.flag)
    text = _NAME_MARKUP.sub(" ", text)
    text = defuse_mentions(text, words)
    return " ".join(_cap_repeats(text).split())

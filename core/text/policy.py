"""A message -> what the voice says and what a text post shows: the text policy.

One message is cleaned once (:func:`~edge_voice.core.text.cleanup.clean_message`); the
"NAME said" prefix is decided by the :class:`SpeakerPrefixer`; prefix, text and the
mention of attachments share one length budget, so the spoken text always fits
``max_chars``: the name is shortened, then dropped, before the text is cut, and the text
is cut at a word boundary, never dropped. The result passes the speakability check once
and comes back as :class:`CheckedText`, which the synthesis service does not check again.

A message with nothing to say (only "....") comes back as :class:`Unspeakable` with the
reason; a message with attachments or stickers always has something to say.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_voice.core.text.attachments import Attachment, describe
from edge_voice.core.text.cleanup import NO_LOOKUPS, Lookups, clean_message, clean_name
from edge_voice.core.text.post import name_for_post
from edge_voice.core.text.speakable import CheckedText, has_speakable_char, unspeakable_reason
from edge_voice.core.text.words import ENGLISH, SpokenWords, words_for

__all__ = [
    "MAX_SPOKEN_NAME",
    "Message",
    "SpeakerPrefixer",
    "Speech",
    "Unspeakable",
    "cut_at_word",
    "speech_for",
]

MAX_SPOKEN_NAME = 64
"""A name is never said longer than this, even with room to spare (emoji names add up)."""
_SENTENCE_END = ".!?…"


@dataclass
class SpeakerPrefixer:
    """Decides when to say "NAME said" before a message: not when the same person spoke
    within the last ``every`` seconds; any other speaker in between resets it."""

    every: float
    enabled: bool = True
    _last: tuple[int, float] | None = field(default=None, init=False)

    def announce(self, author_id: int, now: float) -> bool:
        """Whether this message gets the prefix; remembers the speaker either way."""
        previous = self._last
        self._last = (author_id, now)
        if not self.enabled:
            return False
        return not (
            previous is not None and previous[0] == author_id and now - previous[1] < self.every
        )

    def prefix(self, author_id: int, author_name: str, now: float) -> str:
        """The English prefix for this message (possibly empty); remembers the speaker."""
        return ENGLISH.said.format(name=author_name) if self.announce(author_id, now) else ""


@dataclass(frozen=True, slots=True)
class Message:
    """What the policy needs of a message: its raw content, author and attachments."""

    content: str
    author_id: int
    author_name: str
    """The display name, raw (as Discord has it)."""
    attachments: tuple[Attachment, ...] = ()
    stickers: tuple[str, ...] = ()
    """Sticker names."""


@dataclass(frozen=True, slots=True)
class Speech:
    """A message ready to be said, and its text post should it not be."""

    spoken: CheckedText
    """What the voice says, prefix included; at most ``max_chars``, already checked."""
    text: str
    """The text post's text: the cleaned message cut to ``max_chars`` (no prefix), then
    its attachments in brackets."""
    author_name: str
    """The text post's name: mentions defused, markdown escaped."""
    prefix: str = ""
    """The "NAME said: " that starts ``spoken``, or ``""``."""
    cut: bool = False
    """The message (or its description) was shortened to fit."""
    name_shortened: bool = False
    """The spoken name was shortened or left out to fit."""


@dataclass(frozen=True, slots=True)
class Unspeakable:
    """A message with nothing to say, and why (for logs and replies)."""

    reason: str


def cut_at_word(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` at the last space that fits (a hard cut when a single
    word is longer), keeping a letter or digit when ``text`` had one within reach."""
    if len(text) <= max_chars:
        return text
    if max_chars < 1:
        return ""
    space = text.rfind(" ", 0, max_chars + 1)
    cut = text[:space].rstrip() if space > 0 else text[:max_chars]
    if has_speakable_char(cut) or not has_speakable_char(text):
        return cut
    # Only punctuation fits ("!!! ... a"): start at the first letter or digit instead;
    # the cut from there starts with it, so it has one.
    first = next(index for index, char in enumerate(text) if has_speakable_char(char))
    return cut_at_word(text[first:], max_chars)


def _shorten_name(name: str, room: int) -> str:
    """``name`` within ``room`` characters: its first words, or ``""`` when not even the
    first word fits (a name cut mid-word names no one)."""
    if len(name) <= room:
        return name
    if room < 1:
        return ""
    space = name.rfind(" ", 0, room + 1)
    short = name[:space].rstrip() if space > 0 else ""
    return short if has_speakable_char(short) else ""


def _with_things(body: str, things: str, words: SpokenWords) -> str:
    along = words.along.format(things=things)
    if body[-1:] in _SENTENCE_END:
        return f"{body} {along[:1].upper()}{along[1:]}"
    return f"{body.rstrip(',;:')}, {along}"


def _spoken_name(author_name: str, words: SpokenWords) -> str:
    name = clean_name(author_name, words=words)
    if not has_speakable_char(name):
        return words.someone
    return cut_at_word(name, MAX_SPOKEN_NAME)


def speech_for(
    message: Message,
    *,
    max_chars: int,
    language: str = "en",
    lookups: Lookups = NO_LOOKUPS,
    prefixer: SpeakerPrefixer | None = None,
    now: float = 0.0,
    announce: bool = True,
) -> Speech | Unspeakable:
    """What to say for ``message``, within ``max_chars``, in the words of ``language``
    (a language such as ``"de"`` or the voice's name, ``"de-DE-KillianNeural"``).

    The prefixer (if any) is asked whether "NAME said" is due once the message is known
    to be speakable; ``announce=False`` leaves the name out but still counts the speaker.
    A message with no text to say but attachments or stickers says "NAME sent an image".
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    words = words_for(language)
    text = clean_message(message.content, lookups=lookups, words=words)
    things = describe(message.attachments, message.stickers, words)
    says_text = has_speakable_char(text)
    if not says_text and not things:
        return Unspeakable((unspeakable_reason(text) or "") if text else "text is empty")
    # Asked only now: a message that is not said must not count as the speaker's turn.
    due = prefixer.announce(message.author_id, now) if prefixer is not None else False
    name = _spoken_name(message.author_name, words)
    if says_text:
        said_name = name if due and announce else ""
        spoken, prefix, cut, shortened = _fit_text(text, said_name, things, words, max_chars)
    else:
        spoken, cut, shortened = _fit_sentence(name if announce else "", things, words, max_chars)
        prefix = ""
    posted = describe(message.attachments, message.stickers, words, posted=True)
    post_text = cut_at_word(text, max_chars) if says_text else ""
    if posted:
        post_text = f"{post_text} {words.posted.format(things=words.listing(posted))}".strip()
    return Speech(
        spoken=CheckedText(spoken, max_chars=max_chars),
        text=post_text,
        author_name=name_for_post(message.author_name, words.someone),
        prefix=prefix,
        cut=cut,
        name_shortened=shortened,
    )


def _fit_text(
    text: str, name: str, things: list[str], words: SpokenWords, limit: int
) -> tuple[str, str, bool, bool]:
    """Prefix + text (+ attachments) within ``limit``: (spoken, prefix, cut, name_shortened)."""
    prefix = words.said.format(name=name) if name else ""
    listing = words.listing(things)
    tail = len(_with_things("x", listing, words)) - 1 if things else 0
    shortened = False
    if len(prefix) + len(text) + tail > limit and prefix:
        # The name yields to the text, down to a third of the budget; then the text is cut.
        room = max(limit - len(text) - tail, limit // 3)
        overhead = len(prefix) - len(name)
        short = _shorten_name(name, room - overhead)
        prefix = words.said.format(name=short) if short else ""
        shortened = short != name
    dropped = bool(things) and limit - len(prefix) - tail < 1
    if dropped:
        things, tail = [], 0  # no room for the attachments: the text comes first
    body = cut_at_word(text, limit - len(prefix) - tail)
    spoken = _with_things(body, listing, words) if things else body
    return f"{prefix}{spoken}", prefix, dropped or body != text, shortened


def _fit_sentence(
    name: str, things: list[str], words: SpokenWords, limit: int
) -> tuple[str, bool, bool]:
    """ "NAME sent ..." within ``limit``: (spoken, cut, name_shortened)."""
    listing = words.listing(things)
    if name:
        sentence = words.sent.format(name=name, things=listing)
        if len(sentence) <= limit:
            return sentence, False, False
        short = _shorten_name(name, limit - (len(sentence) - len(name)))
        if short:
            return words.sent.format(name=short, things=listing), False, True
    spoken = cut_at_word(listing, limit)
    return spoken, spoken != listing, bool(name)

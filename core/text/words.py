"""The words said in place of what is not read literally, per language.

English and German; any other language gets English. The language is the voice's
(:func:`language_of` ``"de-DE-KillianNeural"`` is ``"de"``), so a German voice never
says "link" in English.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ENGLISH",
    "GERMAN",
    "Noun",
    "SpokenWords",
    "language_of",
    "words_for",
]


@dataclass(frozen=True, slots=True)
class Noun:
    """A kind of thing counted in a sentence: "an image", "3 images"."""

    one: str
    many: str
    """With ``{count}``."""

    def counted(self, count: int) -> str:
        """The noun for ``count`` things (at least one)."""
        return self.one if count == 1 else self.many.format(count=count)


# Compared (and hashed) by identity: a few constants, and the cleanup's caches key on them.
@dataclass(frozen=True, slots=True, eq=False)
class SpokenWords:
    """The words of one language. English by default."""

    language: str = "en"
    someone: str = "someone"
    """An unknown user mention, and a name with nothing speakable in it."""
    unknown_role: str = "a role"
    unknown_channel: str = "a channel"
    unknown_time: str = "a date"
    """A timestamp outside the dates a calendar can show."""
    link: str = "link"
    code: str = "code"
    """Code blocks and inline code: their content is never read."""
    spoiler: str = "spoiler"
    """Spoilers: their content is never read."""
    everyone: str = "everyone"
    here: str = "here"
    flag: str = "flag"
    """Said before a flag's country when the emoji name does not say "flag" itself."""
    said: str = "{name} said: "
    """The "NAME said" prefix."""
    sent: str = "{name} sent {things}"
    """A message with attachments or stickers and no text."""
    along: str = "with {things}"
    """After a message's text, for its attachments and stickers."""
    posted: str = "[{things}]"
    """Attachments and stickers in a text post, after the text."""
    and_: str = "and"
    image: Noun = Noun("an image", "{count} images")
    video: Noun = Noun("a video", "{count} videos")
    audio: Noun = Noun("an audio file", "{count} audio files")
    file: Noun = Noun("a file", "{count} files")
    sticker: str = "the sticker {name}"
    sticker_posted: str = "sticker {name}"
    """A sticker in a text post."""
    unnamed_sticker: Noun = Noun("a sticker", "{count} stickers")
    """Stickers whose names say nothing (":)")."""

    def listing(self, things: list[str]) -> str:
        """``["a", "b", "c"]`` -> "a, b and c"."""
        if len(things) < 2:
            return "".join(things)
        return f"{', '.join(things[:-1])} {self.and_} {things[-1]}"


ENGLISH = SpokenWords()

# Accusative throughout: "hat ein Bild geschickt", "dazu den Sticker Hallo".
GERMAN = SpokenWords(
    language="de",
    someone="jemand",
    unknown_role="eine Rolle",
    unknown_channel="ein Kanal",
    unknown_time="ein Datum",
    link="Link",
    code="Code",
    spoiler="Spoiler",
    everyone="alle",
    here="alle hier",
    flag="Flagge",
    said="{name} sagt: ",
    sent="{name} hat {things} geschickt",
    along="dazu {things}",
    posted="[{things}]",
    and_="und",
    image=Noun("ein Bild", "{count} Bilder"),
    video=Noun("ein Video", "{count} Videos"),
    audio=Noun("eine Audiodatei", "{count} Audiodateien"),
    file=Noun("eine Datei", "{count} Dateien"),
    sticker="den Sticker {name}",
    sticker_posted="Sticker {name}",
    unnamed_sticker=Noun("einen Sticker", "{count} Sticker"),
)

_BY_LANGUAGE = {words.language: words for words in (ENGLISH, GERMAN)}


def language_of(voice: str) -> str:
    """The language of a voice name or locale: ``"de-DE-KillianNeural"`` -> ``"de"``.

    A bare language (``"de"``) is returned as is, lower-cased; an empty name is English.
    """
    return voice.split("-", 1)[0].strip().lower() or "en"


def words_for(language: str) -> SpokenWords:
    """The words for ``language`` (``"de"``, or a voice name), English when there are none."""
    return _BY_LANGUAGE.get(language_of(language), ENGLISH)

"""Emoji said by their CLDR names, in the voice's language where the data has one.

Names come from the ``emoji`` package (Unicode's CLDR short names): ❤️ is "red heart",
👍🏽 "thumbs up", 🇩🇪 "flag Germany"; in German "rotes herz", "daumen hoch",
"flagge deutschland". Skin tones and presentation selectors are not said: they modify
how an emoji looks, not what it says. A run of one emoji is said once.

Emoji are found by regular expressions built from the package's data (a sequence: a
flag pair, a subdivision flag's tags, a base with its modifiers, joined by ZWJ), so a
message costs a scan in C plus a match and a dictionary lookup per emoji. A keycap
(1️⃣) loses its marks and is its digit.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import emoji

__all__ = ["EMOJI_SEQUENCE", "drop_stray_components", "emoji_name", "name_emoji"]

_FULLY_QUALIFIED: int = emoji.STATUS["fully_qualified"]
_LANGUAGES = frozenset(emoji.LANGUAGES)
_SKIN_TONES = "".join(chr(code) for code in range(0x1F3FB, 0x1F400))
_SELECTORS = "\ufe0e\ufe0f"
_STRIP_MODIFIERS = str.maketrans("", "", _SKIN_TONES + _SELECTORS)
_REGIONAL_A = 0x1F1E6
_REGIONAL = range(_REGIONAL_A, _REGIONAL_A + 26)
_KEYCAP_BASES = frozenset("0123456789#*")
# Pictographs in these blocks are read as emoji even without U+FE0F; outside them (©, ™,
# ↔, ▶) a symbol is only an emoji when U+FE0F asks for emoji presentation.
_PICTOGRAPHIC = (range(0x2300, 0x2400), range(0x2600, 0x27C0), range(0x2B00, 0x2C00))


def _char_class(codes: Iterable[int]) -> str:
    ranges: list[list[int]] = []
    for code in sorted(codes):
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "".join(
        re.escape(chr(low)) if low == high else f"{re.escape(chr(low))}-{re.escape(chr(high))}"
        for low, high in ranges
    )


def _bases() -> tuple[set[int], set[int]]:
    """The code points an emoji starts with: emoji by default, and text unless U+FE0F."""
    default: set[int] = set()
    text: set[int] = set()
    skin_tones = {ord(char) for char in _SKIN_TONES}
    for key in emoji.EMOJI_DATA:
        first = ord(key[0])
        if first in _REGIONAL or first in skin_tones or key[0] in _KEYCAP_BASES:
            continue
        alone = emoji.EMOJI_DATA.get(key[0])
        by_default = alone is not None and alone["status"] <= _FULLY_QUALIFIED
        if by_default or first >= 0x1F000 or any(first in block for block in _PICTOGRAPHIC):
            default.add(first)
        else:
            text.add(first)
    return default, text - default


_DEFAULT_BASES, _TEXT_BASES = _bases()
# sre tests a class with characters beyond U+FFFF range by range, and a class within the
# BMP by one table lookup: the astral bases are taken as the one block they all lie in.
_ASTRAL = "\U0001f000-\U0001faff"
if any(code >= 0x10000 and not 0x1F000 <= code <= 0x1FAFF for code in _DEFAULT_BASES) or any(
    code >= 0x10000 for code in _TEXT_BASES
):
    raise RuntimeError(f"emoji {emoji.__version__} has emoji outside the blocks named here")
_BMP_BASES = _char_class(code for code in _DEFAULT_BASES | _TEXT_BASES if code < 0x10000)
_DEFAULT = f"[{_char_class(code for code in _DEFAULT_BASES if code < 0x10000)}]|[{_ASTRAL}]"
_TEXT = f"[{_char_class(_TEXT_BASES)}]"
_MODIFIER = f"[{_SELECTORS}{_SKIN_TONES[0]}-{_SKIN_TONES[-1]}]"
_PART = f"(?:{_DEFAULT}|{_TEXT}\ufe0f){_MODIFIER}*"
_JOINED = f"(?:{_DEFAULT}|{_TEXT}\ufe0f?){_MODIFIER}*"
EMOJI_SEQUENCE = (
    "[\U0001f1e6-\U0001f1ff]{1,2}"  # a flag is two regional indicators; one is a letter
    "|\U0001f3f4[\U000e0020-\U000e007e]{1,8}\U000e007f"  # subdivision flags
    f"|{_PART}(?:\u200d{_JOINED}){{0,9}}"
)
"""One emoji, as a regular expression; every repetition is bounded."""

_SEQUENCE = re.compile(EMOJI_SEQUENCE)
# Where an emoji may start: one class scan in C finds the few places worth a closer look.
_CANDIDATE = re.compile(f"[{_BMP_BASES}]|[{_ASTRAL}]")
_RUN = re.compile(f"(?:{EMOJI_SEQUENCE})(?:\\s*(?:{EMOJI_SEQUENCE}))*")
_COMPONENTS = f"\u200d\u20e3{_SELECTORS}{_SKIN_TONES[0]}-{_SKIN_TONES[-1]}\U000e0020-\U000e007f"
# A component not after an emoji (or another component) belongs to no emoji.
_STRAY_COMPONENTS = re.compile(f"(?<![{_BMP_BASES}{_ASTRAL}{_COMPONENTS}])[{_COMPONENTS}]+")
_LEFTOVER_COMPONENTS = re.compile(f"[{_COMPONENTS}]+")


def _index() -> dict[str, str]:
    # Every spelling of an emoji (with or without U+FE0F, any skin tone) -> the key of
    # its plain, fully-qualified form, whose names are the ones worth saying.
    index: dict[str, str] = {}
    rank: dict[str, tuple[bool, int]] = {}
    for key, data in emoji.EMOJI_DATA.items():
        plain = key.translate(_STRIP_MODIFIERS)
        toned = any(char in _SKIN_TONES for char in key)
        if plain not in rank or (toned, data["status"]) < rank[plain]:
            index[plain], rank[plain] = key, (toned, data["status"])
    return index


_INDEX = _index()


def drop_stray_components(text: str) -> str:
    """Drop joiners, selectors, skin tones and tags that follow no emoji.

    For text whose other invisible characters are already gone: a stray joiner can
    then no longer hide a mention (``<\\u200d@1>``), and ``1\\ufe0f\\u20e3`` is "1".
    """
    return _STRAY_COMPONENTS.sub("", text)


def _spoken(short_name: str) -> str:
    return short_name.strip(":").replace("_", " ")


@lru_cache(maxsize=4096)
def emoji_name(sequence: str, language: str = "en", flag_word: str = "flag") -> str:
    """The name to say for one emoji ``sequence``, in ``language`` or else English.

    Flags start with ``flag_word`` (English CLDR names them by country alone); a
    pictograph the data does not know is named by Unicode, an unassigned one by nothing.
    """
    first = ord(sequence[0])
    if first in _REGIONAL and len(sequence) == 1:
        return chr(ord("A") + first - _REGIONAL_A)
    key = _INDEX.get(sequence.translate(_STRIP_MODIFIERS))
    if key is None:
        if first in _REGIONAL:
            letters = " ".join(chr(ord("A") + ord(char) - _REGIONAL_A) for char in sequence)
            return f"{flag_word} {letters}"
        return unicodedata.name(sequence[0], "").lower()
    data = emoji.EMOJI_DATA[key]
    if language in _LANGUAGES and language != "en":
        emoji.config.load_language(language)
    name = _spoken(data.get(language) or data["en"])
    is_flag = first in _REGIONAL or (first == 0x1F3F4 and len(sequence) > 1)
    if is_flag and not name.lower().startswith(flag_word.lower()):
        return f"{flag_word} {name}"
    return name


def _needs_space(text: str, index: int) -> bool:
    # Not before markdown, which is unwrapped later: "*😂*" stays one emphasized span.
    return 0 <= index < len(text) and not text[index].isspace() and text[index] not in "*_~|`"


def name_emoji(text: str, *, language: str = "en", flag_word: str = "flag") -> str:
    """Replace each run of emoji in ``text`` by their names (a repeated emoji said once).

    Names are spaced from the words around them. Keycaps are expected as their plain
    digit or sign already (see :func:`drop_stray_components`); components no emoji took
    are dropped. Linear: one class scan, then one match and one lookup per emoji.
    """
    pieces: list[str] = []
    position = scan = 0
    while candidate := _CANDIDATE.search(text, scan):
        start = candidate.start()
        run = _RUN.match(text, start)
        if run is None:
            scan = start + 1  # a symbol in text presentation (no U+FE0F)
            continue
        pieces.append(text[position:start])
        pieces.append(_spaced(_run_names(run.group(), language, flag_word), text, run))
        position = scan = run.end()
    if pieces:
        pieces.append(text[position:])
        text = "".join(pieces)
    return _LEFTOVER_COMPONENTS.sub("", text)


@lru_cache(maxsize=4096)
def _plain_and_name(sequence: str, language: str, flag_word: str) -> tuple[str, str]:
    return sequence.translate(_STRIP_MODIFIERS), emoji_name(sequence, language, flag_word)


def _run_names(run: str, language: str, flag_word: str) -> str:
    names: list[str] = []
    previous = None
    for sequence in _SEQUENCE.findall(run):
        plain, name = _plain_and_name(sequence, language, flag_word)
        if plain != previous:
            previous = plain
            if name:
                names.append(name)
    return " ".join(names)


def _spaced(names: str, text: str, run: re.Match[str]) -> str:
    if not names:
        return " "
    before = " " if _needs_space(text, run.start() - 1) else ""
    after = " " if _needs_space(text, run.end()) else ""
    return f"{before}{names}{after}"

"""Which Edge voices exist: lookups, autocomplete and "did you mean" over one voice list.

A :class:`VoiceCatalogue` is an immutable view of one list of voices: the snapshot
shipped in ``edge_voices.json`` (:func:`shipped_catalogue`) or a list fetched from
Edge later (:mod:`core.voices.refresh`). Everything here is pure and cheap enough to
run on the event loop: lookups are dictionary reads, autocomplete scans about 320
names, and only an unknown name pays for :mod:`difflib`.

Nearest matches use the standard library's ``difflib``: for a few hundred short names
its ratio is fast enough (well under a millisecond per query) and good at the typos
people make ("Kilian", "de-DE-Katja"); a fuzzy-matching dependency would buy nothing.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

AUTOCOMPLETE_LIMIT: Final = 25
"""Discord shows at most 25 autocomplete choices."""

SNAPSHOT_RESOURCE: Final = "edge_voices.json"
SNAPSHOT_FORMAT: Final = 1

# What edge-tts 7.3.1 accepts as a short name (see edge_tts.data_classes.TTSConfig).
_SHORT_NAME = re.compile(r"^[a-z]{2,}-[A-Z]{2,}-.+Neural$")
_NAME_SUFFIXES = ("MultilingualNeural", "Neural")
_CUTOFF = 0.6
"""Below this difflib ratio a name is not offered as a nearest match."""


class VoiceListError(ValueError):
    """A voice list (snapshot, cache file or Edge's answer) that holds no usable voice."""


@dataclass(frozen=True, slots=True)
class VoiceInfo:
    """One Edge voice as the voice list describes it."""

    short_name: str
    """E.g. ``de-DE-KillianNeural``: what edge-tts and our settings use."""
    locale: str
    """E.g. ``de-DE`` (dialects carry a third part: ``zh-CN-liaoning``)."""
    gender: str
    friendly_name: str = ""
    """E.g. ``Microsoft Killian Online (Natural) - German (Germany)``."""

    @property
    def language(self) -> str:
        """The language subtag in lower case, e.g. ``de``."""
        return self.locale.split("-", 1)[0].lower()

    @property
    def name(self) -> str:
        """The part after the locale, e.g. ``KillianNeural``."""
        return self.short_name[len(self.locale) + 1 :]

    @property
    def given_name(self) -> str:
        """The voice's own name, e.g. ``Killian`` (``Florian`` for FlorianMultilingualNeural)."""
        name = self.name
        for suffix in _NAME_SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)]
        return name

    @property
    def label(self) -> str:
        """A short description for a choice list, at most 100 characters (Discord's limit)."""
        described = f"{self.short_name} · {self.gender}"
        if self.friendly_name and " - " in self.friendly_name:
            described += f" · {self.friendly_name.split(' - ', 1)[1]}"
        return described[:100]

    def as_json(self) -> dict[str, str]:
        """The fields Edge's list uses, for the on-disk cache."""
        return {
            "ShortName": self.short_name,
            "Locale": self.locale,
            "Gender": self.gender,
            "FriendlyName": self.friendly_name,
        }


class VoiceCatalogue:
    """An immutable list of voices with the lookups the bot needs."""

    def __init__(self, voices: Iterable[VoiceInfo]) -> None:
        by_name: dict[str, VoiceInfo] = {}
        for voice in voices:
            by_name.setdefault(voice.short_name.lower(), voice)
        if not by_name:
            raise VoiceListError("the voice list holds no voice")
        self._by_name = by_name
        self.voices: tuple[VoiceInfo, ...] = tuple(by_name.values())
        locales: dict[str, list[VoiceInfo]] = {}
        languages: dict[str, list[VoiceInfo]] = {}
        for voice in self.voices:
            locales.setdefault(voice.locale.lower(), []).append(voice)
            languages.setdefault(voice.language, []).append(voice)
        self._locales = {key: tuple(group) for key, group in locales.items()}
        self._languages = {key: tuple(group) for key, group in languages.items()}

    def __len__(self) -> int:
        return len(self.voices)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._by_name

    def get(self, name: str) -> VoiceInfo | None:
        """The voice called ``name`` (case-insensitive), or None."""
        return self._by_name.get(name.strip().lower())

    def canonical(self, name: str) -> str | None:
        """``name`` spelled as Edge spells it (edge-tts is case-sensitive), or None."""
        voice = self.get(name)
        return None if voice is None else voice.short_name

    def has_exact(self, name: str) -> bool:
        """Whether ``name`` is a voice, spelled exactly as Edge spells it."""
        voice = self._by_name.get(name.lower())
        return voice is not None and voice.short_name == name

    def voices_for(self, locale_or_language: str) -> tuple[VoiceInfo, ...]:
        """The voices of a locale (``de-DE``) or, for a bare language (``de``), of all its
        locales; case-insensitive, in the list's order."""
        key = locale_or_language.strip().lower()
        if key in self._locales:
            return self._locales[key]
        return self._languages.get(key, ())

    def locales(self) -> tuple[str, ...]:
        """Every locale, sorted."""
        return tuple(sorted({v.locale for v in self.voices}))

    def languages(self) -> tuple[str, ...]:
        """Every language subtag (lower case), sorted."""
        return tuple(sorted(self._languages))

    def autocomplete(
        self, fragment: str, *, limit: int = AUTOCOMPLETE_LIMIT, prefer_locale: str | None = None
    ) -> list[VoiceInfo]:
        """Voices for a typed ``fragment``, best first, at most ``limit`` (Discord: 25).

        Ranked by how they match: the short name starts with it (``de-DE-K``), then the
        locale does or one of its parts is it (``AT`` for ``de-AT``), then the voice's own
        name starts with it (``Kil``), then it appears anywhere in the short or friendly
        name (``German``).
        Within a rank, voices of ``prefer_locale`` (the guild's) come first, then by name.
        An empty fragment lists ``prefer_locale``'s voices first.
        """
        needle = fragment.strip().lower()
        preferred = (prefer_locale or "").lower()
        preferred_language = preferred.split("-", 1)[0]
        ranked: list[tuple[int, int, str, VoiceInfo]] = []
        for voice in self.voices:
            rank = _match_rank(voice, needle)
            if rank is None:
                continue
            locale = voice.locale.lower()
            closeness = (
                0 if locale == preferred else 1 if voice.language == preferred_language else 2
            )
            ranked.append((rank, closeness, voice.short_name.lower(), voice))
        ranked.sort(key=lambda item: item[:3])
        return [item[3] for item in ranked[: max(0, limit)]]

    def nearest(self, name: str, *, limit: int = 3) -> list[str]:
        """The short names closest to an unknown ``name``, best first (maybe none).

        ``name`` is compared with each whole short name and with each voice's own name,
        so "Katja", "katia" and "de-DE-Katja" all find ``de-DE-KatjaNeural``.
        """
        needle = name.strip().lower()
        if not needle:
            return []
        # A name that starts with a known language is compared within that language only:
        # a few dozen voices instead of all of them keeps this near a millisecond.
        language = needle.split("-", 1)[0]
        pool = self._languages.get(language, self.voices) if "-" in needle else self.voices
        scored: list[tuple[float, str]] = []
        matcher = difflib.SequenceMatcher(autojunk=False)
        matcher.set_seq2(needle)
        for voice in pool:
            best = 0.8 if needle in voice.short_name.lower() else _CUTOFF
            candidate = voice.short_name if "-" in needle else voice.given_name
            matcher.set_seq1(candidate.lower())
            # The cheap upper bounds skip most names before the full ratio is paid for.
            if matcher.real_quick_ratio() > best and matcher.quick_ratio() > best:
                best = max(best, matcher.ratio())
            if best > _CUTOFF:
                scored.append((best, voice.short_name))
        scored.sort(key=lambda item: (-item[0], item[1]))
        return [short_name for _score, short_name in scored[:limit]]


def _match_rank(voice: VoiceInfo, needle: str) -> int | None:
    if not needle:
        return 0
    short = voice.short_name.lower()
    if short.startswith(needle):
        return 0
    locale = voice.locale.lower()
    if locale.startswith(needle) or needle in locale.split("-"):
        return 1
    if voice.name.lower().startswith(needle):
        return 2
    if needle in short or needle in voice.friendly_name.lower():
        return 3
    return None


def parse_voice_list(entries: object) -> tuple[VoiceInfo, ...]:
    """The usable voices of a decoded voice list (Edge's JSON array, or our file's
    ``voices``); entries without a valid ``ShortName`` and ``Locale`` are skipped.

    Raises :class:`VoiceListError` when the list is not a list or holds no usable voice.
    """
    if not isinstance(entries, list):
        raise VoiceListError(f"expected a list of voices, got {type(entries).__name__}")
    voices = []
    for entry in entries:
        voice = _voice_from(entry)
        if voice is not None:
            voices.append(voice)
    if not voices:
        raise VoiceListError(f"none of the {len(entries)} entries is a usable voice")
    return tuple(voices)


def _voice_from(entry: object) -> VoiceInfo | None:
    if not isinstance(entry, Mapping):
        return None
    short_name, locale = entry.get("ShortName"), entry.get("Locale")
    if not isinstance(short_name, str) or not isinstance(locale, str):
        return None
    if not _SHORT_NAME.match(short_name) or not short_name.startswith(locale + "-"):
        return None
    gender = entry.get("Gender")
    friendly = entry.get("FriendlyName")
    return VoiceInfo(
        short_name,
        locale,
        gender if isinstance(gender, str) else "",
        friendly if isinstance(friendly, str) else "",
    )


def catalogue_document(voices: Sequence[VoiceInfo], fetched_at: float | None) -> dict[str, Any]:
    """The JSON document of the snapshot and the on-disk cache."""
    return {
        "format": SNAPSHOT_FORMAT,
        "fetched_at": fetched_at,
        "voices": [voice.as_json() for voice in voices],
    }


def parse_catalogue_document(document: object) -> tuple[VoiceCatalogue, float | None]:
    """The catalogue and its fetch time (epoch seconds, None for the snapshot) from a
    decoded document; raises :class:`VoiceListError` if it is not one of ours."""
    if not isinstance(document, dict) or document.get("format") != SNAPSHOT_FORMAT:
        raise VoiceListError(f"not a voice list of format {SNAPSHOT_FORMAT}")
    fetched_at = document.get("fetched_at")
    if fetched_at is not None and (
        isinstance(fetched_at, bool) or not isinstance(fetched_at, int | float)
    ):
        raise VoiceListError(f"fetched_at must be a number, got {fetched_at!r}")
    voices = parse_voice_list(document.get("voices"))
    return VoiceCatalogue(voices), None if fetched_at is None else float(fetched_at)


@cache
def shipped_catalogue() -> VoiceCatalogue:
    """The snapshot of Edge's voice list shipped with the package (read once)."""
    text = resources.files("edge_voice.core.voices").joinpath(SNAPSHOT_RESOURCE).read_text("utf-8")
    catalogue, _fetched_at = parse_catalogue_document(json.loads(text))
    return catalogue

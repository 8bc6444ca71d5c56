"""Which eSpeak NG voice names the ``espeakng-loader`` wheel's data really has.

eSpeak does not refuse an unknown voice: ``espeak_SetVoiceByProperties`` falls back to
its default voice, so a typo in ``[fallback] offline_voices`` ("deu", "de+nosuch")
would speak every message in the wrong language without a word of warning. The config
checks each value against the data here instead.

A valid value is a language code (``de``, ``en-us``), a voice file (``gmw/de``,
``en-US``) or a voice's ``name`` (``German``), optionally with ``+variant`` from the
data's ``voices/!v`` folder (``de+f3``); all case-insensitive, as eSpeak reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from edge_voice.core.tts.espeak_library import default_data_path


@dataclass(frozen=True, slots=True)
class EspeakVoices:
    """The names one eSpeak data directory answers to, all in lower case."""

    voices: frozenset[str]
    variants: frozenset[str]

    def has(self, name: str) -> bool:
        """Whether eSpeak speaks ``name`` (``voice`` or ``voice+variant``) as asked."""
        voice, plus, variant = name.strip().lower().partition("+")
        if voice not in self.voices:
            return False
        return not plus or variant in self.variants

    def examples(self) -> str:
        """A few valid names, for error messages."""
        common = [name for name in ("de", "en-us", "fr", "es", "gmw/de") if name in self.voices]
        return ", ".join(repr(name) for name in common[:4])


def espeak_voices(data_path: str | None = None) -> EspeakVoices:
    """The voices of ``data_path`` (the wheel's data by default); raises TTSError if the
    wheel or its data is missing."""
    return _voices_in(data_path or default_data_path())


@lru_cache(maxsize=4)
def _voices_in(data_path: str) -> EspeakVoices:
    root = Path(data_path)
    names: set[str] = set()
    lang = root / "lang"
    for voice_file in lang.rglob("*"):
        if not voice_file.is_file():
            continue
        names.add(voice_file.name.lower())
        names.add(voice_file.relative_to(lang).as_posix().lower())
        # Voice files carry comments in legacy 8-bit encodings; the keys are ASCII.
        for line in voice_file.read_text(encoding="latin-1").splitlines():
            fields = line.split(None, 1)
            if len(fields) == 2 and fields[0] in ("language", "name"):
                names.add(fields[1].split()[0].lower() if fields[0] == "language" else fields[1])
    names = {name.strip().lower() for name in names if name.strip()}
    variants_dir = root / "voices" / "!v"
    variants = (
        {path.name.lower() for path in variants_dir.iterdir() if path.is_file()}
        if variants_dir.is_dir()
        else set()
    )
    return EspeakVoices(frozenset(names), frozenset(variants))

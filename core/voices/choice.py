"""Which voice chain speaks for a person in a guild: pure, no I/O.

The member's voice, else the server's, else (with ``[speech] voice = "auto"``) a
voice for the guild's ``preferred_locale``, else the configured voice. A chosen voice
(member's, server's, locale's) is followed by other voices of its locale as its backup
voices; the configured voice keeps ``[speech] backup_voices``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from edge_voice.core.config import SpeechConfig
from edge_voice.core.voices.catalogue import VoiceCatalogue, VoiceInfo
from edge_voice.core.voices.locales import AUTO, AUTO_DEFAULT_CHAIN, DISCORD_LOCALE_VOICES

MAX_BACKUPS: Final = 2
"""Backup voices behind a chosen voice: enough to survive one blocked voice, few enough
that a failing request gives up within the total deadline."""


class VoiceSource(StrEnum):
    """Where the first voice of a chain came from (for ``/tts settings`` and logs)."""

    MEMBER = "member"
    GUILD = "guild"
    LOCALE = "locale"
    DEFAULT = "default"
    """``voice = "auto"`` and no locale matched: :data:`AUTO_DEFAULT_CHAIN`."""
    CONFIG = "config"


@dataclass(frozen=True, slots=True)
class VoiceChoice:
    """A voice chain and where its first voice came from."""

    chain: tuple[str, ...]
    source: VoiceSource

    @property
    def voice(self) -> str:
        """The first voice of the chain."""
        return self.chain[0]


def choose_voice_chain(
    member_voice: str | None,
    guild_voice: str | None,
    preferred_locale: str | None,
    speech: SpeechConfig,
    catalogue: VoiceCatalogue,
    *,
    max_backups: int = MAX_BACKUPS,
) -> VoiceChoice:
    """The voice chain for a person (``member_voice``) in a guild (``guild_voice``,
    ``preferred_locale`` as Discord reports it, e.g. ``"de"`` or ``"en-US"``).

    A stored voice the catalogue no longer lists (Edge retired it) is passed over, so
    the person still hears the next choice instead of an error.
    """
    for stored, source in ((member_voice, VoiceSource.MEMBER), (guild_voice, VoiceSource.GUILD)):
        voice = catalogue.get(stored) if stored else None
        if voice is not None:
            return VoiceChoice(_with_backups(voice, catalogue, max_backups), source)
    if speech.voice != AUTO:
        return VoiceChoice(speech.voice_chain, VoiceSource.CONFIG)
    chain = locale_chain(preferred_locale, catalogue, max_backups=max_backups)
    if chain:
        return VoiceChoice(chain, VoiceSource.LOCALE)
    return VoiceChoice(AUTO_DEFAULT_CHAIN, VoiceSource.DEFAULT)


def locale_chain(
    locale: str | None, catalogue: VoiceCatalogue, *, max_backups: int = MAX_BACKUPS
) -> tuple[str, ...]:
    """The voice chain for a Discord locale, or ``()`` when nothing matches.

    Discord's own codes use :data:`DISCORD_LOCALE_VOICES`; any other code is looked up in
    the catalogue as a locale (``pt-PT``), then as a language (``pt``).
    """
    if not locale:
        return ()
    picked = _discord_chain(locale)
    if picked:
        known = [catalogue.get(name) for name in picked]
        voices = [voice for voice in known if voice is not None]
        if len(voices) > 1:
            return tuple(voice.short_name for voice in voices[: max_backups + 1])
        if voices:
            return _with_backups(voices[0], catalogue, max_backups)
    candidates = catalogue.voices_for(locale) or catalogue.voices_for(locale.split("-", 1)[0])
    if not candidates:
        return ()
    first = min(candidates, key=_preference)
    return _with_backups(first, catalogue, max_backups)


def _discord_chain(locale: str) -> tuple[str, ...]:
    lowered = locale.strip().lower()
    for code, chain in DISCORD_LOCALE_VOICES.items():
        if code.lower() == lowered:
            return chain
    return ()


def backup_voices_for(
    voice: VoiceInfo, catalogue: VoiceCatalogue, *, limit: int = MAX_BACKUPS
) -> tuple[str, ...]:
    """Other voices of ``voice``'s locale, at most ``limit``: the same gender first, plain
    voices before multilingual ones (which may switch language mid-message), then by name."""
    others = [v for v in catalogue.voices_for(voice.locale) if v.short_name != voice.short_name]
    others.sort(key=lambda other: (other.gender != voice.gender, *_preference(other)))
    return tuple(other.short_name for other in others[: max(0, limit)])


def _with_backups(voice: VoiceInfo, catalogue: VoiceCatalogue, limit: int) -> tuple[str, ...]:
    return (voice.short_name, *backup_voices_for(voice, catalogue, limit=limit))


def _preference(voice: VoiceInfo) -> tuple[bool, str]:
    return ("Multilingual" in voice.name, voice.short_name)

"""What a server's settings and a person's choices make of one message: pure, no I/O.

The voice cog asks two questions per message, both dictionary lookups in the
:class:`~edge_voice.core.storage.settings.SettingsRepository`:

* :func:`reading_refusal`: is the message read at all (the server's ``skip_prefix`` and
  ``required_role``)?
* :func:`speaking_plan`: how is it spoken? The voice chain
  :func:`~edge_voice.core.voices.choice.choose_voice_chain` picks for the author in the
  guild (member, server, guild locale, config), carried to the service as
  :class:`~edge_voice.core.tts.provider.VoiceSettings` with its own backup voices; the
  server's rate with the config's volume and pitch; the server's length limit and
  "NAME said" switch; the name the person chose to be called.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from edge_voice.core.storage.settings import EffectiveGuildSettings, SettingsRepository
from edge_voice.core.tts.provider import VoiceSettings
from edge_voice.core.voices.choice import VoiceChoice


class Refusal(StrEnum):
    """Why a message in the bound channel is not read aloud."""

    SKIP_PREFIX = "starts with the skip prefix"
    MISSING_ROLE = "the author lacks the required role"


@dataclass(frozen=True, slots=True)
class SpeakingPlan:
    """How one person's message is spoken in one guild."""

    choice: VoiceChoice
    """The voice chain and where its first voice came from."""
    settings: VoiceSettings
    """What the service synthesizes with: the chain's first voice, the rest of the chain
    as its backup voices, and the prosody."""
    max_chars: int
    """The server's message length limit (never above ``[text] max_chars``)."""
    announce_speaker: bool
    """Whether "NAME said" is said at all in this server."""
    name: str | None
    """The name the person chose to be called here (None: their display name)."""

    @property
    def voice(self) -> str:
        """The first voice of the chain; its language words the text."""
        return self.choice.voice


def reading_refusal(
    settings: EffectiveGuildSettings, content: str, role_ids: Collection[int]
) -> Refusal | None:
    """Why a message with ``content`` by a member with ``role_ids`` is not read, or None.

    An empty ``skip_prefix`` reads every message; no ``required_role`` reads everyone.
    """
    if settings.skip_prefix and content.startswith(settings.skip_prefix):
        return Refusal.SKIP_PREFIX
    if settings.required_role is not None and settings.required_role not in role_ids:
        return Refusal.MISSING_ROLE
    return None


def speaking_plan(
    repository: SettingsRepository,
    guild_id: int,
    user_id: int | None,
    preferred_locale: str | None,
) -> SpeakingPlan:
    """How ``user_id``'s messages (None: the bot's own announcements, in the server's
    voice) are spoken in the guild whose Discord locale is ``preferred_locale``."""
    effective = repository.effective(guild_id)
    choice = repository.voice_choice(guild_id, user_id, preferred_locale)
    speech = repository.config.speech
    settings = VoiceSettings(
        choice.voice,
        rate=effective.rate,
        volume=speech.volume,
        pitch=speech.pitch,
        backups=choice.chain[1:],
    )
    name = repository.member(guild_id, user_id).name if user_id is not None else None
    return SpeakingPlan(choice, settings, effective.max_chars, effective.announce_speaker, name)

"""One guild's voice session, as the voice cog keeps it while joined there.

A :class:`VoiceSession` ties the guild's :class:`~core.player.GuildPlayer` to the voice
connection it plays on, the text channel it reads and posts to, and the "NAME said"
prefixer. :func:`open_session` builds one from the configuration; :func:`describe_result`
words what became of an utterance for the reply to ``/say``.
"""

from __future__ import annotations

from dataclasses import dataclass

import discord

from edge_voice.cogs.text_output import ChannelTextOutput
from edge_voice.cogs.voice_output import DiscordVoiceOutput
from edge_voice.core.cache import AudioCache
from edge_voice.core.clock import Clock
from edge_voice.core.config import Config
from edge_voice.core.player import OFFLINE_VOICE_REASON, GuildPlayer, OfflineVoice
from edge_voice.core.posting import OperatorWarning
from edge_voice.core.speech import FailureReason, SpeakerPrefixer, SpeechOutcome, SpeechResult
from edge_voice.core.tts.service import TTSService


@dataclass(eq=False)
class VoiceSession:
    """One guild's voice session: its player and the text channel it reads and posts to."""

    player: GuildPlayer
    voice: DiscordVoiceOutput
    text: ChannelTextOutput
    prefixer: SpeakerPrefixer


def open_session(
    guild: discord.Guild,
    channel: discord.abc.Messageable,
    service: TTSService,
    config: Config,
    *,
    cache: AudioCache | None,
    offline_voice: OfflineVoice | None,
    clock: Clock,
    warn: OperatorWarning | None = None,
) -> VoiceSession:
    """A session speaking in ``guild``'s voice connection and reading ``channel``: a new
    player on ``service`` with ``config``'s player and speaker-announcement settings.
    ``warn`` tells the operators when ``channel`` cannot be posted to."""
    voice, text = DiscordVoiceOutput(guild), ChannelTextOutput(channel, warn=warn)
    player = GuildPlayer(
        service,
        voice,
        text,
        config.player,
        cache=cache,
        offline_voice=offline_voice,
        clock=clock,
    )
    prefixer = SpeakerPrefixer(
        every=config.text.announce_speaker_every,
        enabled=config.text.announce_speaker,
    )
    return VoiceSession(player, voice, text, prefixer)


def describe_result(result: SpeechResult, session: VoiceSession, shortened: bool) -> str:
    """The reply to ``/say``: exactly what became of it (spoken, posted as text, failed)."""
    if result.outcome is SpeechOutcome.SPOKEN:
        how = {"cached": " (from the cache)", OFFLINE_VOICE_REASON: " (with the offline voice)"}
        said = "🔊 Said it" + how.get(result.reason, "") + "."
        return said + (" (Cut to fit the length limit.)" if shortened else "")
    if result.outcome is SpeechOutcome.POSTED_AS_TEXT:
        where = getattr(session.text.channel, "mention", "the bound channel")
        return f"🔇 I couldn't speak it ({result.reason}), so I posted it as text in {where}."
    if result.reason == FailureReason.UNSPEAKABLE.value:
        return f"That can't be spoken: {result.detail or result.reason}."
    return f"⚠️ I couldn't speak it or post it: {result.detail or result.reason}."

"""One guild's voice session, as the voice cog keeps it while joined there.

A :class:`VoiceSession` ties the guild's :class:`~core.player.GuildPlayer` to the voice
connection it plays on (watched by a :class:`~core.voice_link.VoiceLinkSupervisor`), the
text channel it reads and posts to, and the "NAME said" prefixer. :func:`open_session`
builds one from the configuration; :func:`describe_result` words what became of an
utterance for the reply to ``/say``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import discord
from discord.ext import commands

from edge_voice.cogs.text_output import ChannelTextOutput
from edge_voice.cogs.voice_link import DiscordVoiceLink
from edge_voice.cogs.voice_output import DiscordVoiceOutput
from edge_voice.cogs.voice_pacing import PacedVoiceOutput
from edge_voice.core.admission import StreamAdmission
from edge_voice.core.audio import Converter
from edge_voice.core.cache import AudioCache
from edge_voice.core.clock import Clock
from edge_voice.core.config import Config
from edge_voice.core.metrics import PlayerFigures
from edge_voice.core.pacing import Pacer
from edge_voice.core.player import OFFLINE_VOICE_REASON, GuildPlayer, OfflineVoice
from edge_voice.core.posting import OperatorWarning
from edge_voice.core.speech import FailureReason, SpeakerPrefixer, SpeechOutcome, SpeechResult
from edge_voice.core.tasks import cancel_and_wait
from edge_voice.core.tts.service import TTSService
from edge_voice.core.voice_link import LinkPolicy, LinkState, VoiceLinkSupervisor

log = logging.getLogger(__name__)

DISCONNECT_TIMEOUT = 3.0
"""Seconds leaving a voice channel may take (discord.py waits for Discord to confirm)."""
CANCELLED_DISCONNECT_TIMEOUT = 0.5
"""The same while the bot closes inside a cancelled task (see :func:`disconnect_timeout`)."""


@dataclass(eq=False)
class VoiceSession:
    """One guild's voice session: its player, its voice connection and the text channel
    it reads and posts to."""

    player: GuildPlayer
    voice: DiscordVoiceOutput
    text: ChannelTextOutput
    prefixer: SpeakerPrefixer
    link: DiscordVoiceLink
    supervisor: VoiceLinkSupervisor
    watch: asyncio.Task[Any] | None = field(default=None, repr=False)
    """The supervisor's task while it runs (the cog starts it)."""
    text_only: bool = False
    """Voice gave up (:attr:`core.voice_link.LinkEnd.keeps_channel`): the bot left voice,
    and the bound channel's messages are posted as text until /join or /leave."""

    def voice_channel(self) -> Any:
        """The voice channel the session speaks in, also while the connection is down."""
        return self.link.channel()

    async def stop_watching(self) -> None:
        """Stop the supervisor (not from inside it: its own task ends by returning)."""
        watch = self.watch
        if watch is not None and watch is not asyncio.current_task():
            await cancel_and_wait(watch)


def open_session(
    bot: commands.Bot,
    guild: discord.Guild,
    voice_channel: Any,
    channel: discord.abc.Messageable,
    service: TTSService,
    config: Config,
    *,
    lock: asyncio.Lock,
    cache: AudioCache | None,
    offline_voice: OfflineVoice | None,
    clock: Clock,
    warn: OperatorWarning | None = None,
    on_outcome: Callable[[SpeechResult], object] | None = None,
    admission: StreamAdmission | None = None,
    converter: Converter | None = None,
    pacer: Pacer | None = None,
) -> VoiceSession:
    """A session speaking in ``voice_channel`` and reading ``channel``: a new player on
    ``service`` with ``config``'s player and speaker-announcement settings, and a
    supervisor for the voice connection (rejoins take ``lock``, the guild's join lock).
    ``warn`` tells the operators when ``channel`` cannot be posted to; ``on_outcome``
    hears what became of every message the player handled."""
    settings = config.player
    text = ChannelTextOutput(channel, warn=warn)
    link = DiscordVoiceLink(
        bot,
        guild.id,
        voice_channel.id,
        post=text.post,
        lock=lock,
        connect_timeout=settings.voice_connect_timeout,
    )
    policy = LinkPolicy(
        rejoin_attempts=settings.rejoin_attempts,
        rejoin_backoff=settings.rejoin_backoff,
        recover_within=recover_within(settings.voice_connect_timeout),
    )
    supervisor = VoiceLinkSupervisor(link, policy, name=f"guild {guild.id}")

    def usable() -> bool:
        return not supervisor.down and link.state() in (LinkState.UP, LinkState.SETTLING)

    voice = (
        PacedVoiceOutput(link.client, usable=usable, pacer=pacer)
        if pacer is not None and settings.pacer == "shared"
        else DiscordVoiceOutput(link.client, usable=usable)
    )
    player = GuildPlayer(
        service,
        voice,
        text,
        settings,
        cache=cache,
        offline_voice=offline_voice,
        admission=admission,
        converter=converter,
        clock=clock,
        name=f"guild {guild.id}",
        on_outcome=on_outcome,
    )
    prefixer = SpeakerPrefixer(
        every=config.text.announce_speaker_every,
        enabled=config.text.announce_speaker,
    )
    return VoiceSession(player, voice, text, prefixer, link, supervisor)


def player_figures(
    sessions: Iterable[VoiceSession], admission: StreamAdmission | None
) -> PlayerFigures:
    """What a metrics scrape reads: voice streams playing (``admission`` counts them; without
    it, the sessions handling a message) and messages waiting in ``sessions``."""
    speaking = queued = 0
    for session in sessions:
        speaking += session.player.speaking
        queued += session.player.pending
    playing = admission.playing if admission is not None else speaking
    return PlayerFigures(playing=playing, queued=queued)


LIBRARY_BACKOFF = 2.0
"""The longest first wait of discord.py 2.7.1 before it reconnects after 4006/4009
(``ExponentialBackoff``: uniform 0-2 s; tests/README.md)."""


def recover_within(connect_timeout: float) -> float:
    """How long discord.py may reconnect by itself before the supervisor takes over: its
    first backoff and a whole connect attempt, twice (a refused session never connects,
    and its backoff grows without end)."""
    return 2 * (LIBRARY_BACKOFF + connect_timeout)


def disconnect_timeout() -> float:
    """How long leaving voice may take from the calling task.

    Inside a task that was cancelled (``bot.run()`` closes the bot in its main task after
    Ctrl-C) the gateway reader is gone: discord.py would wait for a voice state update
    that never comes. The op 4 leave goes out at once; its echo is not worth waiting for.
    """
    task = asyncio.current_task()
    cancelled = task is not None and task.cancelling() > 0
    return CANCELLED_DISCONNECT_TIMEOUT if cancelled else DISCONNECT_TIMEOUT


async def leave_voice(client: discord.VoiceProtocol | None, within: float) -> None:
    """Disconnect ``client`` (if any) within ``within`` seconds; a failure is logged."""
    if client is None:
        return
    try:
        async with asyncio.timeout(within):
            await client.disconnect(force=True)
    except (TimeoutError, discord.HTTPException) as exc:
        log.warning(
            "leaving voice in guild %s failed: %s", getattr(client.channel, "guild", "?"), exc
        )


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

"""Shared set-up for the voice cog tests: a harness bot running ``cogs.voice`` on a real service.

The service is the real :class:`TTSService` with the real edge-tts client (``EdgeProvider``)
talking to the fake Edge server from ``tests/conftest.py``, with small deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import discord

from edge_voice.cogs.tts_context import TTSContext
from edge_voice.cogs.voice import VoiceCog
from edge_voice.core.audio import OPUS_SILENCE_FRAME, decode_opus_packets
from edge_voice.core.breaker import CircuitBreakerConfig
from edge_voice.core.clock import Clock, monotonic
from edge_voice.core.config import (
    CanaryConfig,
    Config,
    DeadlineConfig,
    PlayerConfig,
    RetryConfig,
    SpeechConfig,
    TextConfig,
)
from edge_voice.core.tts.edge import EdgeProvider
from edge_voice.core.tts.service import TTSService
from tests.fakes.discord_harness import (
    RecordingVoiceClient,
    SlashResult,
    TestBot,
    invoke_slash,
    running_test_bot,
    set_voice_channel,
)

SKIP_PREFIX = "--"
BREAKER = CircuitBreakerConfig(
    failure_threshold=0,
    consecutive_failures=2,
    cooldown_period=30.0,
    cooldown_jitter=0.0,
    success_threshold=1,
)


def make_config(**text: Any) -> Config:
    """Test config: one voice, one attempt, small deadlines, "NAME said" off unless asked."""
    text_settings = {"skip_prefix": SKIP_PREFIX, "announce_speaker": False, **text}
    return Config(
        speech=SpeechConfig(voice="de-DE-KillianNeural", backup_voices=()),
        breaker=BREAKER,
        retry=RetryConfig(attempts=1, backoff_base=0.0, backoff_max=0.0),
        deadlines=DeadlineConfig(connect=1.0, read=2.0, total=5.0),
        text=TextConfig(**text_settings),
        player=PlayerConfig(idle_timeout=300.0),
        canary=CanaryConfig(enabled=False),  # the next message after a cooldown is the trial
    )


@contextlib.asynccontextmanager
async def voice_bot(
    config: Config | None = None, *, service_clock: Clock = monotonic, **bot_options: Any
) -> AsyncIterator[TestBot]:
    """A running harness bot with ``cogs.voice`` loaded on an injected service.

    Needs the ``edge_server`` fixture active (edge-tts is pointed at it).
    """
    config = config or make_config()
    provider = EdgeProvider(connect_timeout=1.0, read_timeout=2.0)
    service = TTSService.from_config(config, provider, clock=service_clock)

    async def inject(bot: Any) -> None:
        bot.tts_context = TTSContext(config, service)

    try:
        async with running_test_bot(
            ["edge_voice.cogs.voice"], setup=inject, **bot_options
        ) as harness:
            yield harness
    finally:
        await service.close()


def voice_cog(tb: TestBot) -> VoiceCog:
    """The loaded cog. ``load_extension`` executes a fresh module object, so its class is not
    the ``VoiceCog`` imported here: compare by name."""
    cog = tb.bot.get_cog("Voice")
    assert cog is not None
    assert type(cog).__qualname__ == VoiceCog.__qualname__
    return cast(VoiceCog, cog)


def announce_speakers(cog: VoiceCog, every: float = 30.0) -> None:
    """Switch "NAME said" on (read when a guild is joined, so call this before /join)."""
    text = dataclasses.replace(cog.config.text, announce_speaker=True, announce_speaker_every=every)
    cog.config = dataclasses.replace(cog.config, text=text)
    cog.settings.config = cog.config  # the server settings' defaults come from the config


async def join(
    tb: TestBot, member: discord.Member, channel: discord.VoiceChannel | None = None
) -> SlashResult:
    """Put ``member`` in ``channel`` (default: the guild's voice channel) and run /join."""
    await set_voice_channel(member, channel or tb.voice_channel)
    return await invoke_slash(tb.bot, tb.guild, member, tb.text_channel, "join")


def voice_client(tb: TestBot) -> RecordingVoiceClient:
    [client] = tb.voice_clients
    return client


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for ``predicate`` to hold (polling the loop), failing after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def settled(tb: TestBot) -> None:
    """Wait until the guild's player has nothing queued or in progress."""
    player = voice_cog(tb).player(tb.guild)
    assert player is not None
    await until(lambda: not player.speaking and not player.pending)


def spoken_audio(packets: list[bytes]) -> tuple[bytes, float]:
    """Decode the packets that carried speech (the buffer's gap-filling silence left out)."""
    return decode_opus_packets([p for p in packets if p != OPUS_SILENCE_FRAME])


def posted(tb: TestBot) -> list[str]:
    """Contents the bot posted to the bound (default) text channel."""
    return [message.content or "" for message in tb.sent_to(tb.text_channel)]

"""What the TTS cogs of one bot share: the configuration and the synthesis service.

Both cogs call :func:`tts_context` and get the same object, created on first
use and stored on the bot. A host that wants a particular configuration sets
``bot.tts_config`` (a :class:`core.config.Config`) before loading the cogs;
otherwise ``$TTS_CONFIG`` or ``./config.toml`` is read. A host (or a test) may
also set ``bot.tts_context`` itself, for example to inject a service.
"""

from __future__ import annotations

from dataclasses import dataclass

from discord.ext import commands

from core.config import Config, load_default_config
from core.tts.service import TTSService

_ATTRIBUTE = "tts_context"


@dataclass
class TTSContext:
    """The configuration and the one service every TTS cog of a bot uses."""

    config: Config
    service: TTSService


def tts_context(bot: commands.Bot) -> TTSContext:
    """The bot's shared :class:`TTSContext`, created on first use."""
    context = getattr(bot, _ATTRIBUTE, None)
    if isinstance(context, TTSContext):
        return context
    config = getattr(bot, "tts_config", None)
    if not isinstance(config, Config):
        config = load_default_config()
    context = TTSContext(config=config, service=TTSService.from_config(config))
    setattr(bot, _ATTRIBUTE, context)
    return context

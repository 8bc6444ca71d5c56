"""What the TTS cogs of one bot share: configuration, service, cache, saved state.

Each cog calls :func:`acquire_tts_context` when it loads and
:func:`release_tts_context` when it unloads; they all get the same object,
created on first use and stored on the bot, and the last one out closes it
(canaries stop, the state file is closed). A host that wants a
particular configuration sets ``bot.tts_config`` (a :class:`core.config.Config`)
before loading the cogs; otherwise ``$TTS_CONFIG`` or ``./config.toml`` is read.
A host (or a test) may also set ``bot.tts_context`` itself, to inject a service;
then the host owns it and releasing never closes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from discord.ext import commands

from edge_voice.core.alerts import OperatorLog
from edge_voice.core.breaker.store import BreakerStateStore
from edge_voice.core.cache import AudioCache
from edge_voice.core.config import Config, load_default_config
from edge_voice.core.player import OfflineVoice
from edge_voice.core.tts.espeak import EspeakProvider
from edge_voice.core.tts.service import TTSService

log = logging.getLogger(__name__)

_ATTRIBUTE = "tts_context"


@dataclass
class TTSContext:
    """The configuration and the one service every TTS cog of a bot uses."""

    config: Config
    service: TTSService
    cache: AudioCache | None = None
    store: BreakerStateStore | None = None
    offline_voice: OfflineVoice | None = None
    operator_log: OperatorLog = field(default_factory=OperatorLog)
    """Warnings for the operators; the admin cog connects it to the log channel."""
    owned: bool = False
    """True when created here (and so closed here); False when the host injected it."""
    users: int = field(default=0, repr=False)

    async def close(self) -> None:
        """Stop the service's background work and close the state file."""
        await self.service.close()
        if self.store is not None:
            self.store.close()
        if self.offline_voice is not None and isinstance(
            self.offline_voice.provider, EspeakProvider
        ):
            self.offline_voice.provider.close()


def build_tts_context(config: Config) -> TTSContext:
    """A context from ``config``: Edge service, audio cache, saved breaker state,
    and the offline voice when ``[fallback] on_open`` asks for one."""
    service = TTSService.from_config(config)
    cache = None
    if config.cache.enabled:
        cache = AudioCache(
            config.cache.max_bytes,
            directory=config.cache.directory or None,
            max_disk_bytes=config.cache.max_disk_bytes,
        )
    store = None
    if config.state.persist:
        store = BreakerStateStore.in_data_dir(config.state.data_dir)
        for name, outcome in store.attach_service(service).items():
            log.info("breaker %s restored: %s", name, outcome.value)
    offline_voice = None
    if config.fallback.on_open != "text":
        offline_voice = OfflineVoice(
            EspeakProvider(config.fallback.offline_voices),
            also_post_text=config.fallback.on_open == "offline_voice_and_text",
        )
    return TTSContext(
        config=config,
        service=service,
        cache=cache,
        store=store,
        offline_voice=offline_voice,
        owned=True,
    )


def acquire_tts_context(bot: commands.Bot) -> TTSContext:
    """The bot's shared :class:`TTSContext`, created on first use; pair with a release."""
    context = getattr(bot, _ATTRIBUTE, None)
    if not isinstance(context, TTSContext):
        config = getattr(bot, "tts_config", None)
        if not isinstance(config, Config):
            config = load_default_config()
        context = build_tts_context(config)
        setattr(bot, _ATTRIBUTE, context)
    context.users += 1
    return context


async def release_tts_context(bot: commands.Bot) -> None:
    """A cog is done with the context; the last user closes one created here."""
    context = getattr(bot, _ATTRIBUTE, None)
    if not isinstance(context, TTSContext):
        return
    context.users = max(0, context.users - 1)
    if context.users == 0 and context.owned:
        delattr(bot, _ATTRIBUTE)
        await context.close()

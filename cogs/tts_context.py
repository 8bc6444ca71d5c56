"""What the TTS cogs of one bot share: configuration, service, cache, saved state.

Each cog calls :func:`acquire_tts_context` when it loads, awaits
:meth:`TTSContext.open_state` in its ``cog_load``, and calls
:func:`release_tts_context` when it unloads; they all get the same object,
created on first use and stored on the bot, and the last one out closes it
(canaries stop, the voice list stops refreshing, the state files are closed).

A host that wants a particular configuration sets ``bot.tts_config`` (a
:class:`core.config.Config`, e.g. from :func:`core.config.load_config`) before loading
the cogs; otherwise the file ``$TTS_CONFIG`` names is read, and without one the
built-in defaults apply with the data in the user's data directory (never the working
directory; see :func:`core.config_location.load_default_config`).

A host (or a test) may also set ``bot.tts_context`` itself, to inject a service; then
the host owns it and releasing never closes it. Such a context without a ``state`` gets
a store kept in memory (settings last until the process ends) and the shipped voice
list; the last cog out closes only what it opened.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from discord.ext import commands

from edge_voice.core.admission import StreamAdmission, admission_config
from edge_voice.core.alerts import OperatorLog
from edge_voice.core.audio import Converter
from edge_voice.core.breaker.store import BreakerStateStore
from edge_voice.core.cache import AudioCache
from edge_voice.core.config import Config
from edge_voice.core.config_location import load_default_config
from edge_voice.core.metered import instrument_service
from edge_voice.core.metrics import MetricsServer, TTSMetrics
from edge_voice.core.pacing import Pacer
from edge_voice.core.player import OfflineVoice
from edge_voice.core.shared_state import SharedBreakers
from edge_voice.core.storage.database import Database
from edge_voice.core.storage.store import IN_MEMORY, StateStore
from edge_voice.core.tts import edge_webm
from edge_voice.core.tts.espeak import EspeakProvider
from edge_voice.core.tts.service import TTSService
from edge_voice.core.tts.service_from_config import service_from_config
from edge_voice.core.voices.catalogue import VoiceCatalogue, shipped_catalogue
from edge_voice.core.voices.refresh import CatalogueKeeper, keeper_from_config

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
    state: StateStore | None = None
    """Server and member settings and saved sessions, once :meth:`open_state` ran (or
    as the host injected them)."""
    voices: CatalogueKeeper | None = None
    """The voice list in use, refreshed in the background (None: the shipped snapshot)."""
    shared: SharedBreakers | None = None
    """With ``[state] backend = "redis"``: the breakers every process of the bot shares
    (started by :meth:`open_state`, instead of the SQLite breaker store)."""
    metrics: TTSMetrics = field(default_factory=TTSMetrics)
    """The bot's Prometheus metrics; served on ``[metrics] port`` by a context built
    here (a host that injects its context may serve ``metrics.registry`` itself)."""
    metrics_server: MetricsServer | None = None
    admission: StreamAdmission | None = None
    """The process's voice streams and admission control, shared by every guild."""
    converter: Converter = field(default_factory=Converter)
    """The one worker thread every guild's audio conversion runs on."""
    pacer: Pacer = field(default_factory=Pacer)
    """The one thread sending every guild's packets (``[player] pacer = "shared"``)."""
    users: int = field(default=0, repr=False)
    _opening: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _opened: list[StateStore | CatalogueKeeper] = field(default_factory=list, repr=False)
    _uninstrument: Callable[[], None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._uninstrument = instrument_service(self.metrics, self.service, self.cache)
        if self.admission is not None:
            metrics = self.metrics
            self.admission.on_refused.append(lambda _kind: metrics.admission_refused())
        # A canary the input check refuses is the operators' to fix: tell them there.
        if self.service.canary is not None:
            self.service.canary.warn = self.operator_log.warn

    @property
    def catalogue(self) -> VoiceCatalogue:
        """The voice catalogue to answer from right now (no I/O)."""
        return self.voices.current if self.voices is not None else shipped_catalogue()

    @property
    def settings_store(self) -> StateStore:
        """:attr:`state`, which a cog's ``cog_load`` opened; raises if none did."""
        if self.state is None:
            raise RuntimeError("the TTS state store is not open: await open_state() first")
        return self.state

    async def open_state(self) -> StateStore:
        """The settings and sessions store, opened on first call (every cog awaits this
        in ``cog_load``; later calls return the same store).

        A context built here opens ``[state] data_dir/edge_voice.sqlite3`` on the store's
        worker thread and starts the voice list's background refresh; an injected one
        without a store gets :data:`~edge_voice.core.storage.store.IN_MEMORY`. Raises
        :class:`~edge_voice.core.storage.database.StorageError` for a file that cannot
        be used (the message names it and what to do).
        """
        async with self._opening:
            if self.state is not None:
                return self.state
            if self.shared is not None and self.owned:
                await self.shared.start()
                log.info("breaker state: shared through %s", self.config.state.redis_url)
            metrics = self.config.metrics
            if self.owned and metrics.port and self.metrics_server is None:
                # Binding is quick, but a thread start and a bind are still I/O.
                try:
                    self.metrics_server = await asyncio.to_thread(
                        MetricsServer, self.metrics.registry, metrics.host, metrics.port
                    )
                except OSError as error:  # speech goes on; the operator reads why
                    log.error(
                        "metrics not served: cannot listen on %s:%d (%s)",
                        metrics.host,
                        metrics.port,
                        error.strerror or error,
                    )
            if self.voices is None and self.owned:
                self.voices = keeper_from_config(self.config)
                self.voices.start()
                self._opened.append(self.voices)
            path = None if self.owned else IN_MEMORY
            if path is None:
                _warn_if_relative(self.config.state.data_dir)
            self.state = await StateStore.open(
                self.config, catalogue=lambda: self.catalogue, path=path
            )
            self._opened.append(self.state)
            where = path or Database.in_data_dir(self.config.state.data_dir)
            log.info("settings and sessions: %s", "memory only" if path else where)
            return self.state

    async def close_state(self) -> None:
        """Close what :meth:`open_state` opened (the store, the voice list refresh)."""
        opened, self._opened = self._opened, []
        for thing in reversed(opened):
            try:
                await thing.close()
            except Exception:  # one failed close must not keep the rest open
                log.exception("closing %r failed", thing)
            if thing is self.state:
                self.state = None
            elif thing is self.voices:
                self.voices = None

    async def close(self) -> None:
        """Stop the service's background work, the metrics server, and close the state
        files."""
        await self.service.close()
        if self._uninstrument is not None:
            self._uninstrument()
            self._uninstrument = None
        if self.metrics_server is not None:
            server, self.metrics_server = self.metrics_server, None
            await server.aclose()
        await self.close_state()
        if self.store is not None:
            self.store.close()
        if self.shared is not None:
            await self.shared.close()
        if self.offline_voice is not None and isinstance(
            self.offline_voice.provider, EspeakProvider
        ):
            self.offline_voice.provider.close()
        # Joining waits for the piece or tick in hand: off the loop.
        await asyncio.to_thread(self.converter.close)
        await asyncio.to_thread(self.pacer.close)


def _warn_if_relative(data_dir: str) -> None:
    # A Config built in code, not read by load_config: say where its data goes.
    if not Path(data_dir).is_absolute():
        log.warning(
            "[state] data_dir %r is relative to the working directory (%s); load the "
            "config with load_config() or give an absolute path",
            data_dir,
            os.path.abspath(data_dir),
        )


def build_tts_context(config: Config) -> TTSContext:
    """A context from ``config``: Edge service, audio cache, saved breaker state,
    and the offline voice when ``[fallback] on_open`` asks for one."""
    service = service_from_config(config, edge_webm.provider_for(config))
    cache = None
    if config.cache.enabled:
        cache = AudioCache(
            config.cache.max_bytes,
            directory=config.cache.directory or None,
            max_disk_bytes=config.cache.max_disk_bytes,
        )
    store = None
    shared = None
    if config.state.backend == "redis":
        shared = shared_breakers(config)
        shared.attach_service(service)
    elif config.state.persist:
        store = BreakerStateStore.in_data_dir(config.state.data_dir)
        for name, outcome in store.attach_service(service.breakers).items():
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
        admission=StreamAdmission(admission_config(config.player)),
        owned=True,
        shared=shared,
    )


def shared_breakers(config: Config) -> SharedBreakers:
    """The shared breaker state at ``[state] redis_url`` (needs the ``redis`` extra)."""
    try:
        from edge_voice.core.shared_state.redis_backend import RedisBackend
    except ImportError as missing:
        raise RuntimeError(
            '[state] backend = "redis" needs the redis client: pip install "edge-voice[redis]"'
        ) from missing
    # A trial's lease must outlast the longest synthesis it may wait on.
    return SharedBreakers(
        RedisBackend(config.state.redis_url), lease_ttl=config.deadlines.total + 15.0
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
    if context.users > 0:
        return
    if context.owned:
        delattr(bot, _ATTRIBUTE)
        await context.close()
    else:
        await context.close_state()

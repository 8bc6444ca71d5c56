"""Typed configuration, loaded from TOML and validated with clear errors.

Each ``[section]`` of ``config.toml`` maps to a frozen dataclass below. Every
key is optional (the dataclass default applies), unknown keys are errors (a
typo should not silently fall back to a default), and every problem names the
file, the key, what was expected and what was found. No secrets live here: the
Discord token comes only from the environment.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_type_hints

from edge_voice.core import config_checks
from edge_voice.core.breaker.state import CircuitBreakerConfig, config_problems
from edge_voice.core.config_values import ValueProblem, coerce_value
from edge_voice.core.voices.locales import AUTO, AUTO_DEFAULT_CHAIN


class ConfigError(ValueError):
    """A configuration value that cannot be used."""

    def __init__(self, source: str, key: str, expected: str, got: object) -> None:
        super().__init__(f"{source}: {key}: expected {expected}, got {got!r}")
        self.source = source
        self.key = key
        self.expected = expected
        self.got = got


@dataclass(frozen=True)
class SpeechConfig:
    """``[speech]``: which voices speak, and how.

    ``voice = "auto"`` picks the voice from each guild's locale (see
    :func:`core.voices.choice.choose_voice_chain`); ``backup_voices`` belong to a named
    voice. The prosody strings are held to the ranges of :mod:`core.tts.prosody`.
    """

    voice: str = AUTO
    backup_voices: tuple[str, ...] = ()
    rate: str = "+0%"
    volume: str = "+0%"
    pitch: str = "+0Hz"

    @property
    def voice_chain(self) -> tuple[str, ...]:
        """The chain for speech that no guild or person chose a voice for: the named
        voice and each backup voice once, in order; for ``"auto"`` the documented
        default (:data:`core.voices.locales.AUTO_DEFAULT_CHAIN`)."""
        if self.voice == AUTO:
            return AUTO_DEFAULT_CHAIN
        return tuple(dict.fromkeys((self.voice, *self.backup_voices)))


@dataclass(frozen=True)
class RetryConfig:
    """``[retry]``: attempts per voice before moving to the next voice."""

    attempts: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 4.0


@dataclass(frozen=True)
class DeadlineConfig:
    """``[deadlines]``: seconds; every network await is bounded by one of these."""

    connect: float = 10.0
    read: float = 30.0
    total: float = 45.0


@dataclass(frozen=True)
class TextConfig:
    """``[text]``: what gets read aloud from the bound text channel."""

    max_chars: int = 300
    skip_prefix: str = "!"
    announce_speaker: bool = True
    announce_speaker_every: float = 30.0


@dataclass(frozen=True)
class PlayerConfig:
    """``[player]``: the per-guild queue and voice connection."""

    queue_size: int = 20
    max_wait: float = 30.0
    idle_timeout: float = 300.0
    bitrate_kbps: int = 64
    stall_limit: float = 10.0
    """Seconds without new audio after which a started utterance gives up (and counts
    against the service: a stall is the service's fault)."""
    autojoin: bool = False
    """Default of the server setting: join the writer's voice channel when someone
    writes in the bound text channel while the bot is not connected."""
    voice_connect_timeout: float = 20.0
    """Seconds joining a voice channel may take; discord.py also bounds its own voice
    reconnects by it."""
    rejoin_attempts: int = 5
    """Times the bot rejoins its voice channel itself once discord.py gave up (0: never)."""
    rejoin_backoff: float = 1.0
    """Seconds before the first rejoin; doubled for each further one, up to 8 times it."""
    opus_complexity: int = 10
    """libopus complexity, 0 (cheapest) to 10 (libopus's default, best quality)."""
    cpu_budget: float = 0.0
    """Share of one core the voice streams may use (admission control; 0: off). A
    message that would need more is posted as text at once, with the reason."""
    stream_cost_ms: float = 34.0
    """CPU per second of audio of a stream that is converted (Edge's MP3, the offline
    voice), in ms: bench/voice_load.py's "CPU ms/s/stream", path mp3, N = 25 (33.8)."""
    replay_cost_ms: float = 7.0
    """The same for a stream needing no conversion (a cached phrase, Edge's WebM Opus):
    bench/voice_load.py, path webm-shared, N = 75..150 (6.2-8.4)."""
    max_streams: int = 0
    """Streams playing at once in this process, at most (0: no cap)."""
    pacer: Literal["per_guild", "shared"] = "per_guild"
    """Who sends each 20 ms packet: discord.py's player thread per guild, or one shared
    pacing thread for every guild (core/pacing.py)."""

    @property
    def bitrate(self) -> int:
        """The Opus bitrate in bits per second."""
        return self.bitrate_kbps * 1000


@dataclass(frozen=True)
class DiscordConfig:
    """``[discord]``: how the cogs present themselves in a server."""

    log_channel_id: int = 0
    admin_permission: str = "manage_guild"
    sync_commands: bool = True
    sync_guild_ids: tuple[int, ...] = ()
    log_coalesce_seconds: float = 10.0
    control_guild_ids: tuple[int, ...] = ()
    """Servers whose admins may run /tts reset and /tts mode, which act on every server
    the bot is in; empty: any server's admins."""
    shard_count: int = 0
    """Shards of the whole bot (0: not sharded); ``SHARD_COUNT`` overrides it."""
    shard_ids: tuple[int, ...] = ()
    """The shards this process serves (empty: all of them); ``SHARD_IDS`` overrides it."""


@dataclass(frozen=True)
class EdgeConfig:
    """``[edge]``: where the Edge service lives (used by the diagnostics)."""

    host: str = "speech.platform.bing.com"
    port: int = 443
    output_format: Literal["audio-24khz-48kbitrate-mono-mp3", "webm-24khz-16bit-mono-opus"] = (
        "audio-24khz-48kbitrate-mono-mp3"
    )
    """What Edge is asked for: MP3 through edge-tts (converted to Opus), or WebM Opus on
    our own request path, passed to Discord without decoding (core/tts/edge_webm.py)."""


@dataclass(frozen=True)
class FallbackConfig:
    """``[fallback]``: what listeners get while Edge cannot speak."""

    on_open: Literal["text", "offline_voice", "offline_voice_and_text"] = "text"
    offline_voices: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CacheConfig:
    """``[cache]``: finished utterances kept for repeated phrases."""

    enabled: bool = True
    max_bytes: int = 16 * 1024 * 1024
    directory: str = ""
    max_disk_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class CanaryConfig:
    """``[canary]``: the bot tests the service itself when a cooldown ends."""

    enabled: bool = True
    """False: the next listener message after a cooldown is the trial call."""
    text: str = "Test."
    idle_stop_after: float = 900.0


@dataclass(frozen=True)
class StateConfig:
    """``[state]``: where settings, sessions and breaker state survive restarts.

    A relative ``data_dir`` is resolved against the config file's folder."""

    persist: bool = True
    """Keep breaker state across restarts (settings and sessions are always kept)."""
    data_dir: str = "data"
    backend: Literal["sqlite", "redis"] = "sqlite"
    """Where breaker state lives: this process's SQLite file, or a Redis every process
    of the bot shares (``redis_url``)."""
    redis_url: str = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class VoicesConfig:
    """``[voices]``: the catalogue of Edge voices for autocomplete and validation."""

    refresh_interval: float = 86400.0
    """Seconds between fetches of Edge's voice list; 0: only the shipped snapshot."""
    fetch_timeout: float = 15.0


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``: Prometheus ``/metrics`` over HTTP (see the README's Metrics)."""

    port: int = 0
    """0: no metrics server (the default). Each process of a fleet needs its own port."""
    host: str = "127.0.0.1"
    """The address to serve on; another one only behind a firewall or a proxy."""


@dataclass(frozen=True)
class LoggingConfig:
    """``[logging]``."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    speech: SpeechConfig = field(default_factory=SpeechConfig)
    breaker: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    deadlines: DeadlineConfig = field(default_factory=DeadlineConfig)
    text: TextConfig = field(default_factory=TextConfig)
    player: PlayerConfig = field(default_factory=PlayerConfig)
    discord: DiscordConfig = field(default_factory=DiscordConfig)
    edge: EdgeConfig = field(default_factory=EdgeConfig)
    fallback: FallbackConfig = field(default_factory=FallbackConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    canary: CanaryConfig = field(default_factory=CanaryConfig)
    state: StateConfig = field(default_factory=StateConfig)
    voices: VoicesConfig = field(default_factory=VoicesConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


def load_config(path: str | Path) -> Config:
    """Read and validate ``path``; raise :class:`ConfigError` on any problem.

    Relative paths in it (``[state] data_dir``, ``[cache] directory``) are resolved
    against the file's folder, so the bot finds its data whatever its working directory.
    """
    source = str(path)
    text = _read_text(Path(path), source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "(file)", "valid TOML", str(exc)) from None
    # abspath, not resolve(): a symlinked config keeps its data beside the link.
    return resolve_paths(parse_config(data, source), Path(os.path.abspath(path)).parent)


def _read_text(path: Path, source: str) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(source, "(file)", "an existing TOML file", "no such file") from None
    except IsADirectoryError:
        raise ConfigError(source, "(file)", "a TOML file", "a directory") from None
    except PermissionError:
        raise ConfigError(source, "(file)", "a readable file", "permission denied") from None
    except OSError as exc:
        raise ConfigError(source, "(file)", "a readable file", exc.strerror or str(exc)) from None
    try:
        # A byte order mark (Windows editors) is not TOML but means no harm.
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        found = f"byte 0x{raw[exc.start]:02x} on line {line} (save the file as UTF-8)"
        raise ConfigError(source, "(file)", "UTF-8 text", found) from None


def resolve_paths(config: Config, base: Path) -> Config:
    """``config`` with its relative directories made absolute against ``base``."""

    def resolved(directory: str) -> str:
        if not directory:
            return directory
        expanded = Path(directory).expanduser()
        return str(expanded if expanded.is_absolute() else base / expanded)

    return dataclasses.replace(
        config,
        state=dataclasses.replace(config.state, data_dir=resolved(config.state.data_dir)),
        cache=dataclasses.replace(config.cache, directory=resolved(config.cache.directory)),
    )


RENAMED_KEYS = {
    "probe": "canary",
    "probe.mode": "canary.enabled",
    "probe.canary_text": "canary.text",
    "probe.idle_stop_after": "canary.idle_stop_after",
    "speech.fallback_voices": "speech.backup_voices",
}
"""Keys of earlier releases and what they are called now, so an old file gets a clear hint."""


def _unknown(source: str, key: str, known: str) -> ConfigError:
    renamed = RENAMED_KEYS.get(key)
    if renamed is not None:
        return ConfigError(source, key, f"the new name {renamed!r} (renamed)", key)
    return ConfigError(source, key, known, key)


def parse_config(data: dict[str, Any], source: str = "<config>") -> Config:
    """Validate an already parsed TOML document."""
    sections: dict[str, Any] = {}
    known = {f.name: f for f in dataclasses.fields(Config)}
    for name, value in data.items():
        if name not in known:
            raise _unknown(source, name, f"one of the sections {sorted(known)}")
        if not isinstance(value, dict):
            raise ConfigError(source, name, "a [table]", value)
        section_type = get_type_hints(Config)[name]
        sections[name] = _build_section(section_type, value, source, name)
    config = Config(**sections)
    _check_across_sections(config, source)
    return config


def _check_across_sections(config: Config, source: str) -> None:
    for key, expected, got in config_checks.canary_problems(
        config.canary.text, config.text.max_chars
    ):
        raise ConfigError(source, key, expected, got)


def _build_section(cls: type[Any], table: dict[str, Any], source: str, section: str) -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, raw in table.items():
        if key not in names:
            raise _unknown(source, f"{section}.{key}", f"one of {sorted(names)}")
        try:
            values[key] = coerce_value(raw, hints[key], f"{section}.{key}")
        except ValueProblem as problem:
            raise ConfigError(source, problem.key, problem.expected, problem.got) from None
    if cls is CircuitBreakerConfig:
        _check_breaker(values, source, section)
    for key, expected, got in config_checks.range_problems(values, section):
        raise ConfigError(source, f"{section}.{key}", expected, got)
    _check_values(values, source, section)
    return cls(**values)


def _check_values(values: dict[str, Any], source: str, section: str) -> None:
    problems: Iterable[tuple[str, str, object]] = ()
    if section == "speech":
        problems = config_checks.normalize_speech(values)
    elif section == "fallback":
        problems = config_checks.offline_voice_problems(values.get("offline_voices", {}))
    elif section == "discord" and "admin_permission" in values:
        problems = config_checks.permission_problems(values["admin_permission"])
    elif section == "state" and "redis_url" in values:
        problems = config_checks.redis_url_problems(values["redis_url"])
    for key, expected, got in problems:
        raise ConfigError(source, f"{section}.{key}", expected, got)


def _check_breaker(values: dict[str, Any], source: str, section: str) -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(CircuitBreakerConfig)}
    for key, expected, got in config_problems({**defaults, **values}):
        raise ConfigError(source, f"{section}.{key}", expected, got)

"""Typed configuration, loaded from TOML and validated with clear errors.

Each ``[section]`` of ``config.toml`` maps to a frozen dataclass below. Every
key is optional (the dataclass default applies), unknown keys are errors (a
typo should not silently fall back to a default), and every problem names the
file, the key, what was expected and what was found. No secrets live here: the
Discord token comes only from the environment.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from edge_voice.core.breaker.state import CircuitBreakerConfig, config_problems


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
    """``[speech]``: which voices speak, and how."""

    voice: str = "de-DE-KillianNeural"
    backup_voices: tuple[str, ...] = ("de-DE-ConradNeural",)
    rate: str = "+0%"
    volume: str = "+0%"
    pitch: str = "+0Hz"

    @property
    def voice_chain(self) -> tuple[str, ...]:
        """The primary voice, then each backup voice once, in order."""
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
    voice_connect_timeout: float = 20.0
    """Seconds joining a voice channel may take; discord.py also bounds its own voice
    reconnects by it."""
    rejoin_attempts: int = 5
    """Times the bot rejoins its voice channel itself once discord.py gave up (0: never)."""
    rejoin_backoff: float = 1.0
    """Seconds before the first rejoin; doubled for each further one, up to 8 times it."""

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


@dataclass(frozen=True)
class EdgeConfig:
    """``[edge]``: where the Edge service lives (used by the diagnostics)."""

    host: str = "speech.platform.bing.com"
    port: int = 443


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
    """``[state]``: where breaker state survives restarts."""

    persist: bool = True
    data_dir: str = "data"


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
    logging: LoggingConfig = field(default_factory=LoggingConfig)


def load_config(path: str | Path) -> Config:
    """Read and validate ``path``; raise :class:`ConfigError` on any problem."""
    source = str(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(source, "(file)", "an existing TOML file", "no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "(file)", "valid TOML", str(exc)) from None
    return parse_config(data, source)


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
    return Config(**sections)


def _build_section(cls: type[Any], table: dict[str, Any], source: str, section: str) -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, raw in table.items():
        if key not in names:
            raise _unknown(source, f"{section}.{key}", f"one of {sorted(names)}")
        values[key] = _coerce(raw, hints[key], source, f"{section}.{key}")
    if cls is CircuitBreakerConfig:
        _check_breaker(values, source, section)
    _check_ranges(values, source, section)
    return cls(**values)


def _check_breaker(values: dict[str, Any], source: str, section: str) -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(CircuitBreakerConfig)}
    for key, expected, got in config_problems({**defaults, **values}):
        raise ConfigError(source, f"{section}.{key}", expected, got)


_POSITIVE = {
    "attempts", "connect", "read", "total", "max_chars", "queue_size", "max_bytes",
    "voice_connect_timeout", "rejoin_backoff",
}  # fmt: skip
_NON_NEGATIVE = {
    "backoff_base", "backoff_max", "announce_speaker_every", "max_wait", "idle_timeout",
    "log_coalesce_seconds", "max_disk_bytes", "idle_stop_after", "log_channel_id",
    "rejoin_attempts",
}  # fmt: skip


def _check_ranges(values: dict[str, Any], source: str, section: str) -> None:
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if key in _POSITIVE and not value > 0:
            raise ConfigError(source, f"{section}.{key}", "a number > 0", value)
        if key in _NON_NEGATIVE and not value >= 0:
            raise ConfigError(source, f"{section}.{key}", "a number >= 0", value)
    if section == "edge" and "port" in values and not 0 < values["port"] < 65536:
        raise ConfigError(source, f"{section}.port", "a port number 1-65535", values["port"])
    if section == "player" and "bitrate_kbps" in values and not 8 <= values["bitrate_kbps"] <= 512:
        raise ConfigError(source, f"{section}.bitrate_kbps", "8 to 512", values["bitrate_kbps"])


def _coerce(raw: Any, hint: Any, source: str, key: str) -> Any:
    origin = get_origin(hint)
    args = get_args(hint)
    if origin in (Union, types.UnionType):
        # TOML has no null: 0 (or "") switches an optional policy off.
        if raw is None or raw == "" or (not isinstance(raw, bool) and raw == 0):
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(raw, inner[0], source, key)
    if origin is Literal:
        if raw not in args:
            raise ConfigError(source, key, "one of " + ", ".join(map(repr, args)), raw)
        return raw
    if origin is tuple:
        if not isinstance(raw, list):
            raise ConfigError(source, key, f"a list of {args[0].__name__}", raw)
        return tuple(_coerce(item, args[0], source, f"{key}[{i}]") for i, item in enumerate(raw))
    if origin is dict:
        if not isinstance(raw, dict):
            raise ConfigError(source, key, "a table of strings", raw)
        return {str(k): _coerce(v, args[1], source, f"{key}.{k}") for k, v in raw.items()}
    if hint is bool:
        if not isinstance(raw, bool):
            raise ConfigError(source, key, "true or false", raw)
        return raw
    if hint is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ConfigError(source, key, "an integer", raw)
        return raw
    if hint is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise ConfigError(source, key, "a number", raw)
        return float(raw)
    if hint is str:
        if not isinstance(raw, str):
            raise ConfigError(source, key, "a string", raw)
        return raw
    raise ConfigError(source, key, f"a value of type {hint}", raw)


CONFIG_PATH_ENV = "TTS_CONFIG"
"""Environment variable naming the config file for hosts that don't pass one."""


def find_config(
    environ: Mapping[str, str] | None = None, default_path: str | Path = "config.toml"
) -> Path | None:
    """Which file configures a host that names none: ``$TTS_CONFIG``, else
    ``default_path`` if it exists; None means the built-in defaults.

    A path named in the environment is returned even if missing, so loading it
    reports the mistake instead of silently using the defaults.
    """
    env = os.environ if environ is None else environ
    named = env.get(CONFIG_PATH_ENV)
    if named:
        return Path(named)
    default = Path(default_path)
    return default if default.is_file() else None


def load_default_config(
    environ: Mapping[str, str] | None = None, default_path: str | Path = "config.toml"
) -> Config:
    """The config of the file :func:`find_config` picks, or the defaults."""
    path = find_config(environ, default_path)
    return Config() if path is None else load_config(path)

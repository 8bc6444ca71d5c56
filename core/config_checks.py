"""Config values that parse but would fail later: checked when the config loads.

Each check yields ``(key, expected, got)`` problems (the key relative to its section,
or a full ``section.key`` for checks across sections) and knows nothing of files:
:mod:`core.config` turns the first problem into a :class:`core.config.ConfigError`.
Without these, ``rate = "fast"`` or ``voice = "Katja"`` pass and then every message
fails, ``admin_permission = "manage_guidl"`` makes ``/tts`` vanish, and a canary the
input check refuses keeps the breaker from ever closing.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

from edge_voice.core.discord_permissions import DISCORD_PERMISSIONS
from edge_voice.core.tts import prosody
from edge_voice.core.tts.errors import InvalidText, TTSError
from edge_voice.core.tts.espeak_voices import espeak_voices
from edge_voice.core.tts.text import check_speakable
from edge_voice.core.voices.catalogue import VoiceCatalogue, shipped_catalogue
from edge_voice.core.voices.locales import AUTO

Problem = tuple[str, str, object]

_PROSODY = {"rate": prosody.RATE, "volume": prosody.VOLUME, "pitch": prosody.PITCH}


def normalize_speech(values: dict[str, Any]) -> Iterator[Problem]:
    """Check ``[speech]``; rewrites lenient prosody (``"10%"``) to edge-tts's ``"+10%"``."""
    for key, spec in _PROSODY.items():
        if key in values:
            try:
                values[key] = prosody.normalize(spec, values[key])
            except prosody.ProsodyError:
                yield key, spec.expected, values[key]
    catalogue = shipped_catalogue()
    voice = values.get("voice")
    if voice is not None and voice != AUTO and not catalogue.has_exact(voice):
        yield "voice", f'"{AUTO}" or ' + _voice_expected(catalogue, voice), voice
    for index, backup in enumerate(values.get("backup_voices", ())):
        if not catalogue.has_exact(backup):
            yield f"backup_voices[{index}]", _voice_expected(catalogue, backup), backup
    if values.get("voice", AUTO) == AUTO and values.get("backup_voices"):
        yield (
            "backup_voices",
            f'[] with voice = "{AUTO}" (a voice picked from the guild\'s locale brings the '
            "other voices of its locale as backups); name a voice to use these",
            list(values["backup_voices"]),
        )


def _voice_expected(catalogue: VoiceCatalogue, name: str) -> str:
    expected = "a voice from Edge's voice list, spelled exactly (e.g. 'de-DE-KillianNeural')"
    nearest = catalogue.nearest(name)
    if nearest:
        expected += "; nearest: " + ", ".join(nearest)
    return expected


def offline_voice_problems(overrides: Mapping[str, str]) -> Iterator[Problem]:
    """Check ``[fallback] offline_voices``: keys an Edge voice, locale or language,
    values eSpeak voices the wheel has."""
    if not overrides:
        return
    catalogue = shipped_catalogue()
    try:
        available = espeak_voices()
    except TTSError as exc:
        yield "offline_voices", "the eSpeak NG data of the espeakng-loader wheel", str(exc)
        return
    for key, value in overrides.items():
        if key not in catalogue and not catalogue.voices_for(key):
            yield (
                f"offline_voices.{key}",
                "an Edge voice, locale or language as key (e.g. 'de-DE-KillianNeural', "
                "'de-DE' or 'de')",
                key,
            )
        if not available.has(value):
            yield (
                f"offline_voices.{key}",
                "an eSpeak NG voice the wheel has, e.g. " + available.examples(),
                value,
            )


def permission_problems(name: str) -> Iterator[Problem]:
    """Check ``[discord] admin_permission`` against Discord's permission names."""
    if name in DISCORD_PERMISSIONS:
        return
    expected = "a Discord permission name such as 'manage_guild' or 'administrator'"
    nearest = difflib.get_close_matches(name, DISCORD_PERMISSIONS, n=3)
    if nearest:
        expected += "; nearest: " + ", ".join(nearest)
    yield "admin_permission", expected, name


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def redis_url_problems(url: str) -> Iterator[Problem]:
    """Check ``[state] redis_url``: a URL the Redis client can open."""
    if not url.startswith(REDIS_SCHEMES):
        yield "redis_url", "a URL starting with " + ", ".join(REDIS_SCHEMES), url


def canary_problems(text: str, max_chars: int) -> Iterator[Problem]:
    """Check ``[canary] text``: speakable and within ``[text] max_chars``."""
    try:
        check_speakable(text, max_chars=max_chars)
    except InvalidText as exc:
        yield (
            "canary.text",
            f"a short phrase with letters that fits [text] max_chars ({max_chars}): {exc.message}",
            text,
        )


_POSITIVE = {
    "attempts", "connect", "read", "total", "max_chars", "queue_size", "max_bytes",
    "fetch_timeout",
    "voice_connect_timeout", "rejoin_backoff", "stream_cost_ms", "replay_cost_ms",
}  # fmt: skip
_NON_NEGATIVE = {
    "backoff_base", "backoff_max", "announce_speaker_every", "max_wait", "idle_timeout",
    "log_coalesce_seconds", "max_disk_bytes", "idle_stop_after", "log_channel_id",
    "refresh_interval",
    "rejoin_attempts", "shard_count", "cpu_budget", "max_streams",
}  # fmt: skip


def range_problems(values: Mapping[str, Any], section: str) -> Iterator[Problem]:
    """Numbers outside what their key allows (counts, seconds, ports, bitrates)."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if key in _POSITIVE and not value > 0:
            yield key, "a number > 0", value
        if key in _NON_NEGATIVE and not value >= 0:
            yield key, "a number >= 0", value
    if section == "edge" and "port" in values and not 0 < values["port"] < 65536:
        yield "port", "a port number 1-65535", values["port"]
    if section == "metrics" and "port" in values and not 0 <= values["port"] < 65536:
        yield "port", "0 (off) or a port 1-65535", values["port"]
    if section == "metrics" and "host" in values and not values["host"].strip():
        yield "host", "an address such as 127.0.0.1", ""
    if section == "player" and "bitrate_kbps" in values and not 8 <= values["bitrate_kbps"] <= 512:
        yield "bitrate_kbps", "8 to 512", values["bitrate_kbps"]
    complexity = values.get("opus_complexity") if section == "player" else None
    if complexity is not None and not 0 <= complexity <= 10:
        yield "opus_complexity", "0 to 10", complexity

"""Config loading: the shipped file is valid, and every mistake names file, key, expectation."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from edge_voice.core.breaker import CircuitBreakerConfig
from edge_voice.core.config import Config, ConfigError, load_config, parse_config, resolve_paths

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_matches_the_defaults() -> None:
    # Its relative data_dir is resolved against its folder, as every loaded file's is.
    assert load_config(ROOT / "config.toml") == resolve_paths(Config(), ROOT)


def test_shipped_config_mentions_every_key() -> None:
    text = (ROOT / "config.toml").read_text()
    for section in dataclasses.fields(Config):
        assert f"[{section.name}]" in text
        section_type = type(getattr(Config(), section.name))
        for key in dataclasses.fields(section_type):
            assert f"\n{key.name} = " in text, f"{section.name}.{key.name} is not documented"


def test_defaults_combine_both_seed_designs() -> None:
    breaker = Config().breaker
    assert breaker.consecutive_failures == 5
    assert (breaker.failure_threshold, breaker.window_size) == (0.5, 10)
    assert (breaker.cooldown_period, breaker.max_cooldown_period) == (60.0, 300.0)
    assert breaker.success_threshold == 3
    assert breaker.half_open_max_calls == 1
    # voice = "auto": with no guild locale to match, the seed's German voices speak.
    assert Config().speech.voice == "auto"
    assert Config().speech.voice_chain == ("de-DE-KillianNeural", "de-DE-ConradNeural")


def test_values_are_read() -> None:
    cfg = parse_config(
        {
            "breaker": {"consecutive_failures": 0, "cooldown_period": 5, "max_cooldown_period": 50},
            "speech": {"voice": "en-US-AriaNeural", "backup_voices": ["en-US-AriaNeural"]},
            "discord": {"sync_guild_ids": [1, 2]},
            "fallback": {"on_open": "offline_voice", "offline_voices": {"de-DE": "de"}},
        }
    )
    assert cfg.breaker == CircuitBreakerConfig(
        consecutive_failures=0, cooldown_period=5.0, max_cooldown_period=50.0
    )
    assert cfg.speech.voice_chain == ("en-US-AriaNeural",)
    assert cfg.discord.sync_guild_ids == (1, 2)
    assert cfg.fallback.offline_voices == {"de-DE": "de"}


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        ({"breaker": {"window_size": "ten"}}, "breaker.window_size", "an integer"),
        ({"breaker": {"failure_threshold": 1.5}}, "breaker.failure_threshold", "in (0, 1]"),
        (
            {"breaker": {"window_type": "count", "minimum_calls": 20}},
            "breaker.minimum_calls",
            "between 1 and window_size",
        ),
        (
            {"breaker": {"cooldown_period": 600}},
            "breaker.max_cooldown_period",
            ">= cooldown_period",
        ),
        ({"breaker": {"cooldwon_period": 1}}, "breaker.cooldwon_period", "one of"),
        ({"breakers": {}}, "breakers", "one of the sections"),
        ({"breaker": 3}, "breaker", "a [table]"),
        ({"deadlines": {"total": 0}}, "deadlines.total", "a number > 0"),
        ({"deadlines": {"read": True}}, "deadlines.read", "a number"),
        ({"text": {"announce_speaker": "yes"}}, "text.announce_speaker", "true or false"),
        ({"fallback": {"on_open": "voice"}}, "fallback.on_open", "one of"),
        ({"speech": {"backup_voices": "x"}}, "speech.backup_voices", "a list of str"),
        ({"discord": {"sync_guild_ids": ["1"]}}, "discord.sync_guild_ids[0]", "an integer"),
        ({"edge": {"port": 70000}}, "edge.port", "a port number"),
        ({"retry": {"backoff_base": -1}}, "retry.backoff_base", "a number >= 0"),
    ],
)
def test_errors_name_key_expectation_and_value(
    data: dict[str, object], key: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "my.toml")
    assert info.value.key == key
    assert expected in info.value.expected
    assert str(info.value).startswith(f"my.toml: {key}: expected ")


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[breaker\nwindow_size = 3\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: \(file\): expected valid TOML"):
        load_config(broken)


@pytest.mark.parametrize(
    ("document", "old", "new"),
    [
        ({"probe": {"mode": "canary"}}, "probe", "canary"),
        ({"speech": {"fallback_voices": []}}, "speech.fallback_voices", "speech.backup_voices"),
    ],
)
def test_a_renamed_key_names_its_new_name(document: dict[str, Any], old: str, new: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(document, "old.toml")
    assert caught.value.key == old
    assert repr(new) in str(caught.value)

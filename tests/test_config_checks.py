"""Config mistakes caught when the file loads (issue 9 §4), and the file itself (§1, §4)."""

from __future__ import annotations

import builtins
import os
from pathlib import Path
from typing import Any

import discord
import pytest

import edge_voice.bot as host
from edge_voice.core.config import ConfigError, load_config, parse_config
from edge_voice.core.discord_permissions import DISCORD_PERMISSIONS


@pytest.mark.parametrize(
    ("document", "key", "expected", "got"),
    [
        ({"speech": {"rate": "fast"}}, "speech.rate", 'a signed rate like "+10%"', "fast"),
        ({"speech": {"rate": "+500%"}}, "speech.rate", 'from "-50%" to "+100%"', "+500%"),
        ({"speech": {"pitch": "high"}}, "speech.pitch", 'from "-50Hz" to "+50Hz"', "high"),
        ({"speech": {"pitch": "+10%"}}, "speech.pitch", "signed pitch", "+10%"),
        ({"speech": {"volume": "+80%"}}, "speech.volume", 'to "+50%"', "+80%"),
        ({"speech": {"voice": "Katja"}}, "speech.voice", "nearest: de-DE-KatjaNeural", "Katja"),
        (
            {"speech": {"voice": "de-de-killianneural"}},
            "speech.voice",
            "spelled exactly",
            "de-de-killianneural",
        ),
        (
            {"speech": {"voice": "en-US-AriaNeural", "backup_voices": ["en-US-Jenny"]}},
            "speech.backup_voices[0]",
            "nearest: en-US-JennyNeural",
            "en-US-Jenny",
        ),
        (
            {"speech": {"backup_voices": ["de-DE-ConradNeural"]}},
            "speech.backup_voices",
            'with voice = "auto"',
            ["de-DE-ConradNeural"],
        ),
        (
            {"fallback": {"offline_voices": {"de-DE": "deu"}}},
            "fallback.offline_voices.de-DE",
            "an eSpeak NG voice the wheel has",
            "deu",
        ),
        (
            {"fallback": {"offline_voices": {"de-DE": "de+nosuch"}}},
            "fallback.offline_voices.de-DE",
            "an eSpeak NG voice",
            "de+nosuch",
        ),
        (
            {"fallback": {"offline_voices": {"Deutsch": "de"}}},
            "fallback.offline_voices.Deutsch",
            "an Edge voice, locale or language",
            "Deutsch",
        ),
        (
            {"discord": {"admin_permission": "manage_guidl"}},
            "discord.admin_permission",
            "nearest: manage_guild",
            "manage_guidl",
        ),
        ({"canary": {"text": "..."}}, "canary.text", "no letter or digit", "..."),
        ({"canary": {"text": ""}}, "canary.text", "text is empty", ""),
        ({"canary": {"text": "   "}}, "canary.text", "only whitespace", "   "),
        ({"canary": {"text": "👍👍"}}, "canary.text", "only emoji or symbols", "👍👍"),
        (
            {"canary": {"text": "Probe " * 10}, "text": {"max_chars": 20}},
            "canary.text",
            "fits [text] max_chars (20)",
            "Probe " * 10,
        ),
        ({"voices": {"fetch_timeout": 0}}, "voices.fetch_timeout", "a number > 0", 0.0),
        ({"voices": {"refresh_interval": -1}}, "voices.refresh_interval", ">= 0", -1.0),
    ],
)
def test_mistakes_are_caught_with_file_key_expected_and_found(
    document: dict[str, Any], key: str, expected: str, got: object
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(document, "bot.toml")

    error = caught.value
    assert (error.source, error.key, error.got) == ("bot.toml", key, got)
    assert expected in error.expected
    assert str(error) == f"bot.toml: {key}: expected {error.expected}, got {got!r}"


@pytest.mark.parametrize(
    "document",
    [
        {"speech": {"voice": "en-US-AriaNeural", "backup_voices": ["en-US-JennyNeural"]}},
        {"speech": {"rate": "-50%", "volume": "+50%", "pitch": "-50Hz"}},
        {"fallback": {"on_open": "offline_voice", "offline_voices": {"de-DE": "de"}}},
        {"fallback": {"offline_voices": {"en": "en-us+f3", "de-DE-KillianNeural": "gmw/de"}}},
        {"fallback": {"offline_voices": {"fr": "French (France)", "de": "German"}}},
        {"discord": {"admin_permission": "administrator"}},
        {"canary": {"text": "Hallo Welt"}, "text": {"max_chars": 10}},
    ],
)
def test_valid_values_pass(document: dict[str, Any]) -> None:
    parse_config(document)


def test_lenient_prosody_is_written_the_way_edge_tts_wants_it() -> None:
    speech = parse_config({"speech": {"rate": "10%", "volume": "- 5 %", "pitch": "3hz"}}).speech
    assert (speech.rate, speech.volume, speech.pitch) == ("+10%", "-5%", "+3Hz")


def test_the_permission_names_match_discord_py() -> None:
    assert set(DISCORD_PERMISSIONS) == set(discord.Permissions.VALID_FLAGS)
    assert len(DISCORD_PERMISSIONS) == len(set(DISCORD_PERMISSIONS))


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert str(caught.value) == f"{tmp_path}: (file): expected a TOML file, got 'a directory'"


def test_an_unreadable_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bot.toml"
    path.write_text("")
    real_open = builtins.open

    def refuse(file: Any, *args: Any, **kwargs: Any) -> Any:
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(file, *args, **kwargs)

    # Tests run as root here, where chmod 000 does not stop reading.
    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr("io.open", refuse)
    with pytest.raises(
        ConfigError, match=r"bot\.toml: \(file\): expected a readable file, got 'permission denied'"
    ):
        load_config(path)


def test_a_file_that_is_not_utf8_names_the_byte_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[canary]\ntext = "Prüfung"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.expected == "UTF-8 text"
    assert caught.value.got == "byte 0xfc on line 2 (save the file as UTF-8)"


def test_a_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf[text]\nmax_chars = 99\n")
    assert load_config(path).text.max_chars == 99


@pytest.mark.parametrize("make", ["directory", "latin1", "missing"])
def test_the_host_exits_2_for_a_bad_config_file(
    tmp_path: Path,
    make: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "bad.toml"
    if make == "directory":
        path.mkdir()
    elif make == "latin1":
        path.write_bytes(b"# \xe9\n")
    monkeypatch.setenv("TTS_CONFIG", str(path))

    assert host.main(["check"]) == host.EXIT_USAGE

    err = capsys.readouterr().err
    assert err.startswith(f"config error: {path}: (file): expected ")
    assert "Traceback" not in err


def test_relative_paths_are_resolved_against_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "bot.toml"
    path.write_text('[state]\ndata_dir = "state"\n[cache]\ndirectory = "../cache"\n')
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)

    config = load_config(Path("../../etc/bot.toml"))

    assert Path(config.state.data_dir) == (folder / "state").absolute()
    assert Path(config.cache.directory).resolve() == (tmp_path / "cache").resolve()
    absolute = tmp_path / "abs"
    path.write_text(f'[state]\ndata_dir = "{absolute}"\n')
    assert load_config(path).state.data_dir == str(absolute)
    assert load_config(path).cache.directory == ""  # memory only stays memory only

"""Where a host's data goes: beside its config file, else the user's data directory,
never the working directory."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

import bot as host
from edge_voice.core.config import Config
from edge_voice.core.config_location import (
    CONFIG_PATH_ENV,
    default_config,
    find_config,
    load_default_config,
    user_data_dir,
)


@pytest.mark.parametrize(
    ("platform", "environ", "expected"),
    [
        ("linux", {"HOME": "/home/ann"}, "/home/ann/.local/share/edge-voice"),
        ("linux", {"HOME": "/home/ann", "XDG_DATA_HOME": "/data"}, "/data/edge-voice"),
        # The XDG spec: a relative XDG_DATA_HOME is invalid and ignored.
        (
            "linux",
            {"HOME": "/home/ann", "XDG_DATA_HOME": "rel"},
            "/home/ann/.local/share/edge-voice",
        ),
        ("darwin", {"HOME": "/Users/ann"}, "/Users/ann/Library/Application Support/edge-voice"),
        ("win32", {"HOME": "/u/ann", "LOCALAPPDATA": "/appdata"}, "/appdata/edge-voice"),
    ],
)
def test_the_user_data_dir_follows_the_platform(
    platform: str, environ: dict[str, str], expected: str
) -> None:
    assert user_data_dir(environ, platform) == Path(expected)


def test_a_host_that_names_no_config_keeps_its_data_out_of_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text('[speech]\nrate = "+50%"\n')  # not the host's to give
    environ = {"HOME": str(tmp_path / "home")}

    with caplog.at_level(logging.INFO, logger="edge_voice.core.config_location"):
        config = load_default_config(environ)

    data_dir = tmp_path / "home" / ".local" / "share" / "edge-voice"
    assert config.state.data_dir == str(data_dir)
    assert config.speech == Config().speech  # ./config.toml was not read
    assert str(data_dir) in caplog.text
    assert find_config(environ) is None
    assert default_config(environ) == config


def test_a_config_named_in_the_environment_keeps_its_data_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "bot.toml"
    path.parent.mkdir()
    path.write_text('[state]\ndata_dir = "state"\n')
    config = load_default_config({CONFIG_PATH_ENV: str(path)})
    assert config.state.data_dir == str(tmp_path / "conf" / "state")


def test_the_reference_host_reads_its_own_config_only_in_a_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = {"HOME": str(tmp_path)}
    config, source = host.load_host_config(environ)
    assert host.IN_CHECKOUT
    assert source == str(host.DEFAULT_CONFIG)
    assert Path(config.state.data_dir) == host.DEFAULT_CONFIG.parent / "data"

    # Installed from the wheel, the config.toml beside bot.py is in site-packages.
    monkeypatch.setattr(host, "IN_CHECKOUT", False)
    config, source = host.load_host_config(environ)
    expected = tmp_path / ".local" / "share" / "edge-voice"
    assert config.state.data_dir == str(expected)
    assert str(expected) in source
    assert os.path.commonpath([config.state.data_dir, str(tmp_path)]) == str(tmp_path)

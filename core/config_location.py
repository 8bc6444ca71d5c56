"""Where a host's configuration and data are found when it passes no config.

A host passes its config as ``bot.tts_config`` or names the file in ``$TTS_CONFIG``;
without either the built-in defaults apply, with the data in the user's data directory
(never the working directory, which is wherever the host was started from).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from edge_voice.core.config import Config, load_config

log = logging.getLogger(__name__)

CONFIG_PATH_ENV = "TTS_CONFIG"
"""Environment variable naming the config file for hosts that don't pass one."""

APP_DIR_NAME = "edge-voice"
"""The folder in the user's data directory that holds a host's data when no config names
one (see :func:`user_data_dir`)."""


def find_config(
    environ: Mapping[str, str] | None = None, default_path: str | Path | None = None
) -> Path | None:
    """Which file configures a host that passes none: ``$TTS_CONFIG``, else
    ``default_path`` if given and it exists; None means the built-in defaults.

    A path named in the environment is returned even if missing, so loading it
    reports the mistake instead of silently using the defaults.
    """
    env = os.environ if environ is None else environ
    named = env.get(CONFIG_PATH_ENV)
    if named:
        return Path(named)
    if default_path is None:
        return None
    default = Path(default_path)
    return default if default.is_file() else None


def user_data_dir(environ: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """Where settings, sessions and the voice list live when no config file names a
    place: the user's data directory, never the working directory (a host's working
    directory is wherever it was started from).

    ``$XDG_DATA_HOME/edge-voice`` (default ``~/.local/share/edge-voice``) on Linux and
    other Unixes, ``~/Library/Application Support/edge-voice`` on macOS,
    ``%LOCALAPPDATA%\\edge-voice`` on Windows.
    """
    env = os.environ if environ is None else environ
    system = sys.platform if platform is None else platform
    home = Path(env.get("HOME") or Path.home())
    if system.startswith("win"):
        base = Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif system == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = env.get("XDG_DATA_HOME", "")
        # The XDG spec: a relative value is invalid and must be ignored.
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".local" / "share"
    return base / APP_DIR_NAME


def default_config(environ: Mapping[str, str] | None = None) -> Config:
    """The built-in defaults, with ``[state] data_dir`` in :func:`user_data_dir`."""
    config = Config()
    state = dataclasses.replace(config.state, data_dir=str(user_data_dir(environ)))
    return dataclasses.replace(config, state=state)


def load_default_config(environ: Mapping[str, str] | None = None) -> Config:
    """The config for a host that passes none: the file ``$TTS_CONFIG`` names, else
    :func:`default_config` (data in the user's data directory, logged)."""
    path = find_config(environ)
    if path is not None:
        return load_config(path)
    config = default_config(environ)
    log.info(
        "no config given (bot.tts_config or $%s): built-in defaults; settings, sessions "
        "and the voice list are kept in %s",
        CONFIG_PATH_ENV,
        config.state.data_dir,
    )
    return config

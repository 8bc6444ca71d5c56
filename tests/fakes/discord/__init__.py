"""A protocol-level fake Discord that the real, unmodified discord.py 2.7.1 logs into.

``from tests.fakes.discord import FakeDiscord, running_bot, discord_client_options``.
The names load lazily: ``launch.py`` must set ``SSL_CERT_FILE`` before anything imports
aiohttp (see there), and importing this package must not import aiohttp first.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FakeDiscord": "server",
    "discord_client_options": "client",
    "pointed_at": "client",
    "running_bot": "client",
    "OpusPackets": "client",
    "FastSleepLoop": "client",
    "opus_tone": "audio",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

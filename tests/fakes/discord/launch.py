"""Run a bot script in this process, pointed at a FakeDiscord running elsewhere.

    python -m tests.fakes.discord.launch SCRIPT [ARGS...]

Reads, from the environment (``launch_env(fake)`` builds them):

``FAKE_DISCORD_API``      the REST base, e.g. ``http://127.0.0.1:PORT/api/v10``
``FAKE_DISCORD_GATEWAY``  the gateway URL, e.g. ``ws://127.0.0.1:PORT/gateway``
``FAKE_DISCORD_CA``       the fake's CA certificate (PEM), for the voice websocket
``FAKE_EDGE_URL``         optional: a fake Edge server's ``ws://`` URL for edge-tts

then sets ``discord.http.Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY`` and runs
SCRIPT with :mod:`runpy` as ``__main__`` (``sys.argv`` becomes ``[SCRIPT, *ARGS]``), so an
unmodified host such as the project's ``bot.py`` talks to the fake.

The TLS hook: a script that builds its bot without ``connector=`` gets discord.py's own
``aiohttp.TCPConnector()``, whose SSL context aiohttp creates when it is imported, from
OpenSSL's default verify paths. The launcher therefore sets ``SSL_CERT_FILE`` to the
fake's CA *before anything imports aiohttp* (this module and the package's
``__init__`` import neither), so that default context trusts the voice endpoints. In
this process the default trust store is then the fake's CA only: nothing here should
reach a real TLS server anyway. A context built from an explicit CA file (certifi, as
edge-tts uses) is unaffected.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.fakes.discord.server import FakeDiscord

API_ENV = "FAKE_DISCORD_API"
GATEWAY_ENV = "FAKE_DISCORD_GATEWAY"
CA_ENV = "FAKE_DISCORD_CA"
EDGE_ENV = "FAKE_EDGE_URL"
REPO_ROOT = Path(__file__).resolve().parents[3]


def launch_env(
    fake: FakeDiscord, base: Mapping[str, str] | None = None, *, edge_url: str | None = None
) -> dict[str, str]:
    """``base`` (default: this process's environment) plus the launcher's variables;
    ``edge_url`` points the script's edge-tts at a fake Edge server.

    Also puts the repository root on ``PYTHONPATH`` so ``-m tests.fakes.discord.launch``
    resolves from any working directory.
    """
    env = dict(os.environ if base is None else base)
    env[API_ENV] = fake.api_base
    env[GATEWAY_ENV] = fake.gateway_url
    env[CA_ENV] = str(fake.ca_file)
    if edge_url is not None:
        env[EDGE_ENV] = edge_url
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    paths = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def launch_command(script: str | Path, *args: str) -> list[str]:
    """The argv that runs ``script`` through this launcher with this interpreter."""
    return [sys.executable, "-m", "tests.fakes.discord.launch", str(script), *args]


def point_discord(api: str, gateway: str) -> None:
    """Point discord.py's REST base and default gateway at the fake (imports discord)."""
    # Imported here, not at the top: only once SSL_CERT_FILE is set.
    import discord.gateway
    import discord.http
    import yarl

    discord.http.Route.BASE = api
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)


def point_edge(url: str) -> None:
    """Point edge-tts at a fake Edge server (imports edge-tts, and with it aiohttp)."""
    import edge_tts.communicate

    edge_tts.communicate.WSS_URL = url


def main(argv: Sequence[str]) -> None:
    """Point discord.py at the fake named by the environment, then run ``argv[0]``."""
    if not argv:
        raise SystemExit("usage: python -m tests.fakes.discord.launch SCRIPT [ARGS...]")
    try:
        api, gateway = os.environ[API_ENV], os.environ[GATEWAY_ENV]
    except KeyError as missing:
        raise SystemExit(f"launch: {missing.args[0]} is not set") from None
    ca = os.environ.get(CA_ENV)
    if ca:
        if "aiohttp" in sys.modules:
            raise SystemExit("launch: aiohttp was imported before SSL_CERT_FILE could be set")
        os.environ["SSL_CERT_FILE"] = ca
    point_discord(api, gateway)
    edge = os.environ.get(EDGE_ENV)
    if edge:
        point_edge(edge)
    script = str(Path(argv[0]))
    sys.argv = [script, *argv[1:]]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])

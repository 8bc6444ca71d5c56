"""Installing the plugin as a newcomer would, and running it in a host bot of their own.

:func:`build_wheel` runs ``pip wheel --no-deps`` on a copy of the project's packaged
files (so the checkout gets no ``build/``); :func:`fresh_venv` makes an empty virtual
environment and installs the wheel into it, either alone with the test environment's
dependencies visible through a ``.pth`` file (fast, offline) or with its pinned
dependencies from the package registry (the slow test). :func:`write_host` writes a
small host bot with its own ``cogs`` package, as most bots have, that loads
``edge_voice.cogs.voice`` and ``edge_voice.cogs.admin`` by name; :func:`run_host` runs it
against a :class:`FakeDiscord` and the fake Edge, from another working directory.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.launch import launch_env
from tests.fakes.edge_server import FakeEdgeServer

REPO = Path(__file__).resolve().parents[1]
PACKAGED = ("pyproject.toml", "README.md", "LICENSE", "config.toml", "bot.py", "core", "cogs")
"""What the wheel is built from (pyproject.toml's package-dir maps the folders)."""
LAUNCHER = REPO / "tests" / "fakes" / "discord" / "launch.py"
TOKEN = "host.bot.token"
EDGE_URL_ENV = "HOST_FAKE_EDGE_URL"


def _pip(*args: str, timeout: float) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")


def build_wheel(work: Path, *, isolated: bool = False) -> Path:
    """The project's wheel, built in ``work``. Without ``isolated`` the test environment's
    setuptools (pinned like ``[build-system]``) builds it, with no registry involved."""
    source = work / "source"
    source.mkdir()
    for name in PACKAGED:
        item = REPO / name
        if item.is_dir():
            shutil.copytree(item, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(item, source / name)
    dist = work / "dist"
    isolation = () if isolated else ("--no-build-isolation",)
    _pip("wheel", "--no-deps", *isolation, "--wheel-dir", str(dist), str(source), timeout=240)
    (wheel,) = dist.glob("edge_voice-*.whl")
    return wheel


def fresh_venv(work: Path, wheel: Path, *, with_dependencies: bool = False) -> Path:
    """A new virtual environment with ``wheel`` installed; its python.

    Without ``with_dependencies`` the wheel is installed alone and the environment sees
    this test environment's packages (not its edge_voice: an editable install's finder
    is activated by a ``.pth`` file, and ``.pth`` files are read only in site dirs).
    """
    venv = work / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60
    )
    python = venv / "bin" / "python"
    if with_dependencies:
        _pip("--python", str(python), "install", str(wheel), timeout=900)
        return python
    _pip("--python", str(python), "install", "--no-deps", "--no-index", str(wheel), timeout=120)
    ours = sysconfig.get_paths()["purelib"]
    (Path(site_packages_of(python)) / "test_environment_packages.pth").write_text(ours + "\n")
    return python


HOST_BOT = '''
"""A host bot of its own: its own cogs package, and the TTS plugin loaded by name."""

import os
import sys
from pathlib import Path

import discord
import edge_tts.communicate
from discord.ext import commands

import edge_voice.cogs
from edge_voice.core.config import load_config

# The test's one seam: edge-tts talks to the fake Edge server instead of Microsoft.
edge_tts.communicate.WSS_URL = os.environ["HOST_FAKE_EDGE_URL"]


class HostBot(commands.Bot):
    async def setup_hook(self) -> None:
        self.tts_config = load_config(Path(__file__).with_name("host.toml"))
        await self.load_extension("cogs.greeter")
        await self.load_extension("edge_voice.cogs.voice")
        await self.load_extension("edge_voice.cogs.admin")

    async def on_ready(self) -> None:
        print("READY", edge_voice.cogs.__file__, flush=True)


intents = discord.Intents.default()
intents.message_content = True
intents.members = True
HostBot(command_prefix="!", intents=intents, guild_ready_timeout=0.05).run(
    sys.argv[1], log_handler=None
)
'''

GREETER_COG = '''
"""The host's own cog: a prefix command the TTS cog must leave alone."""

from discord.ext import commands


class Greeter(commands.Cog):
    @commands.command()
    async def bye(self, ctx: commands.Context) -> None:
        await ctx.send("bye from the host")
        await ctx.bot.close()


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Greeter())
'''

HOST_CONFIG = """
[retry]
attempts = 1
[text]
announce_speaker = false
[cache]
enabled = false
[canary]
enabled = false
[voices]
refresh_interval = 0
[edge]
host = "127.0.0.1"
port = 9
[state]
data_dir = "data"
"""


def write_host(work: Path) -> Path:
    """The host's folder (``bot.py``, ``cogs/``, ``host.toml``); returns its bot.py."""
    host = work / "host"
    (host / "cogs").mkdir(parents=True)
    (host / "cogs" / "__init__.py").write_text("")
    (host / "cogs" / "greeter.py").write_text(textwrap.dedent(GREETER_COG))
    (host / "host.toml").write_text(textwrap.dedent(HOST_CONFIG))
    script = host / "bot.py"
    script.write_text(textwrap.dedent(HOST_BOT))
    return script


def host_env(fake: FakeDiscord, edge: FakeEdgeServer, home: Path) -> dict[str, str]:
    """The host's environment: pointed at the fakes, and nothing of this checkout on its
    path (the launcher is copied next to the host instead)."""
    env = launch_env(fake)
    env.pop("PYTHONPATH", None)
    env.pop("TTS_CONFIG", None)
    env[EDGE_URL_ENV] = edge.url
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["HOME"] = str(home)
    return env


async def start_host(
    python: Path, script: Path, fake: FakeDiscord, edge: FakeEdgeServer, work: Path
) -> asyncio.subprocess.Process:
    """Start the host from another working directory; returns once it printed READY
    (``process.ready_line`` holds that line)."""
    launcher = work / "launch.py"
    shutil.copy2(LAUNCHER, launcher)
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    process = await asyncio.create_subprocess_exec(
        str(python),
        str(launcher),
        str(script),
        TOKEN,
        cwd=elsewhere,
        env=host_env(fake, edge, work / "home"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(60):
            while True:
                line = (await process.stdout.readline()).decode()
                if not line:
                    raise AssertionError("the host exited before it was ready")
                if line.startswith("READY"):
                    process.ready_line = line.strip()  # type: ignore[attr-defined]
                    return process
    except BaseException:
        await stop(process)
        raise


async def stop(process: asyncio.subprocess.Process) -> str:
    """Kill the host if it still runs; its stderr."""
    if process.returncode is None:
        process.kill()
    _, stderr = await process.communicate()
    return stderr.decode(errors="replace")


def site_packages_of(python: Path) -> str:
    """The purelib directory of the environment of ``python``."""
    return subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()

"""The plugin installed from its wheel into a fresh virtual environment, loaded by name
into a host bot with its own ``cogs`` package, speaking one message through the fake
Discord and the fake Edge.

The normal test installs the wheel alone (the environment sees the test environment's
dependencies): about 10 s, no registry. The ``slow`` one installs it with its pinned
dependencies from the package registry, as ``pip install`` would for a newcomer; it is
left out of ``make test`` and run by ``make test-slow`` (``.ci/run``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.fakes.discord import FakeDiscord
from tests.fakes.edge_server import FakeEdgeServer
from tests.plugin_install_support import (
    build_wheel,
    fresh_venv,
    site_packages_of,
    start_host,
    stop,
    write_host,
)
from tests.plugin_support import SHORT_AUDIO, build_world, join

pytestmark = pytest.mark.timeout(300)


async def host_speaks(python: Path, work: Path) -> None:
    script = write_host(work)
    async with FakeEdgeServer(audio=SHORT_AUDIO) as edge, FakeDiscord() as fake:
        world = build_world(fake)
        process = await start_host(python, script, fake, edge, work)
        try:
            ready: str = process.ready_line  # type: ignore[attr-defined]
            # The wheel's edge_voice, not this checkout's.
            assert ready.split(" ", 1)[1].startswith(site_packages_of(python)), ready
            await join(world, world.alice)
            await fake.send_message(world.alice, world.text, "hello from a host bot")
            await fake.wait_for(lambda: edge.requests and edge.requests[0].text, timeout=10)
            await fake.wait_for(lambda: len(fake.voice_stream(world.guild).packets) > 5)
            await fake.send_message(world.alice, world.text, "!bye")  # the host's own command
            async with asyncio.timeout(20):
                code = await process.wait()
        finally:
            stderr = await stop(process)
        assert code == 0, stderr
        assert "bye from the host" in [m.content for m in fake.posted(world.text)]
        assert [r.short_voice for r in edge.requests] == ["en-US-AriaNeural"]
        assert [r.text for r in edge.requests] == ["hello from a host bot"]
    # Data beside the host's config file, not in the working directory it ran from.
    assert (work / "host" / "data" / "edge_voice.sqlite3").is_file()
    assert list((work / "elsewhere").iterdir()) == []


async def test_the_wheel_installs_into_a_fresh_venv_and_a_host_bot_loads_it(
    tmp_path: Path,
) -> None:
    wheel = build_wheel(tmp_path)
    python = fresh_venv(tmp_path, wheel)
    await host_speaks(python, tmp_path)


@pytest.mark.slow
async def test_pip_install_of_the_wheel_brings_its_pinned_dependencies(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, isolated=True)
    python = fresh_venv(tmp_path, wheel, with_dependencies=True)
    await host_speaks(python, tmp_path)

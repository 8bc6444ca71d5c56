"""A voice socket reader thread that starts late (``cogs/voice_link.socket_reader_started``).

discord.py 2.7.1 starts a ``SocketReader`` thread per voice connection; its ``run()``
first pauses it. If IP discovery registers its listener before that pause, the thread
stays paused with the listener registered and the discovery answer is never read. Here
the thread is made late on purpose (its ``run()`` sleeps first), as an unscheduled
thread on a loaded machine is, against the fake Discord.
"""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace
from typing import Any

import discord
import discord.voice_state
import pytest

from edge_voice.cogs.voice_link import LinkedVoiceClient, socket_reader_started
from tests.fake_discord_support import scene_and_bot
from tests.fakes.discord import OpusPackets
from tests.fakes.discord.audio import opus_tone

LATE = 0.3
"""Seconds the reader thread sleeps before its ``run()``: longer than the handshake."""


@pytest.fixture
def late_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    run = discord.voice_state.SocketReader.run

    def late_run(self: Any) -> None:
        time.sleep(LATE)
        run(self)

    monkeypatch.setattr(discord.voice_state.SocketReader, "run", late_run)


@pytest.mark.usefixtures("late_reader")
async def test_discord_py_alone_times_out_when_its_reader_starts_late() -> None:
    async with scene_and_bot() as (fake, scene, bot):
        channel = bot.get_channel(scene.voice.id)
        with pytest.raises(TimeoutError):
            await channel.connect(timeout=1.0)
        # The handshake went as far as IP discovery, whose answer nobody read.
        (endpoint,) = fake.endpoints
        assert [d.ssrc for d in endpoint.udp.stats.discoveries]
        assert not bot.voice_clients


@pytest.mark.usefixtures("late_reader")
async def test_the_linked_client_waits_for_the_reader_and_is_heard() -> None:
    async with scene_and_bot() as (fake, scene, bot):
        channel = bot.get_channel(scene.voice.id)
        started = time.monotonic()
        client = await channel.connect(timeout=2.0, cls=LinkedVoiceClient)
        assert LATE <= time.monotonic() - started < 2.0
        assert client.is_connected()
        client.play(OpusPackets(opus_tone(440.0, 0.5)))
        await fake.wait_for(lambda: fake.voice_stream(scene.guild).audio_packets >= 20, 3.0)
        assert fake.voice_stream(scene.guild).decrypt_failures == 0
        client.stop()
        await client.disconnect()


async def test_a_reader_that_never_starts_is_waited_for_only_within_the_bound() -> None:
    never = threading.Event()
    stuck = threading.Thread(target=never.wait, daemon=True)
    stuck.start()
    reader = SimpleNamespace(_idle_paused=True, is_alive=stuck.is_alive)
    client = SimpleNamespace(_connection=SimpleNamespace(_socket_reader=reader))
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await socket_reader_started(client, within=0.05) is False
    assert 0.05 <= loop.time() - started < 1.0
    reader._idle_paused = False
    assert await socket_reader_started(client, within=0.05) is True
    never.set()
    stuck.join()
    assert await socket_reader_started(SimpleNamespace(), within=0.05) is True

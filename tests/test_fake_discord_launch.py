"""The launcher: an unmodified bot script in a subprocess, pointed at the fake."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.fake_discord_support import build_scene
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.launch import API_ENV, launch_command, launch_env, main

# Builds its client without connector=: voice TLS works only through the launcher's
# SSL_CERT_FILE hook.
SCRIPT = """
import asyncio
import sys

import discord


class Frames(discord.AudioSource):
    def __init__(self) -> None:
        self.left = 10

    def read(self) -> bytes:
        self.left -= 1
        return b"\\xfc\\xff\\xfe" if self.left >= 0 else b""

    def is_opus(self) -> bool:
        return True


class Bot(discord.Client):
    async def on_ready(self) -> None:
        guild = self.guilds[0]
        voice = await guild.voice_channels[0].connect(timeout=5)
        done = asyncio.Event()
        voice.play(Frames(), after=lambda error: self.loop.call_soon_threadsafe(done.set))
        await done.wait()
        await voice.disconnect()
        await guild.text_channels[0].send(f"bye from {sys.argv[0].rsplit('/', 1)[-1]}")
        await self.close()


Bot(intents=discord.Intents.default(), guild_ready_timeout=0.05).run(
    sys.argv[1], log_handler=None
)
"""


async def test_a_bot_script_in_a_subprocess_uses_rest_gateway_and_voice(tmp_path: Path) -> None:
    script = tmp_path / "tiny_bot.py"
    script.write_text(SCRIPT)
    async with FakeDiscord() as fake:
        scene = build_scene(fake)
        process = await asyncio.create_subprocess_exec(
            *launch_command(script, "subprocess-token"),
            env=launch_env(fake),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), 20)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0, stderr.decode()
        assert [m.content for m in fake.posted(scene.text)] == ["bye from tiny_bot.py"]
        (identify,) = fake.gateway.identifies
        assert identify["d"]["token"] == "subprocess-token"
        # Sent before the bot left, so heard, but the reader thread may still be behind.
        await fake.wait_for(lambda: len(fake.voice_stream(scene.guild).packets) >= 15)
        stream = fake.voice_stream(scene.guild)
        assert len(stream.packets) == 15  # 10 frames and the 5 trailing silence frames
        assert stream.decrypt_failures == 0
        assert [r.channel_id for r in fake.voice_requests] == [scene.voice.id, None]
        await fake.wait_for(lambda: fake.gateway.closes)


def test_the_launcher_needs_the_fake_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_ENV, raising=False)
    with pytest.raises(SystemExit, match=API_ENV):
        main(["bot.py"])
    with pytest.raises(SystemExit, match="usage"):
        main([])
    assert launch_command("bot.py", "x")[:3] == [sys.executable, "-m", "tests.fakes.discord.launch"]

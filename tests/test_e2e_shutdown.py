"""End to end: stopping the host while it speaks one message and two wait (issue 8, defect 3).

The signal tests run the unmodified ``bot.py`` in a subprocess (through the fake
Discord's launcher, which also points its edge-tts at the fake Edge) and send it SIGINT
or SIGTERM while the first of three messages is being spoken. The other test stops a
host the way ``bot.run()`` does after Ctrl-C: ``Client.close()`` inside a task that was
cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_voice.bot import TTSBot
from edge_voice.core.breaker.store import STATE_FILE_NAME
from edge_voice.core.storage.database import FILE_NAME as SETTINGS_FILE_NAME
from tests.e2e_support import e2e_config, text_post_for_member
from tests.fake_discord_support import Scene, build_scene
from tests.fakes.audio_samples import edge_like_mp3
from tests.fakes.discord import FakeDiscord, discord_client_options, pointed_at
from tests.fakes.discord.client import FAKE_TOKEN
from tests.fakes.discord.gateway import NO_CLOSE_FRAME
from tests.fakes.discord.launch import launch_command, launch_env
from tests.fakes.edge_server import FakeEdgeServer, edge_client_pointed_at

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
MESSAGES = ("Eins wird gesprochen", "Zwei wartet", "Drei wartet auch")
AUDIO_SECONDS = 1.5
"""The first message is still playing when the signal arrives, and ends within the grace."""
EXIT_WITHIN = 10.0

# voice_connect_timeout bounds a first join whose handshake goes unanswered (see
# speak_three) and leaves a bot process that has just started room on a loaded machine.
CONFIG = """
[discord]
sync_guild_ids = [{guild}]
[state]
data_dir = "{data}"
[player]
voice_connect_timeout = 5.0
[edge]
host = "127.0.0.1"
port = 9
[text]
announce_speaker = false
[retry]
attempts = 1
[logging]
level = "INFO"
"""


@dataclass(eq=False)
class World:
    fake: FakeDiscord
    edge: FakeEdgeServer
    scene: Scene


@contextlib.asynccontextmanager
async def fakes() -> AsyncIterator[World]:
    async with (
        FakeDiscord() as fake,
        FakeEdgeServer(audio=edge_like_mp3(AUDIO_SECONDS)) as edge,
    ):
        yield World(fake, edge, build_scene(fake))


async def speak_three(world: World) -> None:
    """alice joins, runs /join, writes three messages; returns once the first is heard."""
    fake, scene = world.fake, world.scene
    await fake.set_voice_state(scene.alice, scene.voice)
    # The join is only the way in. In 2 of 5 CI runs from a fresh clone the subprocess
    # bot's first voice handshake did not complete (discord.py: "Timed out connecting to
    # voice"); a late socket reader thread fits (tests/README.md) and LinkedVoiceClient
    # now waits for it. A second /join is still allowed, and a first failure is logged
    # with what the fake's gateway saw and sent.
    for attempt in (1, 2):
        try:
            # connect_voice bounds a join by twice the connect timeout (5 s here).
            record = await fake.invoke_slash(scene.alice, scene.text, "join", timeout=15)
        except TimeoutError:
            story = f"/join unanswered; {gateway_story(fake)}"
        else:
            if "Joined" in record.texts[-1]:
                break
            story = f"/join answered {record.texts[-1]!r}; {gateway_story(fake)}"
        if attempt == 2:
            raise AssertionError(story)
        logger.warning("the first /join failed, trying once more: %s", story)
    for text in MESSAGES:
        await fake.send_message(scene.alice, scene.text, text)
    await fake.wait_for(lambda: fake.voice_stream(scene.guild).audio_packets >= 10, 10)


def gateway_story(fake: FakeDiscord) -> str:
    """What the fake's gateway saw and sent, for a join that went wrong."""
    lines = [f"op 4s: {[(r.channel_id, round(r.time, 3)) for r in fake.voice_requests]}"]
    for conn in fake.gateway.connections:
        ops = [p.get("op") for p in conn.received]
        lines.append(f"connection {conn.index}: client ops {ops}, close {conn.close}")
    for session in fake.gateway.sessions.values():
        lines.append(f"session {session.session_id[:6]}: dispatched {session.dispatched()}")
    return "; ".join(lines)


def check_nothing_lost(world: World) -> None:
    """The first message heard to its end (or cut and posted), the two queued ones posted
    as text, in order; and the bot left voice."""
    fake, scene = world.fake, world.scene
    posts = [m.content for m in fake.posted(scene.text)]
    first, *queued = (text_post_for_member(scene.alice, text) for text in MESSAGES)
    heard = [u for u in fake.voice_stream(scene.guild).utterances() if u.trailing_silence >= 5]
    if first in posts:
        assert posts == [first, *queued]
    else:
        assert posts == queued
        (utterance,) = heard
        assert utterance.duration == pytest.approx(AUDIO_SECONDS, abs=0.1)
    assert fake.voice_requests[-1].channel_id is None


STATE_FILES = sorted([STATE_FILE_NAME, SETTINGS_FILE_NAME])
"""The breaker state and the settings store: both closed at shutdown."""


def check_state_file_closed(data: Path) -> None:
    """SQLite removes the WAL when the last connection closes cleanly; the files reopen."""
    for name in STATE_FILES:
        state = data / name
        assert state.exists()
        assert not state.with_name(name + "-wal").exists()
        with contextlib.closing(sqlite3.connect(state)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize(
    "signal_number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"]
)
async def test_a_signal_posts_the_queue_leaves_voice_and_exits_0(
    tmp_path: Path, signal_number: signal.Signals
) -> None:
    data = tmp_path / "data"
    async with fakes() as world:
        fake, scene = world.fake, world.scene
        config = tmp_path / "config.toml"
        config.write_text(CONFIG.format(guild=scene.guild.id, data=data))
        env = launch_env(fake, edge_url=world.edge.url)
        env.update(DISCORD_TOKEN=FAKE_TOKEN, TTS_CONFIG=str(config), PYTHONUNBUFFERED="1")
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        log = tmp_path / "bot.log"
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                *launch_command(ROOT / "bot.py"),
                cwd=ROOT,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
            )
        try:
            await fake.wait_for(lambda: "logged in as" in log.read_text(), 30)
            await speak_three(world)
            sent = time.monotonic()
            process.send_signal(signal_number)
            returncode = await asyncio.wait_for(process.wait(), EXIT_WITHIN + 5)
            took = time.monotonic() - sent
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        output = log.read_text()
        closes = [c.code for c in fake.gateway.closes]
        logger.info(
            "%s: exit %s after %.2fs, gateway closes %s",
            signal_number.name,
            returncode,
            took,
            closes,
        )
        assert returncode == 0, output
        assert took < EXIT_WITHIN, output
        assert f"{signal_number.name} received" in output
        check_nothing_lost(world)
        (close,) = fake.gateway.closes
        assert close.code not in (None, NO_CLOSE_FRAME), close  # a close frame, not a drop
        assert close.initiator == "client"
        check_state_file_closed(data)


async def test_close_inside_a_cancelled_task_still_posts_the_queue_and_leaves_voice(
    tmp_path: Path,
) -> None:
    async with fakes() as world:
        fake, scene = world.fake, world.scene
        # The default idle timeout: its watcher is one of the tasks close() must stop.
        config = e2e_config(
            scene, tmp_path, player={"voice_connect_timeout": 5.0, "idle_timeout": 300.0}
        )
        with pointed_at(fake), edge_client_pointed_at(world.edge.url):
            bot = TTSBot(config, **discord_client_options(fake))

            async def main() -> None:  # what bot.run() runs under asyncio.run()
                async with bot:
                    await bot.start(FAKE_TOKEN)

            task = asyncio.create_task(main())
            await asyncio.wait_for(bot.wait_until_ready(), 10)
            await speak_three(world)
            sent = time.monotonic()
            task.cancel()  # asyncio.run's answer to Ctrl-C
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, EXIT_WITHIN)
            took = time.monotonic() - sent
        logger.info("cancelled main task: closed after %.2fs", took)
        assert took < EXIT_WITHIN
        assert bot.is_closed()
        check_nothing_lost(world)
        check_state_file_closed(tmp_path / "data")
        assert sorted(os.listdir(tmp_path / "data")) == STATE_FILES

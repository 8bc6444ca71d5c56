"""End to end: the main gateway misbehaves while messages are queued; nothing is lost.

discord.py resumes after op 7 RECONNECT, op 9 INVALID_SESSION (resumable) and a dropped
socket (tests/README.md); the voice connection has its own websocket and keeps playing.
Messages sent while the gateway is away are replayed on RESUME, so they are spoken too.

A non-resumable op 9 is a new session (re-IDENTIFY, a new READY): discord.py forgets its
voice client, which stays connected with its websocket, UDP socket, threads and tasks.
The voice link closes it and joins again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from edge_voice.bot import TTSBot
from edge_voice.cogs.voice_link import library_view
from edge_voice.core.voice_link import VOICE_LOST_NOTICE
from tests.e2e_support import (
    E2E,
    e2e_bot,
    open_voice_sockets,
    text_post_for_member,
    voice_tasks,
)
from tests.fakes.audio_samples import edge_like_mp3

FAULTS: dict[str, Callable[[E2E], Awaitable[None]]] = {
    "op 7 reconnect": lambda e2e: e2e.fake.reconnect(),
    "op 9 resumable": lambda e2e: e2e.fake.invalidate_session(resumable=True),
    "dropped socket": lambda e2e: _drop(e2e),
}


async def _drop(e2e: E2E) -> None:
    e2e.fake.drop_gateway()


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_queued_messages_are_all_spoken_across_a_gateway_resume(
    tmp_path: Path, fault: str
) -> None:
    async with e2e_bot(tmp_path, audio_seconds=0.3) as e2e:
        await e2e.join()
        for text in ("Eins", "Zwei", "Drei"):
            await e2e.say_in_channel(text)
        await e2e.wait_for(lambda: e2e.stream().audio_packets >= 5)

        await FAULTS[fault](e2e)
        await e2e.say_in_channel("Vier")  # while the gateway is away: replayed on RESUME
        await e2e.wait_for(lambda: len(e2e.fake.gateway.resumes) == 1)

        heard = await e2e.wait_heard(4, timeout=10)
        assert len(heard) == 4
        assert e2e.posts() == []
        assert [r.text for r in e2e.edge.requests[-4:]] == ["Eins", "Zwei", "Drei", "Vier"]
        assert len(e2e.fake.gateway.identifies) == 1
        assert e2e.voice_cog.sessions.by_guild[e2e.scene.guild.id].supervisor.faults == 0


class QuickTTSBot(TTSBot):
    """The host without discord.py's 5 s sleep before a non-initial IDENTIFY."""

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No sleep: the fake has no identify rate limit (a public hook, meant for this)."""


def stranded_closed(client: Any) -> bool:
    """Whether ``client`` has let go of everything discord.py gave it."""
    connection = client._connection
    return (
        not client.is_connected()
        and not library_view(client).working
        and not connection._socket_reader.is_alive()
        and connection.socket.fileno() == -1
        and client.ws.ws.closed
    )


async def test_a_new_session_closes_the_forgotten_voice_client_and_rejoins(
    tmp_path: Path,
) -> None:
    texts = ("Eins", "Zwei", "Drei")
    async with e2e_bot(tmp_path, audio_seconds=1.0, bot_cls=QuickTTSBot) as e2e:
        await e2e.join()
        for text in texts:
            await e2e.say_in_channel(text)
        await e2e.wait_for(lambda: e2e.stream().audio_packets >= 5)
        stranded = e2e.voice_client()

        await e2e.fake.invalidate_session(resumable=False)
        await e2e.wait_for(lambda: len(e2e.fake.gateway.identifies) == 2)
        await e2e.wait_for(
            lambda: (vc := e2e.voice_client()) not in (None, stranded) and vc.is_connected(), 6
        )
        await e2e.settled()

        # Nothing lost: each message was heard whole or posted as text, the cut one first.
        # The last one is heard once its trailing silence has reached the fake's reader
        # thread, which may be behind the player that has already finished.
        def accounted() -> int:
            whole = [u for u in e2e.heard() if u.duration >= 0.9]
            return len(whole) + len(e2e.text_posts())

        with contextlib.suppress(TimeoutError):
            await e2e.wait_for(lambda: accounted() >= len(texts), 2)
        assert accounted() == len(texts), (e2e.heard(), e2e.text_posts())
        assert e2e.text_posts()[0] == text_post_for_member(e2e.member, "Eins")
        assert e2e.notices() == [VOICE_LOST_NOTICE]
        # The forgotten client is closed, by discord.py's objects and by the fake's count.
        await e2e.wait_for(lambda: stranded_closed(stranded), 3)
        await e2e.wait_for(lambda: len(open_voice_sockets(e2e.fake)) == 1, 3)
        assert e2e.bot.voice_clients == [e2e.voice_client()]
        voice = e2e.scene.voice.id
        # The join, the forgotten client's leave, the rejoin (a rejoin that timed out on a
        # loaded machine is retried, which adds a leave and a join).
        op4 = [r.channel_id for r in e2e.fake.voice_requests]
        assert (op4[:3], op4[-1]) == ([voice, None, voice], voice)
        assert e2e.voice_client().channel.id == voice
        # Only the new client's socket reader and keep-alive are left.
        await e2e.wait_for(lambda: len(e2e.voice_threads()) == 2, 3)

        e2e.edge.audio = edge_like_mp3(0.4)
        await e2e.say_in_channel("Wieder da")
        await e2e.wait_heard(len(e2e.heard()) + 1)
        assert e2e.notices() == [VOICE_LOST_NOTICE]

        # Shutting down afterwards still leaves voice and lets go of everything.
        await e2e.bot.close()
        assert e2e.fake.voice_requests[-1].channel_id is None
        await e2e.wait_for(lambda: not open_voice_sockets(e2e.fake), 3)
        await e2e.wait_for(lambda: not e2e.voice_threads() and not voice_tasks(), 3)
        assert e2e.bot.voice_clients == []

"""Gateway faults as discord.py 2.7.1 handles them: reconnect, resume, re-identify, close."""

from __future__ import annotations

import asyncio

import discord
import pytest

from tests.fake_discord_support import QuickBot, build_scene, make_bot, scene_and_bot
from tests.fakes.discord import FakeDiscord, pointed_at, running_bot


def listen(bot: QuickBot, event: str) -> asyncio.Queue[object]:
    """A queue that receives every ``event`` dispatch's first argument (or None)."""
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def listener(*args: object) -> None:
        await queue.put(args[0] if args else None)

    bot.add_listener(listener, f"on_{event}")
    return queue


async def test_op7_reconnect_resumes_and_replays_what_was_missed() -> None:
    async with scene_and_bot() as (fake, scene, bot):
        messages, resumed = listen(bot, "message"), listen(bot, "resumed")
        await fake.reconnect()
        # Sent right behind op 7: discord.py stops reading that socket after op 7, so this
        # reaches it only through the replay buffer.
        await fake.send_message(scene.alice, scene.text, "while away")
        await asyncio.wait_for(resumed.get(), 3)
        message = await asyncio.wait_for(messages.get(), 1)
        assert message.content == "while away"  # type: ignore[attr-defined]
        assert messages.empty()  # exactly once

        first, second = fake.gateway.connections
        assert first.close is not None
        assert (first.close.code, first.close.initiator) == (4000, "client")
        assert (second.path, second.resumed, second.replayed) == ("/resume", True, 1)
        assert len(fake.gateway.identifies) == 1
        (resume,) = fake.gateway.resumes
        assert resume["d"]["session_id"] == first.session.session_id  # type: ignore[union-attr]
        assert bot.identify_calls == [(None, True)]  # the first IDENTIFY only


async def test_a_dropped_socket_is_resumed() -> None:
    async with scene_and_bot() as (fake, scene, bot):
        messages, resumed = listen(bot, "message"), listen(bot, "resumed")
        fake.drop_gateway()
        # Dispatched before the client can notice the drop: it can only arrive by replay.
        await fake.send_message(scene.alice, scene.text, "during the outage")
        await asyncio.wait_for(resumed.get(), 3)
        message = await asyncio.wait_for(messages.get(), 1)
        assert message.content == "during the outage"  # type: ignore[attr-defined]
        first, second = fake.gateway.connections
        assert first.close is not None
        assert (first.close.code, first.close.initiator) == (None, "server")  # no close frame
        assert second.resumed
        assert second.replayed == 1
        assert len(fake.gateway.identifies) == 1


@pytest.mark.parametrize("how", ["invalid-session", "resume-refused"])
async def test_a_session_that_cannot_resume_is_identified_again(how: str) -> None:
    async with scene_and_bot() as (fake, scene, bot):
        ready = listen(bot, "ready")
        if how == "invalid-session":
            await fake.invalidate_session(resumable=False)
        else:
            fake.refuse_next_resume()
            fake.drop_gateway()
        await asyncio.wait_for(ready.get(), 3)
        assert len(fake.gateway.identifies) == 2
        # discord.py calls the hook before a non-initial IDENTIFY; its default sleeps 5 s.
        assert bot.identify_calls == [(None, True), (None, False)]
        last = fake.gateway.connections[-1]
        assert last.identified
        # After op 9 discord.py goes back to the default gateway; after a refused RESUME it
        # still holds the resume_gateway_url and IDENTIFYs there.
        assert last.path == ("/gateway" if how == "invalid-session" else "/resume")
        closes = [c.code for c in fake.gateway.closes]
        assert closes == ([1000] if how == "invalid-session" else [None, 1000])
        if how == "resume-refused":
            assert len(fake.gateway.resumes) == 1
        await fake.send_message(scene.alice, scene.text, "new session")
        message = await asyncio.wait_for(listen(bot, "message").get(), 2)
        assert message.content == "new session"  # type: ignore[attr-defined]


async def test_a_resumable_invalid_session_is_resumed() -> None:
    async with scene_and_bot() as (fake, _, bot):
        resumed = listen(bot, "resumed")
        await fake.invalidate_session(resumable=True)
        await asyncio.wait_for(resumed.get(), 3)
        assert [c.code for c in fake.gateway.closes] == [4000]
        assert len(fake.gateway.identifies) == 1


async def test_close_sends_a_close_frame_with_4000_not_1000() -> None:
    async with FakeDiscord(heartbeat_interval=0.05) as fake:
        build_scene(fake)
        bot = make_bot(fake)
        async with running_bot(fake, bot):
            await fake.wait_for(lambda: len(fake.gateway.connections[0].ops(1)) >= 3)
            assert bot.latency < 1.0  # heartbeats are ACKed
        await fake.wait_for(lambda: fake.gateway.closes)
        (close,) = fake.gateway.closes
        # Client.close() asks for 1000, but aiohttp first wakes the pending receive() with
        # CLOSING and discord.py's poll_event answers that with close(4000), which goes out
        # first: Discord sees a resumable disconnect, not a logout.
        assert (close.code, close.initiator) == (4000, "client")


async def test_an_authentication_close_stops_the_bot() -> None:
    async with FakeDiscord() as fake:
        build_scene(fake)
        bot = make_bot(fake)
        with pointed_at(fake):
            await bot.login("token")
            runner = asyncio.create_task(bot.connect())
            try:
                await fake.wait_for(lambda: fake.gateway.identifies, 2)
                await fake.close_gateway(4004)
                with pytest.raises(discord.ConnectionClosed) as closed:
                    await asyncio.wait_for(runner, 2)
            finally:
                await bot.close()
        assert closed.value.code == 4004
        assert bot.is_closed()
        assert len(fake.gateway.connections) == 1  # no reconnect

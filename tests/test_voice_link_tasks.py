"""Stopping discord.py's voice tasks (``cogs/voice_link.stop_library_tasks``).

The poller reads its websocket through ``asyncio.wait_for``; on Python 3.11 a
cancellation that lands in the step where the read completes is dropped, and the poller
goes on into its reconnect backoff. These stand-ins do exactly that, without discord.py.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from edge_voice.cogs.voice_link import library_tasks, stop_library_tasks


def client_with(runner: asyncio.Task[Any] | None, connector: Any = None) -> Any:
    return SimpleNamespace(_connection=SimpleNamespace(_runner=runner, _connector=connector))


async def poller(frame: asyncio.Future[str], backoffs: list[str]) -> None:
    """Like discord.py's ``_poll_voice_ws``: read, and after a close frame, back off."""
    try:
        await asyncio.wait_for(frame, 30)
    except asyncio.CancelledError:
        return
    backoffs.append("backing off")
    await asyncio.sleep(30)


async def test_a_cancellation_the_poller_dropped_is_repeated_until_it_ends() -> None:
    frame: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    backoffs: list[str] = []
    task = asyncio.create_task(poller(frame, backoffs))
    await asyncio.sleep(0)
    frame.set_result("close 4006")  # the read completes in the step the cancel lands in

    await stop_library_tasks(client_with(task), within=2)
    assert task.cancelled()
    assert backoffs == ["backing off"]  # the first cancel was dropped, the second ended it


async def test_only_unfinished_tasks_count_and_it_gives_up_at_its_deadline() -> None:
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    holding = True

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if not holding:
                    raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)  # inside its try before the first cancel
    client = client_with(done, task)
    assert library_tasks(client) == [task]
    loop = asyncio.get_running_loop()
    started = loop.time()
    await stop_library_tasks(client, within=0.2)
    elapsed = loop.time() - started
    assert not task.done()
    holding = False
    await stop_library_tasks(client, within=0.2)
    assert task.cancelled()
    assert 0.15 <= elapsed < 1.0, elapsed
    assert library_tasks(client_with(None, None)) == []

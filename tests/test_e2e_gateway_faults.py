"""End to end: the main gateway misbehaves while messages are queued; nothing is lost.

discord.py resumes after op 7 RECONNECT, op 9 INVALID_SESSION (resumable) and a dropped
socket (tests/README.md); the voice connection has its own websocket and keeps playing.
Messages sent while the gateway is away are replayed on RESUME, so they are spoken too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.e2e_support import E2E, e2e_bot

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
        assert e2e.voice_cog._sessions[e2e.scene.guild.id].supervisor.faults == 0

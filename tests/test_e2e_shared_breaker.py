"""End to end with ``[state] backend = "redis"``: the reference host and another process
of the fleet share the Edge breaker through a real Redis. An operator isolating Edge in
the other process makes the host post text at once, without asking Edge; a reset there
brings the host's voice back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_voice.core.breaker import CircuitBreaker, CircuitState
from edge_voice.core.config import Config
from edge_voice.core.shared_state import SharedBreakers
from edge_voice.core.shared_state.redis_backend import RedisBackend
from tests.e2e_support import e2e_bot, text_post_for_member
from tests.redis_support import RedisServer, running_redis


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server


async def test_a_trip_in_another_process_turns_the_hosts_speech_into_text_and_back(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    state = {"backend": "redis", "redis_url": redis_server.url}
    async with e2e_bot(tmp_path, state=state) as e2e:
        service = e2e.voice_cog.service
        assert e2e.voice_cog.context.shared is not None
        # The other process: the same breaker by name, its own connections.
        other = CircuitBreaker(service.service_breaker.name, Config().breaker)
        shared = SharedBreakers(RedisBackend(redis_server.url))
        shared.attach([other])
        await shared.start()
        try:
            await e2e.join()
            await e2e.say_in_channel("Vorher")
            await e2e.wait_heard(1)

            other.isolate("operator in process 2: Edge maintenance")
            await e2e.wait_for(lambda: service.service_breaker.state is CircuitState.FORCED_OPEN)
            asked = len(e2e.edge.requests)
            await e2e.say_in_channel("Während")
            expected = text_post_for_member(e2e.member, "Während")
            await e2e.wait_for(lambda: expected in e2e.posts(), 5)
            assert len(e2e.edge.requests) == asked  # rejected here, Edge never asked

            other.reset("operator in process 2: maintenance over")
            await e2e.wait_for(lambda: service.service_breaker.state is CircuitState.CLOSED)
            await e2e.say_in_channel("Nachher")
            await e2e.wait_heard(2)
        finally:
            await shared.close()

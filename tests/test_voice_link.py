"""The voice link supervisor's decisions, against a scripted port (no Discord, no sleeping).

The end-to-end tests in test_e2e_voice_faults.py drive the same supervisor through the
real discord.py against the fake Discord; these pin the rules one by one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest

from edge_voice.core.clock import FakeClock
from edge_voice.core.voice_link import (
    VOICE_LOST_NOTICE,
    LinkEnd,
    LinkPolicy,
    LinkState,
    VoiceLinkSupervisor,
)

UP, SETTLING, DOWN, GONE = LinkState.UP, LinkState.SETTLING, LinkState.DOWN, LinkState.GONE
STRANDED = LinkState.STRANDED


class ScriptedPort:
    """A port whose state is set by the test; rejoins succeed as scripted."""

    def __init__(self, rejoins: Iterable[bool] = ()) -> None:
        self.current = UP
        self.rejoin_results = list(rejoins)
        self.rejoin_calls = 0
        self.listeners = True
        self.interrupts = 0
        self.abandons = 0
        self.notices: list[str] = []

    def state(self) -> LinkState:
        return self.current

    def interrupt(self) -> None:
        self.interrupts += 1

    def listeners_present(self) -> bool:
        return self.listeners

    async def rejoin(self) -> bool:
        self.rejoin_calls += 1
        joined = self.rejoin_results.pop(0) if self.rejoin_results else False
        if joined:
            self.current = UP
        return joined

    async def notice(self, text: str) -> None:
        self.notices.append(text)

    async def abandon(self) -> None:
        self.abandons += 1
        self.current = GONE


class Sleeps:
    """Records the supervisor's sleeps and moves the clock instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.clock.advance(seconds)


def supervisor(
    port: ScriptedPort, **policy: float
) -> tuple[VoiceLinkSupervisor, FakeClock, Sleeps]:
    clock = FakeClock()
    sleeps = Sleeps(clock)
    settings = {"settle": 0.5, "rejoin_attempts": 3, "rejoin_backoff": 1.0, **policy}
    return (
        VoiceLinkSupervisor(port, LinkPolicy(**settings), clock=clock, sleep=sleeps),  # type: ignore[arg-type]
        clock,
        sleeps,
    )


async def test_a_healthy_connection_is_left_alone() -> None:
    port = ScriptedPort()
    watch, _, _ = supervisor(port)
    for _ in range(3):
        assert await watch.check() is None
    assert (watch.down, watch.faults, port.interrupts, port.notices) == (False, 0, 0, [])


async def test_down_is_a_fault_at_once_with_one_notice_and_recovers_silently() -> None:
    port = ScriptedPort()
    watch, _, _ = supervisor(port)
    port.current = DOWN
    for _ in range(3):
        assert await watch.check() is None
    assert watch.down
    assert (watch.faults, port.interrupts, port.notices) == (1, 1, [VOICE_LOST_NOTICE])

    port.current = SETTLING  # the library reconnecting: still down, still one notice
    await watch.check()
    port.current = UP
    await watch.check()
    assert not watch.down
    assert (watch.recoveries, port.notices) == (1, [VOICE_LOST_NOTICE])


async def test_settling_briefly_is_no_fault_settling_long_is() -> None:
    port = ScriptedPort()
    watch, clock, _ = supervisor(port)
    port.current = SETTLING
    await watch.check()
    clock.advance(0.4)
    await watch.check()
    port.current = UP  # a move or a new voice server: done within the settle time
    await watch.check()
    assert (watch.faults, port.notices) == (0, [])

    port.current = SETTLING
    await watch.check()
    clock.advance(0.6)
    await watch.check()
    assert watch.down
    assert port.notices == [VOICE_LOST_NOTICE]


async def test_gone_rejoins_with_growing_backoff_until_it_works() -> None:
    port = ScriptedPort(rejoins=[False, False, True])
    watch, _, sleeps = supervisor(port, rejoin_attempts=5)
    port.current = GONE
    assert await watch.check() is None
    assert not watch.down
    assert (port.rejoin_calls, watch.rejoins) == (3, 1)
    assert sleeps.calls == [1.0, 2.0]  # none before the first rejoin
    assert port.notices == [VOICE_LOST_NOTICE]


async def test_rejoins_that_all_fail_end_the_session() -> None:
    port = ScriptedPort(rejoins=[False] * 3)
    watch, _, sleeps = supervisor(port)
    port.current = GONE
    assert await watch.check() is LinkEnd.REJOIN_FAILED
    assert port.rejoin_calls == 3
    assert sleeps.calls == [1.0, 2.0]


async def test_no_rejoin_without_listeners() -> None:
    port = ScriptedPort(rejoins=[True])
    port.listeners = False
    watch, _, _ = supervisor(port)
    port.current = GONE
    assert await watch.check() is LinkEnd.NOBODY_LISTENING
    assert port.rejoin_calls == 0


@pytest.mark.parametrize(
    ("state", "end"),
    [(LinkState.KICKED, LinkEnd.KICKED), (LinkState.CHANNEL_DELETED, LinkEnd.CHANNEL_DELETED)],
)
async def test_kicked_or_deleted_ends_the_session_without_a_fault_notice(
    state: LinkState, end: LinkEnd
) -> None:
    port = ScriptedPort()
    watch, _, _ = supervisor(port)
    port.current = state
    assert await watch.check() is end
    assert port.notices == []


def test_backoff_is_capped() -> None:
    policy = LinkPolicy(rejoin_backoff=0.5)
    assert [policy.backoff(n) for n in range(6)] == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0]


async def test_stopping_it_while_it_posts_lets_the_notice_finish() -> None:
    class SlowNotice(ScriptedPort):
        async def notice(self, text: str) -> None:
            await asyncio.sleep(0.05)
            self.notices.append(text)

    port = SlowNotice()
    port.current = DOWN
    watch = VoiceLinkSupervisor(port, LinkPolicy(poll=0.001))
    task = asyncio.create_task(watch.run())
    while not watch.down:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert port.notices == []  # cancelled while the notice was being posted
    async with asyncio.timeout(2):  # ...which still goes out
        while not port.notices:
            await asyncio.sleep(0.005)
    assert port.notices == [VOICE_LOST_NOTICE]


async def test_a_stranded_client_is_abandoned_before_the_rejoin() -> None:
    port = ScriptedPort(rejoins=[True])
    watch, _, _ = supervisor(port)
    port.current = STRANDED
    assert await watch.check() is None
    assert (port.interrupts, port.abandons, port.rejoin_calls) == (1, 1, 1)
    assert (watch.takeovers, watch.rejoins, watch.down) == (1, 1, False)
    assert port.notices == [VOICE_LOST_NOTICE]


async def test_a_library_reconnecting_too_long_is_taken_over() -> None:
    port = ScriptedPort(rejoins=[True])
    watch, clock, _ = supervisor(port, recover_within=10.0)
    port.current = DOWN
    await watch.check()
    for state in (SETTLING, DOWN, SETTLING):  # discord.py's backoff and reconnects
        clock.advance(3.0)
        port.current = state
        assert await watch.check() is None
    assert (port.abandons, port.rejoin_calls) == (0, 0)
    clock.advance(1.0)
    assert await watch.check() is None
    assert (port.abandons, port.rejoin_calls, watch.down) == (1, 1, False)
    assert port.notices == [VOICE_LOST_NOTICE]


async def test_lost_again_soon_after_coming_back_is_the_same_outage_until_it_gives_up() -> None:
    port = ScriptedPort()
    watch, clock, _ = supervisor(port, stable=30.0, max_faults=3)
    ends = []
    for _ in range(3):  # every reconnect is taken over a moment later
        port.current = UP
        ends.append(await watch.check())
        clock.advance(2.0)
        port.current = DOWN
        ends.append(await watch.check())
    assert ends == [None] * 5 + [LinkEnd.UNSTABLE]
    assert LinkEnd.UNSTABLE.keeps_channel
    assert port.notices == [VOICE_LOST_NOTICE]  # one notice for the whole outage
    assert (watch.faults, port.interrupts, port.abandons, watch.recoveries) == (3, 3, 1, 2)


async def test_an_outage_ends_once_the_connection_stayed_up_long_enough() -> None:
    port = ScriptedPort()
    watch, clock, _ = supervisor(port, stable=30.0, max_faults=2)
    port.current = DOWN
    await watch.check()
    port.current = UP
    await watch.check()
    clock.advance(30.0)
    await watch.check()  # up for 30 s: the outage is over
    port.current = DOWN
    assert await watch.check() is None  # a new outage: its own notice, no give-up
    assert port.notices == [VOICE_LOST_NOTICE, VOICE_LOST_NOTICE]
    assert port.abandons == 0


def test_every_end_but_nobody_listening_keeps_the_channel_as_text() -> None:
    keeps = {end for end in LinkEnd if end.keeps_channel}
    assert keeps == set(LinkEnd) - {LinkEnd.NOBODY_LISTENING}
    assert all("as text" in end.notice for end in keeps)

"""REST faults as discord.py 2.7.1 sees them: which exception, after how many tries."""

from __future__ import annotations

import asyncio
import itertools
import time

import aiohttp
import discord
import pytest

from tests.fake_discord_support import build_scene, scene_and_bot
from tests.fakes.discord import FakeDiscord, FastSleepLoop, discord_client_options, pointed_at
from tests.fakes.discord.faults import (
    dropped,
    forbidden,
    http_error,
    not_found,
    rate_limited,
    slow,
)
from tests.fakes.discord.rest import CHANNEL, MESSAGES

SPEEDUP = 25


async def test_403_is_forbidden_and_404_is_not_found_per_channel() -> None:
    async with scene_and_bot() as (fake, scene, bot):
        other = fake.add_text_channel(scene.guild, "other")
        fake.rest_fault(forbidden("POST", MESSAGES, channel_id=scene.text.id))
        with pytest.raises(discord.Forbidden) as refused:
            await bot.get_partial_messageable(scene.text.id).send("x")
        assert (refused.value.status, refused.value.code) == (403, 50013)
        assert refused.value.text == "Missing Permissions"
        await bot.get_partial_messageable(other.id).send("fine")  # only that channel

        fake.rest_fault(not_found("POST", MESSAGES))
        with pytest.raises(discord.NotFound) as missing:
            await bot.get_partial_messageable(scene.text.id).send("x")
        assert (missing.value.status, missing.value.code) == (404, 10003)
        assert len(fake.requests.matching("POST", MESSAGES, channel_id=scene.text.id)) == 2
        assert [m.content for m in fake.posted(other)] == ["fine"]


async def test_429_waits_retry_after_and_then_succeeds() -> None:
    async with scene_and_bot() as (fake, scene, bot):
        for is_global in (False, True):
            fault = fake.rest_fault(rate_limited("POST", MESSAGES, 0.25, is_global=is_global))
            before = len(fake.requests)
            await bot.get_partial_messageable(scene.text.id).send("eventually")
            first, second = fake.requests.requests[before:]
            assert (first.status, second.status) == (429, 200)
            assert second.time - first.time >= 0.25
            assert fault.hits == 1
        assert [m.content for m in fake.posted(scene.text)] == ["eventually"] * 2


async def test_429_beyond_max_ratelimit_timeout_raises_rate_limited() -> None:
    async with FakeDiscord() as fake:
        scene = build_scene(fake)
        client = discord.Client(
            intents=discord.Intents.none(),
            max_ratelimit_timeout=30.0,
            **discord_client_options(fake),
        )
        with pointed_at(fake):
            await client.login("token")
            try:
                fake.rest_fault(rate_limited("POST", MESSAGES, 60.0))
                with pytest.raises(discord.RateLimited) as limited:
                    await client.get_partial_messageable(scene.text.id).send("x")
                assert limited.value.retry_after == 60.0
            finally:
                await client.close()


async def test_a_dropped_connection_reaches_the_caller_for_post_but_get_is_retried() -> None:
    async with scene_and_bot() as (fake, scene, bot):
        fake.rest_fault(dropped("POST", MESSAGES))
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await bot.get_partial_messageable(scene.text.id).send("lost")
        (attempt,) = fake.requests.matching("POST", MESSAGES)
        assert attempt.status is None
        assert fake.posted(scene.text) == []

        # aiohttp itself retries an idempotent request once on a dropped keep-alive.
        fault = fake.rest_fault(dropped("GET", CHANNEL))
        channel = await bot.fetch_channel(scene.text.id)
        assert channel.id == scene.text.id
        assert fault.hits == 1
        assert [r.status for r in fake.requests.matching("GET", CHANNEL)] == [None, 200]


async def test_a_slow_answer_is_cut_by_the_callers_timeout() -> None:
    async with scene_and_bot() as (fake, scene, bot):
        fake.rest_fault(slow("POST", MESSAGES, 5.0))
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await bot.get_partial_messageable(scene.text.id).send("late")
        assert time.monotonic() - started < 1.0
        (attempt,) = fake.requests.matching("POST", MESSAGES)
        assert attempt.status is None
        assert fake.posted(scene.text) == []
        await bot.get_partial_messageable(scene.text.id).send("next")  # the bucket is free


async def _server_errors(status: int, times: int | None) -> tuple[int, list[float], object]:
    """Post once with ``status`` scripted; ``(hits, gaps in virtual s, outcome)``."""
    async with FakeDiscord() as fake:
        scene = build_scene(fake)
        client = discord.Client(intents=discord.Intents.none(), **discord_client_options(fake))
        with pointed_at(fake):
            await client.login("token")
            try:
                fault = fake.rest_fault(http_error("POST", MESSAGES, status, times=times))
                try:
                    outcome: object = await client.get_partial_messageable(scene.text.id).send("x")
                except discord.HTTPException as exc:
                    outcome = exc
                raised_at = time.monotonic()
            finally:
                await client.close()
        times_seen = [*fault.hit_times, raised_at]
        gaps = [(b - a) * SPEEDUP for a, b in itertools.pairwise(times_seen)]
        return fault.hits, gaps, outcome


def run_fast(status: int, times: int | None) -> tuple[int, list[float], object]:
    """Run :func:`_server_errors` in a loop whose sleeps pass ``SPEEDUP`` times faster."""
    with asyncio.Runner(loop_factory=FastSleepLoop.factory(SPEEDUP)) as runner:
        return runner.run(_server_errors(status, times))


@pytest.mark.parametrize("status", [500, 502])
def test_5xx_on_every_try_raises_after_five_tries(status: int) -> None:
    hits, gaps, outcome = run_fast(status, None)
    assert isinstance(outcome, discord.DiscordServerError)
    assert outcome.status == status
    assert hits == 5
    # discord.py sleeps 1 + 2*try seconds after each 5xx, the last one included, then raises.
    assert gaps == pytest.approx([1, 3, 5, 7, 9], abs=0.75)


def test_503_is_not_retried() -> None:
    hits, _, outcome = run_fast(503, None)
    assert isinstance(outcome, discord.DiscordServerError)
    assert hits == 1


def test_one_500_is_retried_after_a_second() -> None:
    hits, gaps, outcome = run_fast(500, 1)
    assert isinstance(outcome, discord.Message)
    assert hits == 1
    assert gaps[0] == pytest.approx(1, abs=0.75)

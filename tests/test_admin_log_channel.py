"""cogs/admin.py's log channel: transitions, coalesced flapping, startup test, and what can't post.

The bot runs on the fake Discord; posts are read back as the fake received them, so
``allowed_mentions`` is checked at the HTTP boundary. Windows end when a test says so (an
injected sleep), never by waiting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import discord
import pytest
from discord.ext import commands

from edge_voice.cogs.admin import AdminCog
from tests.admin_cog_support import (
    NO_PINGS,
    WindowSleep,
    fail,
    refused_port,
    running_admin_bot,
)

RED = 0xE74C3C


@pytest.fixture
def port() -> Iterator[int]:
    with refused_port() as held:
        yield held


async def test_a_transition_is_posted_as_an_embed_without_mentions(port: int) -> None:
    async with running_admin_bot(port) as ab:
        opened_at = int(ab.clock.wall())
        fail(ab.service.service_breaker, 3, "NoAudioReceived")
        await ab.cog.alerts.drain()
        posts = ab.log_posts()

    startup, transition = posts
    assert startup.embeds[0]["title"] == "TTS startup connectivity test"
    [embed] = transition.embeds
    assert embed["title"] == "TTS breaker edge: CLOSED → OPEN"
    assert embed["color"] == RED
    found = {f["name"]: f["value"] for f in embed["fields"]}
    assert found["Reason"] == "3 consecutive failures, last: NoAudioReceived"
    assert found["Next trial"] == f"in 60 s (<t:{opened_at + 60}:R>)"
    assert found["Time"] == f"<t:{opened_at}:f> (<t:{opened_at}:R>)"
    assert found["Trips so far"] == "1 (1 in a row)"
    assert all(post.allowed_mentions == NO_PINGS for post in posts)


async def test_a_burst_of_flapping_produces_one_summary(port: int) -> None:
    sleep = WindowSleep()
    async with running_admin_bot(port, sleep=sleep, log_coalesce_seconds=30.0) as ab:
        breaker = ab.service.service_breaker
        fail(breaker, 3)
        await sleep.entered.wait()  # the window is open
        for _ in range(4):
            ab.clock.advance(2)
            breaker.reset("flap")
            fail(breaker, 3)
        before = len(ab.log_posts())
        sleep.end_window()
        await ab.cog.alerts.drain()
        [summary] = ab.log_posts()[before:]

    assert sleep.delays == [30.0]
    assert before == 1  # only the startup test so far
    embed = summary.embeds[0]
    assert embed["title"] == "TTS breakers: 9 transitions in 8 s, now OPEN"
    assert embed["color"] == RED
    assert embed["description"].startswith("**edge**: 9 transitions: CLOSED → OPEN → CLOSED → ")
    assert summary.allowed_mentions == NO_PINGS


async def test_a_missing_channel_is_a_warning_and_nothing_breaks(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_admin_bot(port, log_channel=False, log_channel_id=424242) as ab:
        with caplog.at_level(logging.WARNING, logger="edge_voice.cogs.admin"):
            fail(ab.service.service_breaker, 3)
            await ab.cog.alerts.drain()
            reset = await ab.fake.invoke_slash(ab.scene.admin, ab.scene.text, "tts", "reset")
        sent = ab.all_posts()

    assert sent == []
    assert reset.content is not None
    assert reset.content.startswith("Reset 3 breakers")
    assert "log channel 424242 not found" in caplog.text


async def test_a_missing_permission_is_a_warning_and_nothing_is_sent(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    denied = discord.Permissions(send_messages=True)
    with caplog.at_level(logging.WARNING, logger="edge_voice.cogs.admin"):
        async with running_admin_bot(port, log_channel_denies=denied) as ab:
            fail(ab.service.service_breaker, 3)
            await ab.cog.alerts.drain()
            posts = ab.log_posts()

    assert posts == []
    assert "cannot post to log channel #tts-log: missing send_messages" in caplog.text


async def test_no_log_channel_configured_posts_nothing_and_warns_nothing(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="edge_voice.cogs.admin"):
        async with running_admin_bot(port, log_channel=False) as ab:
            fail(ab.service.service_breaker, 3)
            await ab.cog.alerts.drain()
            sent = ab.all_posts()

    assert sent == []
    assert "log channel" not in caplog.text


async def test_startup_result_is_posted_once_the_bot_is_ready(port: int) -> None:
    seen_before_ready: list[object] = []

    async def add_before_ready(bot: commands.Bot) -> None:
        cog = AdminCog(bot)
        await bot.add_cog(cog)
        for _ in range(20):  # give the startup task every chance to run early
            await asyncio.sleep(0)
        seen_before_ready.extend([cog.startup_task is not None, cog.startup_task.done()])  # type: ignore[union-attr]

    async with running_admin_bot(port, setup=add_before_ready) as ab:
        ab.bot.dispatch("ready")  # a reconnect fires on_ready again
        await asyncio.sleep(0.05)
        posts = ab.log_posts()

    assert seen_before_ready == [True, False]
    [post] = posts
    assert post.embeds[0]["title"] == "TTS startup connectivity test"
    assert f"127.0.0.1:{port} refused" in post.embeds[0]["description"]
    assert post.allowed_mentions == NO_PINGS


async def test_unloading_posts_the_open_window_now_and_stops_listening(port: int) -> None:
    sleep = WindowSleep()
    async with running_admin_bot(port, sleep=sleep, log_coalesce_seconds=600.0) as ab:
        fail(ab.service.service_breaker, 3)
        await sleep.entered.wait()
        assert len(ab.log_posts()) == 1

        await ab.bot.remove_cog("TTS admin")
        after_unload = ab.log_titles()
        ab.service.breakers.reset()  # no cog listens any more
        await asyncio.sleep(0)
        final = ab.log_titles()

    assert after_unload == ["TTS startup connectivity test", "TTS breaker edge: CLOSED → OPEN"]
    assert final == after_unload
    assert sleep.gate.cancelled()
    assert ab.cog.alerts.closed

"""cogs/admin.py's log channel: transitions, coalesced flapping, startup test, and what can't post.

Posts are read back as the JSON discord.py sent (``tb.sent``), so ``allowed_mentions`` is checked
at the HTTP boundary. Windows end when a test says so (an injected sleep), never by waiting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import discord
import pytest
from discord.ext import commands

from edge_voice.cogs.admin import AdminCog
from edge_voice.cogs.tts_context import TTSContext
from edge_voice.core.clock import FakeClock
from edge_voice.core.tts.service import TTSService
from tests.admin_cog_support import (
    MANAGE_GUILD,
    WindowSleep,
    admin_bot,
    config_for,
    fail,
    refused_port,
)
from tests.fakes.discord_harness import add_member, add_text_channel, invoke_slash, make_test_bot

RED = 0xE74C3C


@pytest.fixture
def port() -> Iterator[int]:
    with refused_port() as held:
        yield held


async def test_a_transition_is_posted_as_an_embed_without_mentions(port: int) -> None:
    async with admin_bot(port) as ab:
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
    assert all(post.allowed_mentions == {"parse": []} for post in posts)


async def test_a_burst_of_flapping_produces_one_summary(port: int) -> None:
    sleep = WindowSleep()
    async with admin_bot(port, sleep=sleep, log_coalesce_seconds=30.0) as ab:
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
    assert summary.mentions_suppressed


async def test_a_missing_channel_is_a_warning_and_nothing_breaks(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with admin_bot(port, log_channel=False, log_channel_id=424242) as ab:
        with caplog.at_level(logging.WARNING, logger="edge_voice.cogs.admin"):
            fail(ab.service.service_breaker, 3)
            await ab.cog.alerts.drain()
            root = add_member(ab.tb.guild, "root")
            tb = ab.tb
            reset = await invoke_slash(
                tb.bot, tb.guild, root, tb.text_channel, "tts", "reset", permissions=MANAGE_GUILD
            )
        sent = list(tb.sent)

    assert sent == []
    assert reset[0].content is not None
    assert reset[0].content.startswith("Reset 3 breakers")
    assert "log channel 424242 not found" in caplog.text


async def test_a_missing_permission_is_a_warning_and_nothing_is_sent(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    denied = discord.Permissions(send_messages=True)
    with caplog.at_level(logging.WARNING, logger="edge_voice.cogs.admin"):
        async with admin_bot(port, log_channel_denies=denied) as ab:
            fail(ab.service.service_breaker, 3)
            await ab.cog.alerts.drain()
            posts = ab.log_posts()

    assert posts == []
    assert "cannot post to log channel #tts-log: missing send_messages" in caplog.text


async def test_no_log_channel_configured_posts_nothing_and_warns_nothing(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="edge_voice.cogs.admin"):
        async with admin_bot(port, log_channel=False) as ab:
            fail(ab.service.service_breaker, 3)
            await ab.cog.alerts.drain()
            sent = list(ab.tb.sent)

    assert sent == []
    assert "log channel" not in caplog.text


async def test_startup_result_is_posted_once_the_bot_is_ready(port: int) -> None:
    seen_before_ready: list[object] = []

    async def inject(bot: commands.Bot) -> None:
        channel = add_text_channel(bot.guilds[0], "tts-log")
        config = config_for(port, channel.id)
        clock = FakeClock()
        service = TTSService.from_config(config, clock=clock, wall_clock=clock.wall)
        bot.tts_context = TTSContext(config, service)  # type: ignore[attr-defined]
        cog = AdminCog(bot)
        await bot.add_cog(cog)
        for _ in range(20):  # give the startup task every chance to run early
            await asyncio.sleep(0)
        seen_before_ready.extend([cog.startup_task is not None, cog.startup_task.done()])  # type: ignore[union-attr]

    async with await make_test_bot(setup=inject) as tb:
        cog = tb.bot.get_cog("TTS admin")
        assert isinstance(cog, AdminCog)
        assert cog.startup_task is not None
        await cog.startup_task
        tb.bot.dispatch("ready")  # a reconnect fires on_ready again
        await asyncio.sleep(0)
        posts = [m for m in tb.sent if m.channel_id == cog.config.discord.log_channel_id]

    assert seen_before_ready == [True, False]
    [post] = posts
    assert post.embeds[0]["title"] == "TTS startup connectivity test"
    assert f"127.0.0.1:{port} refused" in post.embeds[0]["description"]
    assert post.mentions_suppressed


async def test_unloading_posts_the_open_window_now_and_stops_listening(port: int) -> None:
    sleep = WindowSleep()
    async with admin_bot(port, sleep=sleep, log_coalesce_seconds=600.0) as ab:
        fail(ab.service.service_breaker, 3)
        await sleep.entered.wait()
        assert len(ab.log_posts()) == 1

        await ab.tb.bot.remove_cog("TTS admin")
        after_unload = ab.log_titles()
        ab.service.reset()  # no cog listens any more
        await asyncio.sleep(0)
        final = ab.log_titles()

    assert after_unload == ["TTS startup connectivity test", "TTS breaker edge: CLOSED → OPEN"]
    assert final == after_unload
    assert sleep.gate.cancelled()
    assert ab.cog.alerts.closed

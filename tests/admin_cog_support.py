"""Shared set-up for the admin cog tests: a harness bot running ``cogs.admin`` on a real service.

The service is a real :class:`TTSService` on a :class:`FakeClock`; the diagnostics point at a
127.0.0.1 port that refuses connections, so ``/tts diagnose`` and the startup test are fast and
offline. The log channel is created before the cog loads so its id can go into the config.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, cast

import discord
from discord.ext import commands
from discord.ext.test import backend as dpy_backend

from edge_voice.cogs.admin import AdminCog
from edge_voice.cogs.tts_context import TTSContext
from edge_voice.core.alerts import Sleep
from edge_voice.core.breaker import CircuitBreaker
from edge_voice.core.cache import AudioCache
from edge_voice.core.clock import FakeClock
from edge_voice.core.config import Config, parse_config
from edge_voice.core.tts.service import TTSService
from tests.fakes.discord_harness import SentMessage, TestBot, make_test_bot

MANAGE_GUILD = str(discord.Permissions(manage_guild=True).value)
ADMINISTRATOR = str(discord.Permissions(administrator=True).value)
NOTHING = "0"
BREAKER = {"consecutive_failures": 3, "cooldown_period": 60.0, "cooldown_jitter": 0.0}


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A 127.0.0.1 port held bound but not listening: connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


@dataclass(eq=False)
class AdminBot:
    """The harness bot, its admin cog, the service's clock, and the log channel (if any)."""

    tb: TestBot
    cog: AdminCog
    service: TTSService
    clock: FakeClock
    log_channel: discord.TextChannel | None

    def log_posts(self) -> list[SentMessage]:
        """What the bot posted to the log channel."""
        return self.tb.sent_to(self.log_channel) if self.log_channel else []

    def log_titles(self) -> list[str]:
        return [post.embeds[0]["title"] for post in self.log_posts()]


def config_for(port: int, log_channel_id: int = 0, **discord_settings: Any) -> Config:
    """Test config: diagnostics at the refused port, small breaker thresholds."""
    settings = {"log_channel_id": log_channel_id, "log_coalesce_seconds": 0.0, **discord_settings}
    edge = {"host": "127.0.0.1", "port": port}
    return parse_config({"edge": edge, "discord": settings, "breaker": BREAKER}, "test")


def deny_overwrite(member: discord.Member, permissions: discord.Permissions) -> dict[str, Any]:
    """A raw channel permission overwrite taking ``permissions`` from ``member``."""
    return {"id": str(member.id), "type": 1, "allow": "0", "deny": str(permissions.value)}


@contextlib.asynccontextmanager
async def admin_bot(
    port: int,
    *,
    log_channel: bool = True,
    log_channel_denies: discord.Permissions | None = None,
    sleep: Sleep | None = None,
    **discord_settings: Any,
) -> AsyncIterator[AdminBot]:
    """A running harness bot with the admin cog; the startup report has already been posted.

    Without ``sleep`` the cog loads as the ``cogs.admin`` extension; with it, the cog is
    built with that sleep and added directly (still before the bot is ready).
    """
    clock = FakeClock()
    made: dict[str, Any] = {}

    async def inject(bot: commands.Bot) -> None:
        channel = None
        if log_channel:
            guild = bot.guilds[0]
            overwrites: Any = []  # a list of raw overwrites (dpytest annotates it as a dict)
            if log_channel_denies is not None:
                overwrites.append(deny_overwrite(guild.me, log_channel_denies))
            channel = dpy_backend.make_text_channel(
                "tts-log", guild, permission_overwrites=overwrites
            )
        if channel is not None:
            discord_settings["log_channel_id"] = channel.id
        config = config_for(port, **discord_settings)
        service = TTSService.from_config(
            config, clock=clock, wall_clock=clock.wall, jitter=lambda: 0.0
        )
        context = TTSContext(config, service, cache=AudioCache(1 << 20))
        bot.tts_context = context  # type: ignore[attr-defined]
        made.update(service=service, channel=channel)
        if sleep is not None:
            await bot.add_cog(AdminCog(bot, sleep=sleep))

    extensions = [] if sleep is not None else ["edge_voice.cogs.admin"]
    async with await make_test_bot(extensions, setup=inject) as tb:
        cog = admin_cog(tb.bot)
        assert cog.startup_task is not None
        await cog.startup_task
        yield AdminBot(tb, cog, made["service"], clock, made["channel"])


class WindowSleep:
    """An injected sleep: records the window, then waits for the test to end it."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.entered = asyncio.Event()
        self.gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.entered.set()
        await self.gate

    def end_window(self) -> None:
        self.gate.set_result(None)
        self.gate = asyncio.get_running_loop().create_future()
        self.entered = asyncio.Event()


def admin_cog(bot: commands.Bot) -> AdminCog:
    """The loaded admin cog. ``load_extension`` executes ``cogs.admin`` as a fresh module, so its
    class is not the ``AdminCog`` imported here: compare by name."""
    cog = bot.get_cog("TTS admin")
    assert type(cog).__qualname__ == AdminCog.__qualname__
    return cast(AdminCog, cog)


def fail(breaker: CircuitBreaker, times: int, reason: str = "NoAudioReceived") -> None:
    """Report ``times`` failed calls to ``breaker`` (through its real permit API)."""
    for _ in range(times):
        breaker.record_failure(breaker.acquire(), reason)

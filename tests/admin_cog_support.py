"""Shared set-up for the admin cog tests: ``cogs.admin`` on a real service, on the fake Discord.

A plain ``commands.Bot`` logs in to :class:`~tests.fakes.discord.FakeDiscord`; its
``setup_hook`` gives it a :class:`TTSContext` whose service runs on a :class:`FakeClock` and
loads the cog, so everything happens before the bot is ready, as in a real host. The
diagnostics point at a 127.0.0.1 port that refuses connections, so ``/tts diagnose`` and
the startup test are fast and offline. Commands arrive as INTERACTION_CREATE; posts and
answers are read back from the fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import discord
from discord.ext import commands

from edge_voice.cogs.admin import AdminCog
from edge_voice.cogs.tts_context import TTSContext
from edge_voice.core.alerts import Sleep
from edge_voice.core.breaker import CircuitBreaker
from edge_voice.core.cache import AudioCache
from edge_voice.core.clock import FakeClock
from edge_voice.core.config import Config, parse_config
from edge_voice.core.tts.service import TTSService
from edge_voice.core.tts.service_from_config import service_from_config
from tests.fake_discord_support import QuickBot, Scene, build_scene, intents
from tests.fakes.discord import FakeDiscord, discord_client_options, running_bot
from tests.fakes.discord.interactions import InteractionRecord
from tests.fakes.discord.model import Channel, Message, Overwrite

MANAGE_GUILD = discord.Permissions(manage_guild=True).value
ADMINISTRATOR = discord.Permissions(administrator=True).value
NOTHING = 0
NO_PINGS = {"parse": []}
BREAKER = {"consecutive_failures": 3, "cooldown_period": 60.0, "cooldown_jitter": 0.0}


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A 127.0.0.1 port held bound but not listening: connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


def config_for(port: int, log_channel_id: int = 0, **discord_settings: Any) -> Config:
    """Test config: diagnostics at the refused port, small breaker thresholds."""
    settings = {"log_channel_id": log_channel_id, "log_coalesce_seconds": 0.0, **discord_settings}
    edge = {"host": "127.0.0.1", "port": port}
    return parse_config({"edge": edge, "discord": settings, "breaker": BREAKER}, "test")


class HookedBot(QuickBot):
    """A bot whose ``setup_hook`` runs a coroutine the test hands it."""

    def __init__(self, hook: Callable[[commands.Bot], Awaitable[None]], **options: Any) -> None:
        super().__init__(command_prefix="!", intents=intents(), **options)
        self._hook = hook

    async def setup_hook(self) -> None:
        await self._hook(self)


@dataclass(eq=False)
class AdminBot:
    """The bot on the fake, its admin cog, the service and its clock, the log channel."""

    fake: FakeDiscord
    scene: Scene
    bot: commands.Bot
    cog: AdminCog
    service: TTSService
    clock: FakeClock
    log_channel: Channel | None

    def log_posts(self) -> list[Message]:
        """What the bot posted to the log channel."""
        return self.fake.posted(self.log_channel) if self.log_channel else []

    def log_titles(self) -> list[str]:
        return [post.embeds[0]["title"] for post in self.log_posts()]

    def all_posts(self) -> list[Message]:
        """What the bot posted anywhere in the guild."""
        return [m for c in self.scene.guild.channels.values() for m in self.fake.posted(c)]

    async def tts(self, sub: str, permissions: int = MANAGE_GUILD) -> InteractionRecord:
        """A new member with ``permissions`` runs ``/tts sub``; the answered record."""
        member = self.fake.add_member(
            self.scene.guild, f"user{len(self.scene.guild.members)}", permissions=permissions
        )
        return await self.fake.invoke_slash(member, self.scene.text, "tts", sub, timeout=10)


@contextlib.asynccontextmanager
async def running_admin_bot(
    port: int,
    *,
    log_channel: bool = True,
    log_channel_denies: discord.Permissions | None = None,
    sleep: Sleep | None = None,
    service_cls: type[TTSService] = TTSService,
    setup: Callable[[commands.Bot], Awaitable[None]] | None = None,
    **discord_settings: Any,
) -> AsyncIterator[AdminBot]:
    """The bot with the admin cog, logged in; the startup report has already been posted.

    Without ``sleep`` the cog loads as the ``cogs.admin`` extension; with it, the cog is
    built with that sleep and added directly. ``setup`` replaces both (the test builds).
    """
    clock = FakeClock()
    made: dict[str, Any] = {}
    async with FakeDiscord() as fake:
        scene = build_scene(fake)
        role = fake.add_role(scene.guild, "TTS bot", discord.Permissions(embed_links=True).value)
        fake.world.bot_member(scene.guild).role_ids.append(role.id)
        channel = None
        if log_channel:
            overwrites = []
            if log_channel_denies is not None:
                bot_id = fake.world.bot.id
                overwrites.append(Overwrite(bot_id, 1, deny=log_channel_denies.value))
            channel = fake.add_text_channel(scene.guild, "tts-log", overwrites=overwrites)
            discord_settings["log_channel_id"] = channel.id
        config = config_for(port, **discord_settings)

        async def hook(bot: commands.Bot) -> None:
            service = service_from_config(
                config,
                service_type=service_cls,
                clock=clock,
                wall_clock=clock.wall,
                jitter=lambda: 0.0,
            )
            bot.tts_context = TTSContext(config, service, cache=AudioCache(1 << 20))  # type: ignore[attr-defined]
            made["service"] = service
            if setup is not None:
                await setup(bot)
            elif sleep is not None:
                await bot.add_cog(AdminCog(bot, sleep=sleep))
            else:
                await bot.load_extension("edge_voice.cogs.admin")

        bot = HookedBot(hook, **discord_client_options(fake))
        try:
            async with running_bot(fake, bot):
                cog = admin_cog(bot)
                assert cog.startup_task is not None
                await asyncio.wait_for(asyncio.shield(cog.startup_task), 10)
                yield AdminBot(fake, scene, bot, cog, made["service"], clock, channel)
        finally:
            service = made.get("service")
            if service is not None:
                await service.close()


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

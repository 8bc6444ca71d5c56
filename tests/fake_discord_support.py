"""Shared set-up for the fake-Discord tests: a small world and bots pointed at it.

Only discord.py and the fake: no project code. Bots get a tiny ``guild_ready_timeout``;
:class:`QuickBot` skips discord.py's 5 s ``before_identify_hook`` sleep (a public hook,
documented for exactly this) so re-IDENTIFY and second shards do not cost 5 s each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import discord
from discord.ext import commands

from tests.fakes.discord import FakeDiscord, discord_client_options, running_bot
from tests.fakes.discord.model import Channel, Guild, Member


class QuickBot(commands.Bot):
    """A plain ``commands.Bot`` whose non-initial IDENTIFY is not delayed by 5 s."""

    identify_calls: list[tuple[int | None, bool]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.identify_calls = []

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Record the call instead of sleeping 5 s before a non-initial IDENTIFY."""
        self.identify_calls.append((shard_id, initial))


class QuickShardedBot(commands.AutoShardedBot):
    """An ``AutoShardedBot`` whose shards IDENTIFY back to back."""

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5 s sleep between shards."""


def intents() -> discord.Intents:
    """Default intents plus members and message content (as the project's bot uses)."""
    value = discord.Intents.default()
    value.members = True
    value.message_content = True
    return value


def make_bot(fake: FakeDiscord, cls: type[commands.Bot] = QuickBot, **options: Any) -> Any:
    """A bot of ``cls`` with a connector trusting ``fake`` (call inside the test's loop)."""
    options.setdefault("intents", intents())
    options.setdefault("command_prefix", "!")
    return cls(**discord_client_options(fake), **options)


@dataclass(eq=False)
class Scene:
    """One guild with a text and two voice channels, a plain member and an admin."""

    guild: Guild
    text: Channel
    voice: Channel
    other_voice: Channel
    alice: Member
    admin: Member


def build_scene(fake: FakeDiscord) -> Scene:
    """The standard test world."""
    guild = fake.add_guild("Fake Guild")
    text = fake.add_text_channel(guild, "general")
    voice = fake.add_voice_channel(guild, "Lounge")
    other = fake.add_voice_channel(guild, "Stage left")
    alice = fake.add_member(guild, "alice")
    admins = fake.add_role(guild, "admins", discord.Permissions(administrator=True).value)
    admin = fake.add_member(guild, "root", roles=[admins])
    return Scene(guild, text, voice, other, alice, admin)


@contextlib.asynccontextmanager
async def scene_and_bot(
    bot_cls: type[commands.Bot] = QuickBot, **fake_options: Any
) -> AsyncIterator[tuple[FakeDiscord, Scene, Any]]:
    """A started fake with :func:`build_scene`, and a logged-in bot (closed after)."""
    async with FakeDiscord(**fake_options) as fake:
        scene = build_scene(fake)
        bot = make_bot(fake, bot_cls)
        async with running_bot(fake, bot):
            yield fake, scene, bot


@dataclass(eq=False)
class Playing:
    """A bot connected to voice and playing a tone; ``done`` is set by ``after``."""

    voice_client: discord.VoiceClient
    done: asyncio.Event
    errors: list[BaseException | None]
    started: float


async def connect_and_play(
    bot: Any, channel: Channel, packets: list[bytes], *, timeout: float = 2.0
) -> Playing:
    """``channel.connect(timeout=...)`` then ``play`` ready-made Opus packets."""
    from tests.fakes.discord import OpusPackets

    voice_client = await bot.get_channel(channel.id).connect(timeout=timeout)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    errors: list[BaseException | None] = []

    def after(error: BaseException | None) -> None:
        errors.append(error)
        with contextlib.suppress(RuntimeError):  # the test's loop already closed
            loop.call_soon_threadsafe(done.set)

    voice_client.play(OpusPackets(packets), after=after)
    return Playing(voice_client, done, errors, loop.time())

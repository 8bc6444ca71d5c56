"""The plugin's extensions in a bot logged in to the fake Discord, speaking through the fake Edge.

:func:`plugin_bot` starts a bot that loads ``edge_voice.cogs.voice`` and
``edge_voice.cogs.admin`` by name, with ``bot.tts_config`` set the way the README tells a
host to (data in a temporary directory, the shipped voice list, no canaries, one
attempt, no audio cache so every message reaches Edge), and syncs the commands to the
guilds so option types follow the real schema. Two bots one after the other over the
same data directory are a restart. Needs the ``edge_server`` fixture (edge-tts pointed
at the fake Edge).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord

from edge_voice.core.config import Config, parse_config
from tests.fake_discord_support import QuickBot, intents
from tests.fakes.audio_samples import edge_like_mp3
from tests.fakes.discord import FakeDiscord, discord_client_options, running_bot
from tests.fakes.discord.interactions import InteractionRecord
from tests.fakes.discord.model import Channel, Guild, Member, Role
from tests.fakes.edge_server import FakeEdgeServer

EXTENSIONS = ("edge_voice.cogs.voice", "edge_voice.cogs.admin")
SHORT_AUDIO = edge_like_mp3(0.2)
"""What the fake Edge answers in these tests: long enough to be an utterance, short
enough that playing it (in real time) costs little."""
MANAGE_GUILD = discord.Permissions(manage_guild=True).value


def plugin_config(data_dir: Path, **sections: dict[str, Any]) -> Config:
    """The test host's config; ``sections`` replace or add keys per section."""
    document: dict[str, dict[str, Any]] = {
        "retry": {"attempts": 1, "backoff_base": 0.0, "backoff_max": 0.0},
        "deadlines": {"connect": 2.0, "read": 3.0, "total": 6.0},
        "text": {"announce_speaker": False},
        "cache": {"enabled": False},
        "canary": {"enabled": False},
        "state": {"data_dir": str(data_dir)},
        "voices": {"refresh_interval": 0},
        "edge": {"host": "127.0.0.1", "port": 9},  # the startup test fails fast, offline
    }
    for name, values in sections.items():
        document[name] = {**document.get(name, {}), **values}
    return parse_config(document, "plugin test config")


class PluginBot(QuickBot):
    """A host bot: ``tts_config`` set before the extensions load, as the README says."""

    def __init__(self, fake: FakeDiscord, config: Config) -> None:
        super().__init__(**discord_client_options(fake), command_prefix="!", intents=intents())
        self.tts_config = config

    async def setup_hook(self) -> None:
        for name in EXTENSIONS:
            await self.load_extension(name)


@dataclass(eq=False)
class World:
    """One guild with a text channel, two voice channels, a member, a manager and a role."""

    fake: FakeDiscord
    guild: Guild
    text: Channel
    voice: Channel
    other_voice: Channel
    alice: Member
    manager: Member
    readers: Role


def build_world(fake: FakeDiscord, *, locale: str = "en-US", name: str = "Guild") -> World:
    """A guild whose ``preferred_locale`` is ``locale``; ``manager`` has Manage Server."""
    guild = fake.add_guild(name, preferred_locale=locale)
    readers = fake.add_role(guild, "readers")
    return World(
        fake,
        guild,
        fake.add_text_channel(guild, "general"),
        fake.add_voice_channel(guild, "Lounge"),
        fake.add_voice_channel(guild, "Quiet room"),
        fake.add_member(guild, "alice"),
        fake.add_member(
            guild, "manny", permissions=MANAGE_GUILD | discord.Permissions.text().value
        ),
        readers,
    )


@contextlib.asynccontextmanager
async def plugin_bot(
    fake: FakeDiscord, config: Config, guilds: Sequence[Guild]
) -> AsyncIterator[PluginBot]:
    """A logged-in :class:`PluginBot`, its commands synced to ``guilds``; closed after."""
    bot = PluginBot(fake, config)
    async with running_bot(fake, bot):
        for guild in guilds:
            target = discord.Object(id=guild.id)
            bot.tree.copy_global_to(guild=target)
            await bot.tree.sync(guild=target)
        yield bot


async def slash(world: World, member: Member, *path: str, **options: object) -> InteractionRecord:
    """``member`` runs ``/path`` in the world's text channel; returns the answered record."""
    record = await world.fake.invoke_slash(member, world.text, *path, **options)
    assert record.ephemeral, record.callback_data
    return record


def answer(record: InteractionRecord) -> str:
    """Everything the bot answered, as one text (content and embed descriptions/fields)."""
    parts = [text for text in record.texts if text]
    messages = ([record.original] if record.original is not None else []) + record.followups
    for message in messages:
        for embed in message.embeds:
            parts += [embed.get("title", ""), embed.get("description", "")]
            parts += [f"{f['name']}: {f['value']}" for f in embed.get("fields", [])]
    return "\n".join(part for part in parts if part)


async def join(world: World, member: Member, channel: Channel | None = None) -> None:
    """``member`` enters ``channel`` (default: the Lounge) and runs /join there."""
    channel = channel or world.voice
    await world.fake.set_voice_state(member, channel)
    record = await slash(world, member, "join")
    assert "Joined" in answer(record), answer(record)
    await world.fake.wait_for(lambda: world.fake.bot_voice_channel(world.guild) == channel.id)


async def spoken(world: World, edge: FakeEdgeServer, count: int) -> list[str]:
    """Wait until Edge got ``count`` requests; their voices, short form, in order."""

    def arrived() -> bool:
        return len(edge.requests) >= count and all(r.voice for r in edge.requests[:count])

    await world.fake.wait_for(arrived, poll=0.02)
    return [request.short_voice or "" for request in edge.requests]


async def say(world: World, member: Member, content: str, edge: FakeEdgeServer) -> str:
    """``member`` writes ``content`` in the bound channel; the voice Edge was asked for."""
    before = len(edge.requests)
    await world.fake.send_message(member, world.text, content)
    return (await spoken(world, edge, before + 1))[before]

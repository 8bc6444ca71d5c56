"""End to end: the reference host's ``TTSBot`` and its cogs against the fake Discord and Edge.

Everything real except the two services: discord.py 2.7.1 logs in to
:class:`~tests.fakes.discord.FakeDiscord` over real sockets (REST, gateway, TLS voice
gateway, UDP), and the real edge-tts client synthesizes from
:class:`~tests.fakes.edge_server.FakeEdgeServer`. ``bot.py``'s ``TTSBot`` loads the cogs
with a config made for tests (short voice timeouts, the state file in ``tmp_path``).

    async with e2e_bot(tmp_path) as e2e:
        await e2e.join()                                # alice in voice, /join in #general
        await e2e.say_in_channel("Hallo zusammen")      # MESSAGE_CREATE in the bound channel
        await e2e.wait_heard(1)                         # one utterance at the voice server
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import discord

from edge_voice.bot import TTSBot
from edge_voice.core.config import Config, parse_config
from edge_voice.core.speech import text_post_for
from tests.fake_discord_support import Scene, build_scene
from tests.fakes.audio_samples import edge_like_mp3
from tests.fakes.discord import FakeDiscord, discord_client_options, running_bot
from tests.fakes.discord.audio import Utterance, VoiceStream
from tests.fakes.discord.interactions import InteractionRecord
from tests.fakes.discord.model import Channel, Member, Message
from tests.fakes.edge_server import FakeEdgeServer, Pacing, edge_client_pointed_at

T = TypeVar("T")

AUDIO_SECONDS = 0.6
"""How long each fake Edge answer plays: short, so a test hears several in a second or two."""
VOICE_CONNECT_TIMEOUT = 1.0
"""discord.py's connect timeout (also its own reconnect waits): small, so give-ups are quick."""


def e2e_config(
    scene: Scene, tmp_path: Path, *, log_channel: Channel | None = None, **sections: Any
) -> Config:
    """A config for the host in tests; ``sections`` are merged over the defaults here."""
    data: dict[str, dict[str, Any]] = {
        "discord": {
            "sync_guild_ids": [scene.guild.id],
            "log_channel_id": log_channel.id if log_channel is not None else 0,
            "log_coalesce_seconds": 0.0,
        },
        "state": {"data_dir": str(tmp_path / "data")},
        "player": {
            "voice_connect_timeout": VOICE_CONNECT_TIMEOUT,
            "rejoin_backoff": 0.2,
            "idle_timeout": 0.0,
        },
        "edge": {"host": "127.0.0.1", "port": 9},
        "text": {"announce_speaker": False},
        "retry": {"attempts": 1, "backoff_base": 0.05, "backoff_max": 0.1},
        "deadlines": {"connect": 2.0, "read": 3.0, "total": 5.0},
        "breaker": {"consecutive_failures": 2, "cooldown_period": 60.0},
        "speech": {"backup_voices": []},
        "voices": {"refresh_interval": 0.0},  # the shipped voice list: no network
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_config(data, "<e2e>")


@dataclass(eq=False)
class E2E:
    """A running host with its fakes, and the moves and looks a test needs."""

    fake: FakeDiscord
    edge: FakeEdgeServer
    scene: Scene
    bot: TTSBot
    log_channel: Channel
    member: Member = field(init=False)
    edge_baseline: int = 0
    """Edge requests made before the test began (the startup connectivity test's)."""
    earlier_threads: frozenset[threading.Thread] = field(init=False)
    """Threads alive before this host started (an earlier test's may still be ending)."""

    def __post_init__(self) -> None:
        self.member = self.scene.alice
        self.earlier_threads = frozenset(threading.enumerate())

    def voice_threads(self) -> list[str]:
        """discord.py's voice threads alive now that this host's voice clients started.

        An earlier test's socket reader can outlive its client by up to 30 s: stopped
        while blocked in ``select()`` on its closed socket, it ends at the timeout.
        """
        return voice_threads(ignore=self.earlier_threads)

    # the cogs

    # load_extension executes the cog modules afresh, so the classes are not the ones this
    # module could import: look the cogs up by name.
    @property
    def voice_cog(self) -> Any:
        cog = self.bot.get_cog("Voice")
        assert cog is not None
        return cog

    @property
    def admin_cog(self) -> Any:
        cog = self.bot.get_cog("TTS admin")
        assert cog is not None
        return cog

    def voice_client(self) -> Any:
        guild = self.bot.get_guild(self.scene.guild.id)
        return None if guild is None else guild.voice_client

    # acting

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """The first truthy ``predicate()`` within ``timeout`` (polls the bot's state too)."""
        return await self.fake.wait_for(predicate, timeout, poll=0.02)

    async def join(self, member: Member | None = None) -> InteractionRecord:
        """``member`` (alice) joins the voice channel and runs /join in #general."""
        member = member or self.member
        await self.fake.set_voice_state(member, self.scene.voice)
        record = await self.fake.invoke_slash(member, self.scene.text, "join", timeout=5.0)
        assert record.texts, "no answer to /join"
        assert "Joined" in record.texts[-1], record.texts
        await self.wait_for(lambda: self.voice_client() is not None)
        await self.wait_for(lambda: self.voice_client().is_connected())
        return record

    async def say_in_channel(self, content: str, member: Member | None = None) -> Message:
        """``member`` writes ``content`` in the bound channel."""
        return await self.fake.send_message(member or self.member, self.scene.text, content)

    async def slash(self, *path: str, member: Member | None = None, **options: Any) -> Any:
        """``member`` runs ``/path`` in #general; the record once answered."""
        member = member or self.member
        return await self.fake.invoke_slash(
            member, self.scene.text, *path, timeout=8.0, options=options
        )

    # looking

    def stream(self) -> VoiceStream:
        return self.fake.voice_stream(self.scene.guild)

    def heard(self) -> list[Utterance]:
        """The utterances the voice server received (complete ones end with 5 silences)."""
        return [u for u in self.stream().utterances() if u.trailing_silence >= 5]

    async def wait_heard(self, count: int, timeout: float = 8.0) -> list[Utterance]:
        """Wait for ``count`` finished utterances at the voice server."""
        await self.wait_for(lambda: len(self.heard()) >= count, timeout)
        return self.heard()

    def posts(self, channel: Channel | None = None) -> list[str]:
        """What the bot posted in ``channel`` (default: the bound channel)."""
        return [m.content for m in self.fake.posted(channel or self.scene.text)]

    def text_posts(self) -> list[str]:
        """The bound channel's posts that stand in for speech (``🔇 NAME: text``)."""
        prefix = text_post_for_member(self.member, "")
        return [p for p in self.posts() if p.startswith(prefix)]

    def notices(self) -> list[str]:
        """The bound channel's posts that are not text posts."""
        prefix = text_post_for_member(self.member, "")
        return [p for p in self.posts() if not p.startswith(prefix)]

    def log_posts(self) -> list[Message]:
        return self.fake.posted(self.log_channel)

    def operator_warnings(self) -> list[str]:
        """The descriptions of the "TTS warning" embeds in the log channel."""
        return [
            embed.get("description", "")
            for message in self.log_posts()
            for embed in message.embeds
            if embed.get("title") == "TTS warning"
        ]

    def player(self) -> Any:
        return self.voice_cog.player(discord.Object(id=self.scene.guild.id))

    def guild(self) -> discord.Guild:
        """discord.py's object for the scene's guild."""
        guild = self.bot.get_guild(self.scene.guild.id)
        assert guild is not None
        return guild

    def channel(self, channel: Channel) -> Any:
        """discord.py's object for ``channel``."""
        return self.bot.get_channel(channel.id)

    def edge_texts(self) -> list[str | None]:
        """What Edge was asked to say, the startup test's phrase left out."""
        return [r.text for r in self.edge.requests[self.edge_baseline :]]

    async def settled(self, timeout: float = 8.0) -> None:
        """Wait until the guild's player has nothing queued or in progress."""
        await self.wait_for(
            lambda: (p := self.player()) is not None and not p.speaking and not p.pending, timeout
        )
        await asyncio.sleep(0)  # the last message's done callbacks (log, metrics) run first


VOICE_THREADS = ("voice-socket-reader:", "voice-keep-alive-handler:", "audio-player:")
"""The name prefixes of discord.py 2.7.1's voice threads."""
VOICE_TASKS = ("Voice websocket poller", "Voice connector")
"""The names of discord.py 2.7.1's voice tasks."""


def voice_threads(ignore: Collection[threading.Thread] = ()) -> list[str]:
    """discord.py's voice threads still alive in this process, but those in ``ignore``."""
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith(VOICE_THREADS) and t not in ignore
    ]


def voice_tasks() -> list[str]:
    """discord.py's voice tasks still running on this loop."""
    return [t.get_name() for t in asyncio.all_tasks() if t.get_name() in VOICE_TASKS]


def open_voice_sockets(fake: FakeDiscord) -> list[Any]:
    """The fake's voice websockets that are still open, on every voice server."""
    return [c for ep in fake.endpoints for c in ep.connections if c.close is None]


def text_post_for_member(member: Member, text: str) -> str:
    """The text post the bot makes for ``member``'s ``text``."""
    from edge_voice.core.speech import Utterance as SpeechUtterance

    return text_post_for(SpeechUtterance(text, member.id, member.user.username, 0.0))


@contextlib.asynccontextmanager
async def e2e_bot(
    tmp_path: Path,
    *,
    audio_seconds: float = AUDIO_SECONDS,
    pacing: Pacing | None = None,
    bot_cls: type[TTSBot] = TTSBot,
    fake_options: dict[str, Any] | None = None,
    setup: Callable[[FakeDiscord, Scene], None] | None = None,
    **config_sections: Any,
) -> AsyncIterator[E2E]:
    """The host logged in to a fresh fake Discord, speaking from a fresh fake Edge.

    ``setup`` adds to the world (members, channels, permissions) before the bot connects;
    ``config_sections`` are merged over :func:`e2e_config`'s.
    """
    async with (
        FakeDiscord(**(fake_options or {})) as fake,
        FakeEdgeServer(audio=edge_like_mp3(audio_seconds), pacing=pacing) as edge,
    ):
        scene = build_scene(fake)
        log_channel = fake.add_text_channel(scene.guild, "tts-log")
        # What the bot's invite asks for: embeds for the log channel on top of @everyone's.
        role = fake.add_role(scene.guild, "TTS bot", discord.Permissions(embed_links=True).value)
        fake.world.bot_member(scene.guild).role_ids.append(role.id)
        if setup is not None:
            setup(fake, scene)
        config = e2e_config(scene, tmp_path, log_channel=log_channel, **config_sections)
        with edge_client_pointed_at(edge.url):
            bot = bot_cls(config, **discord_client_options(fake))
            async with running_bot(fake, bot):
                e2e = E2E(fake, edge, scene, bot, log_channel)
                # The startup connectivity test synthesizes once and posts its result to
                # the log channel; let it finish first so tests count only their own.
                startup = e2e.admin_cog.startup_task
                if startup is not None:
                    await asyncio.wait_for(asyncio.shield(startup), 15)
                e2e.edge_baseline = len(edge.requests)
                yield e2e


def log_lines(caplog: Any, logger: str | None = None, level: int = logging.INFO) -> list[str]:
    """The messages of the captured records at ``level`` or above (from ``logger``)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= level and (logger is None or r.name.startswith(logger))
    ]

"""The voice connection as :mod:`core.voice_link` sees it: the discord.py side of a ``LinkPort``.

- :class:`LinkedVoiceClient`: the ``discord.VoiceClient`` the cog connects with. It
  overrides two documented ``VoiceProtocol`` hooks: ``on_voice_state_update``, only to
  note when Discord disconnected it on purpose (kicked, or its channel deleted), and
  ``connect``, to let discord.py's socket reader thread start first.
- :func:`library_view`, :func:`stop_library_tasks`, :func:`register_again`,
  :func:`socket_reader_started`: the one place that reads (and, to abandon a connection,
  touches) discord.py's private voice state.
- :class:`DiscordVoiceLink`: a guild's connection for the supervisor: its state,
  cutting the utterance in flight, who is listening, rejoining, abandoning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import discord
from discord.ext import commands

from edge_voice.cogs.voice_join import connect_voice
from edge_voice.core.voice_link import LinkState

log = logging.getLogger(__name__)

MOVED_CLOSE_CODE = 4014
"""The voice websocket close code of a move or a new voice server: the library follows it
(tests/README.md), so it is given time to settle rather than taken for a fault."""


CANCEL_RETRY = 0.05
"""Seconds between two cancellations of a discord.py task that ignored the first."""

READER_START_WITHIN = 1.0
"""Seconds a connect waits at most for discord.py's socket reader thread to start."""

READER_START_POLL = 0.002
"""Seconds between two looks at the reader thread while waiting for it to start."""


class LinkedVoiceClient(discord.VoiceClient):
    """A ``discord.VoiceClient`` that remembers being disconnected by Discord, and lets its
    socket reader thread start before connecting (:func:`socket_reader_started`).

    A VOICE_STATE_UPDATE without a channel that arrives while the client is connected
    was not asked for: discord.py itself marks the connection disconnected *before* it
    sends its own leave (to reconnect, or when it gives up), so its echo never finds
    the client connected.
    """

    disconnected_by_discord = False

    async def on_voice_state_update(self, data: Any) -> None:
        """Note an unasked-for disconnect, then let discord.py handle the update."""
        if data.get("channel_id") is None and self.is_connected():
            self.disconnected_by_discord = True
        await super().on_voice_state_update(data)

    # The signature is discord.py's VoiceProtocol.connect, timeout parameter included.
    async def connect(
        self,
        *,
        reconnect: bool,
        timeout: float,  # noqa: ASYNC109
        self_deaf: bool = False,
        self_mute: bool = False,
    ) -> None:
        """Connect once discord.py's socket reader thread has started (see
        :func:`socket_reader_started`)."""
        if not await socket_reader_started(self, within=min(timeout, READER_START_WITHIN)):
            log.warning("discord.py's voice socket reader has not started; connecting anyway")
        await super().connect(
            reconnect=reconnect, timeout=timeout, self_deaf=self_deaf, self_mute=self_mute
        )


@dataclass(frozen=True, slots=True)
class LibraryView:
    """What discord.py knows about its voice connection and does not say publicly."""

    socket_closed: bool
    """The voice websocket is closed (while the client may still say "connected")."""
    close_code: int | None
    working: bool
    """A discord.py task is still connecting or watching the connection."""


def library_view(client: Any) -> LibraryView:
    """Read discord.py **2.7.1**'s voice internals (check them again on every upgrade).

    ``VoiceClient.is_connected()`` stays True while discord.py waits out a 4006/4009
    backoff, waits for a move after a 4014, or tries to resume after a 4015, and its
    player keeps sending audio into the void meanwhile; only the voice websocket
    (``VoiceClient.ws``, a ``DiscordVoiceWebSocket`` whose ``ws`` is the aiohttp socket)
    shows it closed. And a client that is not connected may be reconnecting or may have
    been given up on: its ``VoiceConnectionState`` (``_connection``) then has no
    ``_runner`` (the websocket poller) or ``_connector`` task left alive.
    """
    socket = getattr(getattr(client, "ws", None), "ws", None)
    code = getattr(socket, "close_code", None)
    code = code if isinstance(code, int) else None
    # discord.py reads the close frame itself (no autoclose): the socket reports its close
    # code at once, and ``closed`` only once someone closes it from this side as well.
    closed = code is not None or bool(getattr(socket, "closed", False))
    return LibraryView(closed, code, bool(library_tasks(client)))


def library_tasks(client: Any) -> list[asyncio.Task[Any]]:
    """discord.py **2.7.1**'s tasks still at work on ``client``: the websocket poller
    (``_runner``, which also waits out reconnect backoffs) and the connector."""
    connection = getattr(client, "_connection", None)
    tasks = (getattr(connection, "_runner", None), getattr(connection, "_connector", None))
    return [t for t in tasks if isinstance(t, asyncio.Task) and not t.done()]


async def stop_library_tasks(client: Any, within: float) -> None:
    """Cancel discord.py's tasks on ``client`` until they have ended, at most ``within`` s.

    ``VoiceClient.disconnect()`` does not cancel a poller sleeping in its reconnect
    backoff: that task would later leave and join the channel again on its own. One
    ``cancel()`` is not always enough: the poller reads the voice websocket through
    ``asyncio.wait_for``, which on Python 3.11 returns the inner result and drops the
    cancellation when both arrive in the same step; the poller then goes into its backoff
    as if nothing happened. So cancel again until it is done.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        tasks = [t for t in library_tasks(client) if t is not asyncio.current_task()]
        if not tasks:
            return
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.warning("discord.py's voice tasks did not stop: %s", [t.get_name() for t in tasks])
            return
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=min(remaining, CANCEL_RETRY))


async def socket_reader_started(client: Any, within: float) -> bool:
    """Wait until discord.py **2.7.1**'s socket reader thread has paused itself at start;
    False if it has not within ``within`` seconds.

    ``VoiceConnectionState`` starts a ``SocketReader`` thread whose ``run()`` first pauses
    it. When IP discovery registers its listener before that pause (the thread not yet
    scheduled, as on a loaded machine), the pause wins with the listener registered, and
    nothing resumes the thread: the discovery answer is never read and the connect waits
    out its timeout ("Timed out connecting to voice"; tests/test_voice_reader_start.py).
    The reader starts with ``_idle_paused`` True; only that pause turns it False before a
    connect has begun.
    """
    reader = getattr(getattr(client, "_connection", None), "_socket_reader", None)
    if reader is None or not hasattr(reader, "_idle_paused"):
        return True  # not the discord.py this was written against: nothing to wait for
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while reader._idle_paused and reader.is_alive():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(READER_START_POLL)
    return True


def register_again(bot: commands.Bot, guild: discord.Guild, client: Any) -> None:
    """Make ``client`` ``guild``'s voice client again in discord.py **2.7.1**'s state.

    A new READY (a non-resumable op 9) empties ``ConnectionState._voice_clients`` and
    leaves the old client connected. Its own ``disconnect()`` is the clean way out, and
    it needs the registration: the echo of its leave is routed to the registered client
    (it waits for it), and its ``cleanup()`` removes whatever client is registered.
    """
    bot._connection._add_voice_client(guild.id, client)


class DiscordVoiceLink:
    """One guild's voice connection as a :class:`core.voice_link.LinkPort`.

    The guild and its voice client are looked up on every call (a re-IDENTIFY replaces
    discord.py's guild objects); ``channel_id`` follows the client when an admin moves it.
    """

    def __init__(
        self,
        bot: commands.Bot,
        guild_id: int,
        channel_id: int,
        *,
        post: Callable[[str], Awaitable[object]],
        lock: asyncio.Lock,
        connect_timeout: float,
    ) -> None:
        self.bot = bot
        self.guild_id = guild_id
        self.channel_id = channel_id
        self._post = post
        self._lock = lock
        self.connect_timeout = connect_timeout
        self._last: Any = None

    def guild(self) -> discord.Guild | None:
        """The guild, while discord.py knows it."""
        return self.bot.get_guild(self.guild_id)

    def client(self) -> Any:
        """The guild's registered voice client, if any."""
        guild = self.guild()
        return None if guild is None else guild.voice_client

    def channel(self) -> Any:
        """The voice channel the session speaks in (None once deleted)."""
        guild = self.guild()
        return None if guild is None else guild.get_channel(self.channel_id)

    def state(self) -> LinkState:
        """What the connection is doing; see :class:`core.voice_link.LinkState`."""
        guild = self.guild()
        if guild is None:
            return LinkState.SETTLING  # the gateway is identifying again; guilds come back
        client: Any = guild.voice_client
        if client is not None:
            self._last = client
            moved_to = getattr(client.channel, "id", None)
            if client.is_connected() and moved_to and moved_to != self.channel_id:
                log.info("guild %s: moved to voice channel %s", self.guild_id, moved_to)
                self.channel_id = moved_to
        if guild.get_channel(self.channel_id) is None:
            return LinkState.CHANNEL_DELETED
        if getattr(client or self._last, "disconnected_by_discord", False):
            return LinkState.KICKED
        if client is None:
            return LinkState.STRANDED if self._stranded() is not None else LinkState.GONE
        view = library_view(client)
        if client.is_connected():
            if not view.socket_closed:
                return LinkState.UP
            return LinkState.SETTLING if view.close_code == MOVED_CLOSE_CODE else LinkState.DOWN
        return LinkState.SETTLING if view.working else LinkState.GONE

    def _stranded(self) -> Any:
        """The last client seen, if discord.py no longer has it registered but it still
        holds a connection or a task (a new gateway session forgot it)."""
        last = self._last
        if last is None or last is self.client():
            return None
        alive = last.is_connected() or library_view(last).working
        return last if alive else None

    def interrupt(self) -> None:
        """Stop discord.py's player: the utterance ends as cut off and is posted as text."""
        client = self.client() or self._stranded()
        if client is not None:
            client.stop()

    def listeners_present(self) -> bool:
        """Whether anyone who is not a bot is in the voice channel."""
        channel = self.channel()
        members = getattr(channel, "members", [])
        return any(not member.bot for member in members)

    async def rejoin(self) -> bool:
        """Disconnect what discord.py left behind and join the channel again."""
        async with self._lock:
            guild, channel = self.guild(), self.channel()
            if guild is None or channel is None:
                return False
            problem = await connect_voice(
                guild, channel, connect_timeout=self.connect_timeout, cls=LinkedVoiceClient
            )
        if problem is not None:
            log.warning("guild %s: rejoining voice failed: %s", self.guild_id, problem)
        return problem is None

    async def abandon(self) -> None:
        """Take the connection from discord.py: its tasks stopped, voice left (op 4), its
        websocket, UDP socket and threads closed, the client unregistered."""
        async with self._lock:
            guild, client = self.guild(), self.client()
            if client is None:
                client = self._stranded()
                if client is None or guild is None:
                    return
                log.info("guild %s: closing the voice client a new session forgot", guild.id)
                register_again(self.bot, guild, client)
            await stop_library_tasks(client, self.connect_timeout)
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await client.disconnect(force=True)
            except (TimeoutError, discord.HTTPException, ConnectionError) as exc:
                log.warning("guild %s: leaving voice failed: %r", self.guild_id, exc)
            finally:
                left = guild.voice_client if guild is not None else None
                if left is not None and left is client:  # its disconnect did not finish
                    left.cleanup()

    async def notice(self, text: str) -> None:
        """Post ``text`` in the bound channel (the poster never raises)."""
        await self._post(text)

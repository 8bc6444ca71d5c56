"""Discord adapters: the voice connection and text channel for the player, and guild lookups.

- :class:`PacketSource`: a ``discord.AudioSource`` that hands the player's Opus packets
  (a :class:`core.packet_buffer.PacketBuffer`) to discord.py's player thread, no encoder needed.
- :class:`DiscordVoiceOutput`: :class:`core.player.VoiceOutput` over a guild's voice client.
- :class:`ChannelTextOutput`: :class:`core.player.TextOutput` posting to a text channel
  without ever pinging anyone.
- Helpers the voice cog uses: joining a voice channel (permission checks, connect or move),
  turning message text into an :class:`~core.speech.Utterance` with a guild's names, and
  replying to its commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import discord
from discord.utils import escape_markdown

from edge_voice.core.audio import OPUS_FRAME_SECONDS
from edge_voice.core.packet_buffer import PacketBuffer
from edge_voice.core.player import PlaybackError
from edge_voice.core.speech import SpeakerPrefixer, Utterance
from edge_voice.core.tts.errors import TTSError
from edge_voice.core.tts.text import check_speakable, clean_discord_message

log = logging.getLogger(__name__)

VOICE_CONNECT_TIMEOUT = 20.0
_UNCUT = 100_000  # a length limit no message reaches: cleaning without cutting
POST_TIMEOUT = 10.0
"""Seconds one text post may take before it is given up (and logged)."""
MESSAGE_LIMIT = 2000
"""Discord's limit on the characters of one message."""
PLAYBACK_STALL_SECONDS = 15.0
"""How long discord.py's player may read nothing before playback is given up: it stops
reading while it waits for a voice reconnect, which may never come."""


class PacketSource(discord.AudioSource):
    """Opus packets from a :class:`PacketBuffer`, read by discord.py's player thread.

    ``ended`` turns True once the buffer said it has no more audio, which tells a
    finished (or stalled-out) utterance apart from playback stopped from outside.
    """

    def __init__(self, buffer: PacketBuffer) -> None:
        self.buffer = buffer
        self.ended = False

    def read(self) -> bytes:
        """The next 20 ms packet (silence while synthesis lags), ``b""`` at the end."""
        packet = self.buffer.read(OPUS_FRAME_SECONDS)
        if not packet:
            self.ended = True
        return packet

    def is_opus(self) -> bool:
        """Always True: the packets are Opus already, so discord.py needs no libopus."""
        return True

    def cleanup(self) -> None:
        """Close the buffer, so the feeding side stops at its next packet."""
        self.buffer.close()


class DiscordVoiceOutput:
    """Plays a :class:`PacketBuffer` on ``guild``'s voice client.

    The voice client is looked up at each call, so a reconnect that replaced it is
    picked up. Playback that ends without reaching the end of the buffer, and
    without :meth:`stop`, means the connection was lost: :class:`PlaybackError`.
    """

    def __init__(
        self, guild: discord.Guild, *, stall_after: float = PLAYBACK_STALL_SECONDS
    ) -> None:
        self.guild = guild
        self.stall_after = stall_after
        self._stop_requested = False

    def _client(self) -> Any:
        return self.guild.voice_client

    def is_connected(self) -> bool:
        """Whether the guild has a voice client that is connected."""
        client = self._client()
        return client is not None and bool(client.is_connected())

    async def play(self, buffer: PacketBuffer) -> None:
        """Play ``buffer`` to its end; raise :class:`PlaybackError` or the buffer's
        synthesis error (a :class:`TTSError`) if playback failed."""
        client = self._client()
        if client is None or not client.is_connected():
            raise PlaybackError("not connected to voice")
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[Exception | None] = loop.create_future()

        def resolve(error: Exception | None) -> None:
            if not finished.done():
                finished.set_result(error)

        def after(error: Exception | None) -> None:
            # Called on discord.py's player thread, after the source's last read.
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(resolve, error)

        source = PacketSource(buffer)
        self._stop_requested = False
        try:
            client.play(source, after=after)
        except (discord.ClientException, TypeError) as exc:
            source.cleanup()
            raise PlaybackError(f"could not start playback: {exc}") from exc
        try:
            error = await self._while_reading(finished, buffer)
        except asyncio.CancelledError:
            client.stop()
            raise
        except TimeoutError:
            client.stop()
            raise PlaybackError(
                f"voice playback stalled: nothing was read for {self.stall_after:g}s"
            ) from None
        if isinstance(error, TTSError):
            raise error
        if error is not None:
            raise PlaybackError(f"voice playback failed: {error!r}") from error
        if not source.ended and not self._stop_requested:
            raise PlaybackError("voice connection lost")

    async def _while_reading(
        self, finished: asyncio.Future[Exception | None], buffer: PacketBuffer
    ) -> Exception | None:
        """Wait for ``finished`` as long as the player thread keeps reading packets."""
        seen = -1
        while True:
            progress = buffer.packets_read + buffer.silence_frames
            if progress == seen:
                raise TimeoutError
            seen = progress
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(finished), self.stall_after)

    def stop(self) -> None:
        """Stop the current playback; :meth:`play` then returns normally."""
        self._stop_requested = True
        client = self._client()
        if client is not None:
            client.stop()


class ChannelTextOutput:
    """Posts to one messageable channel with every mention suppressed; never raises.

    ``channel`` may be replaced (``/join`` run in another channel rebinds it).
    """

    def __init__(self, channel: discord.abc.Messageable) -> None:
        self.channel = channel

    async def post(self, text: str) -> None:
        """Post ``text`` (cut to Discord's limit); failures are logged."""
        await self.try_post(text)

    async def try_post(self, text: str) -> bool:
        """Like :meth:`post`, returning whether the message went out."""
        if len(text) > MESSAGE_LIMIT:
            text = text[: MESSAGE_LIMIT - 1] + "…"
        try:
            async with asyncio.timeout(POST_TIMEOUT):
                await self.channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:  # Forbidden and NotFound included
            log.warning("could not post to channel %s: %s", _channel_name(self.channel), exc)
            return False
        except TimeoutError:
            log.warning("posting to channel %s timed out", _channel_name(self.channel))
            return False
        return True


def _channel_name(channel: discord.abc.Messageable) -> str:
    return str(getattr(channel, "name", None) or getattr(channel, "id", "?"))


# -- voice connection and message text (for the cog) --------------------------


def bold(name: str) -> str:
    """``name`` in bold, its own markdown escaped."""
    return f"**{escape_markdown(name)}**"


def voice_channel_of(guild: discord.Guild) -> Any:
    """The bot's voice channel in ``guild``, also while its connection is down (reconnecting)."""
    client: Any = guild.voice_client
    return None if client is None else client.channel


def is_connected_in(guild: discord.Guild) -> bool:
    """Whether the bot's voice client in ``guild`` is connected."""
    client: Any = guild.voice_client
    return client is not None and bool(client.is_connected())


def join_problem(channel: Any, me: discord.Member) -> str | None:
    """Why the bot cannot speak in ``channel``, or None."""
    name = bold(channel.name)
    if isinstance(channel, discord.StageChannel):
        return f"{name} is a stage channel; I can only speak in voice channels."
    permissions = channel.permissions_for(me)
    if not permissions.connect:
        return f"I don't have permission to join {name} (Connect). Ask an admin to allow it."
    if not permissions.speak:
        return f"I don't have permission to speak in {name} (Speak). Ask an admin to allow it."
    limit = channel.user_limit
    full = limit and len(channel.members) >= limit and me not in channel.members
    if full and not permissions.move_members:
        return f"{name} is full ({len(channel.members)}/{limit})."
    return None


def can_post(channel: Any, me: discord.Member) -> bool:
    """Whether the bot may send messages in ``channel``."""
    if channel is None or not hasattr(channel, "permissions_for"):
        return channel is not None
    return bool(channel.permissions_for(me).send_messages)


async def connect_voice(guild: discord.Guild, channel: Any) -> str | None:
    """Connect (or move) to ``channel``; a user-facing problem, or None on success."""
    client: Any = guild.voice_client
    try:
        async with asyncio.timeout(2 * VOICE_CONNECT_TIMEOUT):  # a stale disconnect included
            if client is not None and client.is_connected():
                if client.channel != channel:
                    await client.move_to(channel, timeout=VOICE_CONNECT_TIMEOUT)
                return None
            if client is not None:
                await client.disconnect(force=True)
            await channel.connect(timeout=VOICE_CONNECT_TIMEOUT, reconnect=True, self_deaf=True)
    except TimeoutError:
        return f"Connecting to {bold(channel.name)} timed out. Try again in a moment."
    except Exception as exc:  # discord.py raises several kinds here; all mean "not connected"
        log.exception("joining voice channel %s failed", channel.id)
        return f"I couldn't join {bold(channel.name)}: {exc}"
    return None


def clean_for_guild(guild: discord.Guild, content: str, max_chars: int) -> str:
    """:func:`clean_discord_message` with ``guild``'s member, role and channel names."""

    def user(user_id: int) -> str | None:
        found = guild.get_member(user_id)
        return found.display_name if found else None

    def role(role_id: int) -> str | None:
        found = guild.get_role(role_id)
        return found.name if found else None

    def channel(channel_id: int) -> str | None:
        found = guild.get_channel_or_thread(channel_id)
        return found.name if found else None

    return clean_discord_message(
        content, max_chars=max_chars, resolve_user=user, resolve_role=role, resolve_channel=channel
    )


def build_utterance(
    guild: discord.Guild,
    author: Any,
    content: str,
    now: float,
    *,
    max_chars: int,
    spoken_max_chars: int,
    prefixer: SpeakerPrefixer | None,
    announce: bool = True,
) -> tuple[Utterance, bool]:
    """``content`` by ``author`` as an :class:`Utterance`, and whether it had to be cut.

    Cleaned with the guild's names and cut to ``max_chars``; with a ``prefixer``, the
    "NAME said" prefix is decided (and the speaker remembered; ``announce=False`` drops the
    prefix but still counts the speaker), and the text cut further so prefix and text fit
    ``spoken_max_chars``. Raises ``InvalidText`` when nothing speakable is left.
    """
    text = check_speakable(clean_for_guild(guild, content, max_chars), max_chars=max_chars)
    prefix = ""
    if prefixer is not None:
        spoken_name = clean_for_guild(guild, author.display_name, 64) or "someone"
        said = prefixer.prefix(author.id, spoken_name, now)  # remembers the speaker either way
        prefix = said if announce else ""
    budget = max(1, min(max_chars, spoken_max_chars - len(prefix)))
    if len(text) > budget:
        text = check_speakable(clean_for_guild(guild, content, budget), max_chars=budget)
    shortened = len(clean_for_guild(guild, content, _UNCUT)) > len(text)
    name = escape_markdown(author.display_name)
    return Utterance(text, author.id, name, now, spoken_prefix=prefix), shortened

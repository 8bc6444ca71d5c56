"""Joining a voice channel for the voice cog: permission checks, connect or move."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
from discord.utils import escape_markdown

log = logging.getLogger(__name__)

VOICE_CONNECT_TIMEOUT = 20.0


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


async def connect_voice(
    guild: discord.Guild,
    channel: Any,
    *,
    connect_timeout: float = VOICE_CONNECT_TIMEOUT,
    cls: type[discord.VoiceProtocol] = discord.VoiceClient,
) -> str | None:
    """Connect (or move) to ``channel`` with a ``cls`` client; a user-facing problem, or
    None on success. A client that is registered but not connected (discord.py gave up on
    it) is disconnected first."""
    client: Any = guild.voice_client
    try:
        async with asyncio.timeout(2 * connect_timeout):  # a stale disconnect included
            if client is not None and client.is_connected():
                if client.channel != channel:
                    await client.move_to(channel, timeout=connect_timeout)
                return None
            if client is not None:
                await client.disconnect(force=True)
            await channel.connect(timeout=connect_timeout, reconnect=True, self_deaf=True, cls=cls)
    except TimeoutError:
        return f"Connecting to {bold(channel.name)} timed out. Try again in a moment."
    except Exception as exc:  # discord.py raises several kinds here; all mean "not connected"
        log.exception("joining voice channel %s failed", channel.id)
        return f"I couldn't join {bold(channel.name)}: {exc}"
    return None

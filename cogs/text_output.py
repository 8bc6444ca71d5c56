"""Posting to a guild's text channel: the Discord side of :class:`core.player.TextOutput`."""

from __future__ import annotations

import asyncio
import logging

import discord

log = logging.getLogger(__name__)

POST_TIMEOUT = 10.0
"""Seconds one text post may take before it is given up (and logged)."""
MESSAGE_LIMIT = 2000
"""Discord's limit on the characters of one message."""


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

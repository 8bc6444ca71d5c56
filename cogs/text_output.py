"""Posting to a guild's text channel: the Discord side of :class:`core.player.TextOutput`.

:func:`post_error` is the one place discord.py's and aiohttp's exceptions from sending a
message become our :class:`~core.posting.PostError` kinds; :class:`ChannelTextOutput`
hands them to a :class:`~core.posting.ChannelPoster`, which retries, keeps the order and
reports what really happened.
"""

from __future__ import annotations

import logging

import aiohttp
import discord

from edge_voice.core.posting import (
    ChannelPoster,
    OperatorWarning,
    PostError,
    PostErrorKind,
    PostOutcome,
)

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()


def post_error(exc: Exception) -> PostError:
    """Classify an exception raised by ``channel.send`` (the only place that does)."""
    if isinstance(exc, discord.Forbidden):
        return PostError(PostErrorKind.PERMANENT, f"missing access or permission ({_status(exc)})")
    if isinstance(exc, discord.NotFound):
        return PostError(PostErrorKind.PERMANENT, f"the channel no longer exists ({_status(exc)})")
    if isinstance(exc, discord.RateLimited):
        return PostError(
            PostErrorKind.TRANSIENT,
            f"rate limited for {exc.retry_after:.1f}s",
            retry_after=exc.retry_after,
        )
    if isinstance(exc, discord.HTTPException):
        if exc.status == 429 or exc.status >= 500:
            return PostError(PostErrorKind.TRANSIENT, f"Discord answered {_status(exc)}")
        return PostError(PostErrorKind.REFUSED, f"Discord refused the message ({_status(exc)})")
    # aiohttp's ServerTimeoutError is a TimeoutError too: timeouts first.
    if isinstance(exc, TimeoutError):
        return PostError(PostErrorKind.TRANSIENT, "the connection to Discord timed out")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return PostError(
            PostErrorKind.TRANSIENT, f"the connection to Discord failed ({type(exc).__name__})"
        )
    log.error("posting failed in an unexpected way", exc_info=exc)
    return PostError(PostErrorKind.REFUSED, f"unexpected error: {exc!r}")


def _status(exc: discord.HTTPException) -> str:
    code = f", code {exc.code}" if exc.code else ""
    text = f": {exc.text}" if exc.text else ""
    return f"HTTP {exc.status}{code}{text}"


def channel_label(channel: discord.abc.Messageable) -> str:
    """How logs and operator warnings name ``channel`` (``#name`` or its id)."""
    name = getattr(channel, "name", None)
    return f"#{name}" if name else f"channel {getattr(channel, 'id', '?')}"


class ChannelTextOutput:
    """Posts to one messageable channel with every mention suppressed; never raises.

    ``channel`` may be replaced (``/join`` run in another channel rebinds it); posts keep
    one order across the change. ``warn`` receives one warning per outage of the channel.
    """

    def __init__(
        self, channel: discord.abc.Messageable, *, warn: OperatorWarning | None = None
    ) -> None:
        self.channel = channel
        self.poster = ChannelPoster(self._send, channel_label(channel), warn=warn)

    @property
    def channel(self) -> discord.abc.Messageable:
        """The channel posts go to."""
        return self._channel

    @channel.setter
    def channel(self, channel: discord.abc.Messageable) -> None:
        self._channel = channel
        if hasattr(self, "poster"):
            self.poster.name = channel_label(channel)

    async def post(self, text: str) -> PostOutcome:
        """Post ``text`` (cut to Discord's limit); what happened, never an exception."""
        return await self.poster.post(text)

    async def _send(self, text: str, nonce: str) -> None:
        try:
            await self._channel.send(text, nonce=nonce, allowed_mentions=NO_MENTIONS)
        except Exception as exc:
            raise post_error(exc) from exc

"""Answering slash commands: privately, without pings, within a deadline, never raising.

Both cogs answer through these two functions, so every reply is ephemeral, has
``AllowedMentions.none()`` and a deadline of its own, and a reply that cannot be
delivered is logged instead of breaking the command.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord

log = logging.getLogger(__name__)

REPLY_DEADLINE = 10.0
"""Seconds one reply (or defer) may take before it is given up and logged."""

NO_MENTIONS = discord.AllowedMentions.none()


async def respond(
    interaction: discord.Interaction,
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
) -> bool:
    """Answer ``interaction`` so only its user sees it: the first response, or a
    follow-up once it was answered or deferred. Returns whether it was delivered."""
    options: dict[str, Any] = {"ephemeral": True, "allowed_mentions": NO_MENTIONS}
    if content is not None:
        options["content"] = content
    if embed is not None:
        options["embed"] = embed
    try:
        async with asyncio.timeout(REPLY_DEADLINE):
            if interaction.response.is_done():
                await interaction.followup.send(**options)
            else:
                await interaction.response.send_message(**options)
    except (discord.HTTPException, TimeoutError) as exc:
        log.warning("could not answer %s: %r", interaction.user, exc)
        return False
    return True


async def defer_privately(interaction: discord.Interaction) -> bool:
    """Tell Discord the answer will take a while ("thinking…", ephemeral)."""
    try:
        async with asyncio.timeout(REPLY_DEADLINE):
            await interaction.response.defer(ephemeral=True, thinking=True)
    except (discord.HTTPException, TimeoutError) as exc:
        log.warning("could not defer the answer to %s: %r", interaction.user, exc)
        return False
    return True

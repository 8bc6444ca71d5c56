"""Turning a Discord message into what the voice says, with a guild's names."""

from __future__ import annotations

from typing import Any

import discord
from discord.utils import escape_markdown

from edge_voice.core.speech import SpeakerPrefixer, Utterance
from edge_voice.core.tts.text import check_speakable, clean_discord_message

_UNCUT = 100_000  # a length limit no message reaches: cleaning without cutting


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

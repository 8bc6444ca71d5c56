"""A Discord message -> an :class:`Utterance`: the guild's names and the message's files,
handed to the text policy (:func:`edge_voice.core.text.policy.speech_for`)."""

from __future__ import annotations

from typing import Any

import discord

from edge_voice.core.speaking import SpeakingPlan
from edge_voice.core.speech import SpeakerPrefixer, Utterance
from edge_voice.core.text.attachments import Attachment
from edge_voice.core.text.cleanup import Lookups
from edge_voice.core.text.policy import Message, Unspeakable, speech_for
from edge_voice.core.tts.errors import InvalidText


def lookups_for(guild: discord.Guild) -> Lookups:
    """``guild``'s member, role and channel names, from its cache."""

    def user(user_id: int) -> str | None:
        found = guild.get_member(user_id)
        return found.display_name if found else None

    def role(role_id: int) -> str | None:
        found = guild.get_role(role_id)
        return found.name if found else None

    def channel(channel_id: int) -> str | None:
        found = guild.get_channel_or_thread(channel_id)
        return found.name if found else None

    return Lookups(user, role, channel)


def attachments_of(message: discord.Message | None) -> tuple[Attachment, ...]:
    """The message's files, as the policy describes them."""
    if message is None:
        return ()
    return tuple(Attachment(file.filename, file.content_type) for file in message.attachments)


def stickers_of(message: discord.Message | None) -> tuple[str, ...]:
    """The names of the message's stickers."""
    return () if message is None else tuple(sticker.name for sticker in message.stickers)


def build_utterance(
    guild: discord.Guild,
    author: Any,
    content: str,
    now: float,
    *,
    max_chars: int,
    spoken_max_chars: int,
    prefixer: SpeakerPrefixer | None,
    voice: str,
    announce: bool = True,
    message: discord.Message | None = None,
    name: str | None = None,
) -> tuple[Utterance, bool]:
    """``content`` by ``author`` as an :class:`Utterance`, and whether it had to be cut.

    The spoken text (with "NAME said" when ``prefixer`` says so) fits both ``max_chars``
    and ``spoken_max_chars``, in the words of ``voice``'s language; ``message`` adds its
    attachments and stickers; ``name`` is the name the author chose to be called (else
    their display name). Raises ``InvalidText`` when there is nothing to say.
    """
    asked = Message(
        content,
        author.id,
        name or author.display_name,
        attachments_of(message),
        stickers_of(message),
    )
    said = speech_for(
        asked,
        max_chars=min(max_chars, spoken_max_chars),
        language=voice,
        lookups=lookups_for(guild),
        prefixer=prefixer,
        now=now,
        announce=announce,
    )
    if isinstance(said, Unspeakable):
        raise InvalidText(said.reason)
    utterance = Utterance(
        said.text, author.id, said.author_name, now, spoken_prefix=said.prefix, spoken=said.spoken
    )
    return utterance, said.cut


def planned_utterance(
    guild: discord.Guild,
    author: Any,
    content: str,
    now: float,
    plan: SpeakingPlan,
    *,
    spoken_max_chars: int,
    prefixer: SpeakerPrefixer | None,
    announce: bool = True,
    message: discord.Message | None = None,
) -> tuple[Utterance, bool]:
    """:func:`build_utterance` as ``plan`` says: in the language of its voice, within the
    server's length limit, with the name the author chose, and "NAME said" as the server
    has it switched now (``prefixer`` follows it). Raises ``InvalidText``."""
    if prefixer is not None:
        # The server may switch "NAME said" on or off at any time.
        prefixer.enabled = plan.announce_speaker
    return build_utterance(
        guild, author, content, now, max_chars=plan.max_chars,
        spoken_max_chars=spoken_max_chars, prefixer=prefixer, voice=plan.voice,
        announce=announce, message=message, name=plan.name,
    )  # fmt: skip

"""The fake's world: guilds, channels, roles, members, voice states and messages.

Plain dataclasses that render themselves as the JSON payloads discord.py 2.7.1 parses
(every key its constructors index with ``[...]`` is present). Nothing here talks to a
socket; ``gateway.py`` and ``rest.py`` serve this state.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

Payload = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000

# Permission bits the fake itself needs; tests may pass any integer (or
# ``discord.Permissions(...).value``) for roles and members.
ADMINISTRATOR = 1 << 3
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
CONNECT = 1 << 20
SPEAK = 1 << 21
ALL_PERMISSIONS = (1 << 53) - 1
DEFAULT_EVERYONE = VIEW_CHANNEL | SEND_MESSAGES | CONNECT | SPEAK | (1 << 6) | (1 << 16)
"""@everyone in a new guild: view, send, connect, speak, add reactions, read history."""


class ChannelType(IntEnum):
    """Discord's channel types the fake creates."""

    TEXT = 0
    VOICE = 2
    CATEGORY = 4
    STAGE = 13


class SnowflakeFactory:
    """Increasing snowflakes whose timestamp bits are "now", like Discord's.

    Shard routing reads those bits (``(guild_id >> 22) % shard_count``), so
    :meth:`for_shard` can pick an id that lands on a given shard.
    """

    def __init__(self) -> None:
        self._last_ms = 0
        self._counter = itertools.count()

    def next(self) -> int:
        """A new snowflake, larger than every earlier one."""
        now_ms = max(int(time.time() * 1000) - DISCORD_EPOCH_MS, self._last_ms)
        self._last_ms = now_ms
        return (now_ms << 22) | (1 << 17) | (next(self._counter) & 0xFFF)

    def for_shard(self, shard_id: int, shard_count: int) -> int:
        """A new snowflake with ``(id >> 22) % shard_count == shard_id``."""
        if not 0 <= shard_id < shard_count:
            raise ValueError(f"shard {shard_id} is not in 0..{shard_count - 1}")
        now_ms = max(int(time.time() * 1000) - DISCORD_EPOCH_MS, self._last_ms + 1)
        now_ms += (shard_id - now_ms) % shard_count
        self._last_ms = now_ms
        return (now_ms << 22) | (1 << 17) | (next(self._counter) & 0xFFF)


def iso_timestamp(when: datetime | None = None) -> str:
    """An ISO-8601 UTC timestamp as Discord writes it."""
    return (when or datetime.now(UTC)).isoformat()


def guild_shard(guild_id: int, shard_count: int) -> int:
    """The shard Discord routes ``guild_id`` to."""
    return (guild_id >> 22) % shard_count


@dataclass(eq=False)
class User:
    """A Discord user (the bot's own user too)."""

    id: int
    username: str
    bot: bool = False
    global_name: str | None = None

    def payload(self) -> Payload:
        """The user object."""
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
        }


@dataclass(eq=False)
class Role:
    """A guild role; the @everyone role has the guild's id."""

    id: int
    guild_id: int
    name: str
    permissions: int = 0
    position: int = 0
    color: int = 0
    hoist: bool = False
    mentionable: bool = False

    def payload(self) -> Payload:
        """The role object."""
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": self.color,
            "colors": {
                "primary_color": self.color,
                "secondary_color": None,
                "tertiary_color": None,
            },
            "hoist": self.hoist,
            "managed": False,
            "mentionable": self.mentionable,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }


@dataclass(frozen=True, slots=True)
class Overwrite:
    """A channel permission overwrite for a role (type 0) or a member (type 1)."""

    target_id: int
    type: int
    allow: int = 0
    deny: int = 0

    def payload(self) -> Payload:
        """The overwrite object."""
        return {
            "id": str(self.target_id),
            "type": self.type,
            "allow": str(self.allow),
            "deny": str(self.deny),
        }


@dataclass(eq=False)
class Channel:
    """A guild channel: text, voice, stage or category."""

    id: int
    guild_id: int
    name: str
    type: ChannelType = ChannelType.TEXT
    position: int = 0
    topic: str | None = None
    parent_id: int | None = None
    bitrate: int = 64_000
    user_limit: int = 0
    overwrites: list[Overwrite] = field(default_factory=list)

    @property
    def is_voice(self) -> bool:
        """Whether members can connect to this channel."""
        return self.type in (ChannelType.VOICE, ChannelType.STAGE)

    @property
    def mention(self) -> str:
        """``<#id>``."""
        return f"<#{self.id}>"

    def payload(self) -> Payload:
        """The channel object, with ``guild_id`` (gateway and REST both accept it)."""
        data: Payload = {
            "id": str(self.id),
            "guild_id": str(self.guild_id),
            "type": int(self.type),
            "name": self.name,
            "position": self.position,
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "permission_overwrites": [o.payload() for o in self.overwrites],
            "nsfw": False,
            "flags": 0,
        }
        if self.is_voice:
            data.update(
                bitrate=self.bitrate,
                user_limit=self.user_limit,
                rtc_region=None,
                video_quality_mode=1,
                last_message_id=None,
                rate_limit_per_user=0,
            )
        elif self.type is ChannelType.TEXT:
            data.update(topic=self.topic, last_message_id=None, rate_limit_per_user=0)
        return data


@dataclass(eq=False)
class Member:
    """A user's membership of one guild."""

    user: User
    guild_id: int
    nick: str | None = None
    role_ids: list[int] = field(default_factory=list)
    joined_at: str = field(default_factory=iso_timestamp)
    permissions: int | None = None
    """Fixed guild permissions, overriding the roles' (None: computed from the roles)."""

    @property
    def id(self) -> int:
        """The user's id."""
        return self.user.id

    @property
    def mention(self) -> str:
        """``<@id>``."""
        return f"<@{self.user.id}>"

    def payload(self, *, with_user: bool = True) -> Payload:
        """The guild member object."""
        data: Payload = {
            "nick": self.nick,
            "roles": [str(r) for r in self.role_ids],
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "avatar": None,
            "banner": None,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        return data


@dataclass(eq=False)
class VoiceState:
    """A member's voice connection in a guild."""

    guild_id: int
    user_id: int
    channel_id: int | None
    session_id: str
    self_mute: bool = False
    self_deaf: bool = False

    def payload(self, member: Member | None = None) -> Payload:
        """The voice state object; with ``member`` as VOICE_STATE_UPDATE carries it."""
        data: Payload = {
            "guild_id": str(self.guild_id),
            "channel_id": str(self.channel_id) if self.channel_id else None,
            "user_id": str(self.user_id),
            "session_id": self.session_id,
            "deaf": False,
            "mute": False,
            "self_deaf": self.self_deaf,
            "self_mute": self.self_mute,
            "self_stream": False,
            "self_video": False,
            "suppress": False,
            "request_to_speak_timestamp": None,
        }
        if member is not None:
            data["member"] = member.payload()
        return data


@dataclass(eq=False)
class Message:
    """A message in a channel: sent by a member (driver) or posted by the bot (REST)."""

    id: int
    channel_id: int
    guild_id: int | None
    author: User
    content: str = ""
    embeds: list[Payload] = field(default_factory=list)
    attachments: list[Payload] = field(default_factory=list)
    sticker_items: list[Payload] = field(default_factory=list)
    flags: int = 0
    allowed_mentions: Payload | None = None
    """As the bot sent it (None when absent from the request)."""
    request: Payload | None = None
    """The full JSON the bot posted (``payload_json`` for multipart); None for driver messages."""
    files: list[tuple[str, int]] = field(default_factory=list)
    """``(filename, size)`` of uploaded files."""
    webhook_id: int | None = None
    mentions: list[Member] = field(default_factory=list)
    mention_roles: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    timestamp: str = field(default_factory=iso_timestamp)
    edited_timestamp: str | None = None

    @property
    def ephemeral(self) -> bool:
        """Whether flag 64 (EPHEMERAL) is set."""
        return bool(self.flags & 64)

    def payload(self, member: Member | None = None) -> Payload:
        """The message object; ``member`` adds ``member`` as MESSAGE_CREATE carries it."""
        data: Payload = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "author": self.author.payload(),
            "content": self.content,
            "timestamp": self.timestamp,
            "edited_timestamp": self.edited_timestamp,
            "tts": False,
            "mention_everyone": self.mention_everyone,
            "mentions": [
                {**m.user.payload(), "member": m.payload(with_user=False)} for m in self.mentions
            ],
            "mention_roles": [str(r) for r in self.mention_roles],
            "attachments": self.attachments,
            "embeds": self.embeds,
            "sticker_items": self.sticker_items,
            "pinned": False,
            "type": 0,
            "flags": self.flags,
            "components": [],
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.request and self.request.get("nonce") is not None:
            data["nonce"] = self.request["nonce"]
        if member is not None:
            data["member"] = member.payload(with_user=False)
        return data


@dataclass(eq=False)
class Guild:
    """A guild and everything in it."""

    id: int
    name: str
    owner_id: int
    preferred_locale: str = "en-US"
    roles: dict[int, Role] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    voice_states: dict[int, VoiceState] = field(default_factory=dict)

    @property
    def everyone(self) -> Role:
        """The @everyone role."""
        return self.roles[self.id]

    def base_permissions(self, member: Member) -> int:
        """Guild-level permissions: @everyone plus the member's roles, or the fixed value."""
        if member.user.id == self.owner_id:
            return ALL_PERMISSIONS
        if member.permissions is not None:
            value = member.permissions
        else:
            value = self.everyone.permissions
            for role_id in member.role_ids:
                value |= self.roles[role_id].permissions
        return ALL_PERMISSIONS if value & ADMINISTRATOR else value

    def permissions_in(self, member: Member, channel: Channel) -> int:
        """Permissions in ``channel`` after overwrites (@everyone, then roles, then member)."""
        value = self.base_permissions(member)
        if value & ADMINISTRATOR:
            return ALL_PERMISSIONS
        by_target = {o.target_id: o for o in channel.overwrites}
        everyone = by_target.get(self.id)
        if everyone is not None:
            value = (value & ~everyone.deny) | everyone.allow
        allow = deny = 0
        for role_id in member.role_ids:
            overwrite = by_target.get(role_id)
            if overwrite is not None:
                allow |= overwrite.allow
                deny |= overwrite.deny
        value = (value & ~deny) | allow
        own = by_target.get(member.user.id)
        if own is not None and own.type == 1:
            value = (value & ~own.deny) | own.allow
        return value

    def payload(self) -> Payload:
        """The full GUILD_CREATE payload, members and voice states included.

        ``member_count`` equals the members sent, so discord.py considers the guild
        chunked and sends no REQUEST_GUILD_MEMBERS at startup.
        """
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "region": None,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "preferred_locale": self.preferred_locale,
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": [r.payload() for r in self.roles.values()],
            "channels": [c.payload() for c in self.channels.values()],
            "threads": [],
            "members": [m.payload() for m in self.members.values()],
            "voice_states": [v.payload() for v in self.voice_states.values()],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "member_count": len(self.members),
            "large": False,
            "unavailable": False,
            "joined_at": iso_timestamp(),
            "max_members": 500_000,
            "max_video_channel_users": 25,
        }

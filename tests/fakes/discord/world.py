"""The registry behind the fake: the bot's user, guilds, messages, synced commands.

Also the :class:`Notifier` every recorder pokes, so tests wait on "something changed"
instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from tests.fakes.discord.model import (
    DEFAULT_EVERYONE,
    Channel,
    ChannelType,
    Guild,
    Member,
    Message,
    Overwrite,
    Payload,
    Role,
    SnowflakeFactory,
    User,
)

T = TypeVar("T")


class Notifier:
    """Wakes waiters whenever something the fake records changes.

    :meth:`notify` is called on hot paths (every UDP packet), so it costs one
    attribute check while nobody waits.
    """

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    @property
    def waiting(self) -> bool:
        """Whether anyone waits for a change (read from other threads too)."""
        return self._event is not None

    def notify(self) -> None:
        """Something changed: wake every current waiter."""
        event = self._event
        if event is not None:
            self._event = None
            event.set()

    async def wait_for(
        self, predicate: Callable[[], T], timeout: float = 5.0, *, poll: float | None = None
    ) -> T:
        """Return the first truthy ``predicate()``, re-checked after every change.

        ``poll`` also re-checks it at that interval (for state that changes without a
        notification, e.g. inside the bot). Raises :class:`TimeoutError` (naming the
        predicate) when ``timeout`` passes first.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            # Register before checking: a change recorded (on another thread) between the
            # check and the wait must still wake this waiter.
            if self._event is None:
                self._event = asyncio.Event()
            event = self._event
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout:.2f}s: {predicate!r}")
            wait = remaining if poll is None else min(poll, remaining)
            try:
                async with asyncio.timeout(wait):
                    await event.wait()
            except TimeoutError:
                continue


class World:
    """Everything the fake knows: users, guilds and their contents, messages, commands."""

    def __init__(self, *, bot_name: str = "FakeBot", application_id: int | None = None) -> None:
        self.snowflakes = SnowflakeFactory()
        self.notifier = Notifier()
        self.bot = User(self.snowflakes.next(), bot_name, bot=True)
        self.application_id = application_id or self.bot.id
        self.owner = User(self.snowflakes.next(), "owner")
        self.guilds: dict[int, Guild] = {}
        self.messages: dict[int, list[Message]] = {}
        self.global_commands: list[Payload] = []
        self.guild_commands: dict[int, list[Payload]] = {}
        self.started = time.monotonic()

    # building

    def add_guild(
        self,
        name: str = "Fake Guild",
        *,
        guild_id: int | None = None,
        shard: tuple[int, int] | None = None,
        preferred_locale: str = "en-US",
        everyone_permissions: int = DEFAULT_EVERYONE,
    ) -> Guild:
        """A guild with @everyone and the bot as a member (or ``guild.me`` is None).

        ``shard=(shard_id, shard_count)`` picks an id that Discord would route there.
        """
        if guild_id is None:
            guild_id = (
                self.snowflakes.for_shard(*shard) if shard is not None else self.snowflakes.next()
            )
        guild = Guild(guild_id, name, self.owner.id, preferred_locale=preferred_locale)
        guild.roles[guild_id] = Role(guild_id, guild_id, "@everyone", everyone_permissions)
        guild.members[self.bot.id] = Member(self.bot, guild_id)
        self.guilds[guild_id] = guild
        self.notifier.notify()
        return guild

    def add_role(
        self, guild: Guild, name: str, permissions: int = 0, *, position: int | None = None
    ) -> Role:
        """A role in ``guild`` with ``permissions`` (an int bitfield)."""
        role = Role(
            self.snowflakes.next(),
            guild.id,
            name,
            permissions,
            position if position is not None else len(guild.roles),
        )
        guild.roles[role.id] = role
        return role

    def add_channel(
        self,
        guild: Guild,
        name: str,
        kind: ChannelType,
        *,
        overwrites: Iterable[Overwrite] = (),
        **fields: Any,
    ) -> Channel:
        """A channel of ``kind`` in ``guild``; ``fields`` set :class:`Channel` attributes."""
        channel = Channel(
            self.snowflakes.next(),
            guild.id,
            name,
            kind,
            position=len(guild.channels),
            overwrites=list(overwrites),
            **fields,
        )
        guild.channels[channel.id] = channel
        self.messages.setdefault(channel.id, [])
        return channel

    def add_member(
        self,
        guild: Guild,
        name: str,
        *,
        roles: Iterable[Role] = (),
        permissions: int | None = None,
        nick: str | None = None,
        bot: bool = False,
        user: User | None = None,
    ) -> Member:
        """A member of ``guild``; a new user unless ``user`` is given (one user, many guilds).

        ``permissions`` fixes the guild permissions; otherwise the roles' are used.
        """
        user = user or User(self.snowflakes.next(), name, bot=bot)
        member = Member(user, guild.id, nick, [r.id for r in roles], permissions=permissions)
        guild.members[user.id] = member
        return member

    # lookups

    def guild(self, guild_id: int) -> Guild | None:
        """The guild with ``guild_id``, if any."""
        return self.guilds.get(guild_id)

    def channel(self, channel_id: int) -> tuple[Guild, Channel] | None:
        """The guild and channel with ``channel_id``, if it exists."""
        for guild in self.guilds.values():
            channel = guild.channels.get(channel_id)
            if channel is not None:
                return guild, channel
        return None

    def bot_member(self, guild: Guild) -> Member:
        """The bot's membership of ``guild``."""
        return guild.members[self.bot.id]

    def find_message(self, channel_id: int, message_id: int) -> Message | None:
        """A message in ``channel_id`` by id."""
        for message in self.messages.get(channel_id, ()):
            if message.id == message_id:
                return message
        return None

    def commands_for(self, guild_id: int | None) -> list[Payload]:
        """The commands synced for ``guild_id`` (None: the global ones)."""
        if guild_id is None:
            return self.global_commands
        return self.guild_commands.get(guild_id, [])

    def find_command(self, name: str, guild_id: int | None) -> tuple[Payload, int | None] | None:
        """A synced top-level command by name: the guild's first, then the global ones.

        Returns the command and the guild it was synced to (None when global).
        """
        if guild_id is not None:
            for command in self.guild_commands.get(guild_id, ()):
                if command["name"] == name:
                    return command, guild_id
        for command in self.global_commands:
            if command["name"] == name:
                return command, None
        return None

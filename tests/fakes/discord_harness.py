"""Cog test harness: a dpytest 0.7.0 bot on discord.py 2.7.1 with a ready-made guild.

For message flows only (listeners, posts, extension loading, command sync): slash
commands, voice and REST or gateway faults are tested against the protocol-level fake in
``tests/fakes/discord/`` instead. Every compatibility shim for dpytest 0.7.0 vs discord.py
2.7 lives in this module and nowhere else (member ``flags``, voice ``bitrate``, role
``colors``, reaction ``type``, message/channel ``type`` enums, ``create_channel`` options,
the tree's stale state, ``close()`` without a socket). Only one bot can be active at a time
(dpytest keeps global state).

Bot (pytest-asyncio auto mode, function-scoped loops)::

    async with await make_test_bot(["some.extension"], setup=inject_services) as tb:
        tb.bot, tb.guild, tb.text_channel, tb.voice_channel  # a ready-made guild
    # or as a fixture: `async with running_test_bot([...]) as tb: yield tb`

``setup(bot)`` runs before the extensions load (put dependencies on the bot there). Closing
drains dpytest's queues, closes the bot (unloads extensions) and undoes every patch.

Guild objects::

    alice = add_member(tb.guild, "alice")                       # @everyone permissions only
    admin = add_member(tb.guild, "root", permissions=discord.Permissions(manage_guild=True))
    role = add_role(tb.guild, "DJ", permissions=0)
    vc2 = add_voice_channel(tb.guild, "Music", bitrate=96000)   # or guild.create_voice_channel(...)

Messages: ``await send_message(alice, tb.text_channel, "hi")`` fires ``on_message`` listeners and
waits for them; ``tb.sent`` lists what the bot posted (``SentMessage``: ``.content``, ``.embeds``,
``.allowed_mentions``, ``.mentions_suppressed``); ``dpytest.get_message()`` still works.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import discord
import discord.ext.test as dpytest
from discord.ext import commands
from discord.ext.test import backend as dpy_backend
from discord.ext.test import factories as dpy_factories

__all__ = [
    "SentMessage",
    "TestBot",
    "add_guild",
    "add_member",
    "add_role",
    "add_text_channel",
    "add_voice_channel",
    "make_test_bot",
    "mentions_suppressed",
    "running_test_bot",
    "send_message",
]

_active_bot: TestBot | None = None


# ---------------------------------------------------------------- captured channel messages


def mentions_suppressed(allowed_mentions: dict[str, Any] | None) -> bool:
    """True when an ``allowed_mentions`` payload makes every ping impossible."""
    if allowed_mentions is None:
        return False  # Discord then parses every mention in the content
    return (
        allowed_mentions.get("parse") == []
        and not allowed_mentions.get("users")
        and not allowed_mentions.get("roles")
        and not allowed_mentions.get("replied_user")
    )


def _json_body(
    payload: dict[str, Any] | None, multipart: list[dict[str, Any]] | None
) -> dict[str, Any]:
    if payload is not None:
        return copy.deepcopy(payload)
    for part in multipart or []:
        if part.get("name") == "payload_json":
            return dict(json.loads(part["value"]))
    return {}


def _permission_value(value: int | discord.Permissions) -> int:
    return value.value if isinstance(value, discord.Permissions) else int(value)


@dataclass
class SentMessage:
    """A message the bot posted to a channel, as the JSON it sent to Discord."""

    channel_id: int
    payload: dict[str, Any]
    message_id: int | None = None

    @property
    def content(self) -> str | None:
        content: str | None = self.payload.get("content")
        return content

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return list(self.payload.get("embeds") or [])

    @property
    def allowed_mentions(self) -> dict[str, Any] | None:
        allowed: dict[str, Any] | None = self.payload.get("allowed_mentions")
        return allowed

    @property
    def mentions_suppressed(self) -> bool:
        return mentions_suppressed(self.allowed_mentions)


# ---------------------------------------------------------------- dpytest <-> discord.py 2.7 shims


def _patch_dpytest(stack: contextlib.ExitStack) -> None:
    """Fix the payload shapes dpytest 0.7.0 builds for discord.py 1.x/2.0."""
    orig_dict_from_member = dpy_factories.dict_from_member
    orig_dict_from_channel = dpy_factories.dict_from_channel
    orig_dict_from_message = dpy_factories.dict_from_message
    orig_make_role = dpy_backend.make_role
    orig_update_role = dpy_backend.update_role

    def dict_from_member(member: discord.Member) -> dict[str, Any]:
        data = orig_dict_from_member(member)
        data["flags"] = member.flags.value  # dpytest puts the MemberFlags object in the payload
        return data

    def dict_from_message(message: discord.Message) -> dict[str, Any]:
        data = orig_dict_from_message(message)
        data["type"] = message.type.value  # an enum here turns into MessageType.unknown_...
        data["channel_id"] = message.channel.id
        return data

    def dict_from_channel(channel: Any) -> dict[str, Any]:
        data = orig_dict_from_channel(channel)
        data["type"] = channel.type.value
        if isinstance(channel, discord.VoiceChannel | discord.StageChannel):
            # discord.py raises KeyError('bitrate') on a voice channel payload without these
            data.update(bitrate=channel.bitrate, user_limit=channel.user_limit)
        return data

    def role_fields(fields: dict[str, Any]) -> dict[str, Any]:
        # 2.7 sends `colors` (and icon/emoji fields) that dpytest's role helpers reject
        known = ("id_num", "name", "colour", "color", "permissions", "hoist", "mentionable")
        kwargs = {key: value for key, value in fields.items() if key in known}
        colors = fields.get("colors") or {}
        if "primary_color" in colors:
            kwargs["colour"] = colors["primary_color"] or 0
        if "permissions" in kwargs:
            kwargs["permissions"] = int(kwargs["permissions"])
        return kwargs

    def make_role(name: str, guild: discord.Guild, **fields: Any) -> discord.Role:
        return orig_make_role(name, guild, **role_fields(fields))

    def update_role(role: discord.Role, **fields: Any) -> discord.Role:
        return orig_update_role(role, **role_fields(fields))

    stack.enter_context(mock.patch.object(dpy_factories, "dict_from_member", dict_from_member))
    stack.enter_context(mock.patch.object(dpy_factories, "dict_from_channel", dict_from_channel))
    stack.enter_context(mock.patch.object(dpy_factories, "dict_from_message", dict_from_message))
    stack.enter_context(mock.patch.object(dpy_backend, "make_role", make_role))
    stack.enter_context(mock.patch.object(dpy_backend, "update_role", update_role))


def _patch_http(http: Any) -> None:
    """dpytest's ``create_channel`` drops voice options and finds the guild by frame inspection."""

    async def create_channel(guild_id: int, channel_type: int, **options: Any) -> dict[str, Any]:
        guild: Any = dpy_backend.get_state()._get_guild(guild_id)
        channel: discord.abc.GuildChannel
        common: dict[str, Any] = {
            "permission_overwrites": options.get("permission_overwrites"),
            "parent_id": options.get("parent_id"),
        }
        if channel_type == discord.ChannelType.voice.value:
            channel = dpy_backend.make_voice_channel(
                options["name"],
                guild,
                bitrate=options.get("bitrate", 64000),
                user_limit=options.get("user_limit", 0),
                **common,
            )
        elif channel_type == discord.ChannelType.text.value:
            channel = dpy_backend.make_text_channel(options["name"], guild, **common)
        elif channel_type == discord.ChannelType.category.value:
            channel = dpy_backend.make_category_channel(
                options["name"], guild, permission_overwrites=common["permission_overwrites"]
            )
        else:
            raise NotImplementedError(f"the test harness cannot create channel type {channel_type}")
        return dict(dpy_factories.dict_from_channel(channel))

    http.create_channel = create_channel


def _patch_state(state: Any) -> None:
    """Complete dpytest's gateway payloads: 2.7 needs reaction ``type`` and role ``colors``."""

    def fix_reaction(data: dict[str, Any]) -> None:
        data.setdefault("type", 0)
        data.setdefault("burst", False)

    def fix_role(data: dict[str, Any]) -> None:
        # dpytest writes the 1.x `color` field; 2.7 reads the primary colour from `colors`
        role = data["role"]
        role["colors"] = {"primary_color": role.get("color", 0)}

    fixes: dict[str, Callable[[dict[str, Any]], None]] = {
        "parse_message_reaction_add": fix_reaction,
        "parse_message_reaction_remove": fix_reaction,
        "parse_guild_role_create": fix_role,
        "parse_guild_role_update": fix_role,
    }
    for name, fix in fixes.items():
        original = getattr(state, name)

        def parse(
            data: dict[str, Any],
            _original: Callable[[Any], None] = original,
            _fix: Callable[[dict[str, Any]], None] = fix,
        ) -> None:
            _fix(data)
            _original(data)

        setattr(state, name, parse)


# ---------------------------------------------------------------- the bot


@dataclass(eq=False)
class TestBot:
    """A configured ``commands.Bot`` with a default guild and everything the harness captured."""

    __test__ = False  # not a pytest test class

    bot: commands.Bot
    guild: discord.Guild
    text_channel: discord.TextChannel
    voice_channel: discord.VoiceChannel
    sent: list[SentMessage] = field(default_factory=list)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def sent_to(self, channel: discord.abc.Snowflake) -> list[SentMessage]:
        """Messages the bot posted to ``channel``."""
        return [message for message in self.sent if message.channel_id == channel.id]

    async def close(self) -> None:
        """Run pending events, close the bot, undo every patch."""
        global _active_bot
        try:
            await dpytest.empty_queue()
            # dpytest's websocket has no socket, so Client.close() would fail asking if it is open
            self.bot.ws = None  # type: ignore[assignment]
            await self.bot.close()
            await dpytest.run_all_events()
        finally:
            self._stack.close()
            if _active_bot is self:
                _active_bot = None

    async def __aenter__(self) -> TestBot:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _default_intents() -> discord.Intents:
    intents = discord.Intents.default()
    intents.message_content = True
    intents.members = True
    intents.voice_states = True
    return intents


async def make_test_bot(
    extensions: list[str] | None = None,
    *,
    intents: discord.Intents | None = None,
    setup: Callable[[commands.Bot], Awaitable[None]] | None = None,
    command_prefix: str = "!",
) -> TestBot:
    """Build a dpytest-backed bot with a guild (#general, voice "Voice") and load extensions.

    ``setup(bot)`` runs after discord's own async setup and before the extensions load.
    Close the result (``async with``) to tear everything down.
    """
    global _active_bot
    if _active_bot is not None:
        raise RuntimeError("a TestBot is still running; close it first (dpytest state is global)")
    stack = contextlib.ExitStack()
    try:
        _patch_dpytest(stack)
        bot = commands.Bot(command_prefix=command_prefix, intents=intents or _default_intents())
        dpytest.configure(
            bot, guilds=["Test Guild"], text_channels=["general"], voice_channels=0, members=0
        )
        state: Any = bot._connection
        _patch_state(state)
        _patch_http(bot.http)
        state.application_id = state.application_id or state.user.id
        # The tree captured the ConnectionState that dpytest has just replaced.
        bot.tree._state = state
        bot.tree._http = bot.http
        state._command_tree = bot.tree
        guild = bot.guilds[0]
        harness = TestBot(
            bot=bot,
            guild=guild,
            text_channel=guild.text_channels[0],
            voice_channel=add_voice_channel(guild, "Voice"),
            _stack=stack,
        )
        _capture_channel_sends(harness)
        await dpytest.empty_queue()
        await bot._async_setup_hook()
        await bot.setup_hook()
    except BaseException:
        stack.close()
        raise
    _active_bot = harness
    try:
        if setup is not None:
            await setup(bot)
        for extension in extensions or []:
            await bot.load_extension(extension)
        bot._ready.set()  # dpytest never connects, so nothing else marks the bot ready
        bot.dispatch("ready")
        await dpytest.run_all_events()
    except BaseException:
        await harness.close()
        raise
    return harness


@contextlib.asynccontextmanager
async def running_test_bot(
    extensions: list[str] | None = None, **kwargs: Any
) -> AsyncIterator[TestBot]:
    """``make_test_bot`` as an async context manager (handy inside an async fixture)."""
    harness = await make_test_bot(extensions, **kwargs)
    async with harness:
        yield harness


def _capture_channel_sends(harness: TestBot) -> None:
    http: Any = harness.bot.http
    original = http.send_message
    bot = harness.bot

    async def send_message(channel_id: int, *, params: Any) -> dict[str, Any]:
        # dpytest reads the caller's local named `channel` through frame inspection.
        channel = bot.get_channel(channel_id)  # noqa: F841
        data: dict[str, Any] = await original(channel_id, params=params)
        body = _json_body(params.payload, params.multipart)
        harness.sent.append(SentMessage(channel_id, body, int(data["id"])))
        return data

    http.send_message = send_message


# ---------------------------------------------------------------- guild objects


def add_guild(name: str) -> discord.Guild:
    """Create another guild that the bot is a member of."""
    guild = dpy_backend.make_guild(name)
    bot_user: Any = dpy_backend.get_state().user
    dpy_backend.make_member(bot_user, guild)
    return guild


def add_text_channel(guild: discord.Guild, name: str) -> discord.TextChannel:
    """Create a text channel in ``guild``."""
    channel: discord.TextChannel = dpy_backend.make_text_channel(name, guild)
    return channel


def add_voice_channel(
    guild: discord.Guild, name: str, *, bitrate: int = 64000, user_limit: int = 0
) -> discord.VoiceChannel:
    """Create a voice channel in ``guild``."""
    channel: discord.VoiceChannel = dpy_backend.make_voice_channel(
        name, guild, bitrate=bitrate, user_limit=user_limit
    )
    return channel


def add_role(
    guild: discord.Guild,
    name: str,
    *,
    permissions: int | discord.Permissions = 0,
    colour: int = 0,
    mentionable: bool = False,
) -> discord.Role:
    """Create a role carrying ``permissions``."""
    role: discord.Role = dpy_backend.make_role(
        name,
        guild,
        permissions=_permission_value(permissions),
        colour=colour,
        mentionable=mentionable,
    )
    return role


def add_member(
    guild: discord.Guild,
    name: str,
    *,
    permissions: int | discord.Permissions | None = None,
    roles: tuple[discord.Role, ...] = (),
    nick: str | None = None,
    bot: bool = False,
) -> discord.Member:
    """Create a member; ``permissions`` are granted through a role of their own."""
    all_roles = list(roles)
    if permissions is not None:
        all_roles.append(add_role(guild, f"{name}-permissions", permissions=permissions))
    user = dpy_backend.make_user(name, len(guild.members) % 9999 + 1)
    user.bot = bot
    member: discord.Member = dpy_backend.make_member(user, guild, nick=nick, roles=all_roles)
    return member


async def send_message(
    member: discord.Member, channel: discord.abc.Messageable, content: str
) -> discord.Message:
    """Post ``content`` as ``member``; returns after ``on_message`` listeners have run."""
    message: discord.Message = await dpytest.message(content, channel, member)
    return message

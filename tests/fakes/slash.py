"""Slash commands for cog tests: real ``bot.tree`` dispatch, replies captured at the HTTP boundary.

Normally used with a running ``TestBot`` (``tests.fakes.discord_harness`` re-exports all of this)::

    result = await invoke_slash(tb.bot, tb.guild, admin, tb.text_channel, "tts", "status",
                                options={"voice": "de-DE-KatjaNeural"}, permissions="32")
    result[0].type == 4 and result[0].ephemeral; result.errors; result.interaction

``permissions`` defaults to the member's real permissions in the channel. Replies are captured
at the HTTP boundary (``AsyncWebhookAdapter``) as ``CapturedResponse`` (``.kind``, ``.type``,
``.flags``, ``.ephemeral``, ``.content``, ``.embeds``, ``.allowed_mentions``); ``tb.responses``
keeps them all. Without a running ``TestBot``, ``invoke_slash`` enters its own
``InteractionCapture`` for the call. This module also holds the Discord JSON payload builders the
other harness modules share, and imports neither of them.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import secrets
from dataclasses import dataclass
from typing import Any, cast
from unittest import mock

import discord
import discord.ext.test as dpytest
from discord import app_commands
from discord.ext import commands
from discord.ext.test import backend as dpy_backend
from discord.ext.test import factories as dpy_factories
from discord.webhook.async_ import AsyncWebhookAdapter

__all__ = [
    "EPHEMERAL",
    "CapturedResponse",
    "InteractionCapture",
    "SlashResult",
    "invoke_slash",
    "mentions_suppressed",
]

EPHEMERAL = 64
# Set while a TestBot runs, so its capture (tb.responses) sees every invocation's replies.
_bot_capture: InteractionCapture | None = None


def _use_bot_capture(capture: InteractionCapture | None) -> None:
    """Record ``invoke_slash`` replies into ``capture`` (the running TestBot's); ``None`` clears."""
    global _bot_capture
    _bot_capture = capture


# ---------------------------------------------------------------- captured payloads


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


class _MessageBody:
    """Accessors shared by captured channel messages and interaction replies."""

    @property
    def body(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def content(self) -> str | None:
        content: str | None = self.body.get("content")
        return content

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return list(self.body.get("embeds") or [])

    @property
    def flags(self) -> int:
        return int(self.body.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def allowed_mentions(self) -> dict[str, Any] | None:
        allowed: dict[str, Any] | None = self.body.get("allowed_mentions")
        return allowed

    @property
    def mentions_suppressed(self) -> bool:
        return mentions_suppressed(self.allowed_mentions)


@dataclass
class CapturedResponse(_MessageBody):
    """One interaction reply sent to Discord.

    ``kind`` is ``response`` (the initial callback; ``type`` 4 = message, 5 = deferred),
    ``followup``, ``edit_original``, ``delete_original``, ``edit_followup`` or ``delete_followup``.
    """

    kind: str
    payload: dict[str, Any]
    token: str

    @property
    def type(self) -> int | None:
        return int(self.payload["type"]) if self.kind == "response" else None

    @property
    def body(self) -> dict[str, Any]:
        if self.kind == "response":
            return self.payload.get("data") or {}
        return self.payload


class SlashResult(list[CapturedResponse]):
    """Replies of one slash invocation, plus the interaction and errors the tree saw."""

    def __init__(self, interaction: discord.Interaction) -> None:
        super().__init__()
        self.interaction = interaction
        self.errors: list[app_commands.AppCommandError] = []


# ---------------------------------------------------------------- JSON payload builders


def _user_payload(user: discord.abc.User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "username": user.name,
        "discriminator": user.discriminator,
        "global_name": user.global_name,
        "avatar": None,
        "bot": user.bot,
    }


def _member_payload(member: discord.Member, *, permissions: int | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "user": _user_payload(member),
        "roles": [str(role.id) for role in member.roles if not role.is_default()],
        "joined_at": member.joined_at.isoformat() if member.joined_at else None,
        "nick": member.nick,
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": member.flags.value,
    }
    if permissions is not None:
        payload["permissions"] = str(permissions)
    return payload


def _json_body(
    payload: dict[str, Any] | None, multipart: list[dict[str, Any]] | None
) -> dict[str, Any]:
    if payload is not None:
        return copy.deepcopy(payload)
    for part in multipart or []:
        if part.get("name") == "payload_json":
            return dict(json.loads(part["value"]))
    return {}


def _permission_value(value: str | int | discord.Permissions) -> int:
    return value.value if isinstance(value, discord.Permissions) else int(value)


# ---------------------------------------------------------------- interaction capture


@dataclass
class _Invocation:
    channel_id: int
    guild_id: int | None
    author: dict[str, Any]
    sink: list[CapturedResponse]
    original: dict[str, Any] | None = None


# AsyncWebhookAdapter method -> CapturedResponse.kind (None: read-only, nothing recorded)
_INTERACTION_ROUTES: dict[str, str | None] = {
    "create_interaction_response": "response",
    "execute_webhook": "followup",
    "edit_original_interaction_response": "edit_original",
    "get_original_interaction_response": None,
    "delete_original_interaction_response": "delete_original",
    "edit_webhook_message": "edit_followup",
    "delete_webhook_message": "delete_followup",
}


class InteractionCapture:
    """Replaces discord's interaction HTTP calls with recorders (context manager, restores on exit).

    Any other webhook request raises, so a test can never reach the network.
    """

    def __init__(self) -> None:
        self.responses: list[CapturedResponse] = []
        self._invocations: dict[str, _Invocation] = {}
        self._stack = contextlib.ExitStack()

    def track(self, interaction: discord.Interaction, sink: list[CapturedResponse]) -> None:
        """Route replies for ``interaction`` (by token) into ``sink`` as well."""
        author = _user_payload(interaction.client.user) if interaction.client.user else {}
        self._invocations[interaction.token] = _Invocation(
            interaction.channel_id or 0, interaction.guild_id, author, sink
        )

    def __enter__(self) -> InteractionCapture:
        for method, kind in _INTERACTION_ROUTES.items():
            # discord passes these arguments by position in some calls and by keyword in others
            signature = inspect.signature(getattr(AsyncWebhookAdapter, method))

            async def handle(
                *args: Any, _kind: Any = kind, _signature: Any = signature, **kwargs: Any
            ) -> Any:
                return self._handle(_kind, _signature.bind(*args, **kwargs).arguments)

            self._stack.enter_context(mock.patch.object(AsyncWebhookAdapter, method, handle))

        async def refuse(_adapter: Any, route: Any, *_: Any, **__: Any) -> None:
            raise RuntimeError(f"webhook request not captured by the test harness: {route.url}")

        self._stack.enter_context(mock.patch.object(AsyncWebhookAdapter, "request", refuse))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def _handle(self, kind: str | None, call: dict[str, Any]) -> Any:
        token = call["token"]
        invocation = self._invocations.get(token)
        if kind is None:  # GET @original
            if invocation is None or invocation.original is None:
                raise discord.NotFound(dpy_backend.FakeRequest(404, "Not Found"), "Unknown")
            return invocation.original
        params = call.get("params")
        if params is not None:
            body = _json_body(params.payload, params.multipart)
        else:
            body = _json_body(call.get("payload"), call.get("multipart"))
        captured = CapturedResponse(kind, body, token)
        self.responses.append(captured)
        if invocation is not None:
            invocation.sink.append(captured)
        if kind.startswith("delete"):
            return None
        if kind == "response":
            return self._callback(call["interaction_id"], token, body, invocation)
        message = self._message(token, body)
        if kind == "edit_followup":
            message["id"] = str(call["message_id"])
        elif kind == "edit_original" and invocation is not None:
            if invocation.original is not None:
                message["id"] = invocation.original["id"]
            invocation.original = message
        return None if kind == "followup" and not call.get("wait") else message

    def _callback(
        self, interaction_id: int, token: str, body: dict[str, Any], invocation: _Invocation | None
    ) -> dict[str, Any]:
        data = body.get("data") or {}
        response_type = body["type"]
        interaction: dict[str, Any] = {
            "id": str(interaction_id),
            "type": 2,
            "response_message_loading": response_type == 5,
            "response_message_ephemeral": bool((data.get("flags") or 0) & EPHEMERAL),
        }
        result: dict[str, Any] = {"interaction": interaction}
        if response_type in (4, 5, 7):  # these create (or hold a place for) the original message
            message = self._message(token, data)
            if invocation is not None:
                invocation.original = message
            interaction["response_message_id"] = message["id"]
            if response_type != 5:
                result["resource"] = {"type": response_type, "message": message}
        return result

    def _message(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        invocation = self._invocations.get(token)
        message: dict[str, Any] = {
            "id": str(dpy_factories.make_id()),
            "channel_id": str(invocation.channel_id if invocation else 0),
            "author": invocation.author if invocation else {},
            "content": body.get("content") or "",
            "timestamp": discord.utils.utcnow().isoformat(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": body.get("embeds") or [],
            "components": [],
            "pinned": False,
            "type": 20,  # CHAT_INPUT_COMMAND reply
            "flags": body.get("flags") or 0,
        }
        if invocation and invocation.guild_id:
            message["guild_id"] = str(invocation.guild_id)
        return message


# ---------------------------------------------------------------- slash commands


def _option(
    name: str, value: Any, resolved: dict[str, dict[str, Any]], guild: discord.Guild
) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"name": name, "type": 5, "value": value}
    if isinstance(value, int):
        return {"name": name, "type": 4, "value": value}
    if isinstance(value, float):
        return {"name": name, "type": 10, "value": value}
    if isinstance(value, str):
        return {"name": name, "type": 3, "value": value}
    if isinstance(value, discord.Member):
        resolved.setdefault("users", {})[str(value.id)] = _user_payload(value)
        member = _member_payload(value, permissions=0)
        member.pop("user")
        resolved.setdefault("members", {})[str(value.id)] = member
        return {"name": name, "type": 6, "value": str(value.id)}
    if isinstance(value, discord.Role):
        resolved.setdefault("roles", {})[str(value.id)] = dpy_factories.dict_from_role(value)
        return {"name": name, "type": 8, "value": str(value.id)}
    if isinstance(value, discord.abc.GuildChannel):
        resolved.setdefault("channels", {})[str(value.id)] = {
            "id": str(value.id),
            "type": value.type.value,
            "name": value.name,
            "permissions": str(value.permissions_for(guild.me).value),
            "position": value.position,
        }
        return {"name": name, "type": 7, "value": str(value.id)}
    raise TypeError(f"unsupported slash option value for {name!r}: {value!r}")


def _slash_payload(
    bot: commands.Bot,
    guild: discord.Guild,
    member: discord.Member,
    channel: discord.abc.GuildChannel,
    names: tuple[str, ...],
    options: dict[str, Any],
    permissions: int,
    app_permissions: int,
    locale: str,
) -> dict[str, Any]:
    """An INTERACTION_CREATE payload for a chat-input command, as Discord sends it."""
    command, *path = names
    resolved: dict[str, dict[str, Any]] = {}
    level = [_option(name, value, resolved, guild) for name, value in options.items()]
    for depth, name in reversed(list(enumerate(path))):
        subcommand_type = 1 if depth == len(path) - 1 else 2  # SUB_COMMAND / SUB_COMMAND_GROUP
        level = [{"name": name, "type": subcommand_type, "options": level}]
    data: dict[str, Any] = {"id": str(dpy_factories.make_id()), "name": command, "type": 1}
    data.update(options=level, resolved=resolved)
    if bot.tree.get_command(command, guild=guild) is not None:
        data["guild_id"] = str(guild.id)  # only guild-registered commands carry it
    return {
        "id": str(dpy_factories.make_id()),
        "application_id": str(bot.application_id),
        "type": 2,
        "token": secrets.token_urlsafe(16),
        "version": 1,
        "guild_id": str(guild.id),
        "guild_locale": "en-US",
        "locale": locale,
        "channel_id": str(channel.id),
        "channel": {"id": str(channel.id), "type": channel.type.value, "name": channel.name},
        "member": _member_payload(member, permissions=permissions),
        "app_permissions": str(app_permissions),
        "entitlements": [],
        "authorizing_integration_owners": {"0": str(guild.id)},
        "context": 0,
        "attachment_size_limit": 8 * 1024 * 1024,
        "data": data,
    }


async def invoke_slash(
    bot: commands.Bot,
    guild: discord.Guild,
    member: discord.Member,
    channel: discord.abc.GuildChannel,
    command: str,
    *path: str,
    options: dict[str, Any] | None = None,
    permissions: str | int | discord.Permissions | None = None,
    app_permissions: str | int | discord.Permissions | None = None,
    locale: str = "en-US",
) -> SlashResult:
    """Run ``/command *path`` as ``member`` in ``channel`` through ``bot.tree``; return the replies.

    ``path`` names a subcommand (or group then subcommand). ``permissions`` is the member's
    bitfield Discord would send (default: their real permissions in the channel), likewise
    ``app_permissions`` for the bot. Errors the tree hands to ``on_error`` land in ``.errors``.
    """
    if permissions is None:
        permissions = channel.permissions_for(member)
    if app_permissions is None:
        app_permissions = channel.permissions_for(guild.me)
    payload = _slash_payload(
        bot,
        guild,
        member,
        channel,
        (command, *path),
        options or {},
        _permission_value(permissions),
        _permission_value(app_permissions),
        locale,
    )
    state: Any = bot._connection
    interaction: discord.Interaction = discord.Interaction(data=cast(Any, payload), state=state)
    result = SlashResult(interaction)
    tree: Any = bot.tree
    had_instance_handler = "on_error" in vars(tree)  # set by @tree.error
    original_on_error = tree.on_error

    async def on_error(failed: discord.Interaction, error: app_commands.AppCommandError) -> None:
        if failed is interaction:
            result.errors.append(error)
        await original_on_error(failed, error)

    with contextlib.ExitStack() as stack:
        capture = _bot_capture if _bot_capture else stack.enter_context(InteractionCapture())
        capture.track(interaction, result)
        tree.on_error = on_error
        try:
            await tree._call(interaction)
            await dpytest.run_all_events()
        finally:
            if had_instance_handler:
                tree.on_error = original_on_error
            else:
                del tree.on_error
    return result

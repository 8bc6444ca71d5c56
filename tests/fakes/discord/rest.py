"""The REST API under ``/api/v10``: the routes a bot needs, every request recorded.

Route templates are spelled as discord.py spells them (``/channels/{channel_id}/messages``),
so a test scripts a fault or filters the log with the same string it would find in
``discord/http.py``. Unknown routes answer Discord's JSON 404 and are logged and recorded
with ``route=None``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.fakes.discord.faults import FaultKind, RestFaults
from tests.fakes.discord.model import (
    SEND_MESSAGES,
    VIEW_CHANNEL,
    Guild,
    Message,
    Payload,
    iso_timestamp,
)
from tests.fakes.discord.requests_log import RecordedRequest, RequestLog, read_body
from tests.fakes.discord.wire import error_response, json_response, no_content
from tests.fakes.discord.world import World

log = logging.getLogger(__name__)

PREFIX = "/api/v10"
MESSAGES = "/channels/{channel_id}/messages"
MESSAGE = "/channels/{channel_id}/messages/{message_id}"
CHANNEL = "/channels/{channel_id}"
GLOBAL_COMMANDS = "/applications/{application_id}/commands"
GUILD_COMMANDS = "/applications/{application_id}/guilds/{guild_id}/commands"
INTERACTION_CALLBACK = "/interactions/{interaction_id}/{interaction_token}/callback"
WEBHOOK = "/webhooks/{webhook_id}/{webhook_token}"
ORIGINAL = "/webhooks/{webhook_id}/{webhook_token}/messages/@original"
WEBHOOK_MESSAGE = "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"

BODY = web.RequestKey("fake_discord_body", tuple)
"""The parsed body ``(json, files)``: the middleware reads it once for every handler."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RestAPI:
    """Serves the routes on ``app`` and records every request in :attr:`log`."""

    def __init__(
        self,
        world: World,
        faults: RestFaults,
        *,
        gateway_url: Callable[[], str],
        shard_count: Callable[[], int],
        on_bot_message: Callable[[Guild, Message], Awaitable[None]],
    ) -> None:
        self.world = world
        self.faults = faults
        self.log = RequestLog()
        self._gateway_url = gateway_url
        self._shard_count = shard_count
        self._on_bot_message = on_bot_message

    def install(self, app: web.Application, extra: list[tuple[str, str, Handler]]) -> None:
        """Add the recording middleware and the routes (``extra`` from other modules)."""
        app.middlewares.append(self._middleware)
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/users/@me", self.get_me),
            ("GET", "/users/{user_id}", self.get_user),
            ("GET", "/oauth2/applications/@me", self.get_application),
            ("GET", "/gateway", self.get_gateway),
            ("GET", "/gateway/bot", self.get_gateway_bot),
            ("GET", GLOBAL_COMMANDS, self.get_commands),
            ("PUT", GLOBAL_COMMANDS, self.put_commands),
            ("GET", GUILD_COMMANDS, self.get_commands),
            ("PUT", GUILD_COMMANDS, self.put_commands),
            ("GET", CHANNEL, self.get_channel),
            ("GET", MESSAGES, self.get_messages),
            ("POST", MESSAGES, self.post_message),
            ("GET", MESSAGE, self.get_message),
            ("PATCH", MESSAGE, self.edit_message),
            ("DELETE", MESSAGE, self.delete_message),
            ("POST", "/channels/{channel_id}/typing", self.typing),
            (
                "PUT",
                "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
                self.react,
            ),
            ("GET", "/guilds/{guild_id}", self.get_guild),
            ("GET", "/guilds/{guild_id}/channels", self.get_guild_channels),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member),
            *extra,
        ]
        for method, template, handler in routes:
            app.router.add_route(method, PREFIX + template, handler)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(PREFIX + "/"):
            return await handler(request)
        info = request.match_info
        known = info.http_exception is None
        route = (
            info.route.resource.canonical[len(PREFIX) :] if known and info.route.resource else None
        )
        body, files = await read_body(request)
        record = RecordedRequest(
            index=len(self.log.requests),
            method=request.method,
            path=request.path[len(PREFIX) :],
            route=route,
            params=dict(info) if known else {},
            query=dict(request.query),
            time=time.monotonic(),
            json=body,
            files=files,
        )
        request[BODY] = (body, files)
        self.log.requests.append(record)
        self.world.notifier.notify()
        try:
            fault = self.faults.find(record.method, route, record.params)
            response: web.StreamResponse | None = None
            if fault is not None:
                record.fault = fault
                response = await fault.answer(request)
                if fault.kind is FaultKind.ABORT:
                    return response  # type: ignore[return-value]  # no status reached the client
            if response is None:
                if not known:
                    log.warning("fake Discord: unknown route %s %s", request.method, request.path)
                    response = error_response(404, "404: Not Found", 0)
                else:
                    response = await handler(request)
            if fault is not None and fault.kind is FaultKind.LOST_ANSWER:
                if request.transport is not None:
                    request.transport.abort()
                return response  # discarded with the connection: no status reached the client
            record.status = response.status
            return response
        finally:
            self.world.notifier.notify()

    def _body(self, request: web.Request) -> Any:
        return request[BODY][0]

    def _files(self, request: web.Request) -> list[tuple[str, int]]:
        return request[BODY][1]

    # identity and gateway

    async def get_me(self, request: web.Request) -> web.Response:
        """``GET /users/@me``: the bot's user (discord.py's login)."""
        return json_response(self.world.bot.payload())

    async def get_user(self, request: web.Request) -> web.Response:
        """``GET /users/{user_id}``."""
        user_id = int(request.match_info["user_id"])
        for guild in self.world.guilds.values():
            member = guild.members.get(user_id)
            if member is not None:
                return json_response(member.user.payload())
        return error_response(404, "Unknown User", 10013)

    async def get_application(self, request: web.Request) -> web.Response:
        """``GET /oauth2/applications/@me``: the bot's application."""
        owner = self.world.owner.payload()
        return json_response(
            {
                "id": str(self.world.application_id),
                "name": self.world.bot.username,
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": owner,
                "verify_key": "0" * 64,
                "team": None,
                "flags": 0,
                "bot": self.world.bot.payload(),
            }
        )

    async def get_gateway(self, request: web.Request) -> web.Response:
        """``GET /gateway``."""
        return json_response({"url": self._gateway_url()})

    async def get_gateway_bot(self, request: web.Request) -> web.Response:
        """``GET /gateway/bot``: the URL and the shard count ``AutoShardedClient`` uses."""
        limit = {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}
        return json_response(
            {
                "url": self._gateway_url(),
                "shards": self._shard_count(),
                "session_start_limit": limit,
            }
        )

    # application commands

    async def get_commands(self, request: web.Request) -> web.Response:
        """The synced commands (global or one guild's)."""
        return json_response(self.world.commands_for(_guild_param(request)))

    async def put_commands(self, request: web.Request) -> web.Response:
        """Bulk overwrite: store the commands with ids, return them as Discord does."""
        guild_id = _guild_param(request)
        previous = {c["name"]: c["id"] for c in self.world.commands_for(guild_id)}
        stored: list[Payload] = []
        for command in self._body(request) or []:
            entry = {
                "type": 1,
                "description": "",
                "options": [],
                "default_member_permissions": None,
                "nsfw": False,
                "name_localizations": None,
                "description_localizations": None,
                "contexts": None,
                "integration_types": [0],
                **command,
                "id": previous.get(command["name"]) or str(self.world.snowflakes.next()),
                "application_id": str(self.world.application_id),
                "version": str(self.world.snowflakes.next()),
            }
            if guild_id is not None:
                entry["guild_id"] = str(guild_id)
            stored.append(entry)
        if guild_id is None:
            self.world.global_commands = stored
        else:
            self.world.guild_commands[guild_id] = stored
        return json_response(stored)

    # channels and messages

    async def get_channel(self, request: web.Request) -> web.Response:
        """``GET /channels/{channel_id}``."""
        found = self.world.channel(int(request.match_info["channel_id"]))
        if found is None:
            return error_response(404, "Unknown Channel", 10003)
        return json_response(found[1].payload())

    async def get_messages(self, request: web.Request) -> web.Response:
        """Channel history, newest first, ``limit`` honoured."""
        channel_id = int(request.match_info["channel_id"])
        if self.world.channel(channel_id) is None:
            return error_response(404, "Unknown Channel", 10003)
        limit = int(request.query.get("limit", "50"))
        history = self.world.messages.get(channel_id, [])[::-1][:limit]
        return json_response([m.payload() for m in history])

    async def post_message(self, request: web.Request) -> web.Response:
        """Post as the bot: checks view/send permissions, records the full payload."""
        channel_id = int(request.match_info["channel_id"])
        found = self.world.channel(channel_id)
        if found is None:
            return error_response(404, "Unknown Channel", 10003)
        guild, channel = found
        needed = VIEW_CHANNEL | SEND_MESSAGES
        if guild.permissions_in(self.world.bot_member(guild), channel) & needed != needed:
            return error_response(403, "Missing Permissions", 50013)
        data = self._body(request) or {}
        files = self._files(request)
        if not (data.get("content") or data.get("embeds") or files or data.get("sticker_ids")):
            return error_response(400, "Cannot send an empty message", 50006)
        nonce = data.get("nonce")
        if nonce is not None and data.get("enforce_nonce"):
            # Discord: the same author's message with this nonce (in the past few
            # minutes) is answered again instead of being created twice.
            for earlier in self.world.messages.get(channel_id, []):
                if (
                    earlier.author is self.world.bot
                    and (earlier.request or {}).get("nonce") == nonce
                ):
                    return json_response(earlier.payload())
        message = message_from_request(self.world, channel_id, guild.id, data, files)
        self.world.messages.setdefault(channel_id, []).append(message)
        await self._on_bot_message(guild, message)
        return json_response(message.payload())

    async def get_message(self, request: web.Request) -> web.Response:
        """``GET /channels/{channel_id}/messages/{message_id}``."""
        message = self._find_message(request)
        if message is None:
            return error_response(404, "Unknown Message", 10008)
        return json_response(message.payload())

    async def edit_message(self, request: web.Request) -> web.Response:
        """Edit one of the bot's messages (content, embeds, flags)."""
        message = self._find_message(request)
        if message is None:
            return error_response(404, "Unknown Message", 10008)
        apply_edit(message, self._body(request) or {})
        return json_response(message.payload())

    async def delete_message(self, request: web.Request) -> web.Response:
        """Delete a message from the channel's history."""
        message = self._find_message(request)
        if message is None:
            return error_response(404, "Unknown Message", 10008)
        self.world.messages[message.channel_id].remove(message)
        return no_content()

    async def typing(self, request: web.Request) -> web.Response:
        """``POST /channels/{channel_id}/typing``."""
        return no_content()

    async def react(self, request: web.Request) -> web.Response:
        """Add a reaction as the bot (accepted, not stored)."""
        if self._find_message(request) is None:
            return error_response(404, "Unknown Message", 10008)
        return no_content()

    def _find_message(self, request: web.Request) -> Message | None:
        return self.world.find_message(
            int(request.match_info["channel_id"]), int(request.match_info["message_id"])
        )

    # guilds

    async def get_guild(self, request: web.Request) -> web.Response:
        """``GET /guilds/{guild_id}`` (without members and voice states, as Discord)."""
        guild = self.world.guild(int(request.match_info["guild_id"]))
        if guild is None:
            return error_response(404, "Unknown Guild", 10004)
        data = guild.payload()
        for key in ("members", "voice_states", "channels", "threads", "presences"):
            data.pop(key)
        return json_response(data)

    async def get_guild_channels(self, request: web.Request) -> web.Response:
        """``GET /guilds/{guild_id}/channels``."""
        guild = self.world.guild(int(request.match_info["guild_id"]))
        if guild is None:
            return error_response(404, "Unknown Guild", 10004)
        return json_response([c.payload() for c in guild.channels.values()])

    async def get_member(self, request: web.Request) -> web.Response:
        """``GET /guilds/{guild_id}/members/{user_id}``."""
        guild = self.world.guild(int(request.match_info["guild_id"]))
        if guild is None:
            return error_response(404, "Unknown Guild", 10004)
        member = guild.members.get(int(request.match_info["user_id"]))
        if member is None:
            return error_response(404, "Unknown Member", 10007)
        return json_response(member.payload())


def _guild_param(request: web.Request) -> int | None:
    value = request.match_info.get("guild_id")
    return int(value) if value is not None else None


def message_from_request(
    world: World,
    channel_id: int,
    guild_id: int | None,
    data: Payload,
    files: list[tuple[str, int]],
    *,
    webhook_id: int | None = None,
) -> Message:
    """A message the bot posted, from its request JSON (and uploaded files)."""
    attachments = [
        {
            "id": str(world.snowflakes.next()),
            "filename": name,
            "size": size,
            "url": f"https://cdn.invalid/attachments/{channel_id}/{name}",
            "proxy_url": f"https://media.invalid/attachments/{channel_id}/{name}",
        }
        for name, size in files
    ]
    return Message(
        id=world.snowflakes.next(),
        channel_id=channel_id,
        guild_id=guild_id,
        author=world.bot,
        content=data.get("content") or "",
        embeds=list(data.get("embeds") or []),
        attachments=attachments,
        flags=int(data.get("flags") or 0),
        allowed_mentions=data.get("allowed_mentions"),
        request=data,
        files=files,
        webhook_id=webhook_id,
    )


def apply_edit(message: Message, data: Payload) -> None:
    """Apply a PATCH body to ``message`` (only the keys present change)."""
    if "content" in data:
        message.content = data["content"] or ""
    if "embeds" in data:
        message.embeds = list(data["embeds"] or [])
    if "flags" in data and data["flags"] is not None:
        message.flags = int(data["flags"])
    if "allowed_mentions" in data:
        message.allowed_mentions = data["allowed_mentions"]
    message.request = data
    message.edited_timestamp = iso_timestamp()

"""Slash commands and autocomplete: INTERACTION_CREATE payloads in, answers captured out.

:func:`build_interaction` writes the payload Discord would send for ``/tts status`` (the
option types come from the commands the bot synced, else from the Python values given).
:class:`InteractionStore` serves the routes the answers take (the callback, webhook
follow-ups and ``@original`` edits) and files them in the :class:`InteractionRecord`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.discord.model import Channel, Guild, Member, Message, Payload, Role, User
from tests.fakes.discord.rest import (
    BODY,
    INTERACTION_CALLBACK,
    ORIGINAL,
    WEBHOOK,
    WEBHOOK_MESSAGE,
    Handler,
    apply_edit,
    message_from_request,
)
from tests.fakes.discord.wire import error_response, json_response, no_content
from tests.fakes.discord.world import World

APPLICATION_COMMAND = 2
AUTOCOMPLETE = 4
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE = 6
AUTOCOMPLETE_RESULT = 8
EPHEMERAL = 64
LOADING = 128

SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, NUMBER = 3, 4, 5, 6, 7, 8, 10


@dataclass(eq=False)
class InteractionEvent:
    """One answer the bot gave: ``kind`` is callback, followup, edit or delete."""

    kind: str
    data: Payload
    time: float
    callback_type: int | None = None


@dataclass(eq=False)
class InteractionRecord:
    """An interaction the fake sent and everything the bot answered to it."""

    id: int
    token: str
    payload: Payload
    notify: Callable[[], None]
    created: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` when the fake dispatched it (the 3 s callback clock starts)."""
    events: list[InteractionEvent] = field(default_factory=list)
    callback_type: int | None = None
    callback_data: Payload = field(default_factory=dict)
    original: Message | None = None
    original_deleted: bool = False
    followups: list[Message] = field(default_factory=list)

    @property
    def type(self) -> int | None:
        """The callback type: 4 message, 5 deferred, 8 autocomplete choices, 9 modal."""
        return self.callback_type

    @property
    def deferred(self) -> bool:
        """Whether the first answer was a defer (type 5 or 6)."""
        return self.callback_type in (DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE)

    @property
    def flags(self) -> int:
        """The callback's message flags (64 = ephemeral)."""
        return int(self.callback_data.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        """Whether the callback asked for an ephemeral answer."""
        return bool(self.flags & EPHEMERAL)

    @property
    def content(self) -> str | None:
        """The original response's current content (None when there is none)."""
        return self.original.content if self.original is not None else None

    @property
    def embeds(self) -> list[Payload]:
        """The original response's current embeds."""
        return self.original.embeds if self.original is not None else []

    @property
    def allowed_mentions(self) -> Payload | None:
        """``allowed_mentions`` as the bot last sent them for the original response."""
        return self.original.allowed_mentions if self.original is not None else None

    @property
    def choices(self) -> list[Payload]:
        """Autocomplete choices (callback type 8)."""
        return list(self.callback_data.get("choices") or [])

    @property
    def answered(self) -> bool:
        """An answer a user would see: a non-deferred callback, or a defer then an answer."""
        if self.callback_type is None:
            return False
        if not self.deferred:
            return True
        return any(e.kind in ("followup", "edit") for e in self.events)

    @property
    def texts(self) -> list[str]:
        """Content of the original response (if any) and of every follow-up, in order."""
        messages = ([self.original] if self.original is not None else []) + self.followups
        return [m.content for m in messages]

    def record(self, kind: str, data: Payload, callback_type: int | None = None) -> None:
        """File one answer and wake waiters."""
        self.events.append(InteractionEvent(kind, data, time.monotonic(), callback_type))
        self.notify()


def _infer_type(value: object) -> int:
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    if isinstance(value, float):
        return NUMBER
    if isinstance(value, Member | User):
        return USER
    if isinstance(value, Channel):
        return CHANNEL
    if isinstance(value, Role):
        return ROLE
    return STRING


def _option(
    channel: Channel,
    name: str,
    value: object,
    option_type: int,
    resolved: dict[str, dict[str, Payload]],
    permissions: Callable[[Member, Channel], int],
) -> Payload:
    """One typed option; users, channels and roles also go into ``resolved``."""
    if option_type in (USER, CHANNEL, ROLE) or isinstance(value, Member | User | Channel | Role):
        if isinstance(value, Member):
            resolved.setdefault("users", {})[str(value.id)] = value.user.payload()
            entry = value.payload(with_user=False)
            entry["permissions"] = str(permissions(value, channel))
            resolved.setdefault("members", {})[str(value.id)] = entry
            value = value.id
        elif isinstance(value, User):
            resolved.setdefault("users", {})[str(value.id)] = value.payload()
            value = value.id
        elif isinstance(value, Channel):
            data = value.payload()
            data["permissions"] = str((1 << 53) - 1)
            resolved.setdefault("channels", {})[str(value.id)] = data
            value = value.id
        elif isinstance(value, Role):
            resolved.setdefault("roles", {})[str(value.id)] = value.payload()
            value = value.id
        value = str(value)
    return {"name": name, "type": option_type, "value": value}


def _schema_options(command: Payload | None, path: Sequence[str]) -> list[Payload] | None:
    """The option schema at the end of ``path`` (subcommand names), if the bot synced it."""
    if command is None:
        return None
    options: list[Payload] = command.get("options") or []
    for name in path:
        nested = next((o for o in options if o["name"] == name and o["type"] in (1, 2)), None)
        if nested is None:
            return None
        options = nested.get("options") or []
    return options


def build_interaction(
    world: World,
    guild: Guild,
    member: Member,
    channel: Channel,
    path: Sequence[str],
    options: Mapping[str, object],
    *,
    kind: int = APPLICATION_COMMAND,
    focused: str | None = None,
    locale: str = "en-US",
) -> tuple[int, str, Payload]:
    """``(id, token, payload)`` of an INTERACTION_CREATE for ``/path[0] path[1:]``.

    ``data.guild_id`` is set when the command was synced to ``guild`` (discord.py's tree
    looks guild commands up by it); option types follow the synced schema when there is
    one, else the Python types (bool, int, float, str, Member, Channel, Role).
    """
    if not path:
        raise ValueError("a command path needs at least the command's name")
    found = world.find_command(path[0], guild.id)
    command, command_guild = found if found is not None else (None, None)
    schema = {o["name"]: o for o in (_schema_options(command, path[1:]) or [])}
    resolved: dict[str, dict[str, Payload]] = {}
    leaf: list[Payload] = []
    for name, value in options.items():
        option_type = schema[name]["type"] if name in schema else _infer_type(value)
        option = _option(channel, name, value, option_type, resolved, guild.permissions_in)
        if name == focused:
            option["focused"] = True
            option["value"] = str(value)
        leaf.append(option)
    nested: list[Payload] = leaf
    for depth, name in reversed(list(enumerate(path[1:], start=1))):
        sub_type = SUB_COMMAND if depth == len(path) - 1 else SUB_COMMAND_GROUP
        nested = [{"name": name, "type": sub_type, "options": nested}]
    data: Payload = {
        "id": command["id"] if command is not None else str(world.snowflakes.next()),
        "name": path[0],
        "type": 1,
        "options": nested,
    }
    if command_guild is not None:
        data["guild_id"] = str(command_guild)
    if resolved:
        data["resolved"] = resolved
    interaction_id = world.snowflakes.next()
    token = "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(48)
    channel_data = channel.payload()
    channel_data["permissions"] = str(guild.permissions_in(member, channel))
    member_data = member.payload()
    member_data["permissions"] = str(guild.permissions_in(member, channel))
    payload: Payload = {
        "id": str(interaction_id),
        "application_id": str(world.application_id),
        "type": kind,
        "data": data,
        "guild_id": str(guild.id),
        "guild": {"id": str(guild.id), "locale": guild.preferred_locale, "features": []},
        "channel_id": str(channel.id),
        "channel": channel_data,
        "member": member_data,
        "token": token,
        "version": 1,
        "app_permissions": str(guild.permissions_in(world.bot_member(guild), channel)),
        "locale": locale,
        "guild_locale": guild.preferred_locale,
        "entitlements": [],
        "authorizing_integration_owners": {"0": str(guild.id)},
        "context": 0,
        "attachment_size_limit": 10_485_760,
    }
    return interaction_id, token, payload


class InteractionStore:
    """Serves the answer routes and files every answer under its interaction.

    Like Discord, a callback later than ``callback_deadline`` seconds (3) is answered
    404 Unknown interaction (10062), and a token is good for ``token_lifetime`` (15 min).
    """

    def __init__(
        self, world: World, *, callback_deadline: float = 3.0, token_lifetime: float = 900.0
    ) -> None:
        self.world = world
        self.callback_deadline = callback_deadline
        self.token_lifetime = token_lifetime
        self.by_id: dict[int, InteractionRecord] = {}
        self.by_token: dict[str, InteractionRecord] = {}

    def open(self, interaction_id: int, token: str, payload: Payload) -> InteractionRecord:
        """Start recording answers for an interaction about to be dispatched."""
        record = InteractionRecord(interaction_id, token, payload, self.world.notifier.notify)
        self.by_id[interaction_id] = record
        self.by_token[token] = record
        return record

    def routes(self) -> list[tuple[str, str, Handler]]:
        """``(method, template, handler)`` for :meth:`RestAPI.install`."""
        return [
            ("POST", INTERACTION_CALLBACK, self.callback),
            ("POST", WEBHOOK, self.followup),
            ("GET", ORIGINAL, self.get_message),
            ("PATCH", ORIGINAL, self.edit_message),
            ("DELETE", ORIGINAL, self.delete_message),
            ("GET", WEBHOOK_MESSAGE, self.get_message),
            ("PATCH", WEBHOOK_MESSAGE, self.edit_message),
            ("DELETE", WEBHOOK_MESSAGE, self.delete_message),
        ]

    def _message(self, record: InteractionRecord, data: Payload, flags: int) -> Message:
        channel_id = int(record.payload["channel_id"])
        message = message_from_request(
            self.world,
            channel_id,
            int(record.payload["guild_id"]),
            data,
            [],
            webhook_id=self.world.application_id,
        )
        message.flags = flags
        return message

    async def callback(self, request: web.Request) -> web.Response:
        """``POST /interactions/{id}/{token}/callback``: the first (and only) acknowledgement."""
        record = self.by_id.get(int(request.match_info["interaction_id"]))
        if record is None or record.token != request.match_info["interaction_token"]:
            return error_response(404, "Unknown interaction", 10062)
        if time.monotonic() - record.created > self.callback_deadline:
            return error_response(404, "Unknown interaction", 10062)
        if record.callback_type is not None:
            return error_response(400, "Interaction has already been acknowledged.", 40060)
        body: Payload = request[BODY][0] or {}
        callback_type = int(body.get("type", 0))
        data: Payload = body.get("data") or {}
        record.callback_type = callback_type
        record.callback_data = data
        flags = int(data.get("flags") or 0)
        if callback_type == CHANNEL_MESSAGE:
            record.original = self._message(record, data, flags)
        elif callback_type == DEFERRED_CHANNEL_MESSAGE:
            record.original = self._message(record, {}, flags | LOADING)
        record.record("callback", data, callback_type)
        if request.query.get("with_response", "").lower() not in ("1", "true"):
            return no_content()
        interaction: Payload = {
            "id": str(record.id),
            "type": record.payload["type"],
            "response_message_loading": callback_type == DEFERRED_CHANNEL_MESSAGE,
            "response_message_ephemeral": bool(flags & EPHEMERAL),
        }
        resource: Payload = {"type": callback_type}
        if record.original is not None:
            interaction["response_message_id"] = str(record.original.id)
            resource["message"] = record.original.payload()
        return json_response({"interaction": interaction, "resource": resource})

    def _record_for(self, request: web.Request) -> InteractionRecord | None:
        record = self.by_token.get(request.match_info["webhook_token"])
        if record is None or request.match_info["webhook_id"] != str(self.world.application_id):
            return None
        if time.monotonic() - record.created > self.token_lifetime:
            return None
        return record

    async def followup(self, request: web.Request) -> web.Response:
        """``POST /webhooks/{app}/{token}``: a follow-up message."""
        record = self._record_for(request)
        if record is None:
            return error_response(404, "Unknown Webhook", 10015)
        data: Payload = request[BODY][0] or {}
        message = self._message(record, data, int(data.get("flags") or 0))
        message.files = request[BODY][1]
        record.followups.append(message)
        record.record("followup", data)
        if request.query.get("wait", "").lower() in ("1", "true"):
            return json_response(message.payload())
        return no_content()

    def _target(self, request: web.Request, record: InteractionRecord) -> Message | None:
        message_id = request.match_info.get("message_id")
        if message_id is None:
            return None if record.original_deleted else record.original
        if record.original is not None and str(record.original.id) == message_id:
            return record.original
        return next((m for m in record.followups if str(m.id) == message_id), None)

    async def get_message(self, request: web.Request) -> web.Response:
        """``GET`` the original response or a follow-up."""
        record = self._record_for(request)
        message = self._target(request, record) if record is not None else None
        if message is None:
            return error_response(404, "Unknown Message", 10008)
        return json_response(message.payload())

    async def edit_message(self, request: web.Request) -> web.Response:
        """``PATCH`` the original response (a deferred answer's real content) or a follow-up."""
        record = self._record_for(request)
        if record is None:
            return error_response(404, "Unknown Webhook", 10015)
        message = self._target(request, record)
        if message is None:
            return error_response(404, "Unknown Message", 10008)
        data: Payload = request[BODY][0] or {}
        apply_edit(message, data)
        message.flags &= ~LOADING
        record.record("edit", data)
        return json_response(message.payload())

    async def delete_message(self, request: web.Request) -> web.Response:
        """``DELETE`` the original response or a follow-up."""
        record = self._record_for(request)
        message = self._target(request, record) if record is not None else None
        if record is None or message is None:
            return error_response(404, "Unknown Message", 10008)
        if message is record.original:
            record.original_deleted = True
        else:
            record.followups.remove(message)
        record.record("delete", {"id": str(message.id)})
        return no_content()

"""The main gateway (v10, JSON, plain ``ws://``): sessions, shards, replay, faults.

Every dispatch gets the session's next sequence number and goes into the session's
replay buffer, so a RESUME (op 6) replays exactly what the client missed while it was
away, then RESUMED. A session opened with ``shard: [id, count]`` only receives guilds
with ``(guild_id >> 22) % count == id``. The client asks for ``compress=zlib-stream``;
plain text frames are accepted by discord.py, so nothing is compressed.

Every connection is recorded with how it ended (:class:`GatewayClose`), so a test can
tell a clean close (1000) from a dropped one (no close frame).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from tests.fakes.discord.model import Payload, guild_shard
from tests.fakes.discord.wire import dumps
from tests.fakes.discord.world import World

log = logging.getLogger(__name__)

DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE, VOICE_STATE, RESUME = 0, 1, 2, 3, 4, 6
RECONNECT, REQUEST_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 7, 8, 9, 10, 11
NO_CLOSE_FRAME = 1006
"""aiohttp's close code when the peer went away without a close frame."""

PayloadSource = Payload | Callable[["GatewaySession"], Payload | None]
"""A dispatch's data, or a function building it per session (None: skip that session)."""


@dataclass(frozen=True, slots=True)
class GatewayClose:
    """How a gateway connection ended."""

    code: int | None
    """The client's close code; None when the connection went away without a close frame."""
    initiator: str
    """``"client"`` or ``"server"`` (the fake closed or dropped it)."""
    time: float

    @property
    def clean(self) -> bool:
        """Whether a close frame with code 1000 ended it."""
        return self.code == 1000


@dataclass(eq=False)
class GatewayConnection:
    """One websocket connection to the gateway."""

    index: int
    path: str
    request: web.Request
    ws: web.WebSocketResponse
    opened: float
    session: GatewaySession | None = None
    identified: bool = False
    resumed: bool = False
    replayed: int = 0
    """Dispatches re-sent from the replay buffer when this connection resumed."""
    received: list[Payload] = field(default_factory=list)
    """Every frame the client sent, parsed."""
    close: GatewayClose | None = None
    server_action: str | None = None
    """What the fake did to end it (``"close 4000"``, ``"drop"``), if anything."""

    def ops(self, op: int) -> list[Payload]:
        """The client's frames with opcode ``op``."""
        return [p for p in self.received if p.get("op") == op]


@dataclass(eq=False)
class GatewaySession:
    """A gateway session: survives connections through RESUME."""

    session_id: str
    token: str
    shard: tuple[int, int] | None
    intents: int
    seq: int = 0
    buffer: list[tuple[int, str]] = field(default_factory=list)
    connection: GatewayConnection | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    valid: bool = True

    def dispatched(self) -> list[str]:
        """The event names sequenced into this session, in order."""
        return [json.loads(frame)["t"] for _, frame in self.buffer]

    def covers(self, guild_id: int) -> bool:
        """Whether Discord would route events of ``guild_id`` to this session."""
        if self.shard is None:
            return True
        shard_id, count = self.shard
        return guild_shard(guild_id, count) == shard_id


VoiceStateHook = Callable[[GatewaySession, Payload], Awaitable[None]]


class Gateway:
    """Serves ``/gateway`` (and the resume URL) on the fake's HTTP app."""

    def __init__(
        self,
        world: World,
        *,
        heartbeat_interval: float,
        resume_url: Callable[[], str],
        on_voice_state: VoiceStateHook,
    ) -> None:
        self.world = world
        self.heartbeat_interval = heartbeat_interval
        self._resume_url = resume_url
        self._on_voice_state = on_voice_state
        self.connections: list[GatewayConnection] = []
        self.sessions: dict[str, GatewaySession] = {}
        self.refuse_resumes = 0
        """How many upcoming RESUMEs to answer with op 9 (not resumable)."""

    @property
    def identifies(self) -> list[Payload]:
        """Every IDENTIFY (op 2) the client sent, across connections."""
        return [p for c in self.connections for p in c.ops(IDENTIFY)]

    @property
    def resumes(self) -> list[Payload]:
        """Every RESUME (op 6) the client sent, across connections."""
        return [p for c in self.connections for p in c.ops(RESUME)]

    @property
    def closes(self) -> list[GatewayClose]:
        """How each finished connection ended, in order."""
        return [c.close for c in self.connections if c.close is not None]

    def live_sessions(self, guild_id: int | None = None) -> list[GatewaySession]:
        """Valid sessions (connected or not), those covering ``guild_id`` if given."""
        return [
            s
            for s in self.sessions.values()
            if s.valid and (guild_id is None or s.covers(guild_id))
        ]

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """The websocket handler: HELLO, then the client's ops until it goes away."""
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = GatewayConnection(len(self.connections), request.path, request, ws, time.monotonic())
        self.connections.append(conn)
        self.world.notifier.notify()
        try:
            interval_ms = int(self.heartbeat_interval * 1000)
            await ws.send_str(dumps({"op": HELLO, "d": {"heartbeat_interval": interval_ms}}))
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    payload = json.loads(msg.data)
                    conn.received.append(payload)
                    self.world.notifier.notify()
                    await self._on_frame(conn, payload)
        except ConnectionError:
            log.debug("gateway connection %d lost while sending", conn.index)
        finally:
            code = None if ws.close_code in (None, NO_CLOSE_FRAME) else int(ws.close_code)
            initiator = "server" if conn.server_action else "client"
            conn.close = GatewayClose(code, initiator, time.monotonic())
            if conn.session is not None and conn.session.connection is conn:
                conn.session.connection = None
            self.world.notifier.notify()
        return ws

    async def _on_frame(self, conn: GatewayConnection, payload: Payload) -> None:
        op, data = payload.get("op"), payload.get("d")
        if op == HEARTBEAT:
            await conn.ws.send_str(dumps({"op": HEARTBEAT_ACK, "d": None}))
        elif op == IDENTIFY:
            await self._identify(conn, data)
        elif op == RESUME:
            await self._resume(conn, data)
        elif op == VOICE_STATE and conn.session is not None:
            await self._on_voice_state(conn.session, data)
        elif op == REQUEST_MEMBERS and conn.session is not None:
            await self._members_chunk(conn.session, data)
        elif op != PRESENCE:
            log.warning("fake gateway: unexpected op %s", op)

    async def _identify(self, conn: GatewayConnection, data: Payload) -> None:
        raw_shard = data.get("shard")
        shard = (int(raw_shard[0]), int(raw_shard[1])) if raw_shard else None
        session = GatewaySession(
            secrets.token_hex(16), data["token"], shard, int(data.get("intents") or 0)
        )
        self.sessions[session.session_id] = session
        conn.session, conn.identified = session, True
        session.connection = conn
        guilds = [g for g in self.world.guilds.values() if session.covers(g.id)]
        ready: Payload = {
            "v": 10,
            "user": {**self.world.bot.payload(), "verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self._resume_url(),
            "application": {"id": str(self.world.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "user_settings": {},
            "auth": {},
            "_trace": ["fake-discord"],
        }
        if shard is not None:
            ready["shard"] = list(shard)
        await self.dispatch("READY", ready, session=session)
        for guild in guilds:
            await self.dispatch("GUILD_CREATE", guild.payload(), session=session)

    async def _resume(self, conn: GatewayConnection, data: Payload) -> None:
        session = self.sessions.get(data.get("session_id") or "")
        if (
            session is None
            or not session.valid
            or session.token != data.get("token")
            or self.refuse_resumes > 0
        ):
            if self.refuse_resumes > 0:
                self.refuse_resumes -= 1
            if session is not None:
                session.valid = False
            await conn.ws.send_str(dumps({"op": INVALID_SESSION, "d": False}))
            return
        last_seen = int(data.get("seq") or 0)
        async with session.lock:
            old = session.connection
            session.connection = conn
            conn.session, conn.resumed = session, True
            for seq, frame in session.buffer:
                if seq > last_seen:
                    await conn.ws.send_str(frame)
                    conn.replayed += 1
        if old is not None and old is not conn and not old.ws.closed:
            old.server_action = "replaced by resume"
            await old.ws.close(code=4000)
        await self.dispatch("RESUMED", {"_trace": ["fake-discord"]}, session=session)

    async def _members_chunk(self, session: GatewaySession, data: Payload) -> None:
        guild = self.world.guild(int(data["guild_id"]))
        if guild is None:
            return
        chunk: Payload = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in guild.members.values()],
            "chunk_index": 0,
            "chunk_count": 1,
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        await self.dispatch("GUILD_MEMBERS_CHUNK", chunk, session=session)

    async def dispatch(
        self,
        event: str,
        data: PayloadSource,
        *,
        guild_id: int | None = None,
        session: GatewaySession | None = None,
    ) -> int:
        """Send ``event`` to ``session``, or to every live session covering ``guild_id``.

        Sessions whose connection is away get it into their replay buffer only. Returns
        how many sessions it was sequenced into.
        """
        targets = [session] if session is not None else self.live_sessions(guild_id)
        count = 0
        for target in targets:
            body = data(target) if callable(data) else data
            if body is None:
                continue
            async with target.lock:
                target.seq += 1
                frame = dumps({"op": DISPATCH, "t": event, "s": target.seq, "d": body})
                target.buffer.append((target.seq, frame))
                conn = target.connection
                if conn is not None and not conn.ws.closed:
                    try:
                        await conn.ws.send_str(frame)
                    except ConnectionError:
                        log.debug("dispatch %s: connection %d went away", event, conn.index)
            count += 1
        self.world.notifier.notify()
        return count

    # faults

    def _connections(self, session: GatewaySession | None) -> list[GatewayConnection]:
        sessions = [session] if session is not None else self.live_sessions()
        return [s.connection for s in sessions if s.connection is not None]

    async def send_op(self, op: int, data: object, session: GatewaySession | None = None) -> None:
        """Send a raw non-dispatch frame (e.g. op 7, op 9) to ``session`` (default: all)."""
        for conn in self._connections(session):
            await conn.ws.send_str(dumps({"op": op, "d": data}))

    async def reconnect(self, session: GatewaySession | None = None) -> None:
        """op 7 RECONNECT: the client should close and RESUME."""
        await self.send_op(RECONNECT, None, session)

    async def invalidate(self, *, resumable: bool, session: GatewaySession | None = None) -> None:
        """op 9 INVALID_SESSION; a non-resumable one also forgets the session."""
        targets = [session] if session is not None else self.live_sessions()
        for target in targets:
            if not resumable:
                target.valid = False
            await self.send_op(INVALID_SESSION, resumable, target)

    def drop(self, session: GatewaySession | None = None) -> None:
        """Abort the TCP connection: no close frame, the client sees 1006."""
        for conn in self._connections(session):
            conn.server_action = "drop"
            if conn.request.transport is not None:
                conn.request.transport.abort()

    async def close(self, code: int, session: GatewaySession | None = None) -> None:
        """Close the connection with ``code`` (e.g. 4000 unknown error, 4004 bad token)."""
        for conn in self._connections(session):
            conn.server_action = f"close {code}"
            await conn.ws.close(code=code)

    async def shutdown(self) -> None:
        """Close every open connection (the fake is stopping)."""
        for conn in self.connections:
            if not conn.ws.closed:
                conn.server_action = conn.server_action or "shutdown"
                await conn.ws.close(code=1001)

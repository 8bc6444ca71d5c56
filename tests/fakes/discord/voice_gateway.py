"""A voice server: the voice gateway (v8 over TLS) plus its UDP socket.

discord.py 2.7.1 connects to ``wss://{endpoint}/?v=8`` after VOICE_SERVER_UPDATE:

    server: op 8 HELLO            client: op 0 IDENTIFY {server_id, user_id, session_id, token}
    server: op 2 READY {ssrc, ip, port, modes}
    client: UDP IP discovery, op 1 SELECT_PROTOCOL {protocol: udp, data: {address, port, mode}}
    server: op 4 SESSION_DESCRIPTION {mode, secret_key, dave_protocol_version: 0}
    client: op 5 SPEAKING, op 3 HEARTBEAT {t, seq_ack} -> server: op 6 HEARTBEAT_ACK {t}
    client: op 7 RESUME {server_id, session_id, token, seq_ack} -> server: op 9 RESUMED

DAVE is never negotiated (version 0), so no binary MLS frames are exchanged and the
audio is transport-encrypted Opus only. Each endpoint has its own TLS port and UDP port,
so "the voice server changed" is a real change of address.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import ssl
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.discord.model import Payload
from tests.fakes.discord.voice_udp import StreamStore, UDPSession, VoiceUDP
from tests.fakes.discord.wire import dumps
from tests.fakes.discord.world import Notifier

log = logging.getLogger(__name__)

IDENTIFY, SELECT_PROTOCOL, READY, HEARTBEAT, SESSION_DESCRIPTION = 0, 1, 2, 3, 4
SPEAKING, HEARTBEAT_ACK, RESUME, HELLO, RESUMED = 5, 6, 7, 8, 9
MODE = "aead_xchacha20_poly1305_rtpsize"
OFFERED_MODES = ["aead_aes256_gcm_rtpsize", MODE]
"""What Discord offers today; discord.py 2.7.1 supports only the second."""

# Voice gateway close codes (Discord's documentation).
AUTHENTICATION_FAILED = 4004
SESSION_NO_LONGER_VALID = 4006
SESSION_TIMEOUT = 4009
DISCONNECTED = 4014
VOICE_SERVER_CRASHED = 4015
UNKNOWN_ENCRYPTION_MODE = 4016


@dataclass(frozen=True, slots=True)
class VoiceGrant:
    """The token a VOICE_SERVER_UPDATE handed out for one guild on one endpoint."""

    guild_id: int
    user_id: int
    session_id: str
    token: str


@dataclass(eq=False)
class VoiceSessionState:
    """What survives a voice websocket for RESUME: the SSRC and key of the session."""

    grant: VoiceGrant
    ssrc: int
    key: bytes | None = None
    mode: str | None = None
    suspended: UDPSession | None = None
    """The UDP session while the websocket is closed and a RESUME may bring it back."""


@dataclass(frozen=True, slots=True)
class VoiceClose:
    """How a voice websocket ended: the client's code (None: no close frame)."""

    code: int | None
    initiator: str
    time: float


@dataclass(eq=False)
class VoiceConnection:
    """One voice websocket connection."""

    index: int
    endpoint: str
    request: web.Request
    ws: web.WebSocketResponse
    opened: float
    guild_id: int | None = None
    state: VoiceSessionState | None = None
    identified: bool = False
    resumed: bool = False
    received: list[Payload] = field(default_factory=list)
    speaking: list[tuple[float, int]] = field(default_factory=list)
    """``(time.monotonic(), speaking flags)`` for every op 5."""
    seq: int = 0
    close: VoiceClose | None = None
    server_action: str | None = None

    def ops(self, op: int) -> list[Payload]:
        """The client's frames with opcode ``op``."""
        return [p for p in self.received if p.get("op") == op]


class VoiceEndpoint:
    """One voice server: a TLS websocket on one port and a UDP socket on another."""

    def __init__(
        self,
        name: str,
        notifier: Notifier,
        streams: StreamStore,
        *,
        heartbeat_interval: float,
        tls: ssl.SSLContext,
        host: str = "127.0.0.1",
        udp_chatter: float | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self._notifier = notifier
        self._streams = streams
        self._tls = tls
        self.heartbeat_interval = heartbeat_interval
        self.udp = VoiceUDP(notifier, chatter=udp_chatter)
        self.grants: dict[int, VoiceGrant] = {}
        self.sessions: dict[int, VoiceSessionState] = {}
        self.connections: list[VoiceConnection] = []
        self.refuse_resumes: set[int] = set()
        """Guilds whose next RESUME is refused with 4006."""
        self.refuse_sessions: dict[int, float | None] = {}
        """Guilds whose voice sessions are all refused with 4006, as when another client
        takes the session over (``FakeDiscord.refuse_voice_sessions``): None at IDENTIFY,
        a number that many seconds after the session was described (connected)."""
        self.describe_on_resume = False
        """Send SESSION_DESCRIPTION again after RESUMED (discord.py 2.7.1 waits for one)."""
        self.port = 0
        self.udp_port = 0
        self._runner: web.AppRunner | None = None
        self._closing: set[asyncio.Task[bool]] = set()
        self._pending: set[asyncio.Task[object]] = set()

    @property
    def endpoint(self) -> str:
        """``host:port``, as VOICE_SERVER_UPDATE carries it."""
        return f"{self.host}:{self.port}"

    async def start(self, port: int = 0, udp_port: int = 0) -> None:
        """Start the TLS websocket server and the UDP socket."""
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port, ssl_context=self._tls)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self.udp_port = await self.udp.start(self.host, udp_port)

    async def close(self) -> None:
        """Close every voice websocket and both sockets."""
        for task in self._pending:
            task.cancel()
        if self._pending:
            await asyncio.wait(self._pending, timeout=2)
        if self._closing:
            await asyncio.wait(self._closing, timeout=2)
        for conn in self.connections:
            if not conn.ws.closed:
                conn.server_action = conn.server_action or "shutdown"
                await conn.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.udp.close()

    def grant(self, guild_id: int, user_id: int, session_id: str) -> VoiceGrant:
        """Issue a token for ``guild_id`` (the previous one stops working)."""
        grant = VoiceGrant(guild_id, user_id, session_id, secrets.token_hex(8))
        self.grants[guild_id] = grant
        return grant

    def revoke(self, guild_id: int) -> None:
        """The bot left: its token, session and SSRC are no longer valid here."""
        self.grants.pop(guild_id, None)
        state = self.sessions.pop(guild_id, None)
        if state is not None:
            self.udp.forget_after_queued(state.ssrc)

    def active(self, guild_id: int) -> VoiceConnection | None:
        """The open voice websocket of ``guild_id``, if any."""
        for conn in reversed(self.connections):
            if conn.guild_id == guild_id and not conn.ws.closed:
                return conn
        return None

    async def close_guild(self, guild_id: int, code: int) -> bool:
        """Close the guild's voice websocket with ``code``; False when none is open.

        Audio stops being accepted at once (a RESUME restores it). Returns without
        waiting for the client's close frame: discord.py may answer it only seconds
        later, after its reconnect backoff.
        """
        conn = self.active(guild_id)
        if conn is None:
            return False
        conn.server_action = f"close {code}"
        state = self.sessions.get(guild_id)
        if state is not None and state.suspended is None:
            state.suspended = self.udp.forget(state.ssrc)
        task = asyncio.create_task(conn.ws.close(code=code))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        await asyncio.sleep(0)  # let the close frame go out before the caller goes on
        return True

    async def _send(self, conn: VoiceConnection, op: int, data: object) -> None:
        conn.seq += 1
        await conn.ws.send_str(dumps({"op": op, "d": data, "seq": conn.seq}))

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = VoiceConnection(len(self.connections), self.name, request, ws, time.monotonic())
        self.connections.append(conn)
        self._notifier.notify()
        try:
            interval_ms = int(self.heartbeat_interval * 1000)
            await ws.send_str(
                dumps({"op": HELLO, "d": {"v": 8, "heartbeat_interval": interval_ms}})
            )
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    payload = json.loads(msg.data)
                    conn.received.append(payload)
                    self._notifier.notify()
                    await self._on_frame(conn, payload)
        except ConnectionError:
            log.debug("voice connection %d lost while sending", conn.index)
        finally:
            code = None if ws.close_code in (None, 1006) else int(ws.close_code)
            initiator = "server" if conn.server_action else "client"
            conn.close = VoiceClose(code, initiator, time.monotonic())
            self._notifier.notify()
        return ws

    async def _on_frame(self, conn: VoiceConnection, payload: Payload) -> None:
        op, data = payload.get("op"), payload.get("d") or {}
        if op == IDENTIFY:
            await self._identify(conn, data)
        elif op == SELECT_PROTOCOL:
            await self._select_protocol(conn, data)
        elif op == HEARTBEAT:
            await self._send(conn, HEARTBEAT_ACK, {"t": data.get("t")})
        elif op == SPEAKING:
            conn.speaking.append((time.monotonic(), int(data.get("speaking", 0))))
        elif op == RESUME:
            await self._resume(conn, data)
        else:
            log.debug("voice gateway: ignoring op %s", op)

    def _valid(self, data: Payload) -> VoiceGrant | None:
        grant = self.grants.get(int(data.get("server_id") or 0))
        if grant is None or grant.token != data.get("token"):
            return None
        if grant.session_id != data.get("session_id"):
            return None
        return grant

    async def _identify(self, conn: VoiceConnection, data: Payload) -> None:
        grant = self._valid(data)
        if grant is None or str(grant.user_id) != data.get("user_id"):
            conn.server_action = f"close {AUTHENTICATION_FAILED}"
            await conn.ws.close(code=AUTHENTICATION_FAILED)
            return
        if grant.guild_id in self.refuse_sessions and self.refuse_sessions[grant.guild_id] is None:
            conn.guild_id = grant.guild_id
            conn.server_action = f"close {SESSION_NO_LONGER_VALID}"
            await conn.ws.close(code=SESSION_NO_LONGER_VALID)
            return
        previous = self.sessions.get(grant.guild_id)
        if previous is not None:
            self.udp.forget(previous.ssrc)
        stream = self._streams.new_stream(grant.guild_id)
        self.udp.register(stream.ssrc, grant.guild_id, stream)
        conn.state = VoiceSessionState(grant, stream.ssrc)
        self.sessions[grant.guild_id] = conn.state
        conn.guild_id, conn.identified = grant.guild_id, True
        ready = {
            "ssrc": stream.ssrc,
            "ip": self.host,
            "port": self.udp_port,
            "modes": OFFERED_MODES,
            "heartbeat_interval": int(self.heartbeat_interval * 1000),
            "experiments": [],
        }
        await self._send(conn, READY, ready)

    async def _select_protocol(self, conn: VoiceConnection, data: Payload) -> None:
        mode = (data.get("data") or {}).get("mode") or data.get("mode")
        if conn.state is None:
            await conn.ws.close(code=4003)  # not authenticated
            return
        if mode != MODE:
            conn.server_action = f"close {UNKNOWN_ENCRYPTION_MODE}"
            await conn.ws.close(code=UNKNOWN_ENCRYPTION_MODE)
            return
        key = secrets.token_bytes(32)
        conn.state.key, conn.state.mode = key, mode
        self.udp.set_key(conn.state.ssrc, key)
        await self._describe(conn, mode, key)
        after = self.refuse_sessions.get(conn.guild_id or 0)
        if after is not None:
            self._later(self._take_over(conn, after))

    async def _take_over(self, conn: VoiceConnection, after: float) -> None:
        await asyncio.sleep(after)
        if conn.guild_id is not None and self.active(conn.guild_id) is conn:
            await self.close_guild(conn.guild_id, SESSION_NO_LONGER_VALID)

    def _later(self, work: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _describe(self, conn: VoiceConnection, mode: str, key: bytes) -> None:
        description = {
            "mode": mode,
            "secret_key": list(key),
            "dave_protocol_version": 0,
            "audio_codec": "opus",
            "video_codec": None,
            "media_session_id": secrets.token_hex(16),
        }
        await self._send(conn, SESSION_DESCRIPTION, description)

    async def _resume(self, conn: VoiceConnection, data: Payload) -> None:
        grant = self._valid(data)
        state = self.sessions.get(grant.guild_id) if grant is not None else None
        if grant is None or state is None or grant.guild_id in self.refuse_resumes:
            if grant is not None:
                self.refuse_resumes.discard(grant.guild_id)
            conn.server_action = f"close {SESSION_NO_LONGER_VALID}"
            await conn.ws.close(code=SESSION_NO_LONGER_VALID)
            return
        conn.state, conn.guild_id, conn.resumed = state, grant.guild_id, True
        if state.suspended is not None:
            self.udp.restore(state.ssrc, state.suspended)
            state.suspended = None
        await self._send(conn, RESUMED, None)
        if self.describe_on_resume and state.key is not None and state.mode is not None:
            await self._describe(conn, state.mode, state.key)

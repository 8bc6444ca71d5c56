"""``FakeDiscord``: the facade tests use to build a world, drive it and look at it.

    async with FakeDiscord() as fake:
        guild = fake.add_guild("Test")
        text = fake.add_text_channel(guild, "general")
        alice = fake.add_member(guild, "alice")
        bot = commands.Bot(command_prefix="!", intents=..., **discord_client_options(fake))
        async with running_bot(fake, bot):
            await fake.send_message(alice, text, "hello")
            record = await fake.invoke_slash(alice, text, "tts", "status")

One HTTP port serves REST (``/api/v10``) and the gateway (``/gateway``, and ``/resume``
as the ``resume_gateway_url``); each voice endpoint has its own TLS and UDP ports. Every
server binds 127.0.0.1.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from tests.fakes.discord.audio import VoiceStream, merged
from tests.fakes.discord.driver import Driver
from tests.fakes.discord.faults import RestFault, RestFaults
from tests.fakes.discord.gateway import Gateway, GatewaySession
from tests.fakes.discord.interactions import InteractionStore
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
    User,
)
from tests.fakes.discord.requests_log import RequestLog
from tests.fakes.discord.rest import RestAPI
from tests.fakes.discord.tls import HOST, CAFile, certificates
from tests.fakes.discord.voice import VoiceControl, VoiceStateRequest
from tests.fakes.discord.voice_gateway import (
    DISCONNECTED,
    SESSION_NO_LONGER_VALID,
    VoiceEndpoint,
)
from tests.fakes.discord.voice_udp import StreamStore
from tests.fakes.discord.world import World


class FakeDiscord(Driver):
    """A local Discord for the real discord.py client: REST, gateway, voice, faults."""

    def __init__(
        self,
        *,
        port: int = 0,
        voice_port: int = 0,
        udp_port: int = 0,
        heartbeat_interval: float = 41.25,
        voice_heartbeat_interval: float = 13.75,
        shard_count: int = 1,
        bot_name: str = "FakeBot",
        voice_udp_chatter: float | None = 0.25,
        interaction_deadline: float = 3.0,
    ) -> None:
        """Ports 0 are ephemeral.

        ``interaction_deadline``: seconds a bot has for the first answer to an interaction.
        ``voice_udp_chatter``: seconds between the small datagrams each voice server sends
        its clients (None: none); see :class:`~tests.fakes.discord.voice_udp.VoiceUDP` for
        why discord.py's voice reconnects depend on it.
        """
        self.world = World(bot_name=bot_name)
        self.shard_count = shard_count
        self._port, self._voice_port, self._udp_port = port, voice_port, udp_port
        self._voice_heartbeat = voice_heartbeat_interval
        self._udp_chatter = voice_udp_chatter
        self._certs = certificates()
        self._ca_file: CAFile | None = None
        self._streams = StreamStore()
        self.endpoints: list[VoiceEndpoint] = [self._new_endpoint()]
        self.gateway = Gateway(
            self.world,
            heartbeat_interval=heartbeat_interval,
            resume_url=lambda: f"ws://{HOST}:{self.port}/resume",
            on_voice_state=self._on_voice_state,
        )
        self.voice = VoiceControl(self.world, self.gateway, self.endpoints)
        self.faults = RestFaults()
        self.interactions = InteractionStore(self.world, callback_deadline=interaction_deadline)
        self.rest = RestAPI(
            self.world,
            self.faults,
            gateway_url=lambda: self.gateway_url,
            shard_count=lambda: self.shard_count,
            on_bot_message=self._echo_bot_message,
        )
        self._runner: web.AppRunner | None = None
        self.port = 0

    # lifecycle

    async def start(self) -> None:
        """Bind the HTTP port and the first voice endpoint."""
        app = web.Application()
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/resume", self.gateway.handle)
        self.rest.install(app, self.interactions.routes())
        # handler_cancellation: a client that gave up on a slow answer ends its handler.
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            handler_cancellation=True,
            shutdown_timeout=1.0,
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST, self._port).start()
        self.port = int(self._runner.addresses[0][1])
        await self.endpoints[0].start(self._voice_port, self._udp_port)

    async def close(self) -> None:
        """Close every connection, server and socket, and delete the CA file."""
        await self.gateway.shutdown()
        for endpoint in self.endpoints:
            await endpoint.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._ca_file is not None:
            self._ca_file.close()
            self._ca_file = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # where it is

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self.port}"

    @property
    def api_base(self) -> str:
        """The value for ``discord.http.Route.BASE``."""
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        """The value for ``DiscordWebSocket.DEFAULT_GATEWAY`` (and ``/gateway/bot``'s url)."""
        return f"ws://{HOST}:{self.port}/gateway"

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client SSL context that trusts the voice endpoints' certificate."""
        return self._certs.client_context()

    @property
    def ca_file(self) -> Path:
        """The fake's CA as a PEM file (for a bot in a subprocess); deleted on close."""
        if self._ca_file is None:
            self._ca_file = CAFile(self._certs)
        return self._ca_file.path

    @property
    def bot(self) -> User:
        """The bot's user."""
        return self.world.bot

    @property
    def application_id(self) -> int:
        """The bot's application id."""
        return self.world.application_id

    # building the world

    def add_guild(
        self,
        name: str = "Fake Guild",
        *,
        guild_id: int | None = None,
        shard: tuple[int, int] | None = None,
        preferred_locale: str = "en-US",
        everyone_permissions: int = DEFAULT_EVERYONE,
    ) -> Guild:
        """A guild with @everyone and the bot in it; ``shard=(id, count)`` picks its shard."""
        return self.world.add_guild(
            name,
            guild_id=guild_id,
            shard=shard,
            preferred_locale=preferred_locale,
            everyone_permissions=everyone_permissions,
        )

    def add_role(self, guild: Guild, name: str, permissions: int = 0) -> Role:
        """A role with ``permissions`` (an int, e.g. ``discord.Permissions(...).value``)."""
        return self.world.add_role(guild, name, permissions)

    def add_text_channel(
        self, guild: Guild, name: str = "general", *, overwrites: Sequence[Overwrite] = ()
    ) -> Channel:
        """A text channel."""
        return self.world.add_channel(guild, name, ChannelType.TEXT, overwrites=overwrites)

    def add_voice_channel(
        self,
        guild: Guild,
        name: str = "Voice",
        *,
        bitrate: int = 64_000,
        user_limit: int = 0,
        overwrites: Sequence[Overwrite] = (),
    ) -> Channel:
        """A voice channel."""
        return self.world.add_channel(
            guild,
            name,
            ChannelType.VOICE,
            overwrites=overwrites,
            bitrate=bitrate,
            user_limit=user_limit,
        )

    def add_member(
        self,
        guild: Guild,
        name: str,
        *,
        roles: Sequence[Role] = (),
        permissions: int | None = None,
        nick: str | None = None,
        bot: bool = False,
    ) -> Member:
        """A member; ``permissions`` fixes their guild permissions (else the roles')."""
        return self.world.add_member(
            guild, name, roles=roles, permissions=permissions, nick=nick, bot=bot
        )

    async def _on_voice_state(self, session: GatewaySession, data: Payload) -> None:
        await self.voice.on_voice_state(session, data)

    async def _echo_bot_message(self, guild: Guild, message: Message) -> None:
        # Discord sends the bot's own messages back to it as MESSAGE_CREATE.
        payload = message.payload(self.world.bot_member(guild))
        await self.gateway.dispatch("MESSAGE_CREATE", payload, guild_id=guild.id)

    # observing

    @property
    def requests(self) -> RequestLog:
        """Every REST request the fake received."""
        return self.rest.log

    def posted(self, channel: Channel) -> list[Message]:
        """Messages the bot posted in ``channel`` via ``POST /channels/{id}/messages``."""
        return [m for m in self.world.messages.get(channel.id, []) if m.author is self.world.bot]

    def messages(self, channel: Channel) -> list[Message]:
        """Every message in ``channel`` (members' and the bot's), oldest first."""
        return list(self.world.messages.get(channel.id, []))

    @property
    def voice_requests(self) -> list[VoiceStateRequest]:
        """Every op 4 the bot sent."""
        return self.voice.requests

    def bot_voice_channel(self, guild: Guild) -> int | None:
        """The voice channel id the fake has the bot in (None: not in voice)."""
        state = guild.voice_states.get(self.world.bot.id)
        return state.channel_id if state is not None else None

    def voice_streams(self, guild: Guild) -> list[VoiceStream]:
        """The guild's received streams, one per SSRC, oldest first."""
        return self._streams.streams(guild.id)

    def voice_stream(self, guild: Guild) -> VoiceStream:
        """Every packet the bot sent in ``guild``, across SSRCs, in arrival order.

        A snapshot: call it again (e.g. inside a ``wait_for`` predicate) for newer packets.
        It sorts every packet each call; hot predicates in load tests should read the live
        lists of :meth:`voice_streams` instead.
        """
        return merged(guild.id, self._streams.streams(guild.id))

    def all_voice_streams(self) -> list[VoiceStream]:
        """Every stream of every guild (for load tests)."""
        return self._streams.all()

    # faults

    def rest_fault(self, fault: RestFault) -> RestFault:
        """Script a REST fault (see ``faults.py``); returns it to read ``hits`` later."""
        return self.faults.add(fault)

    async def reconnect(self) -> None:
        """op 7 RECONNECT to every session."""
        await self.gateway.reconnect()

    async def invalidate_session(self, *, resumable: bool) -> None:
        """op 9 INVALID_SESSION to every session."""
        await self.gateway.invalidate(resumable=resumable)

    def drop_gateway(self) -> None:
        """Abort every gateway connection without a close frame."""
        self.gateway.drop()

    async def close_gateway(self, code: int) -> None:
        """Close every gateway connection with ``code``."""
        await self.gateway.close(code)

    def refuse_next_resume(self, count: int = 1) -> None:
        """Answer the next ``count`` gateway RESUMEs with op 9 (not resumable)."""
        self.gateway.refuse_resumes += count

    async def close_voice(self, guild: Guild, code: int) -> bool:
        """Close the bot's voice websocket in ``guild`` with ``code``."""
        return await self.voice.close_voice(guild, code)

    async def refuse_voice_sessions(self, guild: Guild, *, after: float | None = None) -> None:
        """From now on refuse the bot's voice sessions in ``guild`` with 4006, as when
        another client keeps taking the session over, on every voice server: its voice
        websocket is closed with 4006 now, and every new one at IDENTIFY (``after`` None)
        or ``after`` seconds once it is connected. :meth:`allow_voice_sessions` ends it."""
        for endpoint in self.endpoints:
            endpoint.refuse_sessions[guild.id] = after
        await self.voice.close_voice(guild, SESSION_NO_LONGER_VALID)

    def allow_voice_sessions(self, guild: Guild) -> None:
        """Accept voice IDENTIFYs in ``guild`` again."""
        for endpoint in self.endpoints:
            endpoint.refuse_sessions.pop(guild.id, None)

    def refuse_voice_resume(self, guild: Guild) -> None:
        """Close the guild's next voice RESUME with 4006."""
        self.voice.refuse_resume(guild)

    async def change_voice_endpoint(
        self, guild: Guild, *, close_old: int | None = None
    ) -> VoiceEndpoint:
        """Move ``guild`` to a second voice server (started on first use)."""
        current = self.voice.endpoint_for(guild.id)
        spare = next((e for e in self.endpoints if e is not current), None)
        if spare is None:
            spare = self._new_endpoint()
            await spare.start()
            self.endpoints.append(spare)
        await self.voice.change_endpoint(guild, spare, close_old=close_old)
        return spare

    async def move_bot(
        self,
        guild: Guild,
        channel: Channel,
        *,
        close_code: int | None = DISCONNECTED,
        new_server: bool = True,
    ) -> None:
        """Move the bot to ``channel`` as an admin would: VOICE_STATE_UPDATE, then (by
        default) its voice websocket closed with 4014 and a new VOICE_SERVER_UPDATE."""
        await self.voice.move_bot(guild, channel, close_code=close_code, new_server=new_server)

    async def kick_bot(self, guild: Guild) -> None:
        """Disconnect the bot from voice, as an admin would."""
        await self.voice.kick_bot(guild)

    def _new_endpoint(self) -> VoiceEndpoint:
        return VoiceEndpoint(
            f"voice-{len(getattr(self, 'endpoints', [])) + 1}",
            self.world.notifier,
            self._streams,
            heartbeat_interval=self._voice_heartbeat,
            tls=self._certs.server_context(),
            udp_chatter=self._udp_chatter,
        )

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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from tests.fakes.discord import interactions as ix
from tests.fakes.discord.audio import VoiceStream, merged
from tests.fakes.discord.faults import RestFault, RestFaults
from tests.fakes.discord.gateway import Gateway, GatewaySession
from tests.fakes.discord.interactions import InteractionRecord, InteractionStore
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
)
from tests.fakes.discord.rest import RequestLog, RestAPI
from tests.fakes.discord.tls import HOST, CAFile, certificates
from tests.fakes.discord.voice import VoiceControl, VoiceStateRequest
from tests.fakes.discord.voice_gateway import VoiceEndpoint
from tests.fakes.discord.voice_udp import StreamStore
from tests.fakes.discord.world import World

T = TypeVar("T")
MESSAGE_CONTENT_INTENT = 1 << 15


class FakeDiscord:
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
    ) -> None:
        """Ports 0 are ephemeral.

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
        self.interactions = InteractionStore(self.world)
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
    def bot(self) -> Any:
        """The bot's :class:`~tests.fakes.discord.model.User`."""
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

    def guild_of(self, thing: Channel | Member) -> Guild:
        """The guild a channel or member belongs to."""
        return self.world.guilds[thing.guild_id]

    # driving the bot

    async def send_message(
        self,
        member: Member,
        channel: Channel,
        content: str,
        *,
        attachments: Sequence[Payload] = (),
        sticker_items: Sequence[Payload] = (),
    ) -> Message:
        """``member`` posts ``content`` in ``channel``: MESSAGE_CREATE to the bot.

        ``attachments`` and ``sticker_items`` are partial payloads (missing ids, urls and
        sizes are filled in). Like Discord, sessions without the MESSAGE_CONTENT intent get
        an empty content unless the message mentions the bot.
        """
        guild = self.guild_of(channel)
        message = Message(
            id=self.world.snowflakes.next(),
            channel_id=channel.id,
            guild_id=guild.id,
            author=member.user,
            content=content,
            attachments=[self._attachment(channel, a) for a in attachments],
            sticker_items=[
                {"id": str(self.world.snowflakes.next()), "format_type": 1, "name": "sticker", **s}
                for s in sticker_items
            ],
        )
        self.world.messages.setdefault(channel.id, []).append(message)
        full = message.payload(member)
        mentions_bot = f"<@{self.world.bot.id}>" in content

        def for_session(session: GatewaySession) -> Payload:
            if session.intents & MESSAGE_CONTENT_INTENT or mentions_bot:
                return full
            return {**full, "content": "", "embeds": [], "attachments": [], "components": []}

        await self.gateway.dispatch("MESSAGE_CREATE", for_session, guild_id=guild.id)
        return message

    def _attachment(self, channel: Channel, partial: Payload) -> Payload:
        name = partial.get("filename", "file.bin")
        return {
            "id": str(self.world.snowflakes.next()),
            "filename": name,
            "size": 1024,
            "url": f"https://cdn.invalid/attachments/{channel.id}/{name}",
            "proxy_url": f"https://media.invalid/attachments/{channel.id}/{name}",
            **partial,
        }

    async def invoke_slash(
        self,
        member: Member,
        channel: Channel,
        /,
        *path: str,
        timeout: float = 5.0,
        wait: bool = True,
        locale: str = "en-US",
        options: Mapping[str, object] | None = None,
        **named: object,
    ) -> InteractionRecord:
        """``member`` runs ``/path[0] path[1:]`` with the options ``named`` in ``channel``.

        ``path`` is the command name, then the subcommand (and group) names:
        ``("ping",)``, ``("tts", "status")``, ``("tts", "admin", "reset")``; ``options``
        takes option names that clash with this method's keywords. With ``wait`` it
        returns once the bot has answered (a defer only counts once a follow-up or an
        edit of the original follows), else raises :class:`TimeoutError`.
        """
        given = {**(options or {}), **named}
        record = await self._interact(member, channel, path, given, ix.APPLICATION_COMMAND, locale)
        if wait:
            await self.wait_for(lambda: record.answered, timeout)
        return record

    async def autocomplete(
        self,
        member: Member,
        channel: Channel,
        /,
        *path: str,
        focused: str,
        timeout: float = 5.0,
        options: Mapping[str, object] | None = None,
        **named: object,
    ) -> InteractionRecord:
        """An APPLICATION_COMMAND_AUTOCOMPLETE for option ``focused``; waits for the choices."""
        given = {**(options or {}), **named}
        record = await self._interact(
            member, channel, path, given, ix.AUTOCOMPLETE, "en-US", focused=focused
        )
        await self.wait_for(lambda: record.callback_type is not None, timeout)
        return record

    async def _interact(
        self,
        member: Member,
        channel: Channel,
        path: Sequence[str],
        options: Mapping[str, object],
        kind: int,
        locale: str,
        *,
        focused: str | None = None,
    ) -> InteractionRecord:
        guild = self.guild_of(channel)
        interaction_id, token, payload = ix.build_interaction(
            self.world,
            guild,
            member,
            channel,
            path,
            options,
            kind=kind,
            focused=focused,
            locale=locale,
        )
        record = self.interactions.open(interaction_id, token, payload)
        if not await self.gateway.dispatch("INTERACTION_CREATE", payload, guild_id=guild.id):
            raise RuntimeError("no gateway session receives this guild: is the bot connected?")
        return record

    async def set_voice_state(
        self,
        member: Member,
        channel: Channel | None,
        *,
        self_mute: bool = False,
        self_deaf: bool = False,
    ) -> None:
        """``member`` joins, moves to, or leaves (``None``) a voice channel."""
        guild = self.world.guilds[member.guild_id]
        await self.voice.set_voice_state(
            guild, member, channel, self_mute=self_mute, self_deaf=self_deaf
        )

    async def set_nickname(self, member: Member, nick: str | None) -> None:
        """GUILD_MEMBER_UPDATE with a new nickname."""
        member.nick = nick
        data = {**member.payload(), "guild_id": str(member.guild_id)}
        await self.gateway.dispatch("GUILD_MEMBER_UPDATE", data, guild_id=member.guild_id)

    async def delete_channel(self, channel: Channel) -> None:
        """CHANNEL_DELETE; members in a deleted voice channel leave it (the bot: 4014)."""
        guild = self.guild_of(channel)
        del guild.channels[channel.id]
        await self.gateway.dispatch("CHANNEL_DELETE", channel.payload(), guild_id=guild.id)
        inside = [s for s in guild.voice_states.values() if s.channel_id == channel.id]
        for state in inside:
            if state.user_id == self.world.bot.id:
                await self.voice.kick_bot(guild)
            else:
                await self.voice.set_voice_state(guild, guild.members[state.user_id], None)

    async def join_guild(self, guild: Guild) -> None:
        """GUILD_CREATE for a guild added after the bot connected (the bot joined it)."""
        # A join carries no "unavailable" key; False would mean "an outage ended".
        data = guild.payload()
        del data["unavailable"]
        await self.gateway.dispatch("GUILD_CREATE", data, guild_id=guild.id)

    async def _on_voice_state(self, session: GatewaySession, data: Payload) -> None:
        await self.voice.on_voice_state(session, data)

    async def _echo_bot_message(self, guild: Guild, message: Message) -> None:
        # Discord sends the bot's own messages back to it as MESSAGE_CREATE.
        payload = message.payload(self.world.bot_member(guild))
        await self.gateway.dispatch("MESSAGE_CREATE", payload, guild_id=guild.id)

    # observing

    async def wait_for(
        self, predicate: Callable[[], T], timeout: float = 5.0, *, poll: float | None = 0.05
    ) -> T:
        """The first truthy ``predicate()``, re-checked whenever the fake records something.

        ``poll`` also re-checks it that often, for predicates on the bot's own state
        (which changes without telling the fake); ``None`` waits for the fake only.
        """
        return await self.world.notifier.wait_for(predicate, timeout, poll=poll)

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

    async def move_bot(self, guild: Guild, channel: Channel, **options: Any) -> None:
        """Move the bot to ``channel`` as an admin would (see ``VoiceControl.move_bot``)."""
        await self.voice.move_bot(guild, channel, **options)

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

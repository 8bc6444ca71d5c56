"""Voice on the main gateway: the bot's op 4, members' voice states, and voice faults.

On the bot's op 4 VOICE_STATE_UPDATE the fake updates the bot's voice state, dispatches
VOICE_STATE_UPDATE (with the gateway ``session_id``) and then VOICE_SERVER_UPDATE
(``token``, ``guild_id``, ``endpoint: "127.0.0.1:PORT"``) for the guild's current voice
endpoint; ``channel_id: null`` means leave, and revokes the voice session. Every op 4 is
recorded, so a test can assert that the bot left.

The faults are what Discord does to a connected bot: close its voice websocket with a
code, move its voice server, move it to another channel, kick it, refuse a resume.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from tests.fakes.discord.gateway import Gateway, GatewaySession
from tests.fakes.discord.model import Channel, Guild, Member, Payload, VoiceState
from tests.fakes.discord.voice_gateway import DISCONNECTED, VoiceEndpoint
from tests.fakes.discord.world import World

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VoiceStateRequest:
    """One op 4 the bot sent on the main gateway."""

    guild_id: int
    channel_id: int | None
    self_mute: bool
    self_deaf: bool
    time: float
    """``time.monotonic()`` on arrival."""


class VoiceControl:
    """Answers the bot's op 4 and drives voice state changes and voice faults."""

    def __init__(self, world: World, gateway: Gateway, endpoints: list[VoiceEndpoint]) -> None:
        self.world = world
        self.gateway = gateway
        self.endpoints = endpoints
        self.requests: list[VoiceStateRequest] = []
        self._current: dict[int, VoiceEndpoint] = {}
        self._held: list[tuple[GatewaySession, Payload]] | None = None
        self.repeat_join = "state-first"
        """How to answer an op 4 for the channel the bot is already in (discord.py 2.7.1
        sends one when it tries to resume after close code 4015): ``"state-first"`` like a
        join (VOICE_STATE_UPDATE, then VOICE_SERVER_UPDATE), ``"server-first"`` (the other
        order), or ``"ignore"``. What Discord does is not verified.
        """

    def hold_joins(self) -> None:
        """Leave the bot's op 4 joins unanswered until :meth:`release_joins`, as a slow
        Discord would (keep it shorter than the bot's voice connect timeout)."""
        if self._held is None:
            self._held = []

    async def release_joins(self) -> None:
        """Answer the held op 4 joins, in order, and stop holding."""
        held, self._held = self._held or [], None
        for session, data in held:
            await self._answer(session, data)

    def endpoint_for(self, guild_id: int) -> VoiceEndpoint:
        """The voice server the guild currently uses."""
        return self._current.get(guild_id, self.endpoints[0])

    def _bot_member(self, guild: Guild) -> Member:
        return self.world.bot_member(guild)

    async def _dispatch_state(self, guild: Guild, state: VoiceState, member: Member) -> None:
        await self.gateway.dispatch("VOICE_STATE_UPDATE", state.payload(member), guild_id=guild.id)

    async def _dispatch_server(
        self, guild: Guild, endpoint: VoiceEndpoint, session_id: str
    ) -> None:
        grant = endpoint.grant(guild.id, self.world.bot.id, session_id)
        data: Payload = {
            "token": grant.token,
            "guild_id": str(guild.id),
            "endpoint": endpoint.endpoint,
        }
        await self.gateway.dispatch("VOICE_SERVER_UPDATE", data, guild_id=guild.id)

    async def on_voice_state(self, session: GatewaySession, data: Payload) -> None:
        """The gateway hook for the bot's op 4."""
        channel_id = int(data["channel_id"]) if data.get("channel_id") else None
        self.requests.append(
            VoiceStateRequest(
                int(data["guild_id"]),
                channel_id,
                bool(data.get("self_mute")),
                bool(data.get("self_deaf")),
                time.monotonic(),
            )
        )
        self.world.notifier.notify()
        if channel_id is not None and self._held is not None:
            self._held.append((session, data))
            return
        await self._answer(session, data)

    async def _answer(self, session: GatewaySession, data: Payload) -> None:
        guild = self.world.guild(int(data["guild_id"]))
        channel_id = int(data["channel_id"]) if data.get("channel_id") else None
        if guild is None:
            return
        bot = self._bot_member(guild)
        if channel_id is None:
            await self._leave(guild, session.session_id)
            return
        channel = guild.channels.get(channel_id)
        if channel is None or not channel.is_voice:
            log.warning("fake Discord: op 4 for unknown voice channel %s", channel_id)
            return
        current = guild.voice_states.get(bot.id)
        repeat = current is not None and current.channel_id == channel_id
        moving = current is not None and current.channel_id not in (None, channel_id)
        if repeat and self.repeat_join == "ignore":
            return
        state = VoiceState(
            guild.id,
            bot.id,
            channel_id,
            session.session_id,
            bool(data.get("self_mute")),
            bool(data.get("self_deaf")),
        )
        guild.voice_states[bot.id] = state
        endpoint = self.endpoint_for(guild.id)
        if repeat and self.repeat_join == "server-first":
            await self._dispatch_server(guild, endpoint, session.session_id)
            await self._dispatch_state(guild, state, bot)
            return
        await self._dispatch_state(guild, state, bot)
        if moving:
            # A move the bot asked for ends its voice websocket like an admin's move
            # (4014), and discord.py reconnects on the VOICE_SERVER_UPDATE that follows.
            await endpoint.close_guild(guild.id, DISCONNECTED)
        await self._dispatch_server(guild, endpoint, session.session_id)

    async def _leave(self, guild: Guild, session_id: str) -> None:
        bot = self._bot_member(guild)
        guild.voice_states.pop(bot.id, None)
        for endpoint in self.endpoints:
            endpoint.revoke(guild.id)
        await self._dispatch_state(guild, VoiceState(guild.id, bot.id, None, session_id), bot)

    # driving members

    async def set_voice_state(
        self,
        guild: Guild,
        member: Member,
        channel: Channel | None,
        *,
        self_mute: bool = False,
        self_deaf: bool = False,
    ) -> VoiceState:
        """A member joins, moves to or leaves (``None``) a voice channel."""
        if channel is not None and not channel.is_voice:
            raise ValueError(f"#{channel.name} is not a voice channel")
        previous = guild.voice_states.get(member.id)
        session_id = previous.session_id if previous else f"member-{member.id:x}"
        state = VoiceState(
            guild.id, member.id, channel.id if channel else None, session_id, self_mute, self_deaf
        )
        if channel is None:
            guild.voice_states.pop(member.id, None)
        else:
            guild.voice_states[member.id] = state
        await self._dispatch_state(guild, state, member)
        return state

    # faults

    def _bot_state(self, guild: Guild) -> VoiceState:
        state = guild.voice_states.get(self.world.bot.id)
        if state is None or state.channel_id is None:
            raise RuntimeError(f"the bot is not in a voice channel of {guild.name}")
        return state

    async def close_voice(self, guild: Guild, code: int) -> bool:
        """Close the bot's voice websocket in ``guild`` with ``code`` (4006, 4009, 4014, 4015…)."""
        return await self.endpoint_for(guild.id).close_guild(guild.id, code)

    def refuse_resume(self, guild: Guild) -> None:
        """Answer the guild's next voice RESUME with 4006 (session no longer valid)."""
        self.endpoint_for(guild.id).refuse_resumes.add(guild.id)

    async def change_endpoint(
        self, guild: Guild, endpoint: VoiceEndpoint, *, close_old: int | None = None
    ) -> None:
        """Move the guild to another voice server: VOICE_SERVER_UPDATE with its endpoint.

        ``close_old`` also closes the old server's websocket with that code.
        """
        state = self._bot_state(guild)
        old = self.endpoint_for(guild.id)
        self._current[guild.id] = endpoint
        if close_old is not None:
            await old.close_guild(guild.id, close_old)
        old.revoke(guild.id)
        await self._dispatch_server(guild, endpoint, state.session_id)

    async def move_bot(
        self,
        guild: Guild,
        channel: Channel,
        *,
        close_code: int | None = DISCONNECTED,
        new_server: bool = True,
    ) -> None:
        """Move the bot as an admin would: VOICE_STATE_UPDATE with the new channel.

        Then (by default) the voice websocket closes with 4014 and a new
        VOICE_SERVER_UPDATE follows, which is the sequence discord.py's reconnect expects.
        """
        state = self._bot_state(guild)
        state.channel_id = channel.id
        await self._dispatch_state(guild, state, self._bot_member(guild))
        endpoint = self.endpoint_for(guild.id)
        if close_code is not None:
            await endpoint.close_guild(guild.id, close_code)
        if new_server:
            await self._dispatch_server(guild, endpoint, state.session_id)

    async def kick_bot(self, guild: Guild, *, close_code: int | None = DISCONNECTED) -> None:
        """Disconnect the bot from voice (an admin's "disconnect", or its channel deleted)."""
        state = self._bot_state(guild)
        endpoint = self.endpoint_for(guild.id)
        guild.voice_states.pop(self.world.bot.id, None)
        left = VoiceState(guild.id, self.world.bot.id, None, state.session_id)
        await self._dispatch_state(guild, left, self._bot_member(guild))
        if close_code is not None:
            await endpoint.close_guild(guild.id, close_code)
        for each in self.endpoints:
            each.revoke(guild.id)

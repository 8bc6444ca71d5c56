"""Driving the bot as members would: messages, slash commands, voice, guild changes.

Mixed into :class:`~tests.fakes.discord.server.FakeDiscord`; every method turns into
gateway dispatches the real client parses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from tests.fakes.discord import interactions as ix
from tests.fakes.discord.gateway import Gateway, GatewaySession
from tests.fakes.discord.interactions import InteractionRecord, InteractionStore
from tests.fakes.discord.model import Channel, Guild, Member, Message, Payload
from tests.fakes.discord.voice import VoiceControl
from tests.fakes.discord.world import World

T = TypeVar("T")
MESSAGE_CONTENT_INTENT = 1 << 15


class Driver:
    """The member-side actions; the facade provides the attributes below."""

    world: World
    gateway: Gateway
    voice: VoiceControl
    interactions: InteractionStore

    async def wait_for(
        self, predicate: Callable[[], T], timeout: float = 5.0, *, poll: float | None = 0.05
    ) -> T:
        """The first truthy ``predicate()``, re-checked whenever the fake records something.

        ``poll`` also re-checks it that often, for predicates on the bot's own state
        (which changes without telling the fake); ``None`` waits for the fake only.
        """
        return await self.world.notifier.wait_for(predicate, timeout, poll=poll)

    def guild_of(self, thing: Channel | Member) -> Guild:
        """The guild a channel or member belongs to."""
        return self.world.guilds[thing.guild_id]

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
        user_ids = {int(i) for i in re.findall(r"<@!?(\d+)>", content)}
        role_ids = {int(i) for i in re.findall(r"<@&(\d+)>", content)}
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
            mentions=[m for m in guild.members.values() if m.id in user_ids],
            mention_roles=[r for r in role_ids if r in guild.roles],
            mention_everyone="@everyone" in content or "@here" in content,
        )
        self.world.messages.setdefault(channel.id, []).append(message)
        full = message.payload(member)
        mentions_bot = self.world.bot.id in user_ids

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

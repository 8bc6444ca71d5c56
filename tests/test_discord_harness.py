"""Proves tests/fakes/discord_harness.py: dpytest shims, slash dispatch, capture, voice double."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import discord.ext.test as dpytest
import pytest
from discord import app_commands
from discord.ext import commands
from discord.ext.test import factories as dpy_factories
from discord.webhook.async_ import AsyncWebhookAdapter

from tests.fakes.discord_harness import (
    EPHEMERAL,
    RecordingVoiceClient,
    TestBot,
    add_guild,
    add_member,
    add_role,
    add_text_channel,
    add_voice_channel,
    invoke_slash,
    make_test_bot,
    running_test_bot,
    send_message,
    set_voice_channel,
)

MANAGE_GUILD = "32"
OPUS_PACKET = b"\xf8\xff\xfe"  # an Opus frame (TOC byte + payload); the double never decodes it


class DemoCog(commands.Cog):
    """Stands in for a real cog: a prefix-less listener and a guarded slash group."""

    demo = app_commands.Group(name="demo", description="Harness demo", guild_only=True)

    def __init__(self, bot: commands.Bot) -> None:
        self.bot = bot
        self.voice_updates: list[tuple[discord.Member, object]] = []

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot:
            return
        if message.content.startswith("echo "):
            await message.channel.send(
                message.content.removeprefix("echo "),
                allowed_mentions=discord.AllowedMentions.none(),
            )
        elif message.content.startswith("shout "):
            await message.channel.send(message.content.removeprefix("shout "))

    @commands.Cog.listener()
    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        self.voice_updates.append((member, after.channel))  # discord mutates `after` later

    @demo.command(name="status", description="Ephemeral status")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def status(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message("all good", ephemeral=True)

    @demo.command(name="diagnose", description="Deferred report")
    @app_commands.checks.has_permissions(manage_guild=True)
    async def diagnose(
        self, interaction: discord.Interaction, target: str, rounds: int = 1
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.followup.send(
            f"{target} x{rounds}",
            embed=discord.Embed(title="Diagnostics", description=target),
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )


EXTENSION_SOURCE = """
from tests.test_discord_harness import DemoCog

async def setup(bot):
    await bot.add_cog(DemoCog(bot))
"""


@pytest.fixture
def demo_extension(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "harness_demo_ext.py").write_text(EXTENSION_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "harness_demo_ext"


@pytest.fixture
async def tb(demo_extension: str) -> AsyncIterator[TestBot]:
    async with running_test_bot([demo_extension]) as harness:
        yield harness


def demo_cog(tb: TestBot) -> DemoCog:
    cog = tb.bot.get_cog("DemoCog")
    assert isinstance(cog, DemoCog)
    return cog


class FakeOpusSource(discord.AudioSource):
    """Yields ``count`` Opus packets; optionally blocks before packet ``gate_at`` or fails."""

    def __init__(
        self, count: int, *, gate_at: int | None = None, fail_at: int | None = None
    ) -> None:
        self.count = count
        self.reads = 0
        self.gate_at = gate_at
        self.fail_at = fail_at
        self.gate_reached = threading.Event()
        self.gate = threading.Event()
        self.cleaned_up = False

    def read(self) -> bytes:
        if self.reads == self.gate_at:
            self.gate_reached.set()
            self.gate.wait(5)
        if self.reads == self.fail_at:
            raise OSError("decoder died")
        if self.reads >= self.count:
            return b""
        self.reads += 1
        return OPUS_PACKET + bytes([self.reads])

    def is_opus(self) -> bool:
        return True

    def cleanup(self) -> None:
        self.cleaned_up = True


async def connect(tb: TestBot) -> RecordingVoiceClient:
    """Connect the way a cog does (no ``cls``); the harness hands out the recording double."""
    voice: discord.VoiceProtocol = await tb.voice_channel.connect()
    assert isinstance(voice, RecordingVoiceClient)
    return voice


class PcmSource(discord.AudioSource):
    def read(self) -> bytes:
        return b"\x00" * 3840

    def is_opus(self) -> bool:
        return False


class AfterRecorder:
    """An ``after`` callback that notes its thread and hands the error back to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls: list[tuple[Exception | None, bool]] = []
        self.outcome: asyncio.Future[Exception | None] = loop.create_future()

    def __call__(self, error: Exception | None) -> None:
        self.calls.append((error, threading.current_thread() is threading.main_thread()))
        self.loop.call_soon_threadsafe(self.outcome.set_result, error)


# ---------------------------------------------------------------- bot, guild, shims


async def test_bot_loads_extension_into_default_guild(tb: TestBot) -> None:
    assert tb.bot.is_ready()
    assert tb.guild.me is not None
    assert tb.text_channel.name == "general"
    assert tb.voice_channel.bitrate == 64000
    assert [c.qualified_name for c in tb.bot.tree.get_commands()] == ["demo"]
    assert demo_cog(tb).bot is tb.bot


async def test_voice_channel_and_role_creation_through_http(tb: TestBot) -> None:
    voice = await tb.guild.create_voice_channel("Created", bitrate=96000)
    role = await tb.guild.create_role(name="DJ", colour=discord.Colour(0x3498DB))
    await role.edit(colour=discord.Colour(0xFF0000))

    assert voice.bitrate == 96000
    stored = tb.guild.get_role(role.id)
    assert stored is not None
    assert stored.colour.value == 0xFF0000


async def test_members_carry_roles_permissions_and_flags(tb: TestBot) -> None:
    dj = add_role(tb.guild, "DJ", colour=0x123456)
    admin = add_member(
        tb.guild, "root", permissions=discord.Permissions(manage_guild=True), roles=(dj,)
    )
    alice = add_member(tb.guild, "alice", nick="Ally")

    assert admin.guild_permissions.manage_guild
    assert not alice.guild_permissions.manage_guild
    assert dj in admin.roles
    assert dj.colour.value == 0x123456
    assert alice.display_name == "Ally"
    assert alice.flags.value == 0


async def test_reactions_reach_the_bot(tb: TestBot) -> None:
    alice = add_member(tb.guild, "alice")
    message = await send_message(alice, tb.text_channel, "hello")
    await dpytest.add_reaction(alice, message, "👍")
    await message.add_reaction("🔊")

    assert sorted(str(r.emoji) for r in message.reactions) == ["👍", "🔊"]


async def test_member_enters_and_leaves_voice(tb: TestBot) -> None:
    alice = add_member(tb.guild, "alice")
    music = add_voice_channel(tb.guild, "Music")

    await set_voice_channel(alice, tb.voice_channel)
    assert alice.voice is not None
    assert alice.voice.channel == tb.voice_channel
    assert alice in tb.voice_channel.members
    await set_voice_channel(alice, music)
    assert alice.voice.channel == music
    await set_voice_channel(alice, None)
    assert alice.voice is None
    assert demo_cog(tb).voice_updates == [(alice, tb.voice_channel), (alice, music), (alice, None)]


# ---------------------------------------------------------------- messages


async def test_listener_echo_is_captured_with_mentions_suppressed(tb: TestBot) -> None:
    alice = add_member(tb.guild, "alice")
    await send_message(alice, tb.text_channel, f"echo hi {alice.mention} @everyone")

    [sent] = tb.sent
    assert sent.channel_id == tb.text_channel.id
    assert sent.content == f"hi {alice.mention} @everyone"
    assert sent.allowed_mentions == {"parse": []}
    assert sent.mentions_suppressed
    assert dpytest.get_message().content == sent.content


async def test_second_guild_with_its_own_channel(tb: TestBot) -> None:
    other = add_guild("Other Guild")
    lobby = add_text_channel(other, "lobby")
    bob = add_member(other, "bob")
    await send_message(bob, lobby, "echo over here")

    assert other in tb.bot.guilds
    assert other.me is not None
    assert [m.content for m in tb.sent_to(lobby)] == ["over here"]
    assert tb.sent_to(tb.text_channel) == []


async def test_message_without_allowed_mentions_is_flagged(tb: TestBot) -> None:
    alice = add_member(tb.guild, "alice")
    await send_message(alice, tb.text_channel, "shout @everyone")
    await send_message(alice, tb.text_channel, "nothing for the bot")

    [sent] = tb.sent_to(tb.text_channel)
    assert sent.allowed_mentions is None
    assert not sent.mentions_suppressed


async def test_bot_sends_and_edits_messages_with_sane_types(tb: TestBot) -> None:
    sent = await tb.text_channel.send("draft", allowed_mentions=discord.AllowedMentions.none())
    edited = await sent.edit(content="final")

    assert sent.type is discord.MessageType.default
    assert edited.type is discord.MessageType.default
    assert edited.content == "final"
    assert [m.content for m in tb.sent] == ["draft"]


# ---------------------------------------------------------------- slash commands


async def test_slash_refused_without_permission(tb: TestBot) -> None:
    alice = add_member(tb.guild, "alice")
    result = await invoke_slash(
        tb.bot, tb.guild, alice, tb.text_channel, "demo", "status", permissions="0"
    )

    assert list(result) == []  # the default tree handler only logs
    assert result.interaction.command_failed
    [error] = result.errors
    assert isinstance(error, app_commands.MissingPermissions)
    assert error.missing_permissions == ["manage_guild"]


async def test_slash_admin_gets_ephemeral_message(tb: TestBot) -> None:
    alice = add_member(tb.guild, "alice")
    result = await invoke_slash(
        tb.bot, tb.guild, alice, tb.text_channel, "demo", "status", permissions=MANAGE_GUILD
    )

    [reply] = result
    assert (reply.kind, reply.type, reply.flags) == ("response", 4, EPHEMERAL)
    assert reply.ephemeral
    assert reply.content == "all good"
    assert result.errors == []
    assert tb.responses == [reply]


async def test_slash_permissions_default_to_member_roles(tb: TestBot) -> None:
    admin = add_member(tb.guild, "root", permissions=discord.Permissions(manage_guild=True))
    alice = add_member(tb.guild, "alice")

    allowed = await invoke_slash(tb.bot, tb.guild, admin, tb.text_channel, "demo", "status")
    refused = await invoke_slash(tb.bot, tb.guild, alice, tb.text_channel, "demo", "status")

    assert [r.content for r in allowed] == ["all good"]
    assert list(refused) == []
    assert isinstance(refused.errors[0], app_commands.MissingPermissions)


async def test_tree_error_handler_reply_is_captured(tb: TestBot) -> None:
    @tb.bot.tree.error
    async def on_app_command_error(
        interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await interaction.response.send_message(f"refused: {type(error).__name__}", ephemeral=True)

    alice = add_member(tb.guild, "alice")
    result = await invoke_slash(
        tb.bot, tb.guild, alice, tb.text_channel, "demo", "status", permissions="0"
    )

    [reply] = result
    assert (reply.type, reply.ephemeral, reply.content) == (4, True, "refused: MissingPermissions")
    assert tb.bot.tree.on_error is on_app_command_error


async def test_deferred_reply_and_followup_with_options(tb: TestBot) -> None:
    alice = add_member(tb.guild, "alice")
    result = await invoke_slash(
        tb.bot,
        tb.guild,
        alice,
        tb.text_channel,
        "demo",
        "diagnose",
        options={"target": "edge", "rounds": 3},
        permissions=MANAGE_GUILD,
    )

    deferred, followup = result
    assert (deferred.kind, deferred.type, deferred.ephemeral) == ("response", 5, True)
    assert (followup.kind, followup.type, followup.ephemeral) == ("followup", None, True)
    assert followup.content == "edge x3"
    assert followup.embeds[0]["title"] == "Diagnostics"
    assert followup.mentions_suppressed


async def test_options_resolve_and_every_reply_route_is_captured(tb: TestBot) -> None:
    seen: dict[str, object] = {}

    @tb.bot.tree.command(name="pick", description="Resolves options")
    async def pick(
        interaction: discord.Interaction,
        who: discord.Member,
        role: discord.Role,
        where: discord.VoiceChannel,
        speed: float,
        loud: bool,
    ) -> None:
        seen.update(who=who, role=role, where=where, speed=speed, loud=loud)
        await interaction.response.send_message("picked")
        original = await interaction.original_response()
        await interaction.edit_original_response(content=f"picked #{original.id}")
        extra = await interaction.followup.send("extra", wait=True)
        await extra.edit(content="extra!")
        await extra.delete()
        await interaction.delete_original_response()

    alice = add_member(tb.guild, "alice")
    dj = add_role(tb.guild, "DJ")
    options = {"who": alice, "role": dj, "where": tb.voice_channel, "speed": 1.5, "loud": True}
    result = await invoke_slash(tb.bot, tb.guild, alice, tb.text_channel, "pick", options=options)

    assert result.errors == []
    assert seen == {"who": alice, "role": dj, "where": tb.voice_channel, "speed": 1.5, "loud": True}
    original_id = int((result[1].content or "").removeprefix("picked #"))
    assert discord.utils.snowflake_time(original_id) <= discord.utils.utcnow()
    assert [(r.kind, r.content) for r in result] == [
        ("response", "picked"),
        ("edit_original", f"picked #{original_id}"),
        ("followup", "extra"),
        ("edit_followup", "extra!"),
        ("delete_followup", None),
        ("delete_original", None),
    ]
    assert not result[0].ephemeral


# ---------------------------------------------------------------- voice client double


async def test_connect_returns_recording_client_and_updates_bot_voice_state(tb: TestBot) -> None:
    voice = await connect(tb)

    assert isinstance(voice, RecordingVoiceClient)
    assert tb.guild.voice_client is voice
    assert tb.voice_clients == [voice]
    assert voice.is_connected()
    assert tb.guild.me.voice is not None
    assert tb.guild.me.voice.channel == tb.voice_channel
    with pytest.raises(discord.ClientException):
        await tb.voice_channel.connect()

    music = add_voice_channel(tb.guild, "Music")
    await voice.move_to(music)
    assert tb.guild.me.voice.channel == music
    await voice.disconnect()
    assert tb.guild.voice_client is None
    assert tb.guild.me.voice is None


async def test_play_records_packets_and_calls_after_from_player_thread(tb: TestBot) -> None:
    voice = await connect(tb)
    source = FakeOpusSource(25)
    after = AfterRecorder(asyncio.get_running_loop())

    voice.play(source, after=after)
    playback = await voice.wait_until_done()

    assert await after.outcome is None
    assert after.calls == [(None, False)]  # called once, not on the event loop's thread
    assert playback.is_opus
    assert playback.after_called
    assert len(voice.packets) == 25
    assert voice.packets[0] == OPUS_PACKET + b"\x01"
    assert source.cleaned_up
    assert not voice.is_playing()


async def test_read_error_reaches_after(tb: TestBot) -> None:
    voice = await connect(tb)
    after = AfterRecorder(asyncio.get_running_loop())

    voice.play(FakeOpusSource(10, fail_at=4), after=after)
    error = await asyncio.wait_for(after.outcome, 5)

    assert isinstance(error, OSError)
    assert str(error) == "decoder died"
    assert len(voice.packets) == 4


async def test_connection_lost_mid_utterance(tb: TestBot) -> None:
    voice = await connect(tb)
    source = FakeOpusSource(50, gate_at=3)
    after = AfterRecorder(asyncio.get_running_loop())

    voice.play(source, after=after)
    assert await asyncio.to_thread(source.gate_reached.wait, 5)
    assert voice.is_playing()
    with pytest.raises(discord.ClientException):
        voice.play(FakeOpusSource(1))
    voice.interrupt()
    source.gate.set()
    error = await asyncio.wait_for(after.outcome, 5)

    assert isinstance(error, ConnectionResetError)
    assert len(voice.packets) == 3
    assert not voice.is_connected()
    assert not voice.is_playing()


async def test_stop_ends_playback_without_error(tb: TestBot) -> None:
    voice = await connect(tb)
    voice.packet_interval = 0.001
    after = AfterRecorder(asyncio.get_running_loop())

    voice.play(FakeOpusSource(10_000), after=after)
    voice.stop()

    assert await asyncio.wait_for(after.outcome, 5) is None
    assert len(voice.packets) < 10_000
    assert voice.plays[0].error is None


async def test_pcm_source_is_rejected_like_without_libopus(tb: TestBot) -> None:
    voice = await connect(tb)

    with pytest.raises(discord.opus.OpusNotLoaded):
        voice.play(PcmSource())
    assert voice.plays == []


# ---------------------------------------------------------------- teardown


async def test_close_restores_patches_and_allows_a_new_bot(demo_extension: str) -> None:
    originals = (
        AsyncWebhookAdapter.create_interaction_response,
        discord.abc.Connectable.connect,
        dpy_factories.dict_from_channel,
    )
    harness = await make_test_bot([demo_extension])
    try:
        with pytest.raises(RuntimeError, match="still running"):
            await make_test_bot()
        voice = await connect(harness)
        voice.packet_interval = 0.001
        voice.play(FakeOpusSource(10_000))
        patched = AsyncWebhookAdapter.create_interaction_response
    finally:
        await harness.close()  # the subject under test; closing twice is harmless

    assert patched is not originals[0]
    assert (
        AsyncWebhookAdapter.create_interaction_response,
        discord.abc.Connectable.connect,
        dpy_factories.dict_from_channel,
    ) == originals
    assert harness.bot.is_closed()
    assert not [t for t in threading.enumerate() if t.name.startswith("recording-player")]
    async with await make_test_bot() as second:
        assert second.guild.name == "Test Guild"

"""Voice cog slash commands through the real CommandTree, and when the bot leaves on its own.

Replies are captured at the HTTP boundary (``AsyncWebhookAdapter``): every one must be
ephemeral and unable to ping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import discord
import pytest
from discord.ext.test import backend as dpy_backend

from edge_voice.core.clock import FakeClock
from tests.fakes.audio_samples import edge_like_mp3
from tests.fakes.discord_harness import (
    SlashResult,
    TestBot,
    add_member,
    add_voice_channel,
    invoke_slash,
    send_message,
    set_voice_channel,
)
from tests.fakes.edge_server import FakeEdgeServer
from tests.voice_cog_support import (
    join,
    make_config,
    posted,
    settled,
    spoken_audio,
    until,
    voice_bot,
    voice_client,
    voice_cog,
)


@pytest.fixture
async def tb(edge_server: FakeEdgeServer) -> AsyncIterator[TestBot]:
    async with voice_bot() as harness:
        yield harness


async def slash(
    tb: TestBot, member: discord.Member, command: str, **options: object
) -> SlashResult:
    return await invoke_slash(tb.bot, tb.guild, member, tb.text_channel, command, options=options)


def answer(result: SlashResult) -> str:
    """The one message a command showed its caller (a direct reply or the deferred follow-up)."""
    assert result.errors == []
    shown = [r for r in result if r.type != 5]  # 5 = "thinking…" placeholder
    [reply] = shown
    assert reply.ephemeral
    assert reply.mentions_suppressed
    return reply.content or ""


def deny_default_role(tb: TestBot, **denied: bool) -> None:
    """Take permissions away from @everyone (the bot's only role)."""
    permissions = tb.guild.default_role.permissions
    permissions.update(**denied)
    dpy_backend.update_role(tb.guild.default_role, permissions=permissions.value)


# ---------------------------------------------------------------- /join


async def test_join_binds_channel_and_connects(tb: TestBot) -> None:
    alice = add_member(tb.guild, "alice")
    result = await join(tb, alice)

    assert result[0].type == 5
    assert result[0].ephemeral
    text = answer(result)
    assert text == f"🔊 Joined **Voice**; reading {tb.text_channel.mention} aloud."
    assert voice_client(tb).is_connected()
    assert voice_client(tb).channel == tb.voice_channel
    assert voice_cog(tb).bound_channel(tb.guild) == tb.text_channel


async def test_join_moves_to_the_callers_new_channel(tb: TestBot) -> None:
    alice, bob = add_member(tb.guild, "alice"), add_member(tb.guild, "bob")
    await join(tb, alice)
    await set_voice_channel(bob, tb.voice_channel)  # so Voice does not empty when alice moves
    music = add_voice_channel(tb.guild, "Music")

    text = answer(await join(tb, alice, music))

    assert text.startswith("🔊 Joined **Music**")
    assert voice_client(tb).moves == [music]
    assert len(tb.voice_clients) == 1
    assert posted(tb) == []


async def test_join_when_caller_is_not_in_voice(tb: TestBot) -> None:
    alice = add_member(tb.guild, "alice")

    text = answer(await slash(tb, alice, "join"))

    assert text == "You're not in a voice channel. Join one, then run /join again."
    assert tb.voice_clients == []


@pytest.mark.parametrize(
    ("denied", "expected"),
    [
        ({"connect": False}, "I don't have permission to join **Voice** (Connect)."),
        ({"speak": False}, "I don't have permission to speak in **Voice** (Speak)."),
    ],
)
async def test_join_without_voice_permissions(
    tb: TestBot, denied: dict[str, bool], expected: str
) -> None:
    alice = add_member(tb.guild, "alice")
    deny_default_role(tb, **denied)

    text = answer(await join(tb, alice))

    assert text.startswith(expected)
    assert tb.voice_clients == []


async def test_join_full_channel(tb: TestBot) -> None:
    tiny = add_voice_channel(tb.guild, "Tiny", user_limit=1)
    alice = add_member(tb.guild, "alice")

    text = answer(await join(tb, alice, tiny))

    assert text == "**Tiny** is full (1/1)."
    assert tb.voice_clients == []


async def test_join_where_the_bot_cannot_post(tb: TestBot) -> None:
    alice = add_member(tb.guild, "alice")
    deny_default_role(tb, send_messages=False)

    text = answer(await join(tb, alice))

    assert "I can't send messages in this channel" in text
    assert tb.voice_clients == []


# ---------------------------------------------------------------- /say, /skip, /leave


async def test_say_speaks_the_cleaned_text(tb: TestBot, edge_server: FakeEdgeServer) -> None:
    alice = add_member(tb.guild, "alice")
    await join(tb, alice)

    text = answer(await slash(tb, alice, "say", text="Guten Abend, **alle** zusammen"))

    assert text == "🔊 Said it."
    assert [r.text for r in edge_server.requests] == ["Guten Abend, alle zusammen"]
    _, seconds = spoken_audio(voice_client(tb).packets)
    assert seconds == pytest.approx(1.0, abs=0.1)


async def test_say_unspeakable_text(tb: TestBot, edge_server: FakeEdgeServer) -> None:
    alice = add_member(tb.guild, "alice")
    await join(tb, alice)

    text = answer(await slash(tb, alice, "say", text="?!..."))

    assert text.startswith("That can't be spoken: text has no letter or digit")
    assert edge_server.connection_count == 0


async def test_say_with_a_long_name_and_a_small_limit_is_said_cut(
    edge_server: FakeEdgeServer,
) -> None:
    # Issue 8, defect 4: the "NAME said" prefix alone filled max_chars, the utterance was
    # over the limit and the player rejected it: the message was lost.
    async with voice_bot(make_config(announce_speaker=True, max_chars=30)) as tb:
        nick = "Maximilian Alexander Bartholomew"  # 32 characters: Discord's longest
        alice = add_member(tb.guild, "alice", nick=nick)
        await join(tb, alice)

        text = answer(await slash(tb, alice, "say", text="Wir treffen uns heute um acht Uhr"))

    assert text == "🔊 Said it. (Cut to fit the length limit.)"
    [request] = edge_server.requests
    assert request.text == "Wir treffen uns heute um acht"


async def test_say_before_join_and_from_outside_the_channel(tb: TestBot) -> None:
    alice, bob = add_member(tb.guild, "alice"), add_member(tb.guild, "bob")

    assert answer(await slash(tb, alice, "say", text="Hallo")) == (
        "I'm not in a voice channel here. Use /join first."
    )
    await join(tb, alice)
    assert answer(await slash(tb, bob, "say", text="Hallo")) == "Join **Voice** to use /say."


async def test_say_cut_off_by_a_lost_connection_reports_the_text_fallback(
    tb: TestBot, edge_server: FakeEdgeServer
) -> None:
    edge_server.audio = edge_like_mp3(3.0)
    alice = add_member(tb.guild, "alice", nick="Alice")
    await join(tb, alice)
    client = voice_client(tb)
    client.packet_interval = 0.01

    saying = asyncio.create_task(slash(tb, alice, "say", text="Wichtig"))
    await until(lambda: bool(client.packets))
    client.interrupt()
    text = answer(await saying)

    assert text == (
        f"🔇 I couldn't speak it (voice cut off), so I posted it as text in "
        f"{tb.text_channel.mention}."
    )
    assert posted(tb)[-1] == "🔇 Alice: Wichtig"
    assert answer(await slash(tb, alice, "say", text="Danach")).startswith(
        "🔇 I couldn't speak it (not connected)"
    )


async def test_skip_stops_the_current_message(tb: TestBot, edge_server: FakeEdgeServer) -> None:
    edge_server.audio = edge_like_mp3(3.0)
    alice = add_member(tb.guild, "alice")
    await join(tb, alice)
    assert answer(await slash(tb, alice, "skip")) == "Nothing is being spoken right now."
    client = voice_client(tb)
    client.packet_interval = 0.01

    await send_message(alice, tb.text_channel, "Ein langer Satz")
    await until(lambda: bool(client.packets))
    assert answer(await slash(tb, alice, "skip")) == "⏭️ Skipped."
    await settled(tb)

    _, seconds = spoken_audio(client.packets)
    assert seconds < 2.5
    assert posted(tb) == []  # skipped is not "failed": nothing is posted


async def test_leave(tb: TestBot) -> None:
    alice = add_member(tb.guild, "alice")
    assert answer(await slash(tb, alice, "leave")) == (
        "I'm not in a voice channel here. Use /join first."
    )
    await join(tb, alice)
    client = voice_client(tb)

    assert answer(await slash(tb, alice, "leave")) == "👋 Leaving voice."

    assert tb.guild.voice_client is None
    assert not client.is_connected()
    assert voice_cog(tb).player(tb.guild) is None
    assert posted(tb) == []


# ---------------------------------------------------------------- leaving on its own


async def test_leaves_after_the_idle_timeout(tb: TestBot, edge_server: FakeEdgeServer) -> None:
    cog = voice_cog(tb)
    clock = FakeClock()
    cog.clock = clock
    alice = add_member(tb.guild, "alice")
    await join(tb, alice)

    clock.advance(200)
    await send_message(alice, tb.text_channel, "Noch da")
    await settled(tb)
    clock.advance(299)
    assert await cog.leave_idle() == []
    clock.advance(2)
    assert await cog.leave_idle() == [tb.guild]

    assert tb.guild.voice_client is None
    assert cog.player(tb.guild) is None
    assert posted(tb) == ["👋 Left voice after 5 minutes of silence."]


async def test_leaves_when_only_bots_are_left(tb: TestBot) -> None:
    alice, bob = add_member(tb.guild, "alice"), add_member(tb.guild, "bob")
    music_bot = add_member(tb.guild, "music", bot=True)
    await join(tb, alice)
    await set_voice_channel(bob, tb.voice_channel)
    await set_voice_channel(music_bot, tb.voice_channel)

    await set_voice_channel(alice, None)
    assert tb.guild.voice_client is not None  # bob still listens
    await set_voice_channel(bob, add_voice_channel(tb.guild, "Elsewhere"))

    assert tb.guild.voice_client is None
    assert voice_cog(tb).player(tb.guild) is None
    assert posted(tb) == ["👋 Left voice: nobody is listening anymore."]

"""Voice cog, reading the bound channel: dpytest dispatch, real service, fake Edge server.

Messages enter through discord.py's own ``on_message`` dispatch; audio leaves through the
recording voice client (real Opus packets, decoded with PyAV); text fallbacks are captured at
the HTTP boundary with the ``allowed_mentions`` discord.py sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import discord.ext.test as dpytest
import pytest
from discord.ext import commands
from discord.utils import escape_markdown

from edge_voice.cogs.message_text import build_utterance
from edge_voice.core.audio import rms
from edge_voice.core.breaker import CircuitState
from edge_voice.core.clock import FakeClock
from edge_voice.core.config import CacheConfig, StateConfig
from edge_voice.core.player import OUTAGE_NOTICE, RECOVERY_NOTICE
from edge_voice.core.speech import SpeechOutcome, SpeechResult, text_post_for
from tests.fakes.audio_samples import edge_like_mp3
from tests.fakes.discord_harness import (
    RecordingVoiceClient,
    TestBot,
    add_member,
    add_role,
    add_text_channel,
    add_voice_channel,
    running_test_bot,
    send_message,
    set_voice_channel,
)
from tests.fakes.edge_server import FakeEdgeServer, FaultMode, FaultPlan
from tests.voice_cog_support import (
    SKIP_PREFIX,
    announce_speakers,
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


async def test_member_in_voice_is_spoken_with_cleaned_text(
    tb: TestBot, edge_server: FakeEdgeServer
) -> None:
    edge_server.audio = edge_like_mp3(1.5)
    alice = add_member(tb.guild, "alice", nick="Alice")
    bob = add_member(tb.guild, "bob", nick="Bob")
    await join(tb, alice)

    await send_message(
        alice, tb.text_channel, f"Hallo <@{bob.id}>, **schau** mal https://example.com/x an"
    )
    await settled(tb)

    assert [r.text for r in edge_server.requests] == ["Hallo Bob, schau mal Link an"]
    pcm, seconds = spoken_audio(voice_client(tb).packets)
    assert seconds == pytest.approx(1.5, abs=0.1)
    assert rms(pcm) > 500
    assert posted(tb) == []


async def test_open_breaker_posts_text_without_any_ping(
    tb: TestBot, edge_server: FakeEdgeServer
) -> None:
    alice = add_member(tb.guild, "alice", nick="Alice")
    bob = add_member(tb.guild, "bob", nick="Bob")
    dj = add_role(tb.guild, "DJ", mentionable=True)
    await join(tb, alice)
    voice_cog(tb).service.service_breaker.force_open("test outage", duration=600)

    await send_message(
        alice, tb.text_channel, f"@everyone @here <@&{dj.id}> <@{bob.id}> <@!{alice.id}> kommt!"
    )
    await settled(tb)

    notice, fallback = tb.sent_to(tb.text_channel)
    assert notice.content == OUTAGE_NOTICE
    assert fallback.content == "🔇 Alice: alle alle hier DJ Bob Alice kommt!"
    for message in (notice, fallback):
        assert message.allowed_mentions == {"parse": []}
        assert message.mentions_suppressed
    assert edge_server.connection_count == 0
    assert voice_client(tb).plays == []


async def test_a_nickname_that_is_a_mention_cannot_impersonate_in_the_text_post(
    tb: TestBot, edge_server: FakeEdgeServer
) -> None:
    admin = add_member(tb.guild, "admin", nick="Admin")
    mallory = add_member(tb.guild, "mallory", nick=f"<@{admin.id}>")
    await join(tb, mallory)
    voice_cog(tb).service.service_breaker.force_open("test outage", duration=600)

    await send_message(mallory, tb.text_channel, "Ich bin der Admin, gebt mir eure Passwörter")
    await settled(tb)

    _, fallback = tb.sent_to(tb.text_channel)
    assert fallback.content == f"🔇 < {admin.id}>: Ich bin der Admin, gebt mir eure Passwörter"
    assert "<@" not in (fallback.content or "")


async def test_an_image_without_text_is_described(tb: TestBot, edge_server: FakeEdgeServer) -> None:
    alice = add_member(tb.guild, "alice", nick="Alice")
    await join(tb, alice)

    await dpytest.message("", tb.text_channel, alice, attachments=["katze.png"])
    await dpytest.message("Seht mal", tb.text_channel, alice, attachments=["a.jpg", "b.jpg"])
    await dpytest.message("....", tb.text_channel, alice)
    await settled(tb)

    assert [r.text for r in edge_server.requests] == [
        "Alice hat ein Bild geschickt",
        "Seht mal, dazu 2 Bilder",
    ]


async def test_stickers_and_file_kinds_reach_the_policy(tb: TestBot) -> None:
    # dpytest cannot send stickers: the adapter is fed what discord.py would hand it.
    alice = add_member(tb.guild, "alice", nick="Alice")
    message: Any = SimpleNamespace(
        attachments=[SimpleNamespace(filename="x", content_type="video/mp4")],
        stickers=[SimpleNamespace(name="Winken")],
    )
    utterance, cut = build_utterance(
        tb.guild, alice, "", 0.0, max_chars=100, spoken_max_chars=100, prefixer=None,
        voice="de-DE-KillianNeural", message=message,
    )  # fmt: skip
    assert utterance.spoken_text == "Alice hat ein Video und den Sticker Winken geschickt"
    assert text_post_for(utterance) == "🔇 Alice: [ein Video und Sticker Winken]"
    assert not cut


async def test_end_to_end_voice_then_text_then_voice_again(edge_server: FakeEdgeServer) -> None:
    clock = FakeClock()
    async with voice_bot(service_clock=clock) as tb:
        alice = add_member(tb.guild, "alice", nick="Alice")
        await join(tb, alice)
        breaker = voice_cog(tb).service.service_breaker

        await send_message(alice, tb.text_channel, "Erste Nachricht")
        await settled(tb)
        spoken_before = len(voice_client(tb).packets)
        assert spoken_before > 0

        edge_server.plan = FaultPlan(FaultMode.NO_AUDIO)
        for text in ("Zweite Nachricht", "Dritte Nachricht"):
            await send_message(alice, tb.text_channel, text)
            await settled(tb)
        assert breaker.state is CircuitState.OPEN
        served = edge_server.connection_count
        await send_message(alice, tb.text_channel, "Vierte Nachricht")
        await settled(tb)
        assert edge_server.connection_count == served  # OPEN: Edge was not even asked
        assert len(voice_client(tb).packets) == spoken_before

        edge_server.plan = FaultPlan()
        clock.advance(31)  # past the cooldown: the next message is the trial call
        await send_message(alice, tb.text_channel, "Fünfte Nachricht")
        await settled(tb)

        assert breaker.state is CircuitState.CLOSED
        assert edge_server.requests[-1].text == "Fünfte Nachricht"
        assert len(voice_client(tb).packets) > spoken_before
        assert posted(tb) == [
            OUTAGE_NOTICE,
            "🔇 Alice: Zweite Nachricht",
            "🔇 Alice: Dritte Nachricht",
            "🔇 Alice: Vierte Nachricht",
            RECOVERY_NOTICE,
        ]


async def test_messages_that_are_not_read(tb: TestBot, edge_server: FakeEdgeServer) -> None:
    @tb.bot.command(name="ping")
    async def ping(ctx: object) -> None:
        return None

    alice = add_member(tb.guild, "alice")
    carol = add_member(tb.guild, "carol")  # in the guild, not in voice
    dave = add_member(tb.guild, "dave")  # in another voice channel
    helper = add_member(tb.guild, "helper", bot=True)
    other_text = add_text_channel(tb.guild, "other")
    await join(tb, alice)
    await set_voice_channel(dave, add_voice_channel(tb.guild, "Elsewhere"))
    await set_voice_channel(helper, tb.voice_channel)

    await send_message(helper, tb.text_channel, "I am a bot")
    await send_message(alice, tb.text_channel, f"{SKIP_PREFIX} nicht vorlesen")
    await send_message(alice, tb.text_channel, "!ping")
    await send_message(alice, tb.text_channel, "......")
    await send_message(carol, tb.text_channel, "Ich bin nicht im Sprachkanal")
    await send_message(dave, tb.text_channel, "Ich bin woanders")
    await send_message(alice, other_text, "Falscher Kanal")
    await send_message(alice, tb.text_channel, "Das hier schon")
    await settled(tb)

    assert [r.text for r in edge_server.requests] == ["Das hier schon"]
    assert tb.sent == []


async def test_name_said_prefix_and_its_window(tb: TestBot, edge_server: FakeEdgeServer) -> None:
    cog = voice_cog(tb)
    clock = FakeClock()
    cog.clock = clock
    announce_speakers(cog, every=30)
    alice = add_member(tb.guild, "alice", nick="Alice")
    bob = add_member(tb.guild, "bob", nick="**Bob** 🙂")
    await join(tb, alice)
    await set_voice_channel(bob, tb.voice_channel)

    for author, text, seconds_later in [
        (alice, "eins", 0),
        (alice, "zwei", 10),
        (alice, "drei", 31),
        (bob, "vier", 1),
        (alice, "fünf", 1),
    ]:
        clock.advance(seconds_later)
        await send_message(author, tb.text_channel, text)
        await settled(tb)

    assert [r.text for r in edge_server.requests] == [  # the words of the German voice
        "Alice sagt: eins",
        "zwei",
        "Alice sagt: drei",
        "Bob leicht lächelndes gesicht sagt: vier",
        "Alice sagt: fünf",
    ]


async def test_long_message_with_prefix_stays_within_the_limit(
    edge_server: FakeEdgeServer,
) -> None:
    async with voice_bot(make_config(announce_speaker=True, max_chars=60)) as tb:
        alice = add_member(tb.guild, "alice", nick="Alice")
        await join(tb, alice)
        await send_message(alice, tb.text_channel, "wort " * 40)
        await settled(tb)

    [request] = edge_server.requests
    assert request.text is not None
    assert request.text.startswith("Alice sagt: wort wort")
    assert len(request.text) <= 60


async def test_voice_connection_lost_mid_utterance_falls_back_to_text(
    tb: TestBot, edge_server: FakeEdgeServer
) -> None:
    edge_server.audio = edge_like_mp3(10.0)  # longer than the grace a shutdown gives it
    alice = add_member(tb.guild, "alice", nick="Alice")
    await join(tb, alice)
    client = voice_client(tb)
    client.packet_interval = 0.01

    await send_message(alice, tb.text_channel, "Das wird abgeschnitten")
    await _until_playing(client)
    client.interrupt()
    await settled(tb)
    await send_message(alice, tb.text_channel, "Danach")
    await settled(tb)

    _, seconds = spoken_audio(client.packets)
    assert 0 < seconds < 3.0
    assert posted(tb) == [OUTAGE_NOTICE, "🔇 Alice: Das wird abgeschnitten", "🔇 Alice: Danach"]
    assert len(edge_server.requests) == 1  # not connected: no synthesis for the second


async def test_bot_disconnected_from_outside_ends_the_session(tb: TestBot) -> None:
    alice = add_member(tb.guild, "alice")
    await join(tb, alice)

    await voice_client(tb).disconnect(force=True)  # as discord.py does when kicked from voice
    await dpytest.run_all_events()

    assert voice_cog(tb).player(tb.guild) is None
    assert posted(tb) == ["🔌 I was disconnected from voice; /join again."]


async def test_unloading_posts_queued_messages_and_disconnects(
    tb: TestBot, edge_server: FakeEdgeServer
) -> None:
    edge_server.audio = edge_like_mp3(10.0)  # longer than the grace a shutdown gives it
    alice = add_member(tb.guild, "alice", nick="Alice")
    await join(tb, alice)
    client = voice_client(tb)
    client.packet_interval = 0.01

    for text in ("Eins", "Zwei", "Drei"):
        await send_message(alice, tb.text_channel, text)
    await _until_playing(client)
    await tb.bot.unload_extension("edge_voice.cogs.voice")

    assert tb.guild.voice_client is None
    assert not client.is_connected()
    assert posted(tb) == ["🔇 Alice: Eins", "🔇 Alice: Zwei", "🔇 Alice: Drei"]


async def _until_playing(client: RecordingVoiceClient) -> None:
    await until(lambda: bool(client.packets))


# ---------------------------------------------------------------- speak() for other cogs


async def test_speak_api_spoken(tb: TestBot, edge_server: FakeEdgeServer) -> None:
    alice = add_member(tb.guild, "alice")
    await join(tb, alice)

    result = await voice_cog(tb).speak(tb.guild, f"Willkommen <@{alice.id}>!")

    assert result == SpeechResult(SpeechOutcome.SPOKEN)
    assert [r.text for r in edge_server.requests] == ["Willkommen alice!"]
    assert voice_client(tb).packets


async def test_speak_api_posts_text_when_not_connected(
    tb: TestBot, edge_server: FakeEdgeServer
) -> None:
    announcements = add_text_channel(tb.guild, "announcements")

    result = await voice_cog(tb).speak(
        tb.guild, "Server-Neustart um 20 Uhr @everyone", fallback_channel=announcements
    )

    assert result == SpeechResult(SpeechOutcome.POSTED_AS_TEXT, "not connected")
    [message] = tb.sent_to(announcements)
    name = escape_markdown(tb.guild.me.display_name)  # a name is shown as written
    assert message.content == f"🔇 {name}: Server-Neustart um 20 Uhr alle"
    assert message.mentions_suppressed
    assert edge_server.connection_count == 0


async def test_speak_api_failures(tb: TestBot, edge_server: FakeEdgeServer) -> None:
    cog = voice_cog(tb)

    unspeakable = await cog.speak(tb.guild, "?!?! ... --", fallback_channel=tb.text_channel)
    undeliverable = await cog.speak(tb.guild, "Hallo")

    assert (unspeakable.outcome, unspeakable.reason) == (SpeechOutcome.FAILED, "unspeakable")
    assert "no letter or digit" in unspeakable.detail
    assert undeliverable == SpeechResult(
        SpeechOutcome.FAILED,
        "text post failed",
        "not connected, and there is no text channel to post in",
    )
    assert tb.sent == []
    assert edge_server.connection_count == 0


async def test_shares_the_bots_tts_context_and_hands_it_back(
    edge_server: FakeEdgeServer, tmp_path: Path
) -> None:
    config = dataclasses.replace(
        make_config(),
        cache=CacheConfig(enabled=False),
        state=StateConfig(persist=False, data_dir=str(tmp_path)),
    )

    async def configure(bot: commands.Bot) -> None:
        bot.tts_config = config  # type: ignore[attr-defined]

    async with running_test_bot(["edge_voice.cogs.voice"], setup=configure) as tb:
        context = tb.bot.tts_context  # type: ignore[attr-defined]
        # The voice cog and the personal cog the extension adds.
        assert (context.config, context.users, context.owned) == (config, 2, True)
        assert voice_cog(tb).service is context.service
        await tb.bot.unload_extension("edge_voice.cogs.voice")
        assert not hasattr(tb.bot, "tts_context")  # the last user closed it

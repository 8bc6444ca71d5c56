"""Voice cog, reading the bound channel: the host's bot on the fake Discord and fake Edge.

Messages arrive as MESSAGE_CREATE over the gateway; audio leaves through discord.py's
own voice client to the fake voice server; text posts are what the fake's REST API got.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_voice.core.clock import FakeClock
from edge_voice.core.speech import SpeechOutcome, SpeechResult
from tests.e2e_support import e2e_bot
from tests.fake_discord_support import Scene, intents, make_bot
from tests.fakes.discord import FakeDiscord, running_bot
from tests.fakes.discord.model import Channel
from tests.fakes.discord.rest import MESSAGES
from tests.fakes.edge_server import FakeEdgeServer, edge_client_pointed_at

NO_PINGS = {"parse": []}


async def test_a_member_in_voice_is_heard_with_cleaned_text(tmp_path: Path) -> None:
    made: dict[str, Any] = {}

    def world(fake: FakeDiscord, scene: Scene) -> None:
        made["bob"] = fake.add_member(scene.guild, "bob", nick="Bob")

    async with e2e_bot(tmp_path, audio_seconds=1.0, setup=world) as e2e:
        await e2e.join()
        bob = made["bob"]
        await e2e.say_in_channel(f"Hallo <@{bob.id}>, **schau** mal https://example.com/x an")
        (heard,) = await e2e.wait_heard(1)

        assert e2e.edge_texts() == ["Hallo Bob, schau mal link an"]
        assert heard.duration == pytest.approx(1.0, abs=0.1)
        assert heard.packets_per_second() == pytest.approx(50, abs=3)
        assert heard.rms() > 0.05
        assert e2e.stream().decrypt_failures == 0
        assert e2e.posts() == []


async def test_messages_that_are_not_read(tmp_path: Path) -> None:
    made: dict[str, Any] = {}

    def world(fake: FakeDiscord, scene: Scene) -> None:
        made["carol"] = fake.add_member(scene.guild, "carol")  # in the guild, not in voice
        made["dave"] = fake.add_member(scene.guild, "dave")  # in another voice channel
        made["helper"] = fake.add_member(scene.guild, "helper", bot=True)
        made["other"] = fake.add_text_channel(scene.guild, "other")

    async with e2e_bot(tmp_path, setup=world) as e2e:

        @e2e.bot.command(name="ping")
        async def ping(ctx: object) -> None:
            return None

        await e2e.join()
        await e2e.fake.set_voice_state(made["dave"], e2e.scene.other_voice)
        await e2e.fake.set_voice_state(made["helper"], e2e.scene.voice)
        alice, text = e2e.member, e2e.scene.text
        await e2e.fake.send_message(made["helper"], text, "I am a bot")
        await e2e.say_in_channel("! nicht vorlesen")
        await e2e.say_in_channel(f"<@{e2e.fake.bot.id}> ping")
        await e2e.say_in_channel("......")
        await e2e.fake.send_message(made["carol"], text, "Ich bin nicht im Sprachkanal")
        await e2e.fake.send_message(made["dave"], text, "Ich bin woanders")
        await e2e.fake.send_message(alice, made["other"], "Falscher Kanal")
        await e2e.say_in_channel("Das hier schon")
        await e2e.wait_heard(1)

        assert e2e.edge_texts() == ["Das hier schon"]
        assert e2e.posts() == []


async def test_name_said_prefix_and_its_window(tmp_path: Path) -> None:
    made: dict[str, Any] = {}

    def world(fake: FakeDiscord, scene: Scene) -> None:
        made["bob"] = fake.add_member(scene.guild, "bob", nick="**Bob** 🙂")

    text = {"announce_speaker": True, "announce_speaker_every": 30.0}
    async with e2e_bot(tmp_path, audio_seconds=0.3, setup=world, text=text) as e2e:
        clock = FakeClock()
        e2e.voice_cog.clock = clock  # before /join: the session takes it
        await e2e.join()
        bob = made["bob"]
        await e2e.fake.set_voice_state(bob, e2e.scene.voice)
        for count, (author, words, seconds_later) in enumerate(
            [
                (e2e.member, "eins", 0),
                (e2e.member, "zwei", 10),
                (e2e.member, "drei", 31),
                (bob, "vier", 1),
                (e2e.member, "fünf", 1),
            ],
            start=1,
        ):
            clock.advance(seconds_later)
            await e2e.say_in_channel(words, author)
            await e2e.wait_for(lambda n=count: len(e2e.edge_texts()) == n)  # type: ignore[misc]
            await e2e.settled()

        assert e2e.edge_texts() == [
            "alice said: eins",
            "zwei",
            "alice said: drei",
            "Bob slightly smiling face said: vier",
            "alice said: fünf",
        ]


async def test_a_long_message_with_its_prefix_stays_within_the_limit(tmp_path: Path) -> None:
    text = {"announce_speaker": True, "max_chars": 60}
    async with e2e_bot(tmp_path, audio_seconds=0.3, text=text) as e2e:
        await e2e.join()
        await e2e.say_in_channel("wort " * 40)
        await e2e.wait_heard(1)

        (said,) = e2e.edge_texts()
        assert said is not None
        assert said.startswith("alice said: wort wort")
        assert len(said) <= 60


async def test_unloading_posts_what_is_queued_and_leaves_voice(tmp_path: Path) -> None:
    # Longer than the grace a shutdown gives the utterance being spoken: it is cut too.
    async with e2e_bot(tmp_path, audio_seconds=4.0) as e2e:
        await e2e.join()
        for words in ("Eins", "Zwei", "Drei"):
            await e2e.say_in_channel(words)
        await e2e.wait_for(lambda: e2e.stream().audio_packets >= 5)

        await e2e.bot.unload_extension("edge_voice.cogs.voice")

        assert e2e.guild().voice_client is None
        assert e2e.fake.voice_requests[-1].channel_id is None
        assert e2e.posts() == ["🔇 alice: Eins", "🔇 alice: Zwei", "🔇 alice: Drei"]


# ---------------------------------------------------------------- speak() for other cogs


async def test_speak_api(tmp_path: Path) -> None:
    made: dict[str, Channel] = {}

    def world(fake: FakeDiscord, scene: Scene) -> None:
        made["news"] = fake.add_text_channel(scene.guild, "announcements")

    async with e2e_bot(tmp_path, setup=world) as e2e:
        cog, guild = e2e.voice_cog, e2e.guild()
        news = e2e.channel(made["news"])

        # Not joined: posted in the channel given, mention-free; else it fails, saying why.
        posted = await cog.speak(guild, "Neustart um 20 Uhr @everyone", fallback_channel=news)
        assert posted == SpeechResult(SpeechOutcome.POSTED_AS_TEXT, "not connected")
        (message,) = e2e.fake.posted(made["news"])
        assert message.content == "🔇 FakeBot: Neustart um 20 Uhr everyone"
        assert message.allowed_mentions == NO_PINGS
        nowhere = await cog.speak(guild, "Hallo")
        assert nowhere == SpeechResult(
            SpeechOutcome.FAILED,
            "text post failed",
            "not connected, and there is no text channel to post in",
        )
        unspeakable = await cog.speak(guild, "?!?! ... --", fallback_channel=news)
        assert (unspeakable.outcome, unspeakable.reason) == (SpeechOutcome.FAILED, "unspeakable")
        assert "no letter or digit" in unspeakable.detail
        assert e2e.edge_texts() == []

        await e2e.join()
        spoken = await cog.speak(guild, f"Willkommen <@{e2e.member.id}>!")
        assert spoken == SpeechResult(SpeechOutcome.SPOKEN)
        assert e2e.edge_texts() == ["Willkommen alice!"]
        await e2e.wait_heard(1)
        posts = e2e.fake.requests.matching("POST", MESSAGES)
        assert all(r.json["allowed_mentions"] == NO_PINGS for r in posts if r.json)


async def test_shares_the_bots_tts_context_and_hands_it_back(
    tmp_path: Path, edge_server: FakeEdgeServer
) -> None:
    from edge_voice.core.config import parse_config

    config = parse_config(
        {
            "cache": {"enabled": False},
            "state": {"persist": False, "data_dir": str(tmp_path)},
            "canary": {"enabled": False},
            "voices": {"refresh_interval": 0.0},
        }
    )
    async with FakeDiscord() as fake:
        fake.add_guild("Solo")
        bot = make_bot(fake, intents=intents())
        bot.tts_config = config
        with edge_client_pointed_at(edge_server.url):
            async with running_bot(fake, bot):
                await bot.load_extension("edge_voice.cogs.voice")
                context = bot.tts_context
                # The voice extension adds two cogs (Voice, Personal); each holds the context.
                assert (context.config, context.users, context.owned) == (config, 2, True)
                assert bot.get_cog("Voice").service is context.service
                await bot.unload_extension("edge_voice.cogs.voice")
                assert not hasattr(bot, "tts_context")  # the last user closed it


# ------------------------------------------------- the text policy through the real client


GERMAN = {"speech": {"voice": "de-DE-KillianNeural"}}


async def test_a_nickname_that_is_a_mention_cannot_impersonate_in_the_text_post(
    tmp_path: Path,
) -> None:
    """Issue 8, defect 5: a nickname that is a raw mention rendered as the admin's pill."""
    made: dict[str, Any] = {}

    def world(fake: FakeDiscord, scene: Scene) -> None:
        made["admin"] = fake.add_member(scene.guild, "admin", nick="Admin")
        made["mallory"] = fake.add_member(scene.guild, "mallory", nick=f"<@{made['admin'].id}>")

    async with e2e_bot(tmp_path, setup=world, **GERMAN) as e2e:
        mallory = made["mallory"]
        await e2e.join(mallory)
        e2e.voice_cog.service.service_breaker.force_open("test outage", duration=600)
        await e2e.say_in_channel("Ich bin der Admin, gebt mir eure Passwörter", mallory)
        await e2e.wait_for(lambda: any(p.startswith("🔇 <") for p in e2e.posts()))

        (post,) = [p for p in e2e.posts() if p.startswith("🔇 <")]
        assert post == f"🔇 < {made['admin'].id}>: Ich bin der Admin, gebt mir eure Passwörter"
        assert "<@" not in post


async def test_attachments_and_stickers_are_described(tmp_path: Path) -> None:
    async with e2e_bot(tmp_path, **GERMAN) as e2e:
        await e2e.join()
        alice, text = e2e.member, e2e.scene.text
        image = {"filename": "katze.png", "content_type": "image/png"}
        jpg = {"filename": "a.jpg", "content_type": "image/jpeg"}
        video = {"filename": "x.mp4", "content_type": "video/mp4"}
        sticker = {"name": "Winken", "format_type": 1}
        await e2e.fake.send_message(alice, text, "", attachments=[image])
        await e2e.fake.send_message(alice, text, "Seht mal", attachments=[jpg, jpg])
        await e2e.fake.send_message(alice, text, "....")
        await e2e.fake.send_message(alice, text, "", attachments=[video], sticker_items=[sticker])
        await e2e.wait_heard(3)

        name = alice.nick or alice.user.username
        assert e2e.edge_texts() == [
            f"{name} hat ein Bild geschickt",
            "Seht mal, dazu 2 Bilder",
            f"{name} hat ein Video und den Sticker Winken geschickt",
        ]

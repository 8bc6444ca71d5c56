"""Voice cog slash commands through INTERACTION_CREATE, and when the bot leaves on its own.

The host's bot on the fake Discord: every answer is read back from the fake's interaction
routes, and every one must be ephemeral and unable to ping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_voice.core.clock import FakeClock
from tests.e2e_support import E2E, e2e_bot
from tests.fake_discord_support import Scene
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.interactions import InteractionRecord
from tests.fakes.discord.model import CONNECT, SEND_MESSAGES, SPEAK, Member

NO_PINGS = {"parse": []}


def answer(record: InteractionRecord) -> str:
    """The one message a command showed its caller (a reply, or the follow-up of a defer)."""
    assert record.ephemeral
    shown = record.followups or [record.original]
    (message,) = shown
    assert message is not None
    assert message.allowed_mentions == NO_PINGS
    return message.content


def deny_everyone(*permissions: int) -> Any:
    """A world setup that takes ``permissions`` from @everyone (the bot has no other)."""

    def setup(fake: FakeDiscord, scene: Scene) -> None:
        everyone = scene.guild.roles[scene.guild.id]
        for permission in permissions:
            everyone.permissions &= ~permission

    return setup


async def join(e2e: E2E, member: Member | None = None, channel: Any = None) -> str:
    member = member or e2e.member
    await e2e.fake.set_voice_state(member, channel or e2e.scene.voice)
    return answer(await e2e.slash("join", member=member))


# ---------------------------------------------------------------- /join


async def test_join_binds_the_channel_and_connects(tmp_path: Path) -> None:
    async with e2e_bot(tmp_path) as e2e:
        record = await e2e.join()
        assert record.deferred
        assert answer(record) == f"🔊 Joined **Lounge**; reading <#{e2e.scene.text.id}> aloud."
        assert e2e.voice_client().is_connected()
        assert e2e.voice_client().channel.id == e2e.scene.voice.id
        assert e2e.voice_cog.bound_channel(e2e.guild()).id == e2e.scene.text.id
        assert e2e.fake.bot_voice_channel(e2e.scene.guild) == e2e.scene.voice.id


async def test_join_moves_to_the_callers_new_channel(tmp_path: Path) -> None:
    async with e2e_bot(tmp_path) as e2e:
        await e2e.join()
        await e2e.fake.set_voice_state(e2e.scene.admin, e2e.scene.voice)  # Lounge stays in use
        other = e2e.scene.other_voice

        assert (await join(e2e, channel=other)).startswith("🔊 Joined **Stage left**")
        assert e2e.fake.bot_voice_channel(e2e.scene.guild) == other.id
        assert len(e2e.bot.voice_clients) == 1
        assert e2e.posts() == []


async def test_join_when_the_caller_is_not_in_voice(tmp_path: Path) -> None:
    async with e2e_bot(tmp_path) as e2e:
        assert answer(await e2e.slash("join")) == (
            "You're not in a voice channel. Join one, then run /join again."
        )
        assert e2e.bot.voice_clients == []


@pytest.mark.parametrize(
    ("denied", "expected"),
    [
        (CONNECT, "I don't have permission to join **Lounge** (Connect)."),
        (SPEAK, "I don't have permission to speak in **Lounge** (Speak)."),
        (SEND_MESSAGES, "I can't send messages in this channel"),
    ],
    ids=["connect", "speak", "send messages"],
)
async def test_join_without_a_permission_it_needs(
    tmp_path: Path, denied: int, expected: str
) -> None:
    async with e2e_bot(tmp_path, setup=deny_everyone(denied)) as e2e:
        assert (await join(e2e)).startswith(expected)
        assert e2e.bot.voice_clients == []
        assert e2e.fake.voice_requests == []


async def test_join_a_full_channel(tmp_path: Path) -> None:
    made: dict[str, Any] = {}

    def world(fake: FakeDiscord, scene: Scene) -> None:
        made["tiny"] = fake.add_voice_channel(scene.guild, "Tiny", user_limit=1)

    async with e2e_bot(tmp_path, setup=world) as e2e:
        assert await join(e2e, channel=made["tiny"]) == "**Tiny** is full (1/1)."
        assert e2e.bot.voice_clients == []


# ---------------------------------------------------------------- /say, /skip, /leave


async def test_say_speaks_the_cleaned_text(tmp_path: Path) -> None:
    async with e2e_bot(tmp_path, audio_seconds=0.5) as e2e:
        await e2e.join()
        reply = answer(await e2e.slash("say", text="Guten Abend, **alle** zusammen"))

        assert reply == "🔊 Said it."
        assert e2e.edge_texts() == ["Guten Abend, alle zusammen"]
        (heard,) = await e2e.wait_heard(1)
        assert heard.duration == pytest.approx(0.5, abs=0.1)


async def test_say_with_a_long_name_and_a_small_limit_is_said_cut(tmp_path: Path) -> None:
    """Issue 8, defect 4: the "NAME said" prefix alone filled max_chars, the utterance was
    over the limit and the player rejected it: the message was lost."""
    nick = "Maximilian Alexander Bartholomew"  # 32 characters: Discord's longest

    def world(fake: FakeDiscord, scene: Scene) -> None:
        scene.alice.nick = nick

    async with e2e_bot(
        tmp_path,
        setup=world,
        text={"announce_speaker": True, "max_chars": 30},
        speech={"voice": "de-DE-KillianNeural"},
    ) as e2e:
        await e2e.join()
        reply = answer(await e2e.slash("say", text="Wir treffen uns heute um acht Uhr"))

        assert reply == "🔊 Said it. (Cut to fit the length limit.)"
        assert e2e.edge_texts() == ["Wir treffen uns heute um acht"]


async def test_say_refuses_unspeakable_text_and_callers_outside_the_channel(
    tmp_path: Path,
) -> None:
    async with e2e_bot(tmp_path) as e2e:
        assert answer(await e2e.slash("say", text="Hallo")) == (
            "I'm not in a voice channel here. Use /join first."
        )
        await e2e.join()
        assert answer(await e2e.slash("say", text="Hallo", member=e2e.scene.admin)) == (
            "Join **Lounge** to use /say."
        )
        reply = answer(await e2e.slash("say", text="?!..."))
        assert reply.startswith("That can't be spoken: text has no letter or digit")
        assert e2e.edge_texts() == []


async def test_say_cut_off_by_the_voice_server_reports_the_text_post(tmp_path: Path) -> None:
    async with e2e_bot(tmp_path, audio_seconds=3.0) as e2e:
        await e2e.join()
        saying = e2e.fake.invoke_slash(
            e2e.member, e2e.scene.text, "say", text="Wichtig", wait=False
        )
        record = await saying
        await e2e.wait_for(lambda: e2e.stream().audio_packets >= 10)
        e2e.fake.voice.hold_joins()  # the rejoin waits until both answers are in
        await e2e.fake.close_voice(e2e.scene.guild, 4006)
        await e2e.wait_for(lambda: record.answered)

        where = f"<#{e2e.scene.text.id}>"
        assert answer(record) == (
            f"🔇 I couldn't speak it (voice cut off), so I posted it as text in {where}."
        )
        assert "🔇 alice: Wichtig" in e2e.posts()
        # While discord.py waits out its backoff: posted at once, and the reply says so.
        assert answer(await e2e.slash("say", text="Danach")).startswith(
            "🔇 I couldn't speak it (not connected)"
        )
        await e2e.fake.voice.release_joins()


async def test_skip_stops_the_current_message(tmp_path: Path) -> None:
    async with e2e_bot(tmp_path, audio_seconds=3.0) as e2e:
        await e2e.join()
        assert answer(await e2e.slash("skip")) == "Nothing is being spoken right now."

        await e2e.say_in_channel("Ein langer Satz")
        await e2e.wait_for(lambda: e2e.stream().audio_packets >= 10)
        assert answer(await e2e.slash("skip")) == "⏭️ Skipped."
        (heard,) = await e2e.wait_heard(1)

        assert heard.duration < 2.0
        assert e2e.posts() == []  # skipped is not "failed": nothing is posted


async def test_leave(tmp_path: Path) -> None:
    async with e2e_bot(tmp_path) as e2e:
        assert answer(await e2e.slash("leave")) == (
            "I'm not in a voice channel here. Use /join first."
        )
        await e2e.join()

        assert answer(await e2e.slash("leave")) == "👋 Leaving voice."
        await e2e.wait_for(lambda: e2e.guild().voice_client is None)
        assert e2e.fake.voice_requests[-1].channel_id is None
        assert e2e.player() is None
        assert e2e.posts() == []


# ---------------------------------------------------------------- leaving on its own


async def test_leaves_after_the_idle_timeout(tmp_path: Path) -> None:
    async with e2e_bot(tmp_path, player={"idle_timeout": 300.0}) as e2e:
        cog = e2e.voice_cog
        clock = FakeClock()
        cog.clock = clock
        await e2e.join()

        clock.advance(200)
        await e2e.say_in_channel("Noch da")
        await e2e.wait_heard(1)
        await e2e.settled()
        clock.advance(299)
        assert await cog.leave_idle() == []
        clock.advance(2)
        assert [g.id for g in await cog.leave_idle()] == [e2e.scene.guild.id]

        assert e2e.guild().voice_client is None
        assert e2e.player() is None
        assert e2e.posts() == ["👋 Left voice after 5 minutes of silence."]


async def test_leaves_when_only_bots_are_left(tmp_path: Path) -> None:
    made: dict[str, Member] = {}

    def world(fake: FakeDiscord, scene: Scene) -> None:
        made["music"] = fake.add_member(scene.guild, "music", bot=True)

    async with e2e_bot(tmp_path, setup=world) as e2e:
        await e2e.join()
        fake, scene = e2e.fake, e2e.scene
        await fake.set_voice_state(scene.admin, scene.voice)
        await fake.set_voice_state(made["music"], scene.voice)

        await fake.set_voice_state(e2e.member, None)
        await e2e.wait_for(lambda: e2e.guild().get_member(e2e.member.id).voice is None)
        assert e2e.guild().voice_client is not None  # root still listens
        await fake.set_voice_state(scene.admin, scene.other_voice)

        await e2e.wait_for(lambda: e2e.posts() == ["👋 Left voice: nobody is listening anymore."])
        await e2e.wait_for(lambda: e2e.guild().voice_client is None)
        assert e2e.player() is None

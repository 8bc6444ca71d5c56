"""End to end: Discord cuts the voice connection; no message is lost, speech comes back.

Each test gets the host speaking (audio long enough that the fault lands mid-utterance),
injects one voice fault through the fake, and checks what the guild saw and heard: the
cut utterance posted as text, one notice, messages during the outage posted as text, and
speech again once the connection is back (discord.py's own reconnect, or our rejoin).
discord.py's connect timeout is 1 s here (``VOICE_CONNECT_TIMEOUT``), so its give-ups
come quickly; its 4006/4009 backoff (0-2 s, no public knob) is waited out twice only.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from edge_voice.core.voice_link import VOICE_LOST_NOTICE, LinkEnd
from tests.e2e_support import E2E, e2e_bot, text_post_for_member
from tests.fakes.audio_samples import edge_like_mp3

LONG = 2.0
"""Seconds of audio per answer: the fault lands while one is playing."""
SHORT = 0.4
FIRST = "Die erste Nachricht"


async def speaking(e2e: E2E, text: str = FIRST) -> None:
    """Join, say ``text``, and wait until its audio flows."""
    await e2e.join()
    await e2e.say_in_channel(text)
    await e2e.wait_for(lambda: e2e.stream().audio_packets >= 10)


def post_of(e2e: E2E, text: str) -> str:
    return text_post_for_member(e2e.member, text)


def op4_channels(e2e: E2E) -> list[int | None]:
    """The channel of every op 4 the bot sent (None: leave)."""
    return [r.channel_id for r in e2e.fake.voice_requests]


def supervisor(e2e: E2E) -> object:
    return e2e.voice_cog.sessions.by_guild[e2e.scene.guild.id].supervisor


async def until_back(e2e: E2E, timeout: float) -> None:
    """Wait until the session's supervisor says the connection carries audio again."""
    await e2e.wait_for(lambda: not supervisor(e2e).down, timeout)


async def until_ended(e2e: E2E, end: LinkEnd) -> None:
    """Wait for the notice that ends the session (posted after the queue)."""
    await e2e.wait_for(lambda: end.notice in e2e.posts(), 4)
    assert not e2e.voice_cog.sessions.by_guild


async def until_text_only(e2e: E2E, end: LinkEnd) -> None:
    """Wait for the notice that ends voice; the bound channel stays, read as text."""
    await e2e.wait_for(lambda: end.notice in e2e.posts(), 4)
    assert e2e.voice_cog.sessions.by_guild[e2e.scene.guild.id].text_only


async def still_posted_then_left(e2e: E2E) -> None:
    """A message after voice ended is posted as text, not ignored; /leave stops that."""
    await e2e.say_in_channel("Danach")
    await e2e.wait_for(lambda: post_of(e2e, "Danach") in e2e.text_posts(), 4)
    await e2e.slash("leave")
    await e2e.wait_for(lambda: not e2e.voice_cog.sessions.by_guild, 4)
    await e2e.say_in_channel("Nach dem Leave")
    await asyncio.sleep(0.5)  # an absence: nothing to wait for but time
    assert post_of(e2e, "Nach dem Leave") not in e2e.text_posts()


async def speaks_again(e2e: E2E, text: str = "Wieder da") -> None:
    """A new message is heard (after whatever was heard before); short, to save time."""
    e2e.edge.audio = edge_like_mp3(SHORT)
    before = len(e2e.heard())
    await e2e.say_in_channel(text)
    await e2e.wait_heard(before + 1)


async def test_4006_cuts_the_utterance_posts_it_and_speech_resumes_after_the_reconnect(
    tmp_path: Path,
) -> None:
    async with e2e_bot(tmp_path, audio_seconds=LONG) as e2e:
        await speaking(e2e)
        # The rejoin is answered once the cut is posted: a backoff and reconnect short
        # enough to fit between two looks of the supervisor (0.1 s) go unseen, and the
        # utterance goes on, its gap lost (one run here: "Reconnecting in 0.07s").
        e2e.fake.voice.hold_joins()
        await e2e.fake.close_voice(e2e.scene.guild, 4006)

        await e2e.wait_for(lambda: post_of(e2e, FIRST) in e2e.posts())
        await e2e.fake.voice.release_joins()
        assert e2e.notices() == [VOICE_LOST_NOTICE]
        # discord.py leaves and joins again by itself after its backoff (up to 2 s).
        await e2e.wait_for(lambda: len(op4_channels(e2e)) >= 3, 4)
        await until_back(e2e, 3)
        await speaks_again(e2e)
        assert e2e.text_posts() == [post_of(e2e, FIRST)]
        assert e2e.notices() == [VOICE_LOST_NOTICE]
        assert op4_channels(e2e) == [e2e.scene.voice.id, None, e2e.scene.voice.id]
        assert supervisor(e2e).recoveries == 1


async def test_4009_messages_during_the_outage_are_posted_at_once(tmp_path: Path) -> None:
    async with e2e_bot(tmp_path, audio_seconds=LONG) as e2e:
        await speaking(e2e)
        # Discord answers the rejoin only once the message is through: however short
        # discord.py's backoff, the message arrives while the voice is down.
        e2e.fake.voice.hold_joins()
        await e2e.fake.close_voice(e2e.scene.guild, 4009)
        await e2e.wait_for(lambda: supervisor(e2e).down)

        sent = time.monotonic()
        await e2e.say_in_channel("Während der Pause")
        await e2e.wait_for(lambda: post_of(e2e, "Während der Pause") in e2e.posts(), 2)
        assert time.monotonic() - sent < 0.6  # not held back until the voice is back
        await e2e.fake.voice.release_joins()
        await until_back(e2e, 4)
        await speaks_again(e2e)
        assert e2e.text_posts() == [post_of(e2e, FIRST), post_of(e2e, "Während der Pause")]
        assert e2e.notices() == [VOICE_LOST_NOTICE]


async def test_4014_without_a_new_server_is_given_up_by_discord_py_and_we_rejoin(
    tmp_path: Path,
) -> None:
    async with e2e_bot(tmp_path, audio_seconds=LONG) as e2e:
        await speaking(e2e)
        await e2e.fake.close_voice(e2e.scene.guild, 4014)

        await e2e.wait_for(lambda: post_of(e2e, FIRST) in e2e.posts(), 2)
        # discord.py waits its connect timeout for a VOICE_SERVER_UPDATE, leaves, and
        # forgets the client; the supervisor then joins the same channel again.
        await until_back(e2e, 4)
        voice = e2e.scene.voice.id
        # The join, discord.py's leave, our rejoin; on a loaded machine a rejoin may time
        # out once and be retried (bounded backoff), which adds leave/join pairs.
        assert op4_channels(e2e)[:3] == [voice, None, voice]
        assert op4_channels(e2e)[-1] == voice
        assert supervisor(e2e).rejoins >= 1
        await speaks_again(e2e)
        assert e2e.notices() == [VOICE_LOST_NOTICE]


async def test_4015_unanswered_resume_is_given_up_by_discord_py_and_we_rejoin(
    tmp_path: Path,
) -> None:
    async with e2e_bot(tmp_path, audio_seconds=LONG) as e2e:
        await speaking(e2e)
        await e2e.fake.close_voice(e2e.scene.guild, 4015)

        await e2e.wait_for(lambda: post_of(e2e, FIRST) in e2e.posts(), 2)
        await until_back(e2e, 4)
        assert supervisor(e2e).rejoins == 1
        await speaks_again(e2e)
        assert e2e.notices() == [VOICE_LOST_NOTICE]


async def test_4015_refused_resume_leaves_a_zombie_client_that_is_replaced(
    tmp_path: Path,
) -> None:
    async with e2e_bot(tmp_path, audio_seconds=LONG) as e2e:
        e2e.fake.voice.repeat_join = "server-first"
        await speaking(e2e)
        zombie = e2e.voice_client()
        e2e.fake.refuse_voice_resume(e2e.scene.guild)
        await e2e.fake.close_voice(e2e.scene.guild, 4015)

        await e2e.wait_for(lambda: supervisor(e2e).down, 2)
        await until_back(e2e, 5)
        assert e2e.voice_client() is not zombie
        assert not zombie.is_connected()
        assert e2e.bot.voice_clients == [e2e.voice_client()]
        await speaks_again(e2e)
        assert e2e.text_posts() == [post_of(e2e, FIRST)]
        assert e2e.notices() == [VOICE_LOST_NOTICE]


async def test_a_new_voice_server_is_followed_without_losing_the_utterance(
    tmp_path: Path,
) -> None:
    async with e2e_bot(tmp_path, audio_seconds=1.0) as e2e:
        await speaking(e2e)
        await e2e.fake.change_voice_endpoint(e2e.scene.guild)

        (heard,) = await e2e.wait_heard(1)
        assert heard.duration >= 0.9  # the whole utterance, across the two SSRCs
        assert len(e2e.fake.voice_streams(e2e.scene.guild)) == 2
        await speaks_again(e2e)
        assert e2e.posts() == []
        assert supervisor(e2e).faults == 0


async def test_after_an_admin_move_listeners_in_the_new_channel_are_read(
    tmp_path: Path,
) -> None:
    async with e2e_bot(tmp_path, audio_seconds=1.0) as e2e:
        await speaking(e2e)
        other = e2e.scene.other_voice
        await e2e.fake.move_bot(e2e.scene.guild, other)
        await e2e.wait_heard(1)
        assert e2e.voice_client().channel.id == other.id

        # alice stayed behind: her messages are no longer read; in the new channel, they are.
        await e2e.say_in_channel("Noch im alten Kanal")
        await e2e.fake.set_voice_state(e2e.member, other)
        await speaks_again(e2e, "Jetzt im neuen Kanal")
        assert len(e2e.heard()) == 2
        assert e2e.posts() == []
        assert supervisor(e2e).faults == 0


async def test_a_deleted_voice_channel_ends_voice_and_later_messages_are_posted(
    tmp_path: Path,
) -> None:
    async with e2e_bot(tmp_path, audio_seconds=LONG) as e2e:
        await speaking(e2e)
        await e2e.say_in_channel("In der Schlange")
        await e2e.wait_for(lambda: e2e.player().pending == 1)
        await e2e.fake.delete_channel(e2e.scene.voice)

        await until_text_only(e2e, LinkEnd.CHANNEL_DELETED)
        await e2e.wait_for(lambda: len(e2e.text_posts()) == 2, 4)
        assert e2e.text_posts() == [post_of(e2e, FIRST), post_of(e2e, "In der Schlange")]
        assert e2e.notices() == [LinkEnd.CHANNEL_DELETED.notice]
        assert not e2e.bot.voice_clients
        await still_posted_then_left(e2e)


async def test_a_kick_ends_voice_without_rejoin_and_later_messages_are_posted(
    tmp_path: Path,
) -> None:
    async with e2e_bot(tmp_path, audio_seconds=LONG) as e2e:
        await speaking(e2e)
        await e2e.fake.kick_bot(e2e.scene.guild)

        await until_text_only(e2e, LinkEnd.KICKED)
        # The cut message and the notice are posted by different tasks: in either order.
        await e2e.wait_for(lambda: e2e.text_posts(), 4)
        assert e2e.text_posts() == [post_of(e2e, FIRST)]
        assert e2e.notices() == [LinkEnd.KICKED.notice]
        assert op4_channels(e2e) == [e2e.scene.voice.id, None]
        await still_posted_then_left(e2e)


async def test_no_rejoin_when_nobody_is_left_to_listen(tmp_path: Path) -> None:
    async with e2e_bot(tmp_path, audio_seconds=LONG) as e2e:
        await speaking(e2e)
        await e2e.fake.close_voice(e2e.scene.guild, 4014)
        await e2e.wait_for(lambda: supervisor(e2e).down)
        # alice leaves while discord.py still waits: the session ends, nobody rejoins.
        await e2e.fake.set_voice_state(e2e.member, None)

        await until_ended(e2e, LinkEnd.NOBODY_LISTENING)
        assert e2e.notices() == [VOICE_LOST_NOTICE, LinkEnd.NOBODY_LISTENING.notice]
        assert e2e.text_posts() == [post_of(e2e, FIRST)]
        await e2e.wait_for(lambda: op4_channels(e2e)[-1] is None, 3)
        assert op4_channels(e2e).count(e2e.scene.voice.id) == 1

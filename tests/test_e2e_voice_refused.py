"""End to end: Discord refuses the bot's voice session on every reconnect (taken over).

Either every new voice websocket is closed with 4006 shortly after it connected (someone
keeps taking the session over), or every IDENTIFY is. discord.py 2.7.1 reconnects after
each 4006 with a growing backoff, for ever in the first case; in the second it gives up
after one round and the voice link's rejoins fail. Either way the link must give up after
bounded attempts, with one notice for the outage and one when it gives up, leave nothing
of discord.py's reconnecting behind, and keep posting the bound channel's messages as text.
"""

from __future__ import annotations

from pathlib import Path

from edge_voice.core.voice_link import VOICE_LOST_NOTICE, LinkEnd
from tests.e2e_support import (
    E2E,
    e2e_bot,
    open_voice_sockets,
    text_post_for_member,
    voice_tasks,
)
from tests.fakes.audio_samples import edge_like_mp3

FIRST = "Die erste Nachricht"


def post_of(e2e: E2E, text: str) -> str:
    return text_post_for_member(e2e.member, text)


async def speaking(e2e: E2E) -> None:
    await e2e.join()
    await e2e.say_in_channel(FIRST)
    await e2e.wait_for(lambda: e2e.stream().audio_packets >= 10)


async def gave_up(e2e: E2E, end: LinkEnd, timeout: float) -> None:
    """Wait for ``end``'s notice; then nothing of discord.py's voice may be left working.

    Only discord.py's poller and connector tasks reconnect, and only a registered client
    reacts to voice updates: with neither left, nobody joins again behind our back (no
    fixed wait to watch for it; the poller's backoff alone grows to minutes).
    """
    await e2e.wait_for(lambda: end.notice in e2e.posts(), timeout)
    await e2e.wait_for(lambda: not e2e.voice_threads() and not voice_tasks(), 3)
    await e2e.wait_for(lambda: not open_voice_sockets(e2e.fake), 3)
    assert e2e.bot.voice_clients == []
    assert e2e.fake.voice_requests[-1].channel_id is None
    assert e2e.fake.bot_voice_channel(e2e.scene.guild) is None


async def later_messages_are_posted(e2e: E2E) -> None:
    for text in ("Danach", "Und noch eine"):
        await e2e.say_in_channel(text)
        await e2e.wait_for(lambda text=text: post_of(e2e, text) in e2e.posts(), 3)


async def test_a_session_taken_over_after_every_reconnect_is_given_up_once(
    tmp_path: Path,
) -> None:
    async with e2e_bot(tmp_path, audio_seconds=2.0) as e2e:
        await speaking(e2e)
        await e2e.fake.refuse_voice_sessions(e2e.scene.guild, after=0.5)

        await gave_up(e2e, LinkEnd.UNSTABLE, timeout=15)
        assert e2e.notices() == [VOICE_LOST_NOTICE, LinkEnd.UNSTABLE.notice]
        assert e2e.text_posts() == [post_of(e2e, FIRST)]
        await later_messages_are_posted(e2e)
        assert e2e.notices() == [VOICE_LOST_NOTICE, LinkEnd.UNSTABLE.notice]


async def test_every_identify_refused_ends_in_bounded_rejoins_then_text_then_join_again(
    tmp_path: Path,
) -> None:
    async with e2e_bot(tmp_path, audio_seconds=2.0, player={"rejoin_attempts": 2}) as e2e:
        await speaking(e2e)
        await e2e.fake.refuse_voice_sessions(e2e.scene.guild)

        await gave_up(e2e, LinkEnd.REJOIN_FAILED, timeout=15)
        assert e2e.notices() == [VOICE_LOST_NOTICE, LinkEnd.REJOIN_FAILED.notice]
        await later_messages_are_posted(e2e)
        record = await e2e.slash("say", text="Per Befehl")
        assert "posted it as text" in record.texts[-1], record.texts
        assert e2e.text_posts()[-1] == post_of(e2e, "Per Befehl")

        # Discord takes the bot again: /join speaks as before.
        e2e.fake.allow_voice_sessions(e2e.scene.guild)
        e2e.edge.audio = edge_like_mp3(0.4)
        await e2e.join()
        before = len(e2e.heard())
        await e2e.say_in_channel("Wieder zu hören")
        await e2e.wait_heard(before + 1)
        assert e2e.notices() == [VOICE_LOST_NOTICE, LinkEnd.REJOIN_FAILED.notice]

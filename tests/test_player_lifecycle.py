"""GuildPlayer's lifecycle: a worker that cannot die, shutdown that finishes, cuts and posts.

Real service and edge-tts client against the fake Edge server; the voice is the threaded
double from test_player, which reads the packet buffer the way discord.py's player does.
"""

from __future__ import annotations

import asyncio

from edge_voice.core.player import GuildPlayer
from edge_voice.core.posting import PostOutcome
from edge_voice.core.speech import FailureReason, SpeechOutcome, TextPostReason
from tests.fakes.audio_samples import edge_like_mp3
from tests.fakes.edge_server import FakeEdgeServer, Pacing
from tests.test_player import RecordingText, ThreadedVoice, make_service, utterance


class BrokenText(RecordingText):
    """A text output that breaks its promise never to raise, for its first two posts:
    the outage notice, then the text post the player's guard makes instead."""

    def __init__(self) -> None:
        super().__init__()
        self.failures_left = 2

    async def post(self, text: str) -> PostOutcome:
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("a bug in the text output")
        return await super().post(text)


async def test_a_worker_that_dies_is_restarted_and_every_request_answered(
    refused_edge_url: str,
) -> None:
    text = BrokenText()
    service = make_service()
    service.service_breaker.force_open("outage", duration=600)
    player = GuildPlayer(service, ThreadedVoice(), text)

    results = await asyncio.wait_for(
        asyncio.gather(*(player.speak(utterance(f"Nachricht {n}")) for n in range(3))), 10
    )

    assert results[0].outcome is SpeechOutcome.FAILED
    assert results[0].reason == FailureReason.INTERNAL_ERROR.value
    assert [r.outcome for r in results[1:]] == [SpeechOutcome.POSTED_AS_TEXT] * 2
    assert player.worker_restarts == 1
    await player.close()


class HangingVoice:
    """A voice connection whose first playback never ends by itself."""

    def __init__(self) -> None:
        self.plays = 0
        self.released = asyncio.Event()

    def is_connected(self) -> bool:
        return True

    async def play(self, buffer: object) -> None:
        self.plays += 1
        if self.plays == 1:
            await self.released.wait()

    def stop(self) -> None:
        self.released.set()


async def test_a_worker_cancelled_from_outside_is_restarted(edge_server: FakeEdgeServer) -> None:
    voice = HangingVoice()
    player = GuildPlayer(make_service(), voice, RecordingText())  # type: ignore[arg-type]
    first = player.submit(utterance("Eins"))
    second = player.submit(utterance("Zwei"))
    while voice.plays == 0:
        await asyncio.sleep(0.01)
    assert player._worker is not None
    player._worker.cancel()  # someone cancels the worker task mid-utterance

    assert (await asyncio.wait_for(first, 5)).reason == FailureReason.INTERNAL_ERROR.value
    assert (await asyncio.wait_for(second, 10)).spoken
    assert player.worker_restarts == 1
    await player.close()


async def test_shutdown_lets_a_short_utterance_finish_and_posts_the_queue(
    edge_server: FakeEdgeServer,
) -> None:
    edge_server.audio = edge_like_mp3(0.5)
    voice, text = ThreadedVoice(), RecordingText()
    voice.hold.clear()  # the double reads as fast as it can: hold it until close() began
    player = GuildPlayer(make_service(), voice, text, finish_grace=5.0)
    futures = [player.submit(utterance(f"Nachricht {n}")) for n in range(3)]
    while voice.plays == 0:
        await asyncio.sleep(0.01)

    closing = asyncio.create_task(player.close())
    while not player.closed:
        await asyncio.sleep(0.01)
    voice.hold.set()
    await closing

    results = [f.result() for f in futures]
    assert results[0].outcome is SpeechOutcome.SPOKEN
    assert [(r.outcome, r.reason) for r in results[1:]] == [
        (SpeechOutcome.POSTED_AS_TEXT, TextPostReason.SHUTTING_DOWN.value)
    ] * 2
    assert text.posts == ["🔇 Anna: Nachricht 1", "🔇 Anna: Nachricht 2"]


async def test_shutdown_cuts_a_long_utterance_and_posts_it_first(
    edge_server: FakeEdgeServer,
) -> None:
    edge_server.audio = edge_like_mp3(20.0)
    edge_server.pacing = Pacing.faster_than_realtime(2.0)
    voice, text = ThreadedVoice(), RecordingText()
    player = GuildPlayer(make_service(), voice, text, finish_grace=0.2)
    futures = [player.submit(utterance(f"Nachricht {n}")) for n in range(2)]
    while not voice.packets:
        await asyncio.sleep(0.01)

    loop = asyncio.get_running_loop()
    started = loop.time()
    await player.close()

    assert loop.time() - started < 3.0
    assert [(f.result().outcome, f.result().reason) for f in futures] == [
        (SpeechOutcome.POSTED_AS_TEXT, TextPostReason.SHUTTING_DOWN.value)
    ] * 2
    assert text.posts == ["🔇 Anna: Nachricht 0", "🔇 Anna: Nachricht 1"]
    assert (await player.speak(utterance("Danach"))).reason == TextPostReason.SHUTTING_DOWN.value


class SlowText(RecordingText):
    async def post(self, text: str) -> PostOutcome:
        await asyncio.sleep(10)
        return await super().post(text)


async def test_shutdown_deadline_fails_what_it_could_not_post(refused_edge_url: str) -> None:
    service = make_service()
    service.service_breaker.force_open("outage", duration=600)
    player = GuildPlayer(service, ThreadedVoice(), SlowText(), shutdown_deadline=0.3)
    futures = [player.submit(utterance(f"Nachricht {n}")) for n in range(3)]
    await asyncio.sleep(0.01)

    await asyncio.wait_for(player.close(), 2)

    assert [f.result().reason for f in futures] == [FailureReason.NO_TIME_LEFT.value] * 3


async def test_clear_drops_the_queue_and_answers_each_message(
    edge_server: FakeEdgeServer,
) -> None:
    voice = ThreadedVoice()
    voice.hold.clear()
    player = GuildPlayer(make_service(), voice, RecordingText())
    futures = [player.submit(utterance(f"Nachricht {n}")) for n in range(4)]
    while not player.speaking:
        await asyncio.sleep(0.01)

    cleared = player.clear()

    assert [u.text for u in cleared] == ["Nachricht 1", "Nachricht 2", "Nachricht 3"]
    assert [f.result().reason for f in futures[1:]] == [FailureReason.CLEARED.value] * 3
    voice.hold.set()
    assert (await futures[0]).spoken
    await player.close()

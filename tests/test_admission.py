"""Admission control: the cost model, and a message at capacity posted as text at once."""

from __future__ import annotations

import asyncio
import time

import pytest

from edge_voice.core.admission import (
    AdmissionConfig,
    Refusal,
    StreamAdmission,
    StreamKind,
    Ticket,
    admission_config,
)
from edge_voice.core.alerts import status_alert
from edge_voice.core.config import PlayerConfig
from edge_voice.core.player import GuildPlayer
from edge_voice.core.speech import SpeechOutcome, TextPostReason
from tests.fakes.audio_samples import edge_like_mp3
from tests.fakes.edge_server import FakeEdgeServer, Pacing
from tests.test_player import RecordingText, ThreadedVoice, make_service, utterance


def admit(admission: StreamAdmission, kind: StreamKind = StreamKind.TRANSCODE) -> Ticket:
    ticket = admission.admit(kind)
    assert isinstance(ticket, Ticket), ticket
    return ticket


def test_the_budget_admits_streams_while_their_costs_fit() -> None:
    admission = StreamAdmission(AdmissionConfig(budget_ms=100, transcode_ms=30, replay_ms=5))
    tickets = [admit(admission) for _ in range(3)]
    assert (admission.playing, admission.load_ms) == (3, 90)
    refused = admission.admit(StreamKind.TRANSCODE)
    assert isinstance(refused, Refusal)
    assert "3 voice streams are playing" in refused.reason
    assert "120 of 100 ms" in refused.reason
    # A cached phrase costs less and still fits.
    replay = admit(admission, StreamKind.REPLAY)
    assert admission.load_ms == 95
    assert (admission.refused, admission.refused_by_kind[StreamKind.TRANSCODE]) == (1, 1)
    admission.release(tickets[0])
    admission.release(tickets[0])  # twice: no effect
    assert (admission.playing, admission.load_ms) == (3, 65)
    assert isinstance(admission.admit(StreamKind.TRANSCODE), Ticket)
    for ticket in [*tickets[1:], replay]:
        admission.release(ticket)
    assert admission.playing == 1


def test_max_streams_caps_the_count_whatever_the_costs() -> None:
    seen: list[StreamKind] = []
    admission = StreamAdmission(AdmissionConfig(max_streams=2))
    admission.on_refused.append(seen.append)
    admit(admission, StreamKind.REPLAY)
    admit(admission, StreamKind.REPLAY)
    refused = admission.admit(StreamKind.REPLAY)
    assert isinstance(refused, Refusal)
    assert refused.reason == "2 of at most 2 voice streams are playing"
    assert seen == [StreamKind.REPLAY]
    assert admission.stats() == {
        "playing": 2,
        "load_ms": 2.0,
        "budget_ms": 0.0,
        "max_streams": 2,
        "refused": 1,
    }


def test_switched_off_it_admits_everything() -> None:
    admission = StreamAdmission(admission_config(PlayerConfig()))
    assert not admission.enabled
    for _ in range(1000):
        admit(admission)
    assert admission.refused == 0
    budgeted = admission_config(PlayerConfig(cpu_budget=0.8, stream_cost_ms=20))
    assert (budgeted.budget_ms, budgeted.transcode_ms) == (800, 20)


@pytest.mark.parametrize(
    "config",
    [
        {"budget_ms": -1},
        {"max_streams": -1},
        {"transcode_ms": 0},
        {"replay_ms": -2},
    ],
)
def test_bad_figures_are_rejected(config: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        AdmissionConfig(**config)  # type: ignore[arg-type]


def test_status_shows_the_streams_and_the_refusals() -> None:
    admission = StreamAdmission(AdmissionConfig(budget_ms=50, transcode_ms=30))
    admit(admission)
    admission.admit(StreamKind.TRANSCODE)
    health = make_service().health()
    alert = status_alert(health, streams=admission.stats())
    (report,) = [value for name, value in alert.fields if name == "Voice streams"]
    assert report == "1 playing · 1 refused (posted as text: at capacity)\nCPU 30 of 50 ms/s"
    off = status_alert(health, streams=StreamAdmission(AdmissionConfig()).stats())
    assert "admission control off" in dict(off.fields)["Voice streams"]


async def test_at_capacity_a_new_message_is_posted_as_text_at_once(
    edge_server: FakeEdgeServer,
) -> None:
    edge_server.audio = edge_like_mp3(2.0)
    edge_server.pacing = Pacing.faster_than_realtime(4.0)
    admission = StreamAdmission(AdmissionConfig(budget_ms=40, transcode_ms=30))
    service = make_service()
    voices = [ThreadedVoice(), ThreadedVoice()]
    texts = [RecordingText(), RecordingText()]
    players = [
        GuildPlayer(service, voice, text, admission=admission)
        for voice, text in zip(voices, texts, strict=True)
    ]
    speaking = players[0].submit(utterance("Die erste Nachricht"))
    while not voices[0].packets:
        await asyncio.sleep(0.01)
    assert admission.playing == 1
    started = time.monotonic()
    refused = await players[1].speak(utterance("Die zweite Nachricht", name="Ben"))
    assert time.monotonic() - started < 0.5  # not after the first stream ended
    assert (refused.outcome, refused.reason) == (
        SpeechOutcome.POSTED_AS_TEXT,
        TextPostReason.AT_CAPACITY.value,
    )
    assert texts[1].posts == [
        "🔇 Ben: Die zweite Nachricht\n-# not spoken: 1 voice streams are playing; one more "
        "would need 60 of 40 ms of CPU per second"
    ]
    assert voices[1].plays == 0
    assert (await speaking).spoken
    assert (admission.playing, admission.refused) == (0, 1)
    # Capacity is free again: the next message is spoken.
    assert (await players[1].speak(utterance("Die dritte Nachricht"))).spoken
    for player in players:
        await player.close()

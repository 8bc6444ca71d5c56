"""PacedVoiceOutput: the shared pacer sending through the real discord.py voice client.

Same set-up as tests/test_voice_output.py: the fake Discord's voice server decrypts
every packet; here one :class:`Pacer` thread sends them instead of discord.py's player.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from edge_voice.cogs.voice_pacing import PacedVoiceOutput
from edge_voice.core.audio import OPUS_SILENCE_FRAME
from edge_voice.core.pacing import TRAILING_SILENCE, Pacer
from edge_voice.core.player import VoiceConnectionLost
from tests.test_voice_output import Connected, filled, tone, voice

__all__ = ["voice"]  # the fixture, imported for this module's tests


@pytest.fixture
def pacer() -> Iterator[Pacer]:
    shared = Pacer()
    yield shared
    shared.close()


def paced(voice: Connected, pacer: Pacer, **options: Any) -> PacedVoiceOutput:
    guild = voice.bot.get_guild(voice.scene.guild.id)
    return PacedVoiceOutput(lambda: guild.voice_client, pacer=pacer, **options)


async def test_the_pacer_plays_the_buffer_at_20_ms_with_speaking_and_silence(
    voice: Connected, pacer: Pacer
) -> None:
    await asyncio.wait_for(paced(voice, pacer).play(filled(tone())), 5)
    stream = voice.fake.voice_stream(voice.scene.guild)
    await voice.fake.wait_for(lambda: len(stream.packets) >= len(tone()) + TRAILING_SILENCE)
    packets = voice.fake.voice_stream(voice.scene.guild).packets
    assert voice.received() == tone()
    assert [p.payload for p in packets[-TRAILING_SILENCE:]] == [OPUS_SILENCE_FRAME] * 5
    # Contiguous RTP, one 20 ms step each, sent on the pacer's schedule.
    audio = packets[: len(tone())]
    gaps = len(audio) - 1
    assert [b.sequence - a.sequence for a, b in itertools.pairwise(audio)] == [1] * gaps
    assert {b.timestamp - a.timestamp for a, b in itertools.pairwise(audio)} == {960}
    span = audio[-1].arrival - audio[0].arrival
    assert 0.8 * gaps * 0.02 < span < gaps * 0.02 + 0.2, span
    connection = voice.fake.endpoints[0].connections[0]
    await voice.fake.wait_for(lambda: connection.speaking[-1][1] == 0)
    flags = [flag for _, flag in connection.speaking]
    assert flags[-2:] == [1, 0]
    # The pacer lets the stream go at the end of the tick that ended it.
    await voice.fake.wait_for(lambda: pacer.playing == 0)


async def test_stop_ends_paced_playback_normally(voice: Connected, pacer: Pacer) -> None:
    output = paced(voice, pacer)
    buffer = filled(tone()[:3], finish=False)
    task = asyncio.create_task(output.play(buffer))
    await voice.fake.wait_for(lambda: len(voice.received()) >= 3)
    output.stop()
    await asyncio.wait_for(task, 5)
    assert buffer.closed


async def test_a_kick_mid_paced_play_is_a_lost_connection(voice: Connected, pacer: Pacer) -> None:
    output = paced(voice, pacer, stall_after=0.3)
    task = asyncio.create_task(output.play(filled(tone()[:3], finish=False)))
    await voice.fake.wait_for(lambda: len(voice.received()) >= 3)
    await voice.fake.kick_bot(voice.scene.guild)
    with pytest.raises(VoiceConnectionLost):
        await asyncio.wait_for(task, 5)
    assert not output.is_connected()

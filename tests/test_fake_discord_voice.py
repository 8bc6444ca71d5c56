"""Voice end to end: ``channel.connect()``, ``play()``, and the fake decrypting every packet."""

from __future__ import annotations

import asyncio
import itertools
from functools import lru_cache

import pytest

from tests.fake_discord_support import connect_and_play, scene_and_bot
from tests.fakes.discord.audio import opus_tone
from tests.fakes.discord.voice_gateway import HEARTBEAT, MODE, SELECT_PROTOCOL


@lru_cache(maxsize=1)
def tone_440() -> list[bytes]:
    """2 s of 440 Hz, encoded once for the module."""
    return opus_tone(440.0, 2.0)


async def test_a_tone_played_by_discord_py_comes_back_decoded() -> None:
    async with scene_and_bot(voice_heartbeat_interval=0.1) as (fake, scene, bot):
        playing = await connect_and_play(bot, scene.voice, tone_440())
        vc = playing.voice_client
        assert vc.is_connected()
        assert fake.bot_voice_channel(scene.guild) == scene.voice.id
        await asyncio.wait_for(playing.done.wait(), 5)
        assert playing.errors == [None]
        voice_ws = fake.endpoints[0].connections[0]
        assert len(voice_ws.ops(HEARTBEAT)) >= 5  # every 0.1 s here, ACKed
        assert vc.latency < 1.0
        await fake.wait_for(lambda: fake.voice_stream(scene.guild).packets[-1].silence)
        expected = len(tone_440()) + 5
        await fake.wait_for(lambda: len(fake.voice_stream(scene.guild).packets) >= expected)
        await vc.disconnect()
        stream = fake.voice_stream(scene.guild)

        assert stream.decrypt_failures == 0
        assert len(stream.packets) == expected
        (utterance,) = stream.utterances()
        assert utterance.trailing_silence == 5
        assert utterance.silence_frames == 0
        assert utterance.sequence_gaps() == 0
        assert [p.payload for p in utterance.packets] == tone_440()
        assert utterance.audio.duration == pytest.approx(2.0, abs=0.05)
        assert utterance.packets_per_second() == pytest.approx(50, abs=2)
        assert utterance.dominant_frequency() == pytest.approx(440, abs=5)
        assert utterance.rms() == pytest.approx(0.3 / 2**0.5, rel=0.1)
        # Pacing on a shared 2-core machine: allow a few stragglers, not a broken clock.
        assert len(utterance.late_packets(tolerance=0.015)) <= 5
        gaps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(stream.packets)]
        assert set(gaps) == {960}

        (select,) = [p for c in fake.endpoints[0].connections for p in c.ops(SELECT_PROTOCOL)]
        assert select["d"]["data"]["mode"] == MODE
        udp = fake.endpoints[0].udp.stats
        assert [d.ssrc for d in udp.discoveries] == [stream.ssrc]
        speaking = [flag for _, flag in fake.endpoints[0].connections[0].speaking]
        assert speaking[:3] == [0, 1, 0]

        await fake.wait_for(lambda: fake.voice_requests[-1].channel_id is None)
        assert [r.channel_id for r in fake.voice_requests] == [scene.voice.id, None]
        assert fake.bot_voice_channel(scene.guild) is None
        assert not bot.voice_clients


async def test_pause_and_resume_show_as_two_utterances() -> None:
    async with scene_and_bot() as (fake, scene, bot):
        playing = await connect_and_play(bot, scene.voice, tone_440())

        def packets() -> int:
            return len(fake.voice_stream(scene.guild).packets)

        await fake.wait_for(lambda: packets() >= 20)
        playing.voice_client.pause()
        await fake.wait_for(lambda: fake.voice_stream(scene.guild).packets[-1].silence)
        paused_at = packets()
        playing.voice_client.resume()
        await fake.wait_for(lambda: packets() >= paused_at + 25)
        playing.voice_client.stop()
        await playing.voice_client.disconnect()

        stream = fake.voice_stream(scene.guild)
        first, second = stream.utterances(gap=10.0)
        assert first.trailing_silence == 5
        assert first.frames >= 20
        assert second.frames >= 15
        assert second.packets[0].sequence == first.packets[-1].sequence + 6
        assert stream.silence_frames_mid_stream(gap=10.0) == 0

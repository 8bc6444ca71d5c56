"""Proves tests/fakes/voice_double.py: connecting, moving and playing through the voice double."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest

from tests.fakes.discord_harness import RecordingVoiceClient, TestBot, add_voice_channel
from tests.harness_support import OPUS_PACKET, FakeOpusSource, connect, demo_bot


@pytest.fixture
async def tb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestBot]:
    async with demo_bot(tmp_path, monkeypatch) as harness:
        yield harness


class PcmSource(discord.AudioSource):
    def read(self) -> bytes:
        return b"\x00" * 3840

    def is_opus(self) -> bool:
        return False


class AfterRecorder:
    """An ``after`` callback that notes its thread and hands the error back to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls: list[tuple[Exception | None, bool]] = []
        self.outcome: asyncio.Future[Exception | None] = loop.create_future()

    def __call__(self, error: Exception | None) -> None:
        self.calls.append((error, threading.current_thread() is threading.main_thread()))
        self.loop.call_soon_threadsafe(self.outcome.set_result, error)


async def test_connect_returns_recording_client_and_updates_bot_voice_state(tb: TestBot) -> None:
    voice = await connect(tb)

    assert isinstance(voice, RecordingVoiceClient)
    assert tb.guild.voice_client is voice
    assert tb.voice_clients == [voice]
    assert voice.is_connected()
    assert tb.guild.me.voice is not None
    assert tb.guild.me.voice.channel == tb.voice_channel
    with pytest.raises(discord.ClientException):
        await tb.voice_channel.connect()

    music = add_voice_channel(tb.guild, "Music")
    await voice.move_to(music)
    assert tb.guild.me.voice.channel == music
    await voice.disconnect()
    assert tb.guild.voice_client is None
    assert tb.guild.me.voice is None


async def test_play_records_packets_and_calls_after_from_player_thread(tb: TestBot) -> None:
    voice = await connect(tb)
    source = FakeOpusSource(25)
    after = AfterRecorder(asyncio.get_running_loop())

    voice.play(source, after=after)
    playback = await voice.wait_until_done()

    assert await after.outcome is None
    assert after.calls == [(None, False)]  # called once, not on the event loop's thread
    assert playback.is_opus
    assert playback.after_called
    assert len(voice.packets) == 25
    assert voice.packets[0] == OPUS_PACKET + b"\x01"
    assert source.cleaned_up
    assert not voice.is_playing()


async def test_read_error_reaches_after(tb: TestBot) -> None:
    voice = await connect(tb)
    after = AfterRecorder(asyncio.get_running_loop())

    voice.play(FakeOpusSource(10, fail_at=4), after=after)
    error = await asyncio.wait_for(after.outcome, 5)

    assert isinstance(error, OSError)
    assert str(error) == "decoder died"
    assert len(voice.packets) == 4


async def test_connection_lost_mid_utterance(tb: TestBot) -> None:
    voice = await connect(tb)
    source = FakeOpusSource(50, gate_at=3)
    after = AfterRecorder(asyncio.get_running_loop())

    voice.play(source, after=after)
    assert await asyncio.to_thread(source.gate_reached.wait, 5)
    assert voice.is_playing()
    with pytest.raises(discord.ClientException):
        voice.play(FakeOpusSource(1))
    voice.interrupt()
    source.gate.set()
    error = await asyncio.wait_for(after.outcome, 5)

    assert isinstance(error, ConnectionResetError)
    assert len(voice.packets) == 3
    assert not voice.is_connected()
    assert not voice.is_playing()


async def test_stop_ends_playback_without_error(tb: TestBot) -> None:
    voice = await connect(tb)
    voice.packet_interval = 0.001
    after = AfterRecorder(asyncio.get_running_loop())

    voice.play(FakeOpusSource(10_000), after=after)
    voice.stop()

    assert await asyncio.wait_for(after.outcome, 5) is None
    assert len(voice.packets) < 10_000
    assert voice.plays[0].error is None


async def test_pcm_source_is_rejected_like_without_libopus(tb: TestBot) -> None:
    voice = await connect(tb)

    with pytest.raises(discord.opus.OpusNotLoaded):
        voice.play(PcmSource())
    assert voice.plays == []

"""The discord adapters of the player: PacketSource, DiscordVoiceOutput, ChannelTextOutput.

Voice goes through the harness's recording voice client, whose player thread reads the source
and calls ``after`` from that thread the way discord.py's AudioPlayer does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest
from discord.ext.test import backend as dpy_backend

from edge_voice.cogs.text_output import ChannelTextOutput
from edge_voice.cogs.voice_output import DiscordVoiceOutput, PacketSource
from edge_voice.core.audio import OPUS_SILENCE_FRAME
from edge_voice.core.packet_buffer import PacketBuffer
from edge_voice.core.player import PlaybackError
from edge_voice.core.tts.errors import ErrorKind, TTSError
from tests.fakes.discord_harness import RecordingVoiceClient, TestBot, running_test_bot
from tests.voice_cog_support import until

PACKETS = [b"\xfc" + bytes([n]) for n in range(25)]  # opaque to the double: never decoded


@pytest.fixture
async def tb() -> AsyncIterator[TestBot]:
    async with running_test_bot() as harness:
        yield harness


async def connected(tb: TestBot) -> RecordingVoiceClient:
    client = await tb.voice_channel.connect()
    assert isinstance(client, RecordingVoiceClient)
    return client


def filled(packets: list[bytes], *, finish: bool = True, error: Exception | None = None) -> Any:
    buffer = PacketBuffer(stall_limit=5.0)
    for packet in packets:
        buffer.put(packet)
    if finish:
        buffer.finish(error)
    return buffer


def test_packet_source_hands_over_packets_then_ends() -> None:
    source = PacketSource(filled(PACKETS[:2]))

    assert source.is_opus()
    assert [source.read(), source.read()] == PACKETS[:2]
    assert not source.ended
    assert source.read() == b""
    assert source.ended


def test_packet_source_covers_gaps_with_silence_and_cleanup_closes() -> None:
    buffer = filled([], finish=False)
    source = PacketSource(buffer)

    assert source.read() == OPUS_SILENCE_FRAME
    source.cleanup()

    assert buffer.closed
    assert source.read() == b""


async def test_plays_the_buffer_to_its_end(tb: TestBot) -> None:
    client = await connected(tb)
    output = DiscordVoiceOutput(tb.guild)

    assert output.is_connected()
    await asyncio.wait_for(output.play(filled(PACKETS)), 5)

    assert client.packets == PACKETS
    assert client.plays[0].after_called


async def test_synthesis_error_in_the_buffer_is_raised(tb: TestBot) -> None:
    client = await connected(tb)
    failure = TTSError(ErrorKind.NETWORK, "stream broke")

    with pytest.raises(TTSError) as raised:
        await asyncio.wait_for(
            DiscordVoiceOutput(tb.guild).play(filled(PACKETS[:3], error=failure)), 5
        )

    assert raised.value is failure
    assert client.packets == PACKETS[:3]


async def test_connection_dropping_mid_play_raises_playback_error(tb: TestBot) -> None:
    client = await connected(tb)
    output = DiscordVoiceOutput(tb.guild)
    playing = asyncio.create_task(output.play(filled(PACKETS[:3], finish=False)))
    await until(lambda: len(client.packets) >= 3)

    client.interrupt(ConnectionResetError("voice websocket closed"))

    with pytest.raises(PlaybackError, match="voice websocket closed"):
        await asyncio.wait_for(playing, 5)
    assert not output.is_connected()


async def test_playback_stopped_from_outside_counts_as_lost(tb: TestBot) -> None:
    # discord.py ends playback with after(None) when a reconnect times out or on disconnect.
    client = await connected(tb)
    output = DiscordVoiceOutput(tb.guild)
    playing = asyncio.create_task(output.play(filled(PACKETS[:3], finish=False)))
    await until(lambda: len(client.packets) >= 3)

    client.stop()

    with pytest.raises(PlaybackError, match="voice connection lost"):
        await asyncio.wait_for(playing, 5)


async def test_a_player_that_stops_reading_is_given_up(tb: TestBot) -> None:
    # discord.py's player stops reading while it waits for a voice reconnect.
    client = await connected(tb)
    output = DiscordVoiceOutput(tb.guild, stall_after=0.2)
    playing = asyncio.create_task(output.play(filled(PACKETS[:3], finish=False)))
    await until(lambda: len(client.packets) >= 3)

    client.pause()

    with pytest.raises(PlaybackError, match=r"stalled: nothing was read for 0\.2s"):
        await asyncio.wait_for(playing, 5)


async def test_slow_audio_is_not_a_stall(tb: TestBot) -> None:
    client = await connected(tb)
    output = DiscordVoiceOutput(tb.guild, stall_after=0.2)
    buffer = filled([], finish=False)
    playing = asyncio.create_task(output.play(buffer))
    for packet in PACKETS[:4]:  # slower than the stall limit overall, never idle for it
        await asyncio.sleep(0.1)
        buffer.put(packet)
    buffer.finish()
    await asyncio.wait_for(playing, 5)
    assert [p for p in client.packets if p != OPUS_SILENCE_FRAME] == PACKETS[:4]


async def test_stop_ends_playback_normally(tb: TestBot) -> None:
    client = await connected(tb)
    output = DiscordVoiceOutput(tb.guild)
    buffer = filled(PACKETS[:3], finish=False)
    playing = asyncio.create_task(output.play(buffer))
    await until(lambda: len(client.packets) >= 3)

    output.stop()

    await asyncio.wait_for(playing, 5)
    await client.wait_until_done()  # cleanup() runs on the player thread after `after`
    assert buffer.closed  # so the feeding side stops


async def test_not_connected(tb: TestBot) -> None:
    output = DiscordVoiceOutput(tb.guild)
    assert not output.is_connected()
    with pytest.raises(PlaybackError, match="not connected"):
        await output.play(filled(PACKETS))

    client = await connected(tb)
    await client.disconnect()
    assert not output.is_connected()
    output.stop()  # nothing to stop: harmless


async def test_text_output_posts_without_pings_and_within_the_limit(tb: TestBot) -> None:
    output = ChannelTextOutput(tb.text_channel)

    assert (await output.post("🔇 Alice: hallo @everyone <@123>")).delivered
    assert (await output.post("x" * 2500)).delivered

    short, long = tb.sent_to(tb.text_channel)
    assert short.content == "🔇 Alice: hallo @everyone <@123>"
    assert short.allowed_mentions == {"parse": []}
    assert long.content is not None
    assert len(long.content) == 2000
    assert long.content.endswith("…")


class RefusingChannel:
    """A channel the bot lost access to: Discord answers every send with 403."""

    name = "locked"

    async def send(self, *args: object, **kwargs: object) -> None:
        raise discord.Forbidden(dpy_backend.FakeRequest(403, "Forbidden"), "Missing Access")


async def test_text_output_reports_instead_of_raising(caplog: pytest.LogCaptureFixture) -> None:
    output = ChannelTextOutput(RefusingChannel())  # type: ignore[arg-type]

    with caplog.at_level(logging.WARNING, logger="edge_voice.core.posting"):
        first = await output.post("🔇 Alice: hallo")
        second = await output.post("🔇 Alice: nochmal")
    assert (first.delivered, first.permanent, first.attempts) == (False, True, 1)
    assert not second.delivered

    assert [r.message for r in caplog.records] == [
        "could not post to #locked: missing access or permission (HTTP 403: Missing Access)"
    ] * 2

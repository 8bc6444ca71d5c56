"""The discord adapters of the player: PacketSource, DiscordVoiceOutput, ChannelTextOutput.

Voice goes through the real discord.py voice client connected to the fake Discord's
voice server, which decrypts every packet it gets; text goes to its REST API.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

import discord
import pytest

from edge_voice.cogs.text_output import ChannelTextOutput
from edge_voice.cogs.voice_output import DiscordVoiceOutput, PacketSource
from edge_voice.core.audio import OPUS_SILENCE_FRAME
from edge_voice.core.packet_buffer import PacketBuffer
from edge_voice.core.player import VoiceConnectionLost
from edge_voice.core.tts.errors import ErrorKind, TTSError
from tests.fake_discord_support import Scene, scene_and_bot
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.audio import opus_tone

NO_PINGS = {"parse": []}


@lru_cache(maxsize=1)
def tone() -> list[bytes]:
    """0.5 s of real Opus (25 packets), encoded once."""
    return opus_tone(330.0, 0.5)


@dataclass(eq=False)
class Connected:
    fake: FakeDiscord
    scene: Scene
    bot: Any
    client: Any

    def output(self, **options: Any) -> DiscordVoiceOutput:
        guild = self.bot.get_guild(self.scene.guild.id)
        return DiscordVoiceOutput(lambda: guild.voice_client, **options)

    def received(self) -> list[bytes]:
        """The audio payloads the voice server got (silence frames left out)."""
        packets = self.fake.voice_stream(self.scene.guild).packets
        return [p.payload for p in packets if p.payload != OPUS_SILENCE_FRAME]


@pytest.fixture
async def voice() -> AsyncIterator[Connected]:
    async with scene_and_bot() as (fake, scene, bot):
        client = await bot.get_channel(scene.voice.id).connect(timeout=2)
        try:
            yield Connected(fake, scene, bot, client)
        finally:
            if client.is_connected():
                await client.disconnect(force=True)


def filled(packets: list[bytes], *, finish: bool = True, error: Exception | None = None) -> Any:
    buffer = PacketBuffer(stall_limit=5.0)
    for packet in packets:
        buffer.put(packet)
    if finish:
        buffer.finish(error)
    return buffer


PACKETS = [b"\xfc" + bytes([n]) for n in range(25)]  # for PacketSource alone: never decoded


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


async def test_plays_the_buffer_to_its_end(voice: Connected) -> None:
    output = voice.output()
    assert output.is_connected()
    await asyncio.wait_for(output.play(filled(tone())), 5)
    await voice.fake.wait_for(lambda: len(voice.received()) == len(tone()))
    assert voice.received() == tone()


async def test_a_synthesis_error_in_the_buffer_is_raised(voice: Connected) -> None:
    failure = TTSError(ErrorKind.NETWORK, "stream broke")
    with pytest.raises(TTSError) as raised:
        await asyncio.wait_for(voice.output().play(filled(tone()[:3], error=failure)), 5)
    assert raised.value is failure


async def playing(voice: Connected, output: DiscordVoiceOutput) -> asyncio.Task[None]:
    """Start playing three packets of a buffer that does not end, once they were sent."""
    task = asyncio.create_task(output.play(filled(tone()[:3], finish=False)))
    await voice.fake.wait_for(lambda: len(voice.received()) >= 3)
    return task


async def test_a_kick_mid_play_is_a_lost_connection(voice: Connected) -> None:
    # discord.py ends playback with after(None) when it is disconnected.
    output = voice.output()
    task = await playing(voice, output)
    await voice.fake.kick_bot(voice.scene.guild)
    with pytest.raises(VoiceConnectionLost, match="voice connection lost"):
        await asyncio.wait_for(task, 5)
    assert not output.is_connected()


async def test_playback_stopped_from_outside_counts_as_lost(voice: Connected) -> None:
    output = voice.output()
    task = await playing(voice, output)
    voice.client.stop()  # what the voice link's supervisor does on a fault
    with pytest.raises(VoiceConnectionLost, match="voice connection lost"):
        await asyncio.wait_for(task, 5)


async def test_a_player_that_stops_reading_is_given_up(voice: Connected) -> None:
    # discord.py's player stops reading while it waits for a voice reconnect.
    output = voice.output(stall_after=0.2)
    task = await playing(voice, output)
    voice.client.pause()
    with pytest.raises(VoiceConnectionLost, match=r"stalled: nothing was read for 0\.2s"):
        await asyncio.wait_for(task, 5)


async def test_slow_audio_is_not_a_stall(voice: Connected) -> None:
    output = voice.output(stall_after=0.2)
    buffer = filled([], finish=False)
    task = asyncio.create_task(output.play(buffer))
    for packet in tone()[:4]:  # slower than the stall limit overall, never idle for it
        await asyncio.sleep(0.1)
        buffer.put(packet)
    buffer.finish()
    await asyncio.wait_for(task, 5)
    await voice.fake.wait_for(lambda: len(voice.received()) == 4)
    assert voice.received() == tone()[:4]


async def test_stop_ends_playback_normally(voice: Connected) -> None:
    output = voice.output()
    buffer = filled(tone()[:3], finish=False)
    task = asyncio.create_task(output.play(buffer))
    await voice.fake.wait_for(lambda: len(voice.received()) >= 3)
    output.stop()
    await asyncio.wait_for(task, 5)
    await voice.fake.wait_for(lambda: buffer.closed, poll=0.01)  # so the feeding side stops


async def test_not_connected_or_not_usable(voice: Connected) -> None:
    with pytest.raises(VoiceConnectionLost, match="not connected"):
        await voice.output(usable=lambda: False).play(filled(tone()))
    # A connection that is said to be coming (a move) gets ``settle`` seconds, no more.
    await voice.client.disconnect(force=True)
    output = voice.output(usable=lambda: True, settle=0.1)
    with pytest.raises(VoiceConnectionLost):
        await asyncio.wait_for(output.play(filled(tone())), 5)
    assert not voice.output().is_connected()
    voice.output().stop()  # nothing to stop: harmless


async def test_text_output_posts_without_pings_and_within_the_limit() -> None:
    async with scene_and_bot() as (fake, scene, bot):
        output = ChannelTextOutput(bot.get_channel(scene.text.id))

        assert (await output.post("🔇 Alice: hallo @everyone <@123>")).delivered
        assert (await output.post("x" * 2500)).delivered

        short, long = fake.posted(scene.text)
        assert short.content == "🔇 Alice: hallo @everyone <@123>"
        assert short.allowed_mentions == NO_PINGS
        assert len(long.content) == 2000
        assert long.content.endswith("…")


class RefusingChannel:
    """A channel the bot lost access to: Discord answers every send with 403."""

    name = "locked"

    async def send(self, *args: object, **kwargs: object) -> None:
        response = SimpleNamespace(status=403, reason="Forbidden")
        raise discord.Forbidden(response, "Missing Access")  # type: ignore[arg-type]


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

"""Playback through the shared pacer (:mod:`core.pacing`) instead of a thread per guild.

:class:`PacedVoiceOutput` is :class:`~cogs.voice_output.DiscordVoiceOutput` with its
packets sent by one :class:`~core.pacing.Pacer` for every guild, through discord.py's
public ``VoiceClient.send_audio_packet(packet, encode=False)``; the speaking flag that
discord.py's player would set goes out on the voice websocket before the first packet
and is cleared after the last. ``[player] pacer = "shared"`` selects it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import discord

from edge_voice.cogs.voice_output import DiscordVoiceOutput, PacketSource
from edge_voice.core.pacing import PacedStream, Pacer
from edge_voice.core.packet_buffer import PacketBuffer

log = logging.getLogger(__name__)

SPEAKING_DEADLINE = 2.0
"""Seconds sending the speaking flag may take (a websocket frame)."""


class PacedVoiceOutput(DiscordVoiceOutput):
    """A guild's voice output whose packets ``pacer`` sends; see the module docstring."""

    def __init__(self, client: Callable[[], Any], *, pacer: Pacer, **options: Any) -> None:
        super().__init__(client, **options)
        self.pacer = pacer
        self._stream: PacedStream | None = None

    def _source(self, buffer: PacketBuffer) -> PacketSource:
        return PacketSource(buffer, wait=0.0)

    async def _begin(
        self, client: Any, source: PacketSource, after: Callable[[Exception | None], None]
    ) -> None:
        await _speak(client, discord.SpeakingState.voice)

        def send(packet: bytes) -> None:
            client.send_audio_packet(packet, encode=False)

        def on_end(error: BaseException | None) -> None:
            source.cleanup()
            after(error if isinstance(error, Exception) else None)

        stream = PacedStream(read=source.read, send=send, on_end=on_end, ready=client.is_connected)
        self._stream = stream
        self.pacer.add(stream)

    def _halt(self, client: Any) -> None:
        stream = self._stream
        if stream is not None:
            stream.stop()

    async def _ended(self, client: Any) -> None:
        self._stream = None
        if client.is_connected():
            await _speak(client, discord.SpeakingState.none)


async def _speak(client: Any, state: discord.SpeakingState) -> None:
    # A lost flag only changes how clients draw the speaker ring: never fail playback on
    # it (discord.py's own player sends it and ignores the outcome too).
    try:
        async with asyncio.timeout(SPEAKING_DEADLINE):
            await client.ws.speak(state)
    except Exception as exc:
        log.debug("speaking flag %s not sent: %r", state, exc)

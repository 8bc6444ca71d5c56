"""The voice connection for the player: the Discord side of :class:`core.player.VoiceOutput`.

- :class:`PacketSource`: a ``discord.AudioSource`` that hands the player's Opus packets
  (a :class:`core.packet_buffer.PacketBuffer`) to discord.py's player thread, no encoder needed.
- :class:`DiscordVoiceOutput`: :class:`core.player.VoiceOutput` over a guild's voice client,
  as far as the voice link's supervisor (:mod:`core.voice_link`) says it carries audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import discord

from edge_voice.core.audio import OPUS_FRAME_SECONDS
from edge_voice.core.packet_buffer import PacketBuffer
from edge_voice.core.player import PlaybackError, VoiceConnectionLost
from edge_voice.core.tts.errors import TTSError

log = logging.getLogger(__name__)

PLAYBACK_STALL_SECONDS = 15.0
"""How long discord.py's player may read nothing before playback is given up: it stops
reading while it waits for a voice reconnect, which may never come."""
SETTLE_WAIT = 1.0
"""Seconds playback waits for a connection discord.py is moving (new voice server or
channel; it takes about 20 ms) before the utterance is posted as text instead."""
SETTLE_POLL = 0.02


class PacketSource(discord.AudioSource):
    """Opus packets from a :class:`PacketBuffer`, read by discord.py's player thread.

    ``ended`` turns True once the buffer said it has no more audio, which tells a
    finished (or stalled-out) utterance apart from playback stopped from outside.
    """

    def __init__(self, buffer: PacketBuffer, *, wait: float = OPUS_FRAME_SECONDS) -> None:
        self.buffer = buffer
        self.wait = wait
        """How long a read waits for a packet: discord.py's player reads once per 20 ms
        and keeps its own schedule; the shared pacer must not wait at all (0)."""
        self.ended = False

    def read(self) -> bytes:
        """The next 20 ms packet (silence while synthesis lags), ``b""`` at the end."""
        packet = self.buffer.read(self.wait)
        if not packet:
            self.ended = True
        return packet

    def is_opus(self) -> bool:
        """Always True: the packets are Opus already, so discord.py needs no libopus."""
        return True

    def cleanup(self) -> None:
        """Close the buffer, so the feeding side stops at its next packet."""
        self.buffer.close()


class DiscordVoiceOutput:
    """Plays a :class:`PacketBuffer` on a guild's voice client.

    ``client`` returns the guild's voice client at each call, so one that a reconnect or
    a rejoin replaced is picked up. ``usable`` (default: the client says it is
    connected) tells whether the connection can carry audio now or within ``settle``
    seconds: the voice link's supervisor says no from a fault until it is back.
    Playback that ends without reaching the end of the buffer, and without :meth:`stop`,
    means the connection was lost: :class:`VoiceConnectionLost`.
    """

    def __init__(
        self,
        client: Callable[[], Any],
        *,
        usable: Callable[[], bool] | None = None,
        settle: float = SETTLE_WAIT,
        stall_after: float = PLAYBACK_STALL_SECONDS,
    ) -> None:
        self._client = client
        self._usable = usable
        self.settle = settle
        self.stall_after = stall_after
        self._stop_requested = False

    def is_connected(self) -> bool:
        """Whether audio played now would reach the channel."""
        if self._usable is not None:
            return self._usable()
        client = self._client()
        return client is not None and bool(client.is_connected())

    async def play(self, buffer: PacketBuffer) -> None:
        """Play ``buffer`` to its end; raise :class:`PlaybackError` or the buffer's
        synthesis error (a :class:`TTSError`) if playback failed."""
        client = await self._connected_client()
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[Exception | None] = loop.create_future()

        def resolve(error: Exception | None) -> None:
            if not finished.done():
                finished.set_result(error)

        def after(error: Exception | None) -> None:
            # Called on discord.py's player thread, after the source's last read.
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(resolve, error)

        source = self._source(buffer)
        self._stop_requested = False
        try:
            await self._begin(client, source, after)
        except (discord.ClientException, TypeError) as exc:
            source.cleanup()
            raise PlaybackError(f"could not start playback: {exc}") from exc
        try:
            error = await self._while_reading(finished, buffer)
        except asyncio.CancelledError:
            self._halt(client)
            raise
        except TimeoutError:
            self._halt(client)
            raise VoiceConnectionLost(
                f"voice playback stalled: nothing was read for {self.stall_after:g}s"
            ) from None
        finally:
            await self._ended(client)
        if isinstance(error, TTSError):
            raise error
        if error is not None:
            raise PlaybackError(f"voice playback failed: {error!r}") from error
        if not source.ended and not self._stop_requested:
            raise VoiceConnectionLost("voice connection lost")

    async def _connected_client(self) -> Any:
        """The voice client once it is connected; a move in progress gets ``settle`` s."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.settle
        while True:
            client = self._client()
            if not self.is_connected() or client is None:
                raise VoiceConnectionLost("not connected to voice")
            if client.is_connected():
                return client
            if loop.time() >= ends:
                raise VoiceConnectionLost("the voice connection did not settle")
            await asyncio.sleep(SETTLE_POLL)

    async def _while_reading(
        self, finished: asyncio.Future[Exception | None], buffer: PacketBuffer
    ) -> Exception | None:
        """Wait for ``finished`` as long as the player thread keeps reading packets."""
        seen = -1
        while True:
            progress = buffer.packets_read + buffer.silence_frames
            if progress == seen:
                raise TimeoutError
            seen = progress
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(finished), self.stall_after)

    def stop(self) -> None:
        """Stop the current playback; :meth:`play` then returns normally."""
        self._stop_requested = True
        client = self._client()
        if client is not None:
            self._halt(client)

    # How playback runs; the shared pacer (cogs/voice_pacing.py) replaces these three.

    def _source(self, buffer: PacketBuffer) -> PacketSource:
        return PacketSource(buffer)

    async def _begin(
        self, client: Any, source: PacketSource, after: Callable[[Exception | None], None]
    ) -> None:
        """Start playing ``source``; ``after(error)`` once it ended (from any thread)."""
        client.play(source, after=after)

    def _halt(self, client: Any) -> None:
        """Stop what ``client`` plays; ``after`` follows."""
        client.stop()

    async def _ended(self, client: Any) -> None:
        """Playback is over (however it ended)."""

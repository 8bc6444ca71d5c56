"""A socket-free voice client double for cog tests; ``tests.fakes.discord_harness`` installs it.

While a ``TestBot`` runs, ``channel.connect()`` returns a ``RecordingVoiceClient`` (also
``guild.voice_client``). ``play(source, after=...)`` runs a real player thread reading the source
back to back (set ``packet_interval`` for pacing), records packets (``vc.packets``; each call's
``Playback`` is in ``vc.plays``), then calls ``after(error)`` from that thread as discord does.
``await vc.wait_until_done()`` waits for it; ``vc.interrupt(error)`` simulates the connection
dropping mid-utterance. Non-Opus sources raise ``OpusNotLoaded`` (no libopus on Linux). The
``TestBot`` joins every player thread when it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import discord

from tests.fakes.slash import _member_payload

__all__ = ["Playback", "RecordingVoiceClient"]

log = logging.getLogger(__name__)

_players: list[_Player] = []  # every player thread started, joined at teardown


@dataclass
class Playback:
    """One ``play()`` call: what was read, and how it ended."""

    source: discord.AudioSource
    is_opus: bool
    packets: list[bytes] = field(default_factory=list)
    error: BaseException | None = None
    after_called: bool = False
    done: asyncio.Future[None] | None = None  # resolved on the loop once ``after`` has returned


class _Player(threading.Thread):
    def __init__(
        self,
        voice: RecordingVoiceClient,
        playback: Playback,
        after: Callable[[Exception | None], Any] | None,
    ) -> None:
        super().__init__(daemon=True, name=f"recording-player:{id(self):#x}")
        self.voice = voice
        self.playback = playback
        self.after = after
        self.end = threading.Event()
        self.resumed = threading.Event()
        self.resumed.set()
        self.injected_error: Exception | None = None

    def run(self) -> None:
        error: Exception | None = None
        source = self.playback.source
        try:
            while not self.end.is_set():
                if not self.resumed.is_set():
                    self.resumed.wait()
                    continue
                packet = source.read()
                if self.injected_error is not None:
                    error = self.injected_error
                    break
                if not packet:
                    error = getattr(source, "_current_error", None)
                    break
                self.playback.packets.append(packet)
                if self.voice.packet_interval:
                    time.sleep(self.voice.packet_interval)
        except Exception as exc:
            error = exc
        finally:
            self.end.set()
            self.playback.error = error
            self._call_after(error)
            source.cleanup()
            self._signal_done()

    def _call_after(self, error: Exception | None) -> None:
        if self.after is None:
            if error is not None:
                log.error("exception in recording player", exc_info=error)
            return
        self.playback.after_called = True
        try:
            self.after(error)
        except Exception:
            log.exception("calling the after function failed")

    def _signal_done(self) -> None:
        done = self.playback.done
        assert done is not None

        def resolve() -> None:
            if not done.done():
                done.set_result(None)

        with contextlib.suppress(RuntimeError):  # the loop may already be closed
            done.get_loop().call_soon_threadsafe(resolve)


def _feed_voice_state(member: discord.Member, channel: discord.abc.Snowflake | None) -> None:
    state: Any = member._state
    state.parse_voice_state_update(
        {
            "guild_id": str(member.guild.id),
            "channel_id": str(channel.id) if channel is not None else None,
            "user_id": str(member.id),
            "session_id": "test-session",
            "deaf": False,
            "mute": False,
            "self_deaf": False,
            "self_mute": False,
            "self_video": False,
            "suppress": False,
            "member": _member_payload(member),
        }
    )


class RecordingVoiceClient(discord.VoiceProtocol):
    """VoiceClient double without sockets: ``play()`` drains the source on a thread, recording."""

    packet_interval: float = 0.0  # seconds slept after each packet; 0 fast-forwards

    def __init__(self, client: discord.Client, channel: discord.abc.Connectable) -> None:
        super().__init__(client, channel)
        self.channel: Any = channel
        self.plays: list[Playback] = []
        self.moves: list[discord.abc.Snowflake] = []
        self._connected = threading.Event()
        self._player: _Player | None = None

    @property
    def guild(self) -> discord.Guild:
        guild: discord.Guild = self.channel.guild
        return guild

    @property
    def packets(self) -> list[bytes]:
        """Packets of every playback, in order."""
        return [packet for playback in self.plays for packet in playback.packets]

    @property
    def source(self) -> discord.AudioSource | None:
        return (
            self._player.playback.source if self._player and not self._player.end.is_set() else None
        )

    async def connect(
        self, *, timeout: float, reconnect: bool, self_deaf: bool = False, self_mute: bool = False
    ) -> None:
        self._connected.set()
        _feed_voice_state(self.guild.me, self.channel)

    async def disconnect(self, *, force: bool = False) -> None:
        if not force and not self.is_connected():
            return
        self.stop()
        self._connected.clear()
        if self.guild.me is not None:
            _feed_voice_state(self.guild.me, None)
        self.cleanup()

    async def move_to(
        self, channel: discord.abc.Snowflake | None, *, timeout: float | None = 30.0
    ) -> None:
        if channel is None:
            await self.disconnect(force=True)
            return
        self.moves.append(channel)
        self.channel = channel
        _feed_voice_state(self.guild.me, channel)

    async def on_voice_state_update(self, data: Any, /) -> None:
        return None

    async def on_voice_server_update(self, data: Any, /) -> None:
        return None

    def is_connected(self) -> bool:
        return self._connected.is_set()

    def is_playing(self) -> bool:
        player = self._player
        return player is not None and player.resumed.is_set() and not player.end.is_set()

    def is_paused(self) -> bool:
        player = self._player
        return player is not None and not player.end.is_set() and not player.resumed.is_set()

    def play(
        self,
        source: discord.AudioSource,
        *,
        after: Callable[[Exception | None], Any] | None = None,
        **_encoder_options: Any,
    ) -> None:
        """Like ``VoiceClient.play``: same checks, then a player thread drains ``source``."""
        if not self.is_connected():
            raise discord.ClientException("Not connected to voice.")
        if self.is_playing():
            raise discord.ClientException("Already playing audio.")
        if not isinstance(source, discord.AudioSource):
            raise TypeError(f"source must be an AudioSource not {source.__class__.__name__}")
        if after is not None and not callable(after):
            raise TypeError('Expected a callable for the "after" parameter.')
        if not source.is_opus():
            # Real VoiceClient builds an Opus encoder here, and libopus is missing on Linux.
            raise discord.opus.OpusNotLoaded()
        done = asyncio.get_running_loop().create_future()
        playback = Playback(source=source, is_opus=True, done=done)
        self.plays.append(playback)
        self._player = _Player(self, playback, after)
        _players.append(self._player)
        self._player.start()

    def stop(self) -> None:
        if self._player is not None:
            self._player.end.set()
            self._player.resumed.set()
            self._player = None

    def pause(self) -> None:
        if self._player is not None:
            self._player.resumed.clear()

    def resume(self) -> None:
        if self._player is not None:
            self._player.resumed.set()

    def interrupt(self, error: Exception | None = None, *, disconnect: bool = True) -> None:
        """Simulate the voice connection dropping mid-utterance: playback ends with ``error``."""
        if disconnect:
            self._connected.clear()
        player = self._player
        if player is not None:
            player.injected_error = error or ConnectionResetError("voice connection lost")
            player.resumed.set()

    async def wait_until_done(self, timeout: float = 5.0) -> Playback:
        """Wait until the latest playback ended and its ``after`` callback returned."""
        if not self.plays:
            raise RuntimeError("nothing was played")
        playback = self.plays[-1]
        assert playback.done is not None
        await asyncio.wait_for(asyncio.shield(playback.done), timeout)
        return playback


def _join_players(timeout: float) -> list[_Player]:
    """Stop and join every player thread; returns the ones still alive."""
    deadline = time.monotonic() + timeout
    for player in _players:
        player.end.set()
        player.resumed.set()
    for player in _players:
        player.join(max(0.0, deadline - time.monotonic()))
    stuck = [player for player in _players if player.is_alive()]
    _players[:] = stuck
    return stuck

"""The provider interface: one speech engine behind a common shape.

A provider turns one :class:`SynthesisRequest` into a stream of audio chunks in
its declared :class:`AudioFormat`. Providers raise only :class:`TTSError`; the
service above them owns breakers, retries, deadlines and fallback.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """What the bytes a provider yields are."""

    codec: str
    """``"mp3"`` (a stream of MPEG frames) or ``"pcm_s16le"`` (raw signed 16-bit)."""
    sample_rate: int
    channels: int


EDGE_MP3 = AudioFormat(codec="mp3", sample_rate=24_000, channels=1)
"""edge-tts 7.3.1 always asks for audio-24khz-48kbitrate-mono-mp3."""


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    """Voice and prosody, in edge-tts's string forms (``"+10%"``, ``"-5Hz"``)."""

    voice: str
    rate: str = "+0%"
    volume: str = "+0%"
    pitch: str = "+0Hz"
    backups: tuple[str, ...] | None = None
    """The voices tried after ``voice`` fails with a voice-scoped error, in order (the
    rest of the voice chain a guild's or person's choice gives); None: the service's
    configured backup voices. Providers ignore it: it is the service's to walk."""

    def with_voice(self, voice: str) -> VoiceSettings:
        """The same prosody (and backup voices) spoken by another voice."""
        return dataclasses.replace(self, voice=voice)


@dataclass(frozen=True, slots=True)
class SynthesisRequest:
    """Cleaned, validated text and the settings to speak it with."""

    text: str
    settings: VoiceSettings

    def with_voice(self, voice: str) -> SynthesisRequest:
        """The same text and prosody spoken by ``voice``."""
        return SynthesisRequest(self.text, self.settings.with_voice(voice))


@runtime_checkable
class TTSProvider(Protocol):
    """A speech engine.

    ``stream`` is an async generator: chunks are yielded as the engine produces
    them so playback can start early. It raises :class:`core.tts.errors.TTSError`
    and nothing else (besides ``asyncio.CancelledError``). A stream that ends
    normally delivered the complete utterance.
    """

    name: str
    audio_format: AudioFormat

    def stream(self, request: SynthesisRequest) -> AsyncGenerator[bytes, None]:
        """Yield the audio for ``request`` chunk by chunk."""
        ...

"""Offline speech with eSpeak NG, loaded through ctypes from the ``espeakng-loader`` wheel.

This module holds the provider, the mapping of Edge voices to eSpeak voices and the
prosody; the ctypes binding of the library is :mod:`core.tts.espeak_library`.

The library keeps all of its state in globals (voice, prosody, the audio callback), so
every provider runs its syntheses on one worker thread of its own and, in addition, holds
a per-library lock while it speaks: two providers in one process cannot interleave.

Synthesis is very fast (measured here: 1.6 s of speech in about 2 ms, 130 s in 180 ms),
but the audio still streams: each buffer eSpeak hands to the callback (60 ms of audio) is
passed to the event loop as it comes. The library is loaded and initialised on first use,
on the worker thread; a missing or broken library is reported then, never at import.

eSpeak's output is not bit-for-bit repeatable: its waveform generator carries phase and
pitch-flutter state from one utterance to the next, so the same text spoken twice differs
by a few milliseconds.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncGenerator, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Final

from edge_voice.core.tts.errors import ErrorKind, InvalidText, InvalidVoiceSettings, TTSError
from edge_voice.core.tts.espeak_library import (
    END_OF_AUDIO,
    ESPEAK_PCM,
    EspeakJob,
    EspeakProsody,
    JobItem,
    default_data_path,
    loaded_library,
)
from edge_voice.core.tts.provider import SynthesisRequest, VoiceSettings

DEFAULT_WORDS_PER_MINUTE: Final = 175
MIN_WORDS_PER_MINUTE: Final = 80
MAX_WORDS_PER_MINUTE: Final = 450

# Edge locales whose plain language would pick the wrong eSpeak voice.
_LANGUAGE_ALIASES: Final = {"zh-hk": "yue", "wuu": "cmn"}
_EDGE_VOICE = re.compile(r"^([a-z]{2,3})(?:-[a-z]{4})?(?:-([a-z]{2}|\d{3}))?(?:-.*)?$", re.I)
_PERCENT = re.compile(r"^([+-]\d{1,4})%$")
_HERTZ = re.compile(r"^([+-]\d{1,4})Hz$")
# eSpeak reads U+0001 as the start of an embedded command (speed, pitch...) even without SSML.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def espeak_voice_for(
    edge_voice: str,
    overrides: Mapping[str, str],
    available: Collection[str] | None = None,
) -> str:
    """The eSpeak voice to speak for an Edge voice such as ``"de-DE-KillianNeural"``.

    An override wins, looked up by the full voice name, then the locale (``"de-DE"``),
    then the language (``"de"``), case-insensitively. Otherwise the locale if eSpeak has
    it (``"en-us"``), else the language (``"de"``), else ``"en"``. ``available`` holds
    the language codes eSpeak knows (lower case); by default those in the wheel's data.
    """
    match = _EDGE_VOICE.match(edge_voice.strip())
    if match is None:
        raise InvalidVoiceSettings(f"not an Edge voice name: {edge_voice!r}")
    language = match.group(1).lower()
    region = (match.group(2) or language).lower()
    # A language's home region (fr-FR, de-DE) is what eSpeak's plain language voice speaks.
    locale = language if region == language else f"{language}-{region}"
    lowered = {key.strip().lower(): value.strip() for key, value in overrides.items()}
    for key in (edge_voice.strip().lower(), locale, language):
        if key in lowered:
            if not lowered[key]:
                raise InvalidVoiceSettings(f"empty eSpeak voice override for {key!r}")
            return lowered[key]
    known = available_espeak_languages() if available is None else available
    for candidate in (_LANGUAGE_ALIASES.get(locale), _LANGUAGE_ALIASES.get(language)):
        if candidate is not None and candidate in known:
            return candidate
    for candidate in (locale, language):
        if candidate in known:
            return candidate
    return "en"


def available_espeak_languages(data_path: str | None = None) -> frozenset[str]:
    """Language codes (lower case) the eSpeak data directory has voices for."""
    return _languages_in(data_path or default_data_path())


@lru_cache(maxsize=4)
def _languages_in(data_path: str) -> frozenset[str]:
    languages: set[str] = set()
    for voice_file in Path(data_path, "lang").rglob("*"):
        if not voice_file.is_file():
            continue
        # Voice files carry comments in legacy 8-bit encodings; the keys are ASCII.
        for line in voice_file.read_text(encoding="latin-1").splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "language":
                languages.add(fields[1].lower())
    return frozenset(languages)


def espeak_prosody(settings: VoiceSettings) -> EspeakProsody:
    """Map ``"+10%"`` rate/volume and ``"-5Hz"`` pitch to eSpeak's units.

    Rate scales the default 175 words per minute; volume scales 100; one eSpeak pitch
    step is taken as 2 Hz (the scale is logarithmic, this is an approximation).
    """
    rate = _signed(_PERCENT, settings.rate, "rate")
    volume = _signed(_PERCENT, settings.volume, "volume")
    pitch = _signed(_HERTZ, settings.pitch, "pitch")
    return EspeakProsody(
        words_per_minute=_clamp(
            round(DEFAULT_WORDS_PER_MINUTE * (100 + rate) / 100),
            MIN_WORDS_PER_MINUTE,
            MAX_WORDS_PER_MINUTE,
        ),
        volume=_clamp(100 + volume, 0, 200),
        pitch=_clamp(50 + round(pitch / 2), 0, 100),
    )


def _signed(pattern: re.Pattern[str], value: str, what: str) -> int:
    match = pattern.match(value)
    if match is None:
        unit = "Hz" if what == "pitch" else "%"
        raise InvalidVoiceSettings(
            f"{what} must look like '+10{unit}' or '-5{unit}', got {value!r}"
        )
    return int(match.group(1))


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


class EspeakProvider:
    """A :class:`core.tts.provider.TTSProvider` speaking offline with eSpeak NG.

    Requests are serialised on one worker thread, started on first use. ``voice_overrides``
    maps Edge voices, locales or languages to eSpeak voices (see :func:`espeak_voice_for`).
    ``library_path`` and ``data_path`` default to the ``espeakng-loader`` wheel's.
    Call :meth:`close` when done: it stops the worker thread.
    """

    name = "espeak"
    audio_format = ESPEAK_PCM

    def __init__(
        self,
        voice_overrides: Mapping[str, str] | None = None,
        *,
        library_path: str | None = None,
        data_path: str | None = None,
    ) -> None:
        self._overrides = dict(voice_overrides or {})
        self._library_path = library_path
        self._data_path = data_path
        self._state_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._active: set[EspeakJob] = set()
        self._closed = False

    async def stream(self, request: SynthesisRequest) -> AsyncGenerator[bytes, None]:
        """Yield 16-bit mono PCM at 22 050 Hz for ``request`` as eSpeak produces it.

        Cancelling the consumer (or closing the generator) aborts the synthesis.
        Raises :class:`TTSError`: INPUT for bad text or settings, NO_AUDIO when eSpeak
        produced only silence, UNAVAILABLE when the library cannot be loaded or the
        provider is closed, PROTOCOL for any failure the library reports.
        """
        text = _CONTROL_CHARS.sub(" ", request.text)
        if not text.strip():
            raise InvalidText("nothing to speak")
        job = EspeakJob(
            text.encode("utf-8", errors="replace"),
            request.settings,
            espeak_prosody(request.settings),
            asyncio.get_running_loop(),
        )
        self._submit(job)
        try:
            while True:
                item = await job.items.get()
                if isinstance(item, bytes):
                    yield item
                elif isinstance(item, TTSError):
                    raise item
                else:
                    return
        finally:
            job.cancelled.set()

    def close(self) -> None:
        """Abort running syntheses, drop queued ones and join the worker thread."""
        with self._state_lock:
            self._closed = True
            executor, self._executor = self._executor, None
            jobs = list(self._active)
        for job in jobs:
            job.cancelled.set()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def _submit(self, job: EspeakJob) -> None:
        with self._state_lock:
            if self._closed:
                raise TTSError(ErrorKind.UNAVAILABLE, "the eSpeak provider is closed")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak")
            future = self._executor.submit(self._run, job)
            self._active.add(job)

        def finished(done: Future[None]) -> None:
            with self._state_lock:
                self._active.discard(job)
            if done.cancelled():
                job.deliver(TTSError(ErrorKind.UNAVAILABLE, "the eSpeak provider was closed"))

        future.add_done_callback(finished)

    def _run(self, job: EspeakJob) -> None:
        # The worker must always answer its consumer, whatever goes wrong.
        outcome: JobItem
        try:
            voice = espeak_voice_for(
                job.settings.voice,
                self._overrides,
                available_espeak_languages(self._data_path),
            )
            loaded_library(self._library_path, self._data_path).speak(job, voice)
        except TTSError as exc:
            outcome = exc
        except Exception as exc:
            outcome = TTSError(ErrorKind.PROTOCOL, f"eSpeak NG failed: {exc!r}")
        else:
            if job.cancelled.is_set():
                outcome = TTSError(ErrorKind.UNAVAILABLE, "eSpeak synthesis was stopped")
            elif not job.audible:
                outcome = TTSError(ErrorKind.NO_AUDIO, "eSpeak NG produced only silence")
            else:
                outcome = END_OF_AUDIO
        job.deliver(outcome)

"""Offline speech with eSpeak NG, loaded through ctypes from the ``espeakng-loader`` wheel.

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
import ctypes
import importlib
import os
import re
import threading
from collections.abc import AsyncIterator, Collection, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Final

from core.tts.errors import ErrorKind, InvalidText, InvalidVoiceSettings, TTSError
from core.tts.provider import AudioFormat, SynthesisRequest, VoiceSettings

ESPEAK_PCM: Final = AudioFormat(codec="pcm_s16le", sample_rate=22_050, channels=1)
"""What eSpeak NG's bundled data produces; checked against ``espeak_Initialize`` at load."""

DEFAULT_WORDS_PER_MINUTE: Final = 175
MIN_WORDS_PER_MINUTE: Final = 80
MAX_WORDS_PER_MINUTE: Final = 450

# speak_lib.h (API revision 12, eSpeak NG 1.52)
_AUDIO_OUTPUT_SYNCHRONOUS: Final = 2
_INITIALIZE_DONT_EXIT: Final = 0x8000
_CHARS_UTF8: Final = 1
_POS_CHARACTER: Final = 1
_EE_OK: Final = 0
_EE_NOT_FOUND: Final = 2
_PARAM_RATE: Final = 1
_PARAM_VOLUME: Final = 2
_PARAM_PITCH: Final = 3

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _VoiceSpec(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    )


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
    return _languages_in(data_path or _default_data_path())


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


@dataclass(frozen=True, slots=True)
class EspeakProsody:
    """Edge prosody strings translated to eSpeak parameters, clamped to their ranges."""

    words_per_minute: int
    volume: int
    """0-200, 100 is normal."""
    pitch: int
    """0-100, 50 is normal."""


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


class _End:
    """Marks a synthesis that delivered all of its audio."""


_END: Final = _End()
_Item = bytes | _End | TTSError


class _Job:
    """One request's trip to the worker thread and the audio's trip back."""

    def __init__(
        self,
        text: bytes,
        settings: VoiceSettings,
        prosody: EspeakProsody,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.text = text
        self.settings = settings
        self.prosody = prosody
        self.items: asyncio.Queue[_Item] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.audible = False
        self.callback_error: BaseException | None = None
        self._loop = loop

    def deliver(self, item: _Item) -> None:
        """Hand an item to the consumer's event loop; callable from any thread."""
        try:
            self._loop.call_soon_threadsafe(self.items.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled.set()


class _EspeakLibrary:
    """One loaded, initialised copy of libespeak-ng and the job it is speaking."""

    def __init__(self, cdll: ctypes.CDLL, data_path: str) -> None:
        self.cdll = cdll
        self.data_path = data_path
        self.lock = threading.Lock()
        self._current: _Job | None = None
        # eSpeak keeps this pointer for the life of the process, so must we.
        self._callback = _SynthCallback(self._on_audio)
        cdll.espeak_SetSynthCallback(self._callback)

    def speak(self, job: _Job, voice: str) -> None:
        """Synthesize ``job`` on the calling thread, feeding its audio to ``job.deliver``."""
        with self.lock:
            if job.cancelled.is_set():
                return
            self._select_voice(voice)
            prosody = job.prosody
            # Parameters outlive voice changes and earlier requests: set all of them.
            for parameter, value in (
                (_PARAM_RATE, prosody.words_per_minute),
                (_PARAM_VOLUME, prosody.volume),
                (_PARAM_PITCH, prosody.pitch),
            ):
                self._check(self.cdll.espeak_SetParameter(parameter, value, 0), "SetParameter")
            self._current = job
            try:
                status = self.cdll.espeak_Synth(
                    job.text, len(job.text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
                )
                self._check(status, "Synth")
                self._check(self.cdll.espeak_Synchronize(), "Synchronize")
            finally:
                self._current = None
        if job.callback_error is not None:
            raise TTSError(
                ErrorKind.PROTOCOL, f"eSpeak NG audio callback failed: {job.callback_error!r}"
            )

    def _select_voice(self, voice: str) -> None:
        encoded = voice.encode()
        status = self.cdll.espeak_SetVoiceByName(encoded)
        if status == _EE_NOT_FOUND:
            # Language codes such as "en-gb" or "zh" are not file names; match them by language.
            spec = _VoiceSpec(languages=encoded)
            status = self.cdll.espeak_SetVoiceByProperties(ctypes.byref(spec))
        if status == _EE_NOT_FOUND:
            raise InvalidVoiceSettings(f"eSpeak NG has no voice or language {voice!r}")
        self._check(status, f"SetVoice({voice!r})")
        rate = self.cdll.espeak_ng_GetSampleRate()
        if rate != ESPEAK_PCM.sample_rate:
            raise InvalidVoiceSettings(
                f"eSpeak voice {voice!r} speaks at {rate} Hz, not {ESPEAK_PCM.sample_rate} Hz"
            )

    @staticmethod
    def _check(status: int, call: str) -> None:
        if status != _EE_OK:
            raise TTSError(ErrorKind.PROTOCOL, f"eSpeak NG espeak_{call} returned {status}")

    def _on_audio(self, wav: ctypes._Pointer[ctypes.c_short], samples: int, _events: int) -> int:
        # Runs inside espeak_Synth on the worker thread. Returning 1 aborts the synthesis;
        # an exception here would be swallowed by ctypes, so it is kept for the worker.
        job = self._current
        if job is None or job.cancelled.is_set():
            return 1
        try:
            if wav and samples > 0:
                chunk = ctypes.string_at(wav, samples * 2)
                if not job.audible and chunk.strip(b"\x00"):
                    job.audible = True
                job.deliver(chunk)
        except Exception as exc:
            job.callback_error = exc
            return 1
        return 0


_LIBRARIES: dict[str, _EspeakLibrary] = {}
_LIBRARIES_LOCK = threading.Lock()


def _loaded_library(library_path: str | None, data_path: str | None) -> _EspeakLibrary:
    """Load and initialise libespeak-ng once per process and path; errors as TTSError."""
    library_path = library_path or _default_library_path()
    data_path = data_path or _default_data_path()
    key = os.path.realpath(library_path)
    with _LIBRARIES_LOCK:
        library = _LIBRARIES.get(key)
        if library is not None:
            if library.data_path != data_path:
                raise TTSError(
                    ErrorKind.UNAVAILABLE,
                    f"eSpeak NG at {library_path} is already initialised with data "
                    f"{library.data_path}; it cannot switch to {data_path}",
                )
            return library
        try:
            cdll = ctypes.CDLL(library_path)
            cdll.espeak_Initialize.argtypes = (
                ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
            )  # fmt: skip
            cdll.espeak_SetSynthCallback.argtypes = (_SynthCallback,)
            cdll.espeak_SetSynthCallback.restype = None
            cdll.espeak_SetVoiceByName.argtypes = (ctypes.c_char_p,)
            cdll.espeak_SetVoiceByProperties.argtypes = (ctypes.POINTER(_VoiceSpec),)
            cdll.espeak_SetParameter.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int)
            cdll.espeak_Synth.argtypes = (
                ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
            )  # fmt: skip
        except (OSError, AttributeError) as exc:
            raise TTSError(
                ErrorKind.UNAVAILABLE, f"cannot load eSpeak NG from {library_path}: {exc}"
            ) from exc
        rate = cdll.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise TTSError(
                ErrorKind.UNAVAILABLE,
                f"eSpeak NG could not initialise with data {data_path} (returned {rate})",
            )
        if rate != ESPEAK_PCM.sample_rate:
            raise TTSError(
                ErrorKind.PROTOCOL,
                f"eSpeak NG produces {rate} Hz, this provider declares {ESPEAK_PCM.sample_rate} Hz",
            )
        library = _EspeakLibrary(cdll, data_path)
        _LIBRARIES[key] = library
        return library


def _default_library_path() -> str:
    return str(_loader().get_library_path())


def _default_data_path() -> str:
    try:
        return str(_loader().get_data_path())
    except RuntimeError as exc:  # the wheel's own "data path not exists"
        raise TTSError(ErrorKind.UNAVAILABLE, f"no eSpeak NG data: {exc}") from exc


def _loader() -> ModuleType:
    # Imported on first use so that a missing wheel is reported there, not at import.
    try:
        return importlib.import_module("espeakng_loader")
    except ImportError as exc:
        raise TTSError(ErrorKind.UNAVAILABLE, "the espeakng-loader package is missing") from exc


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
        self._active: set[_Job] = set()
        self._closed = False

    async def stream(self, request: SynthesisRequest) -> AsyncIterator[bytes]:
        """Yield 16-bit mono PCM at 22 050 Hz for ``request`` as eSpeak produces it.

        Cancelling the consumer (or closing the generator) aborts the synthesis.
        Raises :class:`TTSError`: INPUT for bad text or settings, NO_AUDIO when eSpeak
        produced only silence, UNAVAILABLE when the library cannot be loaded or the
        provider is closed, PROTOCOL for any failure the library reports.
        """
        text = _CONTROL_CHARS.sub(" ", request.text)
        if not text.strip():
            raise InvalidText("nothing to speak")
        job = _Job(
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

    def _submit(self, job: _Job) -> None:
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

    def _run(self, job: _Job) -> None:
        # The worker must always answer its consumer, whatever goes wrong.
        outcome: _Item
        try:
            voice = espeak_voice_for(
                job.settings.voice,
                self._overrides,
                available_espeak_languages(self._data_path),
            )
            _loaded_library(self._library_path, self._data_path).speak(job, voice)
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
                outcome = _END
        job.deliver(outcome)

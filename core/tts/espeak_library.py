"""The ctypes binding of libespeak-ng: loading it, its function signatures, and speaking.

eSpeak NG keeps all of its state in globals (voice, prosody, the audio callback), so the
library is loaded and initialised once per process and path (:func:`loaded_library`), and
:meth:`EspeakLibrary.speak` holds a per-library lock while it speaks: two providers in one
process cannot interleave. Loading happens on first use, on the provider's worker thread;
a missing or broken library is reported then as a :class:`TTSError`, never at import.

A request travels to the worker thread as an :class:`EspeakJob`; the audio comes back
through the job's queue, each buffer eSpeak hands to the callback (60 ms of audio) as it
comes.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib
import os
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Final

from edge_voice.core.tts.errors import ErrorKind, InvalidVoiceSettings, TTSError
from edge_voice.core.tts.provider import AudioFormat, VoiceSettings

ESPEAK_PCM: Final = AudioFormat(codec="pcm_s16le", sample_rate=22_050, channels=1)
"""What eSpeak NG's bundled data produces; checked against ``espeak_Initialize`` at load."""

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


@dataclass(frozen=True, slots=True)
class EspeakProsody:
    """Edge prosody strings translated to eSpeak parameters, clamped to their ranges."""

    words_per_minute: int
    volume: int
    """0-200, 100 is normal."""
    pitch: int
    """0-100, 50 is normal."""


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


class _End:
    """Marks a synthesis that delivered all of its audio."""


END_OF_AUDIO: Final = _End()
"""The last item of a job that succeeded."""
JobItem = bytes | _End | TTSError
"""What a job's queue carries: audio, then :data:`END_OF_AUDIO` or the error that ended it."""


class EspeakJob:
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
        self.items: asyncio.Queue[JobItem] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.audible = False
        self.callback_error: BaseException | None = None
        self._loop = loop

    def deliver(self, item: JobItem) -> None:
        """Hand an item to the consumer's event loop; callable from any thread."""
        try:
            self._loop.call_soon_threadsafe(self.items.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled.set()


class EspeakLibrary:
    """One loaded, initialised copy of libespeak-ng and the job it is speaking."""

    def __init__(self, cdll: ctypes.CDLL, data_path: str) -> None:
        self.cdll = cdll
        self.data_path = data_path
        self.lock = threading.Lock()
        self._current: EspeakJob | None = None
        # eSpeak keeps this pointer for the life of the process, so must we.
        self._callback = _SynthCallback(self._on_audio)
        cdll.espeak_SetSynthCallback(self._callback)

    def speak(self, job: EspeakJob, voice: str) -> None:
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


_LIBRARIES: dict[str, EspeakLibrary] = {}
_LIBRARIES_LOCK = threading.Lock()


def loaded_library(library_path: str | None, data_path: str | None) -> EspeakLibrary:
    """Load and initialise libespeak-ng once per process and path; errors as TTSError."""
    library_path = library_path or _default_library_path()
    data_path = data_path or default_data_path()
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
        library = EspeakLibrary(cdll, data_path)
        _LIBRARIES[key] = library
        return library


def _default_library_path() -> str:
    return str(_loader().get_library_path())


def default_data_path() -> str:
    """The ``espeakng-loader`` wheel's eSpeak NG data directory; errors as TTSError."""
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

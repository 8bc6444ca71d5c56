"""``python bot.py check``: can this machine speak, without Discord?

Runs the diagnostics (DNS, TCP, TLS, WebSocket, test synthesis), then sends a
test phrase through the whole pipeline the voice cog uses (``TTSService.stream``
into :func:`core.audio.opus_packets`) and counts the Opus packets that come out.
When ``[fallback] on_open`` uses the offline voice, the phrase is spoken with it too.
Then every breaker's state is shown. Speech works when packets come out; the RESULT
line names the cause when they don't: the input (a bad rate is not a network
problem), else the diagnosis, else the speech test's own error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from edge_voice.core.audio import OPUS_FRAME_SECONDS, missing_codecs, opus_packets
from edge_voice.core.breaker import CircuitOpenError
from edge_voice.core.clock import Clock, monotonic
from edge_voice.core.config import Config
from edge_voice.core.diagnostics.checks import CheckDeadlines
from edge_voice.core.diagnostics.report import BreakerSummary, Diagnosis, Verdict, render_text
from edge_voice.core.diagnostics.service_check import diagnose_service
from edge_voice.core.tts.errors import ErrorKind, TTSError
from edge_voice.core.tts.espeak import EspeakProvider
from edge_voice.core.tts.provider import AudioFormat, SynthesisRequest, VoiceSettings
from edge_voice.core.tts.service import TTSService
from edge_voice.core.tts.service_from_config import service_from_config
from edge_voice.core.tts.text import check_speakable

TEST_PHRASE = "Dies ist ein Test der Sprachausgabe."


@dataclass(frozen=True)
class SpeechTestResult:
    """What the test phrase produced: Opus packets, or the error that stopped it."""

    packets: int
    first_packet_ms: float | None
    elapsed_ms: float
    error: str | None = None
    error_kind: ErrorKind | None = None
    """The kind of a :class:`TTSError` that stopped it (None for other errors)."""

    @property
    def ok(self) -> bool:
        """Speech works: packets came out and nothing failed."""
        return self.error is None and self.packets > 0

    def describe(self) -> str:
        """``OK: n Opus packets (...)`` or ``FAILED after ... ms: why``."""
        if self.ok:
            seconds = self.packets * OPUS_FRAME_SECONDS
            first = f", first after {self.first_packet_ms:.0f} ms" if self.first_packet_ms else ""
            return f"OK: {self.packets} Opus packets ({seconds:.1f} s of audio{first})"
        return f"FAILED after {self.elapsed_ms:.0f} ms: {self.error or 'no audio'}"


@dataclass(frozen=True)
class SelfCheckReport:
    """The whole check: where the config came from, the diagnosis, the speech test."""

    config_source: str
    target: str
    """The ``host:port`` the diagnostics checked."""
    diagnosis: Diagnosis
    speech: SpeechTestResult
    missing_codecs: tuple[str, ...] = ()
    offline: SpeechTestResult | None = None
    """The offline voice's test, when ``[fallback] on_open`` uses it."""
    breakers: tuple[BreakerSummary, ...] = ()
    """Every breaker after the speech test."""

    @property
    def ok(self) -> bool:
        """True when the bot can speak, and so can its offline voice if it has one."""
        return self.speech.ok and (self.offline is None or self.offline.ok)

    @property
    def exit_code(self) -> int:
        """0 when the bot can speak, 1 otherwise."""
        return 0 if self.ok else 1

    def render(self) -> str:
        """The report as plain text for a terminal."""
        codecs = (
            "PyAV lacks " + ", ".join(self.missing_codecs)
            if self.missing_codecs
            else "mp3 decoder and libopus encoder present"
        )
        lines = [
            "TTS self-check",
            f"Config: {self.config_source} (valid)",
            f"Audio: {codecs}",
            "",
            render_text(self.diagnosis),
            "",
            f"Speech test (service -> Opus packets): {self.speech.describe()}",
        ]
        if self.offline is not None:
            lines.append(
                f"Offline voice test (eSpeak NG -> Opus packets): {self.offline.describe()}"
            )
        if self.breakers:
            lines.append("Breakers after the speech test:")
            lines += [f"  - {breaker.describe()}" for breaker in self.breakers]
        lines += ["", self.result_line()]
        return "\n".join(lines)

    def result_line(self) -> str:
        """The last line: OK, or FAIL with the cause that explains it."""
        speech, offline = self.speech, self.offline
        if speech.ok and offline is not None and not offline.ok:
            return (
                "RESULT: FAIL - Edge speaks, but the offline voice ([fallback] on_open) does "
                f"not: {offline.error or 'no audio came out'}"
            )
        if speech.ok and self.diagnosis.verdict is Verdict.HEALTHY:
            return "RESULT: OK - speech works."
        if speech.ok:
            return (
                "RESULT: OK - speech works, although the diagnostics above found a problem "
                f"on the path to {self.target}."
            )
        meanwhile = ""
        # The offline voice stands in during outages; refused input is refused either way.
        if offline is not None and offline.ok and speech.error_kind is not ErrorKind.INPUT:
            meanwhile = " (meanwhile listeners hear the offline voice)"
        return f"RESULT: FAIL - the bot cannot speak: {self.cause()}{meanwhile}"

    def cause(self) -> str:
        """Why the speech test failed, most specific first: input the service refused
        (no network fixes that), else what the diagnosis found, else the test's error."""
        speech = self.speech
        if speech.error_kind is ErrorKind.INPUT:
            return speech.error or "the input was refused"
        if self.diagnosis.verdict is not Verdict.HEALTHY:
            return self.diagnosis.headline
        return speech.error or "no audio came out"


async def speak_test_phrase(
    service: TTSService,
    text: str = TEST_PHRASE,
    *,
    bitrate_kbps: int = 64,
    clock: Clock = monotonic,
) -> SpeechTestResult:
    """Synthesize ``text`` through ``service`` and convert it to Opus; never raises."""
    return await _count_packets(
        lambda: service.stream(text), service.provider.audio_format, bitrate_kbps, clock
    )


async def speak_offline_test_phrase(
    config: Config, text: str = TEST_PHRASE, *, clock: Clock = monotonic
) -> SpeechTestResult:
    """Speak ``text`` with the offline voice (eSpeak NG) as the fallback would; never raises."""
    provider = EspeakProvider(config.fallback.offline_voices)
    speech = config.speech
    settings = VoiceSettings(speech.voice_chain[0], speech.rate, speech.volume, speech.pitch)

    def chunks() -> AsyncIterator[bytes]:
        request = SynthesisRequest(check_speakable(text, max_chars=config.text.max_chars), settings)
        return provider.stream(request)

    try:
        return await _count_packets(
            chunks, provider.audio_format, config.player.bitrate_kbps, clock
        )
    finally:
        # Joins the provider's worker thread: off the loop.
        await asyncio.to_thread(provider.close)


async def _count_packets(
    chunks: Callable[[], AsyncIterator[bytes]],
    audio_format: AudioFormat,
    bitrate_kbps: int,
    clock: Clock,
) -> SpeechTestResult:
    started = clock()
    packets = 0
    first: float | None = None
    error: str | None = None
    kind: ErrorKind | None = None
    try:
        async with contextlib.aclosing(
            opus_packets(chunks(), audio_format, bitrate=bitrate_kbps * 1000)
        ) as stream:
            async for _packet in stream:
                if first is None:
                    first = (clock() - started) * 1000
                packets += 1
    except TTSError as exc:
        error = str(exc)  # starts with the kind: "network [voice]: ..."
        kind = exc.kind
    except CircuitOpenError as exc:
        error = f"breaker open: {exc}"
    except Exception as exc:  # the check reports; it must not crash with a traceback
        error = f"unexpected {type(exc).__name__}: {exc}"
    return SpeechTestResult(packets, first, (clock() - started) * 1000, error, kind)


async def run_self_check(
    config: Config,
    config_source: str,
    *,
    service: TTSService | None = None,
    deadlines: CheckDeadlines | None = None,
    text: str = TEST_PHRASE,
) -> SelfCheckReport:
    """Diagnose the path to Edge, speak ``text`` through the whole pipeline (and with the
    offline voice when ``[fallback] on_open`` uses it), then read every breaker."""
    service = service or service_from_config(config)
    diagnosis = await diagnose_service(service, config.edge, deadlines=deadlines)
    speech = await speak_test_phrase(service, text, bitrate_kbps=config.player.bitrate_kbps)
    offline = None
    if config.fallback.on_open != "text":
        offline = await speak_offline_test_phrase(config, text)
    breakers = tuple(BreakerSummary.from_snapshot(b.snapshot()) for b in service.breakers)
    target = f"{config.edge.host}:{config.edge.port}"
    return SelfCheckReport(
        config_source,
        target,
        diagnosis,
        speech,
        tuple(missing_codecs()),
        offline=offline,
        breakers=breakers,
    )

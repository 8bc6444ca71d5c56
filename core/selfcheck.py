"""``python bot.py check``: can this machine speak, without Discord?

Runs the diagnostics (DNS, TCP, TLS, WebSocket, test synthesis), then sends a
test phrase through the whole pipeline the voice cog uses (``TTSService.stream``
into :func:`core.audio.opus_packets`) and counts the Opus packets that come out.
Speech works when packets come out; the diagnosis explains why they didn't.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from edge_voice.core.audio import OPUS_FRAME_SECONDS, missing_codecs, opus_packets
from edge_voice.core.breaker import CircuitOpenError
from edge_voice.core.clock import Clock, monotonic
from edge_voice.core.config import Config
from edge_voice.core.diagnostics.checks import CheckDeadlines
from edge_voice.core.diagnostics.report import Diagnosis, Verdict, render_text
from edge_voice.core.diagnostics.service_check import diagnose_service
from edge_voice.core.tts.errors import TTSError
from edge_voice.core.tts.service import TTSService

TEST_PHRASE = "Dies ist ein Test der Sprachausgabe."


@dataclass(frozen=True)
class SpeechTestResult:
    """What the test phrase produced: Opus packets, or the error that stopped it."""

    packets: int
    first_packet_ms: float | None
    elapsed_ms: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Speech works: packets came out and nothing failed."""
        return self.error is None and self.packets > 0


@dataclass(frozen=True)
class SelfCheckReport:
    """The whole check: where the config came from, the diagnosis, the speech test."""

    config_source: str
    target: str
    """The ``host:port`` the diagnostics checked."""
    diagnosis: Diagnosis
    speech: SpeechTestResult
    missing_codecs: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the bot can speak."""
        return self.speech.ok

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
        speech = self.speech
        if speech.ok:
            seconds = speech.packets * OPUS_FRAME_SECONDS
            first = (
                f", first after {speech.first_packet_ms:.0f} ms" if speech.first_packet_ms else ""
            )
            said = f"OK: {speech.packets} Opus packets ({seconds:.1f} s of audio{first})"
        else:
            said = f"FAILED after {speech.elapsed_ms:.0f} ms: {speech.error or 'no audio'}"
        lines = [
            "TTS self-check",
            f"Config: {self.config_source} (valid)",
            f"Audio: {codecs}",
            "",
            render_text(self.diagnosis),
            "",
            f"Speech test (service -> Opus packets): {said}",
            "",
        ]
        if self.ok and self.diagnosis.verdict is Verdict.HEALTHY:
            lines.append("RESULT: OK - speech works.")
        elif self.ok:
            lines.append(
                "RESULT: OK - speech works, although the diagnostics above found a problem "
                f"on the path to {self.target}."
            )
        else:
            why = self.diagnosis.headline
            if self.diagnosis.verdict is Verdict.HEALTHY:
                why = speech.error or "no audio came out"
            lines.append(f"RESULT: FAIL - the bot cannot speak: {why}")
        return "\n".join(lines)


async def speak_test_phrase(
    service: TTSService,
    text: str = TEST_PHRASE,
    *,
    bitrate_kbps: int = 64,
    clock: Clock = monotonic,
) -> SpeechTestResult:
    """Synthesize ``text`` through ``service`` and convert it to Opus; never raises."""
    started = clock()
    packets = 0
    first: float | None = None
    error: str | None = None
    chunks = service.stream(text)
    try:
        async with contextlib.aclosing(
            opus_packets(chunks, service.provider.audio_format, bitrate=bitrate_kbps * 1000)
        ) as stream:
            async for _packet in stream:
                if first is None:
                    first = (clock() - started) * 1000
                packets += 1
    except TTSError as exc:
        error = str(exc)  # starts with the kind: "network [voice]: ..."
    except CircuitOpenError as exc:
        error = f"breaker open: {exc}"
    except Exception as exc:  # the check reports; it must not crash with a traceback
        error = f"unexpected {type(exc).__name__}: {exc}"
    return SpeechTestResult(packets, first, (clock() - started) * 1000, error)


async def run_self_check(
    config: Config,
    config_source: str,
    *,
    service: TTSService | None = None,
    deadlines: CheckDeadlines | None = None,
    text: str = TEST_PHRASE,
) -> SelfCheckReport:
    """Diagnose the path to Edge, then speak ``text`` through the whole pipeline."""
    service = service or TTSService.from_config(config)
    diagnosis = await diagnose_service(service, config.edge, deadlines=deadlines)
    speech = await speak_test_phrase(service, text, bitrate_kbps=config.player.bitrate_kbps)
    target = f"{config.edge.host}:{config.edge.port}"
    return SelfCheckReport(config_source, target, diagnosis, speech, tuple(missing_codecs()))

"""Diagnostics report: the pure classification and its text and data forms."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge_voice.core.diagnostics.report import (
    CheckResult,
    DiagnosticsResult,
    DnsResult,
    HandshakeResult,
    SynthesisResult,
    TcpResult,
    TlsResult,
    Verdict,
    diagnose,
    render_text,
)
from edge_voice.core.tts.errors import ErrorKind

# As in the check tests: an unclosed resource (here, the subprocess's pipes) is a leak.
pytestmark = pytest.mark.filterwarnings("error::ResourceWarning")


def healthy() -> DiagnosticsResult:
    return DiagnosticsResult(
        host="speech.platform.bing.com",
        port=443,
        dns=DnsResult(ok=True, latency_ms=3.0, detail="ok", addresses=("1.2.3.4",)),
        tcp=TcpResult(ok=True, latency_ms=20.0, detail="ok"),
        tls=TlsResult(ok=True, latency_ms=40.0, detail="ok", issuer="CN=Microsoft Azure RSA"),
        websocket=HandshakeResult(ok=True, latency_ms=60.0, status=101, detail="ok"),
        synthesis=SynthesisResult(ok=True, latency_ms=500.0, detail="ok"),
    )


PROBE_ORDER = ("dns", "tcp", "tls", "websocket", "synthesis")
RESULT_TYPES: dict[str, type[CheckResult]] = {
    "dns": DnsResult,
    "tcp": TcpResult,
    "tls": TlsResult,
    "websocket": HandshakeResult,
    "synthesis": SynthesisResult,
}


def failing(**changes: Any) -> DiagnosticsResult:
    """The healthy result with a failed check; later checks skipped as run_diagnostics does."""
    result = replace(healthy(), **changes)
    first = next(p for p in result.checks if p.failed)
    later = PROBE_ORDER[PROBE_ORDER.index(first.name.value) + 1 :]
    return replace(result, **{f: RESULT_TYPES[f].skipped_after(first) for f in later})


REPORT_CASES = [
    ("all fine", healthy(), Verdict.HEALTHY, ["Healthy"]),
    (
        "no synthesizer",
        replace(healthy(), synthesis=SynthesisResult(ok=False, skipped=True)),
        Verdict.HEALTHY,
        ["network path"],
    ),
    (
        "dns",
        failing(dns=DnsResult(ok=False, detail="Name or service not known")),
        Verdict.DNS,
        ["Cannot resolve speech.platform.bing.com", "DNS settings"],
    ),
    (
        "tcp refused",
        failing(tcp=TcpResult(ok=False, refused=True)),
        Verdict.NETWORK,
        ["refused", "firewall", "proxy"],
    ),
    (
        "tcp timeout",
        failing(tcp=TcpResult(ok=False, timed_out=True)),
        Verdict.NETWORK,
        ["timed out", "firewall"],
    ),
    (
        "tls intercepted",
        failing(tls=TlsResult(ok=False, verify_message="self-signed", issuer="CN=Zscaler")),
        Verdict.TLS,
        ["certificate issued by CN=Zscaler", "intercepting proxy", "CA certificates"],
    ),
    (
        "tls expired",
        failing(tls=TlsResult(ok=False, verify_message="certificate has expired")),
        Verdict.TLS,
        ["expired", "system clock"],
    ),
    (
        "403 and skew",
        failing(websocket=HandshakeResult(ok=False, status=403, skew_seconds=-900.4)),
        Verdict.CLOCK_SKEW,
        ["900 s ahead of", "NTP", "edge-tts 7.3.1 is installed"],
    ),
    (
        "403 small skew",
        failing(websocket=HandshakeResult(ok=False, status=403, skew_seconds=2.0)),
        Verdict.REJECTED,
        ["clocks agree", "edge-tts 7.3.1 is probably stale", "pip install -U edge-tts"],
    ),
    (
        "403 no date",
        failing(websocket=HandshakeResult(ok=False, status=403)),
        Verdict.REJECTED,
        ["no usable Date", "stale"],
    ),
    (
        "429",
        failing(websocket=HandshakeResult(ok=False, status=429)),
        Verdict.RATE_LIMITED,
        ["HTTP 429", "5 minutes"],
    ),
    (
        "502",
        failing(websocket=HandshakeResult(ok=False, status=502)),
        Verdict.OUTAGE,
        ["outage (HTTP 502)"],
    ),
    (
        "ws timeout",
        failing(websocket=HandshakeResult(ok=False, timed_out=True)),
        Verdict.NETWORK,
        ["WebSocket", "timed out"],
    ),
    (
        "synthesis no audio",
        replace(healthy(), synthesis=SynthesisResult(ok=False, error_kind=ErrorKind.NO_AUDIO)),
        Verdict.SYNTHESIS,
        ["(no_audio)", "outage or a blocked voice", "another voice"],
    ),
    (
        "synthesis rate limited",
        replace(healthy(), synthesis=SynthesisResult(ok=False, error_kind=ErrorKind.RATE_LIMITED)),
        Verdict.RATE_LIMITED,
        ["5 minutes"],
    ),
]


@pytest.mark.parametrize(
    ("results", "verdict", "phrases"),
    [case[1:] for case in REPORT_CASES],
    ids=[case[0] for case in REPORT_CASES],
)
def test_diagnose_names_the_first_problem(
    results: DiagnosticsResult, verdict: Verdict, phrases: list[str]
) -> None:
    diagnosis = diagnose(results, edge_tts_version="7.3.1")
    assert diagnosis.verdict is verdict
    text = render_text(diagnosis)
    for phrase in phrases:
        assert phrase in text
    assert diagnosis.as_dict()["headline"] == diagnosis.headline


OPEN_BREAKER = {
    "name": "edge:de-DE-KatjaNeural",
    "state": "OPEN",
    "consecutive_failures": 5,
    "failure_rate": 0.8,
    "last_failure": datetime(2026, 11, 22, 11, 0, 5, tzinfo=UTC),
    "last_failure_reason": "no_audio",
    "retry_after": 42.4,
    "trips": 2,
    "window_calls": 10,
}
CLOSED_BREAKER = {
    "name": "edge",
    "state": "CLOSED",
    "consecutive_failures": 0,
    "failure_rate": 0.0,
    "last_failure": None,
    "retry_after": 0.0,
    "trips": 0,
}


def test_breakers_are_reported_in_text_and_data() -> None:
    diagnosis = diagnose(healthy(), [OPEN_BREAKER, CLOSED_BREAKER])
    text = render_text(diagnosis)
    assert (
        "edge:de-DE-KatjaNeural: OPEN, 5 consecutive failures, failure rate 80%, 2 trips, "
        "last failure 2026-11-22T11:00:05+00:00 (no_audio), next trial in 43 s"
    ) in text
    assert "edge: CLOSED, 0 consecutive failures" in text
    assert any("/tts reset" in fix for fix in diagnosis.fixes)

    data = diagnosis.as_dict()
    json.dumps(data)
    assert [b["state"] for b in data["breakers"]] == ["OPEN", "CLOSED"]
    assert data["breakers"][0]["retry_after"] == 42.4
    assert data["breakers"][0]["last_failure"] == "2026-11-22T11:00:05+00:00"
    assert [p["name"] for p in data["checks"]] == [
        "dns",
        "tcp",
        "tls",
        "websocket",
        "synthesis",
    ]
    assert data["checks"][3] == {
        "name": "websocket",
        "ok": True,
        "skipped": False,
        "latency_ms": 60.0,
        "detail": "ok",
    }


def test_render_marks_failed_and_skipped_probes() -> None:
    text = render_text(diagnose(failing(tcp=TcpResult(ok=False, refused=True, latency_ms=1.2))))
    assert text.splitlines()[0].startswith("Diagnosis: TCP connection")
    assert "[  ok] dns" in text
    assert "[FAIL] tcp" in text
    assert "[skip] synthesis" in text


def test_report_imports_no_network_or_asyncio() -> None:
    code = (
        "import sys, core.diagnostics, core.diagnostics.report; "
        "print(sorted(m for m in ('asyncio', 'aiohttp', 'socket', 'ssl', 'edge_tts', 'discord') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=30,
    )
    assert out.stdout.strip() == "[]"

"""Diagnostics: probes against local servers (127.0.0.1 only) and the pure report."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.clock import FakeClock
from core.diagnostics.certificates import certificate_issuer
from core.diagnostics.probes import (
    ProbeDeadlines,
    probe_dns,
    probe_synthesis,
    probe_tls,
    probe_websocket,
    run_diagnostics,
)
from core.diagnostics.report import (
    DiagnosticsResult,
    DnsResult,
    HandshakeResult,
    ProbeResult,
    SynthesisResult,
    TcpResult,
    TlsResult,
    Verdict,
    diagnose,
    render_text,
)
from core.tts.errors import ErrorKind, TTSError

# An unclosed transport or session is a leak even if the garbage collector closes it.
pytestmark = pytest.mark.filterwarnings("error::ResourceWarning")

LOCAL = "127.0.0.1"
FAST = ProbeDeadlines(dns=2.0, tcp=2.0, tls=2.0, websocket=2.0, synthesis=2.0)
Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- helpers ------------------------------------------------------------------


def socket_inodes() -> set[str]:
    """The sockets this process holds open, as /proc link targets ("socket:[inode]")."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:"):
                found.add(target)
    return found


@contextlib.asynccontextmanager
async def no_socket_leak() -> AsyncIterator[None]:
    """Fail if sockets opened inside the block (by probes or by the local servers'
    connection handlers, which close when the probe hangs up) are still open."""
    before = socket_inodes()
    yield
    for _ in range(200):  # the servers' side closes a few loop iterations later
        if socket_inodes() <= before:
            return
        await asyncio.sleep(0.01)
    assert socket_inodes() <= before, f"leaked sockets: {socket_inodes() - before}"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "WS_PROXY", "WSS_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(LOCAL, "localhost").configure_cert(context)
    return context


def self_signed_context(tmp_path: Path, common_name: str) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOCAL))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


@contextlib.asynccontextmanager
async def raw_server(context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """A TCP (or TLS) server that accepts and never says anything; yields its port."""

    async def stay_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.read()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    server = await asyncio.start_server(stay_silent, LOCAL, 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def edge_server(server_context: ssl.SSLContext) -> AsyncIterator[Callable[[Reply], Any]]:
    """Start a local TLS aiohttp server answering /edge/v1 with ``reply``; returns its port."""
    servers: list[TestServer] = []

    async def start(reply: Reply) -> int:
        app = web.Application()
        app.router.add_get("/edge/v1", reply)
        server = TestServer(app, host=LOCAL)
        await server.start_server(ssl=server_context)
        servers.append(server)
        assert server.port is not None
        return server.port

    yield start
    for server in servers:
        await server.close()


def refuse(status: int, date: float | None = None) -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        headers = {} if date is None else {"Date": formatdate(date, usegmt=True)}
        return web.Response(status=status, headers=headers)

    return reply


def accept(seen: list[web.Request] | None = None) -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        if seen is not None:
            seen.append(request)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    return reply


def ws_url(port: int) -> str:
    return f"wss://{LOCAL}:{port}/edge/v1?TrustedClientToken=test"


async def run_against(port: int, context: ssl.SSLContext, **kwargs: Any) -> DiagnosticsResult:
    return await run_diagnostics(
        host=LOCAL, port=port, ws_url=ws_url(port), ssl_context=context, deadlines=FAST, **kwargs
    )


async def speak_ok() -> bytes:
    return b"\xff\xf3" * 72


# -- probes against local servers ---------------------------------------------


async def test_dns_resolves_localhost_and_fails_for_invalid_names() -> None:
    found = await probe_dns("localhost", 443, deadline=2.0)
    assert found.ok
    assert found.addresses
    assert set(found.addresses) <= {"127.0.0.1", "::1"}
    assert found.latency_ms is not None

    missing = await probe_dns("no-such-host.invalid", 443, deadline=5.0)
    assert not missing.ok
    assert not missing.skipped
    assert "no-such-host.invalid" in missing.detail


async def test_dns_failure_skips_every_later_probe() -> None:
    called = False

    async def synthesize() -> bytes:
        nonlocal called
        called = True
        return b""

    result = await run_diagnostics(synthesize, host="edge.invalid", deadlines=FAST)
    assert result.dns.failed
    assert all(p.skipped for p in result.probes[1:])
    assert result.synthesis.detail == "skipped: dns probe failed"
    assert not called
    assert diagnose(result).verdict is Verdict.DNS


async def test_refused_port_is_diagnosed_as_firewall_or_proxy() -> None:
    with socket.socket() as placeholder:
        placeholder.bind((LOCAL, 0))
        port = placeholder.getsockname()[1]
    async with no_socket_leak():
        result = await run_diagnostics(host=LOCAL, port=port, deadlines=FAST)
    assert result.tcp.refused
    assert result.tls.skipped
    assert result.websocket.skipped
    diagnosis = diagnose(result)
    assert diagnosis.verdict is Verdict.NETWORK
    assert "refused" in diagnosis.headline
    assert "firewall" in diagnosis.headline


async def test_self_signed_certificate_is_a_tls_diagnosis_naming_the_issuer(
    tmp_path: Path,
) -> None:
    context = self_signed_context(tmp_path, "Intercepting Test Proxy")
    async with raw_server(context) as port, no_socket_leak():
        result = await run_diagnostics(host=LOCAL, port=port, deadlines=FAST)
    assert result.tcp.ok
    assert result.tls.failed
    assert result.tls.verify_message is not None
    assert "self" in result.tls.verify_message
    assert "signed" in result.tls.verify_message
    assert result.tls.issuer == "CN=Intercepting Test Proxy"
    assert result.websocket.skipped
    diagnosis = diagnose(result)
    assert diagnosis.verdict is Verdict.TLS
    text = render_text(diagnosis)
    assert "certificate" in text.lower()
    assert "intercepting proxy" in text
    assert "Intercepting Test Proxy" in text


async def test_trusted_tls_reports_version_and_issuer(
    ca: trustme.CA, client_context: ssl.SSLContext, server_context: ssl.SSLContext
) -> None:
    async with raw_server(server_context) as port, no_socket_leak():
        result = await probe_tls(LOCAL, port, ssl_context=client_context, deadline=2.0)
    assert result.ok, result.detail
    assert result.tls_version is not None
    assert result.tls_version.startswith("TLS")
    assert result.issuer is not None
    assert "trustme" in result.issuer


@pytest.mark.parametrize("probe", ["tls", "websocket"])
async def test_silent_server_times_out_within_the_deadline(probe: str) -> None:
    deadline = 0.3
    async with raw_server() as port, no_socket_leak():
        started = time.monotonic()
        if probe == "tls":
            result: TlsResult | HandshakeResult = await probe_tls(LOCAL, port, deadline=deadline)
        else:
            result = await probe_websocket(url=f"ws://{LOCAL}:{port}/", deadline=deadline)
        elapsed = time.monotonic() - started
    assert result.timed_out
    assert not result.ok
    assert deadline <= elapsed < deadline + 1.5
    assert result.latency_ms is not None
    assert result.latency_ms >= deadline * 1000


async def test_403_with_a_date_ten_minutes_ahead_reports_clock_skew(
    edge_server: Callable[[Reply], Any], client_context: ssl.SSLContext
) -> None:
    clock = FakeClock()
    port = await edge_server(refuse(403, date=clock.wall() + 600))
    async with no_socket_leak():
        result = await run_against(port, client_context, wall=clock.wall)
    assert (result.dns.ok, result.tcp.ok, result.tls.ok) == (True, True, True)
    assert result.websocket.status == 403
    assert result.websocket.skew_seconds == pytest.approx(600.0)
    diagnosis = diagnose(result, edge_tts_version="7.3.1")
    assert diagnosis.verdict is Verdict.CLOCK_SKEW
    assert "rejected" in diagnosis.headline
    assert "600 s behind" in diagnosis.headline
    assert any("7.3.1" in fix for fix in diagnosis.fixes)
    assert any("clock" in fix for fix in diagnosis.fixes)


@pytest.mark.parametrize(
    ("status", "verdict", "phrase"),
    [
        (403, Verdict.REJECTED, "stale"),
        (429, Verdict.RATE_LIMITED, "rate limiting"),
        (503, Verdict.OUTAGE, "outage"),
    ],
)
async def test_refused_handshakes_are_classified_by_status(
    edge_server: Callable[[Reply], Any],
    client_context: ssl.SSLContext,
    status: int,
    verdict: Verdict,
    phrase: str,
) -> None:
    port = await edge_server(refuse(status, date=time.time()))
    called = False

    async def synthesize() -> bytes:
        nonlocal called
        called = True
        return b""

    async with no_socket_leak():
        result = await run_against(port, client_context, synthesize=synthesize)
    assert result.websocket.status == status
    assert result.synthesis.skipped
    assert not called
    diagnosis = diagnose(result, edge_tts_version="7.3.1")
    assert diagnosis.verdict is verdict
    assert phrase in diagnosis.headline


async def test_successful_handshake_and_synthesis_is_healthy(
    edge_server: Callable[[Reply], Any], client_context: ssl.SSLContext
) -> None:
    port = await edge_server(accept())
    async with no_socket_leak():
        result = await run_against(port, client_context, synthesize=speak_ok)
    assert all(p.ok for p in result.probes), render_text(diagnose(result))
    assert result.websocket.status == 101
    assert result.synthesis.detail == "synthesized 144 bytes of audio"
    assert diagnose(result).verdict is Verdict.HEALTHY


async def test_no_audio_after_a_good_handshake_means_outage_or_blocked_voice(
    edge_server: Callable[[Reply], Any], client_context: ssl.SSLContext
) -> None:
    port = await edge_server(accept())

    async def synthesize() -> bytes:
        raise TTSError(ErrorKind.NO_AUDIO, "turn ended without audio", voice="de-DE-KatjaNeural")

    async with no_socket_leak():
        result = await run_against(port, client_context, synthesize=synthesize)
    assert result.websocket.ok
    assert result.synthesis.error_kind is ErrorKind.NO_AUDIO
    diagnosis = diagnose(result)
    assert diagnosis.verdict is Verdict.SYNTHESIS
    assert "outage or a blocked voice" in diagnosis.headline
    assert "de-DE-KatjaNeural" in diagnosis.headline
    assert any("another voice" in fix for fix in diagnosis.fixes)


async def test_default_handshake_is_edge_tts_real_url_and_headers(
    edge_server: Callable[[Reply], Any],
    client_context: ssl.SSLContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[web.Request] = []
    port = await edge_server(accept(seen))
    monkeypatch.setattr("edge_tts.communicate.WSS_URL", ws_url(port))
    async with no_socket_leak():
        result = await probe_websocket(ssl_context=client_context, deadline=2.0)
    assert result.ok, result.detail
    (request,) = seen
    assert request.query["TrustedClientToken"] == "test"
    assert {"ConnectionId", "Sec-MS-GEC", "Sec-MS-GEC-Version"} <= set(request.query)
    assert request.headers["Origin"].startswith("chrome-extension://")


async def test_synthesis_probe_bounds_a_hanging_synthesizer() -> None:
    async def hang() -> None:
        await asyncio.Event().wait()

    result = await probe_synthesis(hang, deadline=0.05)
    assert result.timed_out
    assert result.error_kind is ErrorKind.TIMEOUT


async def test_synthesis_probe_reports_unclassified_errors_without_raising() -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    result = await probe_synthesis(broken, deadline=1.0)
    assert result.failed
    assert result.error == "RuntimeError"
    assert result.error_kind is None
    assert "boom" in result.detail


def test_certificate_issuer_reads_der_and_rejects_garbage(ca: trustme.CA) -> None:
    der = ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode())
    issuer = certificate_issuer(der)
    assert issuer is not None
    assert issuer.startswith("OU=Testing CA")
    assert "O=trustme" in issuer
    assert certificate_issuer(b"\x30\x82\xff") is None
    assert certificate_issuer(b"") is None


# -- pure report --------------------------------------------------------------


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
RESULT_TYPES: dict[str, type[ProbeResult]] = {
    "dns": DnsResult,
    "tcp": TcpResult,
    "tls": TlsResult,
    "websocket": HandshakeResult,
    "synthesis": SynthesisResult,
}


def failing(**changes: Any) -> DiagnosticsResult:
    """The healthy result with a failed probe; later probes skipped as run_diagnostics does."""
    result = replace(healthy(), **changes)
    first = next(p for p in result.probes if p.failed)
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
    assert [p["name"] for p in data["probes"]] == [
        "dns",
        "tcp",
        "tls",
        "websocket",
        "synthesis",
    ]
    assert data["probes"][3] == {
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

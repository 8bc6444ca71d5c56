"""Diagnostics checks against local servers (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer

from edge_voice.core.clock import FakeClock
from edge_voice.core.diagnostics.certificates import certificate_issuer
from edge_voice.core.diagnostics.checks import (
    check_dns,
    check_synthesis,
    check_tls,
    check_websocket,
    run_diagnostics,
)
from edge_voice.core.diagnostics.report import (
    HandshakeResult,
    TlsResult,
    Verdict,
    diagnose,
    render_text,
)
from edge_voice.core.tts.errors import ErrorKind, TTSError
from tests.diagnostics_support import (
    FAST,
    LOCAL,
    Reply,
    accept,
    no_socket_leak,
    raw_server,
    refuse,
    run_against,
    self_signed_context,
    speak_ok,
    ws_url,
)

# An unclosed transport or session is a leak even if the garbage collector closes it.
pytestmark = pytest.mark.filterwarnings("error::ResourceWarning")


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


async def test_dns_resolves_localhost_and_fails_for_invalid_names() -> None:
    found = await check_dns("localhost", 443, deadline=2.0)
    assert found.ok
    assert found.addresses
    assert set(found.addresses) <= {"127.0.0.1", "::1"}
    assert found.latency_ms is not None

    missing = await check_dns("no-such-host.invalid", 443, deadline=5.0)
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
    assert all(p.skipped for p in result.checks[1:])
    assert result.synthesis.detail == "skipped: dns check failed"
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
        result = await check_tls(LOCAL, port, ssl_context=client_context, deadline=2.0)
    assert result.ok, result.detail
    assert result.tls_version is not None
    assert result.tls_version.startswith("TLS")
    assert result.issuer is not None
    assert "trustme" in result.issuer


@pytest.mark.parametrize("check", ["tls", "websocket"])
async def test_silent_server_times_out_within_the_deadline(check: str) -> None:
    deadline = 0.3
    async with raw_server() as port, no_socket_leak():
        started = time.monotonic()
        if check == "tls":
            result: TlsResult | HandshakeResult = await check_tls(LOCAL, port, deadline=deadline)
        else:
            result = await check_websocket(url=f"ws://{LOCAL}:{port}/", deadline=deadline)
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
    assert all(p.ok for p in result.checks), render_text(diagnose(result))
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
        result = await check_websocket(ssl_context=client_context, deadline=2.0)
    assert result.ok, result.detail
    (request,) = seen
    assert request.query["TrustedClientToken"] == "test"
    assert {"ConnectionId", "Sec-MS-GEC", "Sec-MS-GEC-Version"} <= set(request.query)
    assert request.headers["Origin"].startswith("chrome-extension://")


async def test_synthesis_probe_bounds_a_hanging_synthesizer() -> None:
    async def hang() -> None:
        await asyncio.Event().wait()

    result = await check_synthesis(hang, deadline=0.05)
    assert result.timed_out
    assert result.error_kind is ErrorKind.TIMEOUT


async def test_synthesis_probe_reports_unclassified_errors_without_raising() -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    result = await check_synthesis(broken, deadline=1.0)
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

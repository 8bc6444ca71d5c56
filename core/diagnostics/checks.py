"""Checks along the path to Edge TTS: DNS, TCP, TLS, WebSocket handshake, synthesis.

Each check has its own deadline, measures its latency, closes what it opened and
never raises (cancellation from outside excepted): it returns a result from
:mod:`core.diagnostics.report`, which explains them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp
import certifi

from edge_voice.core.clock import Clock, WallClock, monotonic, wall_time
from edge_voice.core.diagnostics.certificates import peer_certificate_facts
from edge_voice.core.diagnostics.report import (
    EDGE_HOST,
    EDGE_PORT,
    CheckResult,
    DiagnosticsResult,
    DnsResult,
    HandshakeResult,
    SynthesisResult,
    TcpResult,
    TlsResult,
)
from edge_voice.core.tts.edge import handshake_request
from edge_voice.core.tts.errors import ErrorKind, TTSError

R = TypeVar("R", bound=CheckResult)

Synthesize = Callable[[], Awaitable[object]]
"""Runs one short live synthesis; injected so diagnostics doesn't depend on the service."""

CLOSE_GRACE_SECONDS = 1.0
"""How long a graceful close may wait for the peer before the socket is aborted."""


@dataclass(frozen=True)
class CheckDeadlines:
    """Seconds each check may take."""

    dns: float = 5.0
    tcp: float = 5.0
    tls: float = 5.0
    websocket: float = 10.0
    synthesis: float = 20.0


@functools.cache
def edge_trust_store() -> ssl.SSLContext:
    """A verifying TLS context with certifi's CA bundle, the trust edge-tts itself uses.

    An intercepting proxy whose CA is only in the OS store is thus caught here too.
    """
    return ssl.create_default_context(cafile=certifi.where())


def _elapsed_ms(clock: Clock, started: float) -> float:
    return (clock() - started) * 1000.0


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _timed_out(kind: type[R], latency: float, what: str, deadline: float, **fields: Any) -> R:
    detail = f"{what} timed out after {deadline:g} s"
    return kind(
        ok=False, timed_out=True, latency_ms=latency, detail=detail, error="TimeoutError", **fields
    )


def _crashed(kind: type[R], latency: float, exc: Exception, **fields: Any) -> R:
    return kind(
        ok=False, latency_ms=latency, detail=_describe(exc), error=type(exc).__name__, **fields
    )


async def check_dns(
    host: str = EDGE_HOST, port: int = EDGE_PORT, *, deadline: float = 5.0, clock: Clock = monotonic
) -> DnsResult:
    """Resolve ``host`` with the event loop's resolver."""
    started = clock()
    try:
        async with asyncio.timeout(deadline):
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
    except TimeoutError:
        return _timed_out(DnsResult, _elapsed_ms(clock, started), f"lookup of {host}", deadline)
    except Exception as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return DnsResult(
            ok=False,
            latency_ms=_elapsed_ms(clock, started),
            detail=f"lookup of {host} failed: {reason}",
            error=type(exc).__name__,
        )
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    return DnsResult(
        ok=True,
        latency_ms=_elapsed_ms(clock, started),
        detail=f"{host} -> {', '.join(addresses)}",
        addresses=addresses,
    )


async def _close_stream(writer: asyncio.StreamWriter) -> None:
    """Close gracefully if the peer cooperates within the grace period, else abort."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_GRACE_SECONDS):
            await writer.wait_closed()
    except Exception:
        writer.transport.abort()


async def check_tcp(
    host: str = EDGE_HOST,
    port: int = EDGE_PORT,
    *,
    addresses: Sequence[str] = (),
    deadline: float = 5.0,
    clock: Clock = monotonic,
) -> TcpResult:
    """Open (and close) a TCP connection, trying each of ``addresses`` (default: ``host``)."""
    started = clock()
    failures: list[OSError] = []
    connected: tuple[str, asyncio.StreamWriter] | None = None
    try:
        async with asyncio.timeout(deadline):
            for address in addresses or (host,):
                try:
                    _, writer = await asyncio.open_connection(address, port)
                except OSError as exc:
                    failures.append(exc)
                else:
                    connected = address, writer
                    break
    except TimeoutError:
        what = f"connect to {host}:{port}"
        return _timed_out(TcpResult, _elapsed_ms(clock, started), what, deadline)
    if connected is not None:
        latency = _elapsed_ms(clock, started)
        address, writer = connected
        await _close_stream(writer)
        return TcpResult(ok=True, latency_ms=latency, detail=f"connected to {address}:{port}")
    refused = bool(failures) and all(isinstance(f, ConnectionRefusedError) for f in failures)
    return TcpResult(
        ok=False,
        refused=refused,
        latency_ms=_elapsed_ms(clock, started),
        detail=(
            f"connection to {host}:{port} refused"
            if refused
            else "; ".join(_describe(f) for f in failures) or "no address to connect to"
        ),
        error=type(failures[-1]).__name__ if failures else None,
    )


async def check_tls(
    host: str = EDGE_HOST,
    port: int = EDGE_PORT,
    *,
    ssl_context: ssl.SSLContext | None = None,
    deadline: float = 5.0,
    clock: Clock = monotonic,
) -> TlsResult:
    """Complete a verified TLS handshake; on a certificate error, still read the issuer."""
    context = ssl_context or edge_trust_store()
    started = clock()
    try:
        async with asyncio.timeout(deadline):
            _, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
    except TimeoutError:
        what = f"TLS handshake with {host}:{port}"
        return _timed_out(TlsResult, _elapsed_ms(clock, started), what, deadline)
    except ssl.SSLCertVerificationError as exc:
        latency = _elapsed_ms(clock, started)
        remaining = max(0.1, deadline - latency / 1000.0)
        issuer = await _unverified_issuer(host, port, remaining)
        by = f" (issued by {issuer})" if issuer else ""
        return TlsResult(
            ok=False,
            latency_ms=latency,
            detail=f"certificate rejected: {exc.verify_message}{by}",
            error=type(exc).__name__,
            verify_message=exc.verify_message,
            issuer=issuer,
        )
    except Exception as exc:
        return _crashed(TlsResult, _elapsed_ms(clock, started), exc)
    latency = _elapsed_ms(clock, started)
    issuer, version = peer_certificate_facts(writer)
    await _close_stream(writer)
    return TlsResult(
        ok=True,
        latency_ms=latency,
        detail=f"{version}, certificate issued by {issuer or 'unknown'}",
        issuer=issuer,
        tls_version=version,
    )


async def _unverified_issuer(host: str, port: int, deadline: float) -> str | None:
    """The issuer of the certificate ``host`` presents, read without verifying it.

    The failed handshake exposes no certificate, so connect once more trusting
    anything; nothing is sent over this connection.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(deadline):
            _, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
    except Exception:
        return None
    issuer, _ = peer_certificate_facts(writer)
    await _close_stream(writer)
    return issuer


async def check_websocket(
    *,
    url: str | None = None,
    headers: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    deadline: float = 10.0,
    clock: Clock = monotonic,
    wall: WallClock = wall_time,
) -> HandshakeResult:
    """Open and close the WebSocket edge-tts would open (or ``url``, for tests).

    On a refused upgrade, compares the server's ``Date`` header with ``wall``.
    """
    if url is None:
        url, real_headers = handshake_request()
        headers = real_headers if headers is None else headers
    context = ssl_context or edge_trust_store()
    started = clock()
    upgraded_ms: float | None = None
    try:
        async with (
            asyncio.timeout(deadline),
            # Like edge-tts: honour HTTPS_PROXY, and ask for permessage-deflate.
            aiohttp.ClientSession(
                trust_env=True, timeout=aiohttp.ClientTimeout(total=deadline)
            ) as session,
        ):
            ws = await session.ws_connect(
                url,
                headers=dict(headers or {}),
                ssl=context,
                compress=15,
                timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_GRACE_SECONDS),
            )
            upgraded_ms = _elapsed_ms(clock, started)
            with contextlib.suppress(Exception):
                await ws.close()
    except aiohttp.WSServerHandshakeError as exc:
        return _refused_handshake(exc, _elapsed_ms(clock, started), wall())
    except TimeoutError:
        if upgraded_ms is not None:  # only the polite close ran out of time
            return _upgraded(upgraded_ms)
        what = "WebSocket handshake"
        return _timed_out(HandshakeResult, _elapsed_ms(clock, started), what, deadline)
    except Exception as exc:
        return _crashed(HandshakeResult, _elapsed_ms(clock, started), exc)
    return _upgraded(upgraded_ms)


def _upgraded(latency: float | None) -> HandshakeResult:
    return HandshakeResult(ok=True, status=101, latency_ms=latency, detail="upgraded (HTTP 101)")


def _refused_handshake(
    exc: aiohttp.WSServerHandshakeError, latency: float, now: float
) -> HandshakeResult:
    server_date = _parse_http_date(exc.headers.get("Date") if exc.headers else None)
    skew = None if server_date is None else server_date.timestamp() - now
    compared = "" if skew is None else f", server clock {skew:+.0f} s from ours"
    return HandshakeResult(
        ok=False,
        latency_ms=latency,
        detail=f"HTTP {exc.status} {exc.message}{compared}",
        error=type(exc).__name__,
        status=exc.status,
        server_date=server_date,
        skew_seconds=skew,
    )


def _parse_http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def check_synthesis(
    synthesize: Synthesize, *, deadline: float = 20.0, clock: Clock = monotonic
) -> SynthesisResult:
    """Run the injected short synthesis; a :class:`TTSError` is reported with its kind."""
    started = clock()
    try:
        async with asyncio.timeout(deadline):
            produced = await synthesize()
    except TTSError as exc:
        return SynthesisResult(
            ok=False,
            latency_ms=_elapsed_ms(clock, started),
            detail=str(exc),
            error=type(exc).__name__,
            error_kind=exc.kind,
            status=exc.status,
            voice=exc.voice,
        )
    except TimeoutError:
        latency = _elapsed_ms(clock, started)
        return _timed_out(
            SynthesisResult, latency, "synthesis", deadline, error_kind=ErrorKind.TIMEOUT
        )
    except Exception as exc:
        return _crashed(SynthesisResult, _elapsed_ms(clock, started), exc)
    size = len(produced) if isinstance(produced, bytes | bytearray) else None
    detail = "synthesized" if size is None else f"synthesized {size} bytes of audio"
    return SynthesisResult(ok=True, latency_ms=_elapsed_ms(clock, started), detail=detail)


async def run_diagnostics(
    synthesize: Synthesize | None = None,
    *,
    host: str = EDGE_HOST,
    port: int = EDGE_PORT,
    ws_url: str | None = None,
    ws_headers: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    deadlines: CheckDeadlines | None = None,
    clock: Clock = monotonic,
    wall: WallClock = wall_time,
) -> DiagnosticsResult:
    """Run the checks in order, skipping those an earlier failure dooms.

    ``ws_url``/``ws_headers`` replace edge-tts's real handshake and ``ssl_context``
    the CA bundle (both for local test servers). Without ``synthesize`` the live
    synthesis is skipped. Takes at most the sum of ``deadlines``.
    """
    limits = deadlines or CheckDeadlines()
    dns = await check_dns(host, port, deadline=limits.dns, clock=clock)
    tcp = (
        await check_tcp(host, port, addresses=dns.addresses, deadline=limits.tcp, clock=clock)
        if dns.ok
        else TcpResult.skipped_after(dns)
    )
    tls = (
        await check_tls(host, port, ssl_context=ssl_context, deadline=limits.tls, clock=clock)
        if tcp.ok
        else TlsResult.skipped_after(tcp)
    )
    websocket = (
        await check_websocket(
            url=ws_url,
            headers=ws_headers,
            ssl_context=ssl_context,
            deadline=limits.websocket,
            clock=clock,
            wall=wall,
        )
        if tls.ok
        else HandshakeResult.skipped_after(tls)
    )
    if not websocket.ok:
        synthesis = SynthesisResult.skipped_after(websocket)
    elif synthesize is None:
        synthesis = SynthesisResult(ok=False, skipped=True, detail="skipped: no synthesizer given")
    else:
        synthesis = await check_synthesis(synthesize, deadline=limits.synthesis, clock=clock)
    return DiagnosticsResult(host, port, dns, tcp, tls, websocket, synthesis)

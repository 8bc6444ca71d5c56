"""Local servers and helpers for the diagnostics check tests (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_voice.core.diagnostics.checks import CheckDeadlines, run_diagnostics
from edge_voice.core.diagnostics.report import DiagnosticsResult

LOCAL = "127.0.0.1"
FAST = CheckDeadlines(dns=2.0, tcp=2.0, tls=2.0, websocket=2.0, synthesis=2.0)
Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    """Fail if sockets opened inside the block (by checks or by the local servers'
    connection handlers, which close when the check hangs up) are still open."""
    before = socket_inodes()
    yield
    for _ in range(200):  # the servers' side closes a few loop iterations later
        if socket_inodes() <= before:
            return
        await asyncio.sleep(0.01)
    assert socket_inodes() <= before, f"leaked sockets: {socket_inodes() - before}"


def self_signed_context(tmp_path: Path, common_name: str) -> ssl.SSLContext:
    """A server context with a self-signed certificate for 127.0.0.1, as a TLS-intercepting
    proxy would present."""
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


def refuse(status: int, date: float | None = None) -> Reply:
    """A handshake reply that refuses with ``status`` (and a Date header if given)."""

    async def reply(request: web.Request) -> web.StreamResponse:
        headers = {} if date is None else {"Date": formatdate(date, usegmt=True)}
        return web.Response(status=status, headers=headers)

    return reply


def accept(seen: list[web.Request] | None = None) -> Reply:
    """A handshake reply that upgrades to a WebSocket, noting each request in ``seen``."""

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
    """The local server's Edge-like WebSocket URL."""
    return f"wss://{LOCAL}:{port}/edge/v1?TrustedClientToken=test"


async def run_against(port: int, context: ssl.SSLContext, **kwargs: Any) -> DiagnosticsResult:
    """Every check against the local server on ``port``, with short deadlines."""
    return await run_diagnostics(
        host=LOCAL, port=port, ws_url=ws_url(port), ssl_context=context, deadlines=FAST, **kwargs
    )


async def speak_ok() -> bytes:
    """A synthesizer that answers at once with a little MP3-looking audio."""
    return b"\xff\xf3" * 72

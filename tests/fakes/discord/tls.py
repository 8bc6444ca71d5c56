"""Certificates for the fake's voice endpoints, made with trustme.

discord.py builds the voice websocket URL as ``wss://{endpoint}/?v=8``, so every voice
endpoint must speak TLS with a certificate valid for ``127.0.0.1`` (an IP subjectAltName,
which trustme writes when the identity parses as an address). One CA per process: key
generation is the slow part and nothing depends on a fresh CA per test.
"""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import trustme

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class FakeCertificates:
    """The CA the client must trust and the server certificate the voice endpoints present."""

    ca: trustme.CA
    server_cert: trustme.LeafCert

    def server_context(self) -> ssl.SSLContext:
        """A TLS server context presenting the ``127.0.0.1`` certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts the fake's CA (and nothing else)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(context)
        return context

    def write_ca(self, directory: Path) -> Path:
        """Write the CA certificate as PEM into ``directory``; return the file's path."""
        path = directory / "fake-discord-ca.pem"
        self.ca.cert_pem.write_to_path(str(path))
        return path


@lru_cache(maxsize=1)
def certificates() -> FakeCertificates:
    """The process-wide fake CA and its ``127.0.0.1``/``localhost`` server certificate."""
    ca = trustme.CA(organization_name="fake-discord test CA")
    return FakeCertificates(ca=ca, server_cert=ca.issue_cert(HOST, "localhost"))


class CAFile:
    """The CA as a PEM file in a private temporary directory, removed by :meth:`close`.

    A subprocess (see ``launch.py``) needs the CA on disk; in-process clients use
    :meth:`FakeCertificates.client_context` instead.
    """

    def __init__(self, certs: FakeCertificates) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="fake-discord-")
        self.path: Path = certs.write_ca(Path(self._dir.name))

    def close(self) -> None:
        """Delete the file and its directory."""
        self._dir.cleanup()

"""Reading X.509 certificates for the TLS check: who issued the one a server presents.

The standard library only decodes certificates it has verified, and an unverifiable
one (an intercepting proxy's) is exactly the one worth naming, so the issuer is read
from the DER bytes here. Parsing is pure; :func:`peer_certificate_facts` only reads
what an open TLS stream already holds.
"""

from __future__ import annotations

import asyncio
import ssl


def peer_certificate_facts(writer: asyncio.StreamWriter) -> tuple[str | None, str | None]:
    """The issuer of the peer's certificate and the TLS version of ``writer``'s connection
    (each None when unknown)."""
    tls = writer.get_extra_info("ssl_object")
    if not isinstance(tls, ssl.SSLObject):
        return None, None
    der = tls.getpeercert(binary_form=True)
    return (certificate_issuer(der) if der else None), tls.version()


_NAME_ATTRIBUTES = {
    bytes.fromhex("550403"): "CN",
    bytes.fromhex("55040a"): "O",
    bytes.fromhex("55040b"): "OU",
    bytes.fromhex("550406"): "C",
}


def _der_element(der: bytes, offset: int) -> tuple[int, int, int]:
    """Tag, content start and content end of the DER element at ``offset``."""
    tag, length = der[offset], der[offset + 1]
    offset += 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(der[offset : offset + size], "big")
        offset += size
    if offset + length > len(der):
        raise ValueError("truncated DER element")
    return tag, offset, offset + length


def _der_children(der: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    children = []
    while start < end:
        child = _der_element(der, start)
        children.append(child)
        start = child[2]
    return children


def certificate_issuer(der: bytes) -> str | None:
    """The issuer of a DER X.509 certificate as ``"CN=..., O=..."``, or None.

    The standard library only decodes certificates it has verified, and an
    unverifiable one (an intercepting proxy's) is exactly the one worth naming.
    """
    try:
        _, start, end = _der_element(der, 0)
        _, tbs_start, tbs_end = _der_children(der, start, end)[0]
        fields = _der_children(der, tbs_start, tbs_end)
        if fields[0][0] == 0xA0:  # explicit version tag precedes the serial number
            fields = fields[1:]
        _, name_start, name_end = fields[2]
        parts = []
        for _, rdn_start, rdn_end in _der_children(der, name_start, name_end):
            for _, attr_start, attr_end in _der_children(der, rdn_start, rdn_end):
                (_, oid_start, oid_end), (tag, value_start, value_end) = _der_children(
                    der, attr_start, attr_end
                )[:2]
                label = _NAME_ATTRIBUTES.get(der[oid_start:oid_end])
                if label:
                    codec = "utf-16-be" if tag == 0x1E else "utf-8"
                    value = der[value_start:value_end].decode(codec, errors="replace")
                    parts.append(f"{label}={value}")
    except (IndexError, ValueError):
        return None
    return ", ".join(reversed(parts)) or None

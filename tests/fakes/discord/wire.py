"""JSON on the wire, the way discord.py 2.7.1 needs it.

discord.py's ``json_or_text`` parses a body only when ``Content-Type`` is exactly
``application/json``; aiohttp's ``json_response`` (and ``Response(text=...)``) append
``; charset=utf-8`` and discord.py then hands the raw text to code that indexes it like a
dict. So replies are built from bytes with the header set by hand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

JSON_TYPE = "application/json"


def dumps(data: Any) -> str:
    """Compact JSON, as Discord sends it."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A reply whose ``Content-Type`` is exactly ``application/json``."""
    all_headers = {"Content-Type": JSON_TYPE}
    if headers:
        all_headers.update(headers)
    return web.Response(body=dumps(data).encode(), status=status, headers=all_headers)


def no_content() -> web.Response:
    """204, as Discord answers typing, reactions and deletes."""
    return web.Response(status=204)


def error_response(
    status: int,
    message: str,
    code: int = 0,
    *,
    headers: Mapping[str, str] | None = None,
    errors: Mapping[str, Any] | None = None,
) -> web.Response:
    """Discord's JSON error body ``{"message", "code"[, "errors"]}`` with ``status``."""
    body: dict[str, Any] = {"message": message, "code": code}
    if errors:
        body["errors"] = dict(errors)
    return json_response(body, status, headers)

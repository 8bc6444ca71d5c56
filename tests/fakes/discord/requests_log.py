"""The REST request log: every request as it arrived, and how it was answered.

Kept apart from the routes so tests can import it without the handlers; bodies are read
once (JSON, or a multipart ``payload_json`` plus files) for the log and the handlers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.discord.faults import RestFault


@dataclass(eq=False)
class RecordedRequest:
    """One request that reached the fake's REST API."""

    index: int
    method: str
    path: str
    """The path below ``/api/v10``, ids filled in."""
    route: str | None
    """The route template, or None for an unknown route."""
    params: dict[str, str]
    query: dict[str, str]
    time: float
    """``time.monotonic()`` on arrival."""
    json: Any = None
    """The JSON body (``payload_json`` of a multipart body), if any."""
    files: list[tuple[str, int]] = field(default_factory=list)
    status: int | None = None
    """The status the fake answered; None while pending or when the connection was aborted."""
    fault: RestFault | None = None


class RequestLog:
    """Every REST request, in arrival order."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.requests)

    def __len__(self) -> int:
        return len(self.requests)

    def matching(
        self,
        method: str | None = None,
        route: str | None = None,
        *,
        channel_id: int | None = None,
    ) -> list[RecordedRequest]:
        """The requests for ``method`` and ``route`` (a template), optionally one channel."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method)
            and (route is None or r.route == route)
            and (channel_id is None or r.params.get("channel_id") == str(channel_id))
        ]

    @property
    def unknown(self) -> list[RecordedRequest]:
        """Requests for routes the fake does not serve."""
        return [r for r in self.requests if r.route is None]


async def read_body(request: web.Request) -> tuple[Any, list[tuple[str, int]]]:
    """The JSON body and uploaded ``(filename, size)`` files (multipart ``payload_json``)."""
    if request.content_type == "multipart/form-data":
        payload: Any = None
        files: list[tuple[str, int]] = []
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if part.name == "payload_json":
                payload = json.loads(await part.text())  # type: ignore[union-attr]
            else:
                data = await part.read()  # type: ignore[union-attr]
                files.append((part.filename or part.name or "file", len(data)))
        return payload, files
    if request.can_read_body:
        text = await request.text()
        return (json.loads(text) if text else None), []
    return None, []

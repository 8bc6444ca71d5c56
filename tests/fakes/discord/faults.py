"""Scripted REST faults: which requests fail, and how.

A :class:`RestFault` matches a method and a route template exactly as discord.py spells
it (``"/channels/{channel_id}/messages"``), optionally one channel, for its first
``times`` matching requests (``None``: every one). The REST layer asks :class:`RestFaults`
before serving each request; a matching fault answers instead (or, for a delay, first).

    fake.rest_fault(forbidden("POST", "/channels/{channel_id}/messages"))
    fault = fake.rest_fault(http_error("POST", MESSAGES, 500, times=None))
    ...
    assert fault.hits == 5            # discord.py's own retries, as the fake saw them
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from aiohttp import web

from tests.fakes.discord.wire import error_response, json_response

_DEFAULT_MESSAGES = {
    400: "400: Bad Request",
    401: "401: Unauthorized",
    403: "Missing Permissions",
    404: "404: Not Found",
    405: "405: Method Not Allowed",
    500: "500: Internal Server Error",
    502: "502: Bad Gateway",
    503: "503: Service Unavailable",
    504: "504: Gateway Timeout",
}


class FaultKind(Enum):
    """What a fault does to a matching request."""

    STATUS = "status"
    """Answer ``status`` with a Discord JSON error body."""
    RATE_LIMIT = "rate_limit"
    """Answer 429 with ``retry_after`` in the body and the rate-limit headers."""
    ABORT = "abort"
    """Abort the TCP connection without an answer."""
    DELAY = "delay"
    """Wait ``delay`` seconds, then serve the request normally."""
    LOST_ANSWER = "lost_answer"
    """Serve the request, then abort the connection before the answer goes out: it took
    effect, and the client cannot know (its retry must not repeat it)."""


@dataclass(eq=False)
class RestFault:
    """One scripted fault; :attr:`hits` counts the requests it has answered."""

    method: str
    route: str
    kind: FaultKind
    status: int = 500
    message: str | None = None
    code: int = 0
    channel_id: int | None = None
    times: int | None = 1
    retry_after: float = 0.0
    is_global: bool = False
    delay: float = 0.0
    hits: int = field(default=0, init=False)
    hit_times: list[float] = field(default_factory=list, init=False)
    """``time.monotonic()`` of each hit, to measure discord.py's retry spacing."""

    def matches(self, method: str, route: str | None, params: dict[str, str]) -> bool:
        """Whether this fault still applies to a request for ``method`` ``route``."""
        if self.times is not None and self.hits >= self.times:
            return False
        if method != self.method or route != self.route:
            return False
        return self.channel_id is None or params.get("channel_id") == str(self.channel_id)

    async def answer(self, request: web.Request) -> web.StreamResponse | None:
        """The fault's reply to ``request``; None means "serve it normally" (after a delay)."""
        self.hits += 1
        self.hit_times.append(time.monotonic())
        if self.kind is FaultKind.DELAY:
            await asyncio.sleep(self.delay)
            return None
        if self.kind is FaultKind.LOST_ANSWER:
            return None  # served normally; the REST layer drops the answer
        if self.kind is FaultKind.ABORT:
            transport = request.transport
            if transport is not None:
                transport.abort()
            # aiohttp discards a reply for an aborted transport; the client sees the drop.
            return web.Response(status=204)
        if self.kind is FaultKind.RATE_LIMIT:
            return self._rate_limited()
        message = self.message or _DEFAULT_MESSAGES.get(self.status, f"{self.status}: Error")
        return error_response(self.status, message, self.code)

    def _rate_limited(self) -> web.Response:
        headers = {
            "Retry-After": str(max(1, math.ceil(self.retry_after))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + self.retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{self.retry_after:.3f}",
            "X-RateLimit-Bucket": f"fake-{abs(hash((self.method, self.route))):x}",
            "X-RateLimit-Scope": "global" if self.is_global else "user",
            # discord.py treats a 429 without Via as Cloudflare's ban page, not Discord's.
            "Via": "1.1 google",
        }
        if self.is_global:
            headers["X-RateLimit-Global"] = "true"
        body: dict[str, Any] = {
            "message": "You are being rate limited.",
            "retry_after": self.retry_after,
            "global": self.is_global,
            "code": 0,
        }
        return json_response(body, 429, headers)


def http_error(
    method: str,
    route: str,
    status: int,
    *,
    message: str | None = None,
    code: int = 0,
    channel_id: int | None = None,
    times: int | None = 1,
) -> RestFault:
    """Answer ``status`` (e.g. 500, 502, 503) with ``{"message", "code"}``."""
    return RestFault(
        method,
        route,
        FaultKind.STATUS,
        status=status,
        message=message,
        code=code,
        channel_id=channel_id,
        times=times,
    )


def forbidden(
    method: str,
    route: str,
    *,
    message: str = "Missing Permissions",
    code: int = 50013,
    channel_id: int | None = None,
    times: int | None = 1,
) -> RestFault:
    """403 Missing Permissions (code 50013) unless told otherwise."""
    return http_error(
        method, route, 403, message=message, code=code, channel_id=channel_id, times=times
    )


def not_found(
    method: str,
    route: str,
    *,
    message: str = "Unknown Channel",
    code: int = 10003,
    channel_id: int | None = None,
    times: int | None = 1,
) -> RestFault:
    """404 Unknown Channel (code 10003) unless told otherwise."""
    return http_error(
        method, route, 404, message=message, code=code, channel_id=channel_id, times=times
    )


def rate_limited(
    method: str,
    route: str,
    retry_after: float,
    *,
    is_global: bool = False,
    channel_id: int | None = None,
    times: int | None = 1,
) -> RestFault:
    """429 with ``retry_after`` seconds, per route or global."""
    return RestFault(
        method,
        route,
        FaultKind.RATE_LIMIT,
        status=429,
        retry_after=retry_after,
        is_global=is_global,
        channel_id=channel_id,
        times=times,
    )


def dropped(
    method: str, route: str, *, channel_id: int | None = None, times: int | None = 1
) -> RestFault:
    """Abort the connection without answering."""
    return RestFault(method, route, FaultKind.ABORT, channel_id=channel_id, times=times)


def lost_answer(
    method: str, route: str, *, channel_id: int | None = None, times: int | None = 1
) -> RestFault:
    """Do what the request asks, then abort the connection instead of answering."""
    return RestFault(method, route, FaultKind.LOST_ANSWER, channel_id=channel_id, times=times)


def slow(
    method: str,
    route: str,
    delay: float,
    *,
    channel_id: int | None = None,
    times: int | None = 1,
) -> RestFault:
    """Answer normally, but only after ``delay`` seconds."""
    return RestFault(
        method, route, FaultKind.DELAY, delay=delay, channel_id=channel_id, times=times
    )


class RestFaults:
    """The scripted faults, consulted in the order they were added."""

    def __init__(self) -> None:
        self.faults: list[RestFault] = []

    def add(self, fault: RestFault) -> RestFault:
        """Script ``fault``; returns it, so tests can read :attr:`RestFault.hits`."""
        self.faults.append(fault)
        return fault

    def find(self, method: str, route: str | None, params: dict[str, str]) -> RestFault | None:
        """The first fault that still applies to this request, if any."""
        for fault in self.faults:
            if fault.matches(method, route, params):
                return fault
        return None

    def clear(self) -> None:
        """Drop every scripted fault."""
        self.faults.clear()

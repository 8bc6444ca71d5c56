"""Shared fixtures: the fake Edge server with the real edge-tts client pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.fakes.edge_server import FakeEdgeServer, edge_client_pointed_at, refused_endpoint


@pytest.fixture
async def edge_server() -> AsyncIterator[FakeEdgeServer]:
    """A running :class:`FakeEdgeServer` (plan OK); edge-tts connects to it."""
    async with FakeEdgeServer() as server:
        with edge_client_pointed_at(server.url):
            yield server


@pytest.fixture
def refused_edge_url() -> Iterator[str]:
    """A URL where connections are refused; edge-tts connects to it."""
    with refused_endpoint() as url, edge_client_pointed_at(url):
        yield url

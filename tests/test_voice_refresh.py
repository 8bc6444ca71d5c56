"""core.voices.refresh: snapshot first, Edge's list when reachable, cached on disk."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from edge_voice.core.clock import FakeClock
from edge_voice.core.config import parse_config
from edge_voice.core.tts.errors import ErrorKind, TTSError
from edge_voice.core.voices.catalogue import shipped_catalogue
from edge_voice.core.voices.refresh import (
    CACHE_FILE_NAME,
    CatalogueKeeper,
    RefreshResult,
    keeper_from_config,
)
from tests.fakes.voice_list_server import (
    Answer,
    FakeVoiceListServer,
    edge_voice_list_pointed_at,
    voice_entry,
)

DAY = 86400.0
EDGE_LIST = [voice_entry("de-DE-KillianNeural", "Male"), voice_entry("xx-YY-NewNeural")]


class FakeEdge:
    """A fetch that answers from a list of outcomes and counts its calls."""

    def __init__(self, *outcomes: list[dict[str, Any]] | TTSError) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self) -> list[dict[str, Any]]:
        self.calls += 1
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, TTSError):
            raise outcome
        return outcome


def keeper(
    tmp_path: Path, fetch: FakeEdge, clock: FakeClock, interval: float = DAY
) -> CatalogueKeeper:
    return CatalogueKeeper(
        fetch, cache_path=tmp_path / CACHE_FILE_NAME, refresh_interval=interval, wall_clock=clock
    )


async def test_it_answers_from_the_snapshot_before_anything_arrives(tmp_path: Path) -> None:
    kept = keeper(tmp_path, FakeEdge(EDGE_LIST), FakeClock())
    assert kept.current is shipped_catalogue()
    assert kept.fetched_at is None
    assert await kept.load_cache() is False


async def test_a_fetched_list_replaces_the_snapshot_and_is_cached(tmp_path: Path) -> None:
    clock = FakeClock()
    kept = keeper(tmp_path, FakeEdge(EDGE_LIST), clock)

    assert await kept.refresh() is RefreshResult.REFRESHED

    assert "xx-YY-NewNeural" in kept.current
    assert len(kept) == 2
    assert kept.fetched_at == clock()
    cached = json.loads((tmp_path / CACHE_FILE_NAME).read_text())
    assert cached["fetched_at"] == clock()
    assert [v["ShortName"] for v in cached["voices"]] == ["de-DE-KillianNeural", "xx-YY-NewNeural"]
    assert list(tmp_path.iterdir()) == [tmp_path / CACHE_FILE_NAME]  # no temporary left


async def test_at_most_one_fetch_per_interval_failures_included(tmp_path: Path) -> None:
    clock = FakeClock()
    edge = FakeEdge(TTSError(ErrorKind.NETWORK, "down"), EDGE_LIST)
    kept = keeper(tmp_path, edge, clock)

    assert await kept.refresh() is RefreshResult.FAILED
    assert kept.current is shipped_catalogue()
    clock.advance(DAY - 1)
    assert await kept.refresh() is RefreshResult.NOT_DUE
    assert kept.seconds_until_due() == pytest.approx(1)
    clock.advance(1)
    assert await kept.refresh() is RefreshResult.REFRESHED
    assert edge.calls == 2
    assert await kept.refresh(force=True) is RefreshResult.REFRESHED
    assert edge.calls == 3


async def test_a_restart_uses_the_cache_and_does_not_refetch_early(tmp_path: Path) -> None:
    clock = FakeClock()
    await keeper(tmp_path, FakeEdge(EDGE_LIST), clock).refresh()
    clock.advance(3600)
    edge = FakeEdge(EDGE_LIST)
    restarted = keeper(tmp_path, edge, clock)

    assert await restarted.load_cache() is True
    assert "xx-YY-NewNeural" in restarted.current
    assert await restarted.refresh() is RefreshResult.NOT_DUE
    assert edge.calls == 0


async def test_a_clock_turned_back_makes_the_list_due(tmp_path: Path) -> None:
    clock = FakeClock()
    kept = keeper(tmp_path, FakeEdge(EDGE_LIST), clock)
    await kept.refresh()
    clock.advance(-DAY * 30)
    assert kept.due()


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"format": 1, "fetched_at": 1.0, "voices": [{"ShortName": "x"}]}',
        b'{"format": 9, "voices": []}',
        b'{"format": 1, "fetched_at": null, "voices": [{"ShortName": "de-DE-KillianNeural", '
        b'"Locale": "de-DE"}]}',
        b"\xff\xfe",
    ],
)
async def test_a_corrupt_cache_is_ignored_with_a_warning(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / CACHE_FILE_NAME).write_bytes(content)
    kept = keeper(tmp_path, FakeEdge(EDGE_LIST), FakeClock())

    with caplog.at_level(logging.WARNING, logger="edge_voice.core.voices.refresh"):
        assert await kept.load_cache() is False

    assert kept.current is shipped_catalogue()
    assert "cache" in caplog.text
    assert await kept.refresh() is RefreshResult.REFRESHED  # and the next fetch replaces it
    assert json.loads((tmp_path / CACHE_FILE_NAME).read_text())["format"] == 1


async def test_a_useless_answer_keeps_the_current_list(tmp_path: Path) -> None:
    kept = keeper(tmp_path, FakeEdge([{"ShortName": "nonsense"}]), FakeClock())
    assert await kept.refresh() is RefreshResult.FAILED
    assert kept.current is shipped_catalogue()
    assert not (tmp_path / CACHE_FILE_NAME).exists()


async def test_an_unwritable_cache_is_a_warning_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    kept = CatalogueKeeper(
        FakeEdge(EDGE_LIST),
        cache_path=blocker / CACHE_FILE_NAME,
        refresh_interval=DAY,
        wall_clock=FakeClock(),
    )
    with caplog.at_level(logging.WARNING):
        assert await kept.refresh() is RefreshResult.REFRESHED
    assert "cannot write the cache" in caplog.text
    assert "xx-YY-NewNeural" in kept.current


async def test_interval_zero_never_fetches(tmp_path: Path) -> None:
    edge = FakeEdge(EDGE_LIST)
    kept = keeper(tmp_path, edge, FakeClock(), interval=0)
    assert await kept.refresh() is RefreshResult.DISABLED
    assert not kept.due()
    kept.start()
    await kept.close()
    assert edge.calls == 0


async def test_the_background_loop_refreshes_then_waits_an_interval(tmp_path: Path) -> None:
    clock = FakeClock()
    waits: list[float] = []
    waited = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        waited.set()
        await asyncio.Event().wait()  # until cancelled by close()

    edge = FakeEdge(EDGE_LIST)
    kept = CatalogueKeeper(
        edge,
        cache_path=tmp_path / CACHE_FILE_NAME,
        refresh_interval=DAY,
        wall_clock=clock,
        sleep=sleep,
    )
    kept.start()
    await waited.wait()
    await kept.close()

    assert edge.calls == 1
    assert waits == [DAY]
    assert "xx-YY-NewNeural" in kept.current


async def test_from_config_fetches_edges_list_from_a_local_server(tmp_path: Path) -> None:
    config = parse_config({"state": {"data_dir": str(tmp_path)}, "voices": {"fetch_timeout": 5}})
    kept = keeper_from_config(config)
    assert kept.cache_path == tmp_path / CACHE_FILE_NAME

    async with FakeVoiceListServer(Answer(body=EDGE_LIST)) as server:
        with edge_voice_list_pointed_at(server.url):
            assert await kept.refresh() is RefreshResult.REFRESHED

    assert kept.current.canonical("xx-yy-newneural") == "xx-YY-NewNeural"
    assert (tmp_path / CACHE_FILE_NAME).exists()


async def test_an_unexpected_error_in_the_fetch_keeps_the_list(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken() -> list[dict[str, Any]]:
        raise RuntimeError("bug")

    kept = CatalogueKeeper(broken, cache_path=None, refresh_interval=DAY, wall_clock=FakeClock())
    assert await kept.refresh() is RefreshResult.FAILED
    assert kept.current is shipped_catalogue()
    assert "unexpectedly" in caplog.text

"""core.metrics: every documented metric on a real /metrics scrape, no per-guild labels."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_voice.core.metrics import STATE_VALUES, MetricsServer, PlayerFigures, TTSMetrics

DOCUMENTED = {
    "tts_breaker_state",
    "tts_breaker_transitions",
    "tts_messages",
    "tts_synthesis_attempts",
    "tts_first_audio_seconds",
    "tts_cache_hits",
    "tts_cache_misses",
    "tts_streams_playing",
    "tts_queue_depth",
    "tts_admission_refusals",
}


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


@pytest.fixture
async def served() -> AsyncIterator[tuple[TTSMetrics, MetricsServer]]:
    metrics = TTSMetrics()
    server = MetricsServer(metrics.registry, "127.0.0.1", 0)
    yield metrics, server
    await server.aclose()


async def test_a_scrape_shows_every_documented_metric(
    served: tuple[TTSMetrics, MetricsServer],
) -> None:
    metrics, server = served
    metrics.breaker_states = lambda: [("edge", "OPEN"), ("edge:de-DE-KillianNeural", "CLOSED")]
    metrics.cache_stats = lambda: {"hits": 7, "misses": 3}
    metrics.player_stats = lambda: PlayerFigures(playing=2, queued=5)
    metrics.transition("edge", "CLOSED", "OPEN")
    metrics.message("spoken")
    metrics.message("posted_as_text")
    metrics.synthesis_attempt("ok")
    metrics.synthesis_attempt("no_audio")
    metrics.first_audio_after(0.25)
    metrics.admission_refused()

    text = await asyncio.to_thread(scrape, server.port)
    families = {f.name: f for f in text_string_to_metric_families(text)}

    assert set(families) >= DOCUMENTED
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("tts_breaker_state", (("breaker", "edge"),))] == STATE_VALUES["OPEN"]
    assert samples[("tts_breaker_state", (("breaker", "edge:de-DE-KillianNeural"),))] == 0
    key = (("breaker", "edge"), ("from_state", "CLOSED"), ("to_state", "OPEN"))
    assert samples[("tts_breaker_transitions_total", key)] == 1
    assert samples[("tts_messages_total", (("outcome", "failed"),))] == 0
    assert samples[("tts_messages_total", (("outcome", "spoken"),))] == 1
    assert samples[("tts_synthesis_attempts_total", (("result", "no_audio"),))] == 1
    assert samples[("tts_first_audio_seconds_count", ())] == 1
    assert samples[("tts_cache_hits_total", ())] == 7
    assert samples[("tts_cache_misses_total", ())] == 3
    assert samples[("tts_streams_playing", ())] == 2
    assert samples[("tts_queue_depth", ())] == 5
    assert samples[("tts_admission_refusals_total", ())] == 1


async def test_no_metric_has_a_guild_or_user_label(
    served: tuple[TTSMetrics, MetricsServer],
) -> None:
    metrics, server = served
    metrics.message("spoken")
    text = await asyncio.to_thread(scrape, server.port)
    labels = {
        name for f in text_string_to_metric_families(text) for s in f.samples for name in s.labels
    }
    assert labels <= {"breaker", "from_state", "to_state", "outcome", "result", "le"}


async def test_the_server_binds_where_it_is_told_and_closes() -> None:
    metrics = TTSMetrics()
    server = MetricsServer(metrics.registry, "127.0.0.1", 0)
    port = server.port
    await server.aclose()
    await server.aclose()  # idempotent
    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(scrape, port)

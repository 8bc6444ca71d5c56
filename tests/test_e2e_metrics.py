"""End to end: a Prometheus scrape of the running host shows what happened, and only that.

The reference host serves ``[metrics] port``; a message spoken, then an outage that posts
messages as text, must move exactly the documented series, with no guild or user labels.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_voice.core.breaker import CircuitState
from tests.e2e_support import E2E, e2e_bot
from tests.fakes.edge_server import FaultMode, FaultPlan

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


async def scrape(port: int) -> Samples:
    text = await asyncio.to_thread(fetch, port)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def breaker_states(e2e: E2E) -> set[CircuitState]:
    return {breaker.state for breaker in e2e.voice_cog.service.breakers}


async def test_a_scrape_counts_speech_the_outage_and_its_text_posts(tmp_path: Path) -> None:
    port = free_port()
    async with e2e_bot(tmp_path, metrics={"port": port}) as e2e:
        before = await scrape(port)
        await e2e.join()
        await e2e.say_in_channel("Hallo zusammen")
        await e2e.wait_heard(1)
        await e2e.settled()

        spoken = await scrape(port)
        assert value(spoken, "tts_messages_total", outcome="spoken") == 1
        assert value(spoken, "tts_messages_total", outcome="posted_as_text") == 0
        ok = value(spoken, "tts_synthesis_attempts_total", result="ok")
        assert ok == value(before, "tts_synthesis_attempts_total", result="ok") + 1
        assert value(spoken, "tts_first_audio_seconds_count") == ok
        assert value(spoken, "tts_cache_misses_total") >= 1
        assert value(spoken, "tts_breaker_state", breaker="edge") == 0
        assert value(spoken, "tts_streams_playing") == 0
        assert value(spoken, "tts_queue_depth") == 0

        e2e.edge.plan = FaultPlan(FaultMode.NO_AUDIO)
        for text in ("Eins", "Zwei", "Drei"):
            await e2e.say_in_channel(text)
        await e2e.wait_for(lambda: CircuitState.OPEN in breaker_states(e2e), 10)
        await e2e.settled()

        outage = await scrape(port)
        assert value(outage, "tts_messages_total", outcome="posted_as_text") == 3
        assert value(outage, "tts_messages_total", outcome="spoken") == 1
        assert value(outage, "tts_synthesis_attempts_total", result="no_audio") >= 2
        opened = [
            labels
            for (name, labels), count in outage.items()
            if name == "tts_breaker_transitions_total" and count > 0
        ]
        assert opened
        assert all(dict(labels)["to_state"] == "OPEN" for labels in opened)
        tripped = {dict(labels)["breaker"] for labels in opened}
        for breaker in tripped:
            assert value(outage, "tts_breaker_state", breaker=breaker) == 1
        label_names = {name for (_, labels) in outage for name, _ in labels}
        assert label_names <= {"breaker", "from_state", "to_state", "outcome", "result", "le"}

    with pytest.raises(urllib.error.URLError):  # closed with the bot
        await asyncio.to_thread(fetch, port)


async def test_without_a_port_nothing_listens(tmp_path: Path) -> None:
    async with e2e_bot(tmp_path) as e2e:
        assert e2e.bot.tts_context.metrics_server is None
        await e2e.join()
        await e2e.say_in_channel("Hallo")
        await e2e.wait_heard(1)
        await e2e.settled()
        # Counted all the same: a host may serve the registry itself. The count is taken
        # by the message's done callback, a loop turn after the player went idle.
        registry = e2e.bot.tts_context.metrics.registry
        spoken = await e2e.wait_for(
            lambda: registry.get_sample_value("tts_messages_total", {"outcome": "spoken"})
        )
        assert spoken == 1

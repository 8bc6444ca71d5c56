"""Prometheus metrics for operators: breakers, message outcomes, synthesis, cache, players.

One :class:`TTSMetrics` per bot, on a registry of its own (never the process-wide default
one, so a host bot that exports its own metrics keeps them apart). Labels are breaker
names, states, outcomes and error kinds: never a guild or a user (cardinality).

Counters that happen in our code are incremented as they happen; figures that live in
objects already (breaker states, cache counts, streams playing, queue depths) are read
when Prometheus scrapes, so the hot paths pay nothing for them.

:class:`MetricsServer` serves ``/metrics`` with ``prometheus_client``'s own HTTP server
(a thread), bound to ``[metrics] host`` (127.0.0.1 unless configured otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

STATE_VALUES: Mapping[str, int] = {
    "CLOSED": 0,
    "OPEN": 1,
    "HALF_OPEN": 2,
    "FORCED_OPEN": 3,
    "DISABLED": 4,
    "METRICS_ONLY": 5,
}
"""The value of ``tts_breaker_state`` for each state."""

FIRST_AUDIO_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
"""Seconds; Edge's first audio usually takes 0.1-0.5 s, an outage wave seconds."""


@dataclass(frozen=True, slots=True)
class PlayerFigures:
    """What the scrape reads of the players: streams playing now, messages waiting."""

    playing: int
    queued: int


BreakerStates = Callable[[], Iterable[tuple[str, str]]]
"""Returns ``(breaker name, state name)`` for every breaker."""
CacheStats = Callable[[], Mapping[str, int] | None]
"""Returns :meth:`core.cache.AudioCache.stats` (None without a cache)."""
PlayerStats = Callable[[], PlayerFigures]


class _ScrapeTimeCollector(Collector):
    def __init__(self, metrics: TTSMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        m = self._metrics
        state = GaugeMetricFamily(
            "tts_breaker_state",
            "Breaker state: 0 CLOSED, 1 OPEN, 2 HALF_OPEN, 3 FORCED_OPEN, 4 DISABLED, "
            "5 METRICS_ONLY",
            labels=["breaker"],
        )
        for name, value in m.breaker_states():
            state.add_metric([name], STATE_VALUES.get(value, -1))
        yield state
        stats = m.cache_stats() or {}
        hits = CounterMetricFamily("tts_cache_hits", "Audio cache hits (memory and disk)")
        hits.add_metric([], stats.get("hits", 0))
        yield hits
        misses = CounterMetricFamily("tts_cache_misses", "Audio cache misses")
        misses.add_metric([], stats.get("misses", 0))
        yield misses
        figures = m.player_stats()
        playing = GaugeMetricFamily("tts_streams_playing", "Utterances playing right now")
        playing.add_metric([], figures.playing)
        yield playing
        queued = GaugeMetricFamily("tts_queue_depth", "Messages waiting in every guild's queue")
        queued.add_metric([], figures.queued)
        yield queued


def _no_breakers() -> Iterable[tuple[str, str]]:
    return ()


def _no_cache() -> Mapping[str, int] | None:
    return None


def _no_players() -> PlayerFigures:
    return PlayerFigures(0, 0)


class TTSMetrics:
    """Every metric of one bot; see the module docstring for what is counted where."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.breaker_states: BreakerStates = _no_breakers
        self.cache_stats: CacheStats = _no_cache
        self.player_stats: PlayerStats = _no_players
        self.transitions = Counter(
            "tts_breaker_transitions",
            "Breaker state changes",
            ["breaker", "from_state", "to_state"],
            registry=self.registry,
        )
        self.messages = Counter(
            "tts_messages",
            "Messages asked to be spoken, by what became of them",
            ["outcome"],
            registry=self.registry,
        )
        self.synthesis_attempts = Counter(
            "tts_synthesis_attempts",
            "Synthesis attempts at Edge, by result: ok or the error kind",
            ["result"],
            registry=self.registry,
        )
        self.first_audio = Histogram(
            "tts_first_audio_seconds",
            "Seconds from the start of a synthesis attempt to its first audio",
            buckets=FIRST_AUDIO_BUCKETS,
            registry=self.registry,
        )
        self.admission_refusals = Counter(
            "tts_admission_refusals",
            "Messages posted as text at once because no more streams fit the packet cadence",
            registry=self.registry,
        )
        self.registry.register(_ScrapeTimeCollector(self))
        for outcome in ("spoken", "posted_as_text", "failed"):
            self.messages.labels(outcome)  # present at 0 from the first scrape

    def transition(self, breaker: str, old: str, new: str) -> None:
        """Count one breaker transition."""
        self.transitions.labels(breaker, old, new).inc()

    def message(self, outcome: str) -> None:
        """Count one message by its outcome (``spoken``, ``posted_as_text``, ``failed``)."""
        self.messages.labels(outcome).inc()

    def synthesis_attempt(self, result: str) -> None:
        """Count one attempt at Edge: ``ok`` or the error kind's value."""
        self.synthesis_attempts.labels(result).inc()

    def first_audio_after(self, seconds: float) -> None:
        """Observe the time to an attempt's first audio."""
        self.first_audio.observe(seconds)

    def admission_refused(self) -> None:
        """Count one message refused a stream by admission control."""
        self.admission_refusals.inc()


class MetricsServer:
    """``/metrics`` over HTTP for ``registry``, on a thread; :meth:`close` stops it."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        server, self._thread = start_http_server(port, addr=host, registry=registry)
        self._server: WSGIServer | None = server
        self._lock = threading.Lock()
        self.host = host
        self.port = int(server.server_address[1])
        log.info("metrics served on http://%s:%d/metrics", host, self.port)

    def close(self) -> None:
        """Stop serving and join the thread. Idempotent. Blocks up to one poll
        interval (0.5 s) while the server notices: call it off the event loop
        (:meth:`aclose`)."""
        with self._lock:
            server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        self._thread.join(timeout=5)

    async def aclose(self) -> None:
        """:meth:`close` on a worker thread, so the event loop never waits on it."""
        await asyncio.to_thread(self.close)

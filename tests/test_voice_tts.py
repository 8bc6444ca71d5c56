"""The seed-compatible facade, against the fake Edge server with the real client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from edge_voice.core.breaker import CircuitBreakerConfig
from edge_voice.core.config import Config, DeadlineConfig, EdgeConfig, RetryConfig
from edge_voice.core.tts import voice_tts
from tests.fakes.audio_samples import decode_mp3
from tests.fakes.edge_server import FakeEdgeServer, FaultMode, FaultPlan


@pytest.fixture
def facade(edge_server: FakeEdgeServer) -> Iterator[FakeEdgeServer]:
    port = urlparse(edge_server.url).port
    assert port is not None
    voice_tts.configure(
        Config(
            breaker=CircuitBreakerConfig(consecutive_failures=2),
            retry=RetryConfig(attempts=1, backoff_base=0.0),
            deadlines=DeadlineConfig(connect=1.0, read=1.0, total=3.0),
            edge=EdgeConfig(host="127.0.0.1", port=port),
        )
    )
    yield edge_server
    voice_tts._service = None
    voice_tts._edge = EdgeConfig()
    voice_tts._last_error = None


async def test_text_to_speech_writes_audio(facade: FakeEdgeServer, tmp_path: Path) -> None:
    target = tmp_path / "hello.mp3"
    assert await voice_tts.text_to_speech("Hallo Welt", target) == str(target)
    assert target.read_bytes() == facade.audio
    assert decode_mp3(target.read_bytes())


async def test_text_to_speech_without_a_path_uses_a_temporary_file(facade: FakeEdgeServer) -> None:
    written = await voice_tts.text_to_speech("Hallo")
    assert written is not None
    path = Path(written)
    try:
        assert path.read_bytes() == facade.audio
    finally:
        path.unlink()


async def test_failure_and_open_circuit_return_none(
    facade: FakeEdgeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    facade.plan = FaultPlan(FaultMode.UNAVAILABLE)
    for _ in range(2):
        assert await voice_tts.text_to_speech("Hallo", tmp_path / "x.mp3") is None
    assert "unavailable" in caplog.text
    assert voice_tts.get_tts_service_health()["state"] == "OPEN"
    reached = facade.connection_count
    assert await voice_tts.text_to_speech("Hallo", tmp_path / "x.mp3") is None
    assert facade.connection_count == reached
    state = voice_tts.get_error_state()
    assert state["circuit_open"] is True
    assert "is OPEN" in state["last_error"]
    assert not (tmp_path / "x.mp3").exists()


async def test_health_while_open_keeps_the_figures_that_tripped_it(
    facade: FakeEdgeServer, tmp_path: Path
) -> None:
    # Issue 10 §1: after the trip the seed's health said "OPEN, 0 failures".
    facade.plan = FaultPlan(FaultMode.UNAVAILABLE)
    for _ in range(2):
        assert await voice_tts.text_to_speech("Hallo", tmp_path / "x.mp3") is None
    health = voice_tts.get_tts_service_health()
    assert health["state"] == "OPEN"
    assert health["consecutive_failures"] == 2
    assert health["failure_rate"] == 1.0
    assert (health["window_calls"], health["window_failures"]) == (2, 2)
    assert health["tripped_by"]["cause"] == "consecutive_failures"
    assert "unavailable" in health["last_failure_reason"]


async def test_reset_closes_the_circuit(facade: FakeEdgeServer, tmp_path: Path) -> None:
    facade.plan = FaultPlan(FaultMode.UNAVAILABLE)
    for _ in range(2):
        await voice_tts.text_to_speech("Hallo", tmp_path / "x.mp3")
    voice_tts.reset_circuit_breaker()
    state = voice_tts.get_error_state()
    assert state["circuit_state"] == "CLOSED"
    assert state["last_error"] is None
    facade.plan = FaultPlan()
    assert await voice_tts.text_to_speech("Hallo", tmp_path / "x.mp3") is not None


async def test_health_has_the_seed_keys(facade: FakeEdgeServer) -> None:
    health = voice_tts.get_tts_service_health()
    for key in ("state", "circuit_open", "half_open", "consecutive_failures", "last_failure"):
        assert key in health
    assert set(health["voices"]) == {"de-DE-KillianNeural", "de-DE-ConradNeural"}


async def test_network_checks_and_connectivity_test(facade: FakeEdgeServer) -> None:
    network = await voice_tts.check_network_connectivity()
    assert network["dns_resolution"] is True
    assert network["tcp_connection"] is True
    result = await voice_tts.test_tts_connectivity()
    assert result["synthesis"] is True
    assert result["recorded"] is True
    assert voice_tts.get_tts_service_health()["last_success"] is not None


async def test_connectivity_test_while_open_does_not_close_the_circuit(
    facade: FakeEdgeServer,
) -> None:
    voice_tts.get_service().service_breaker.force_open("maintenance", duration=600)
    result = await voice_tts.test_tts_connectivity()
    assert result["synthesis"] is True
    assert result["recorded"] is False
    assert voice_tts.get_tts_service_health()["state"] == "OPEN"


async def test_diagnose_names_the_failing_step_and_the_breakers(facade: FakeEdgeServer) -> None:
    text = await voice_tts.diagnose_tts_failure()
    # The fake server speaks plain ws://, so the TLS step is where this path breaks.
    assert "TLS" in text
    assert "edge:de-DE-KillianNeural" in text or "edge" in text
    assert "CLOSED" in text

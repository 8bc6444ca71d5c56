"""Breaker state across restarts: what is restored and saved, against a real SQLite file.

See :mod:`tests.breaker_store_support` for what a "restart" is here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

import pytest

from edge_voice.core.breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
)
from edge_voice.core.breaker.store import STATE_FILE_NAME, BreakerStateStore, RestoreOutcome
from edge_voice.core.clock import FakeClock
from edge_voice.core.tts.breakers import ServiceBreakers
from edge_voice.core.tts.provider import EDGE_MP3, SynthesisRequest
from edge_voice.core.tts.service import TTSService
from tests.breaker_store_support import Downstream, rebooted, start, store_warnings, trip


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / STATE_FILE_NAME


async def test_open_breaker_stays_open_after_restart_with_remaining_cooldown(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    clock.advance(20)
    store.close()

    later = rebooted(clock, after=10)
    breaker, store, outcome = start(path, later)
    down = Downstream()
    assert outcome is RestoreOutcome.OPEN
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after == pytest.approx(30)
    with pytest.raises(CircuitOpenError):
        await breaker.call(down.ok)
    assert down.calls == 0

    later.advance(30)
    assert await breaker.call(down.ok) == "ok"
    assert down.calls == 1
    assert breaker.state is CircuitState.CLOSED
    store.close()


async def test_outage_that_ended_while_down_makes_the_next_call_a_trial(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    store.close()

    later = rebooted(clock, after=90)
    breaker, store, outcome = start(path, later)
    assert outcome is RestoreOutcome.TRIAL
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after == 0
    down = Downstream()
    with pytest.raises(ConnectionError):
        await breaker.call(down.fail)
    # One failed trial reopens at once, with the grown cooldown.
    assert down.calls == 1
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after == pytest.approx(120)
    store.close()


async def test_half_open_at_shutdown_restarts_into_a_trial(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    clock.advance(60)
    breaker.acquire()
    assert breaker.state is CircuitState.HALF_OPEN
    store.close()

    _, store, outcome = start(path, rebooted(clock, after=1))
    assert outcome is RestoreOutcome.TRIAL
    store.close()


async def test_clock_gone_backwards_starts_closed_with_a_warning(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    store.close()

    earlier = rebooted(clock, after=-3600)
    breaker, store, outcome = start(path, earlier)
    assert outcome is RestoreOutcome.DISCARDED
    assert breaker.state is CircuitState.CLOSED
    assert any("backwards" in message for message in store_warnings(caplog))
    row = store.load("edge")
    assert row is not None
    assert row.state is CircuitState.CLOSED
    assert row.trips == 1
    store.close()

    caplog.clear()
    _, store, outcome = start(path, rebooted(earlier, after=1))
    assert outcome is RestoreOutcome.CLOSED
    assert store_warnings(caplog) == []
    store.close()


@pytest.mark.parametrize(
    ("state", "open_until", "cooldown", "trips"),
    [
        ("BANANA", 10.0, 60.0, 1),
        ("OPEN", 10_000.0, 60.0, 1),
        ("OPEN", 10.0, -5.0, 1),
        ("OPEN", None, 60.0, 1),
        ("OPEN", 10.0, float("inf"), 1),
        ("OPEN", 10.0, 60.0, "many"),
        ("OPEN", 10.0, 60.0, -3),
        ("HALF_OPEN", 10.0, 60.0, 1),
    ],
)
async def test_nonsense_row_starts_closed_with_a_warning(
    path: Path,
    caplog: pytest.LogCaptureFixture,
    state: str,
    open_until: float | None,
    cooldown: float,
    trips: object,
) -> None:
    clock = FakeClock()
    with BreakerStateStore(path, wall_clock=clock.wall) as creator:
        assert creator.load("edge") is None
    now = clock.wall()
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO breaker_state (name, state, open_until_wall, cooldown, trips, "
            "consecutive_trips, saved_at_wall) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                "edge",
                state,
                None if open_until is None else now + open_until,
                cooldown,
                trips,
                1,
                now,
            ),
        )
    db.close()

    breaker, store, outcome = start(path, clock)
    down = Downstream()
    assert outcome is RestoreOutcome.DISCARDED
    assert breaker.state is CircuitState.CLOSED
    assert await breaker.call(down.ok) == "ok"
    assert store_warnings(caplog)
    row = store.load("edge")
    assert row is not None
    assert row.state is CircuitState.CLOSED
    store.close()


async def test_trips_survive_restarts(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    down = Downstream()
    await trip(breaker, down)
    clock.advance(60)
    await breaker.call(down.ok)
    assert breaker.state is CircuitState.CLOSED
    store.close()

    clock = rebooted(clock, after=1)
    breaker, store, outcome = start(path, clock)
    assert outcome is RestoreOutcome.CLOSED
    assert breaker.snapshot()["trips"] == 1  # a CLOSED circuit shows its history too
    await trip(breaker, down)
    row = store.load("edge")
    assert row is not None
    assert row.trips == 2
    store.close()

    breaker, store, outcome = start(path, rebooted(clock, after=1))
    assert outcome is RestoreOutcome.OPEN
    assert breaker.snapshot()["trips"] == 2
    store.close()


async def test_reset_persists_closed(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    breaker.reset()
    store.close()

    breaker, store, outcome = start(path, rebooted(clock, after=1))
    down = Downstream()
    assert outcome is RestoreOutcome.CLOSED
    assert await breaker.call(down.ok) == "ok"
    assert down.calls == 1
    store.close()


async def test_cooldown_above_a_lowered_maximum_is_capped(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    breaker.force_open("maintenance", duration=500)
    store.close()

    lowered = CircuitBreakerConfig(
        consecutive_failures=2, cooldown_period=60, max_cooldown_period=100, cooldown_jitter=0.0
    )
    breaker, store, outcome = start(path, rebooted(clock, after=10), config=lowered)
    assert outcome is RestoreOutcome.OPEN
    assert breaker.retry_after == pytest.approx(100)
    store.close()


class CountingProvider:
    """A TTS provider that always answers, counting every request that reached it."""

    name = "edge"
    audio_format = EDGE_MP3

    def __init__(self) -> None:
        self.calls = 0

    async def stream(self, request: SynthesisRequest) -> AsyncGenerator[bytes, None]:
        self.calls += 1
        yield b"audio"


async def test_service_breakers_are_restored_and_saved(path: Path) -> None:
    clock = FakeClock()
    service = TTSService(
        CountingProvider(),
        voices=["de-DE-KillianNeural"],
        breakers=ServiceBreakers("edge", clock=clock, wall_clock=clock.wall),
    )
    store = BreakerStateStore(path, wall_clock=clock.wall)
    outcomes = store.attach_service(service.breakers)
    assert set(outcomes) == {"edge", "edge:de-DE-KillianNeural"}
    service.service_breaker.force_open("outage")
    service.breakers.voice("de-DE-ConradNeural").force_open("voice gone")
    store.close()

    later = rebooted(clock, after=10)
    provider = CountingProvider()
    service = TTSService(
        provider,
        voices=["de-DE-KillianNeural", "de-DE-ConradNeural"],
        breakers=ServiceBreakers("edge", clock=later, wall_clock=later.wall),
    )
    store = BreakerStateStore(path, wall_clock=later.wall)
    outcomes = store.attach_service(service.breakers)
    assert outcomes["edge"] is RestoreOutcome.OPEN
    assert outcomes["edge:de-DE-ConradNeural"] is RestoreOutcome.OPEN
    assert outcomes["edge:de-DE-KillianNeural"] is RestoreOutcome.NOTHING_STORED
    with pytest.raises(CircuitOpenError):
        await service.synthesize("Hallo")
    assert provider.calls == 0
    store.close()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("cooldown_level", -1),
        ("calm_since_wall", "yesterday"),
        ("version", 1.5),
        ("tripped_by", "{not json"),
        ("tripped_by", '{"cause": "gremlins"}'),
        ("tripped_by", '{"cause": "forced"}'),
    ],
)
async def test_nonsense_in_the_new_columns_starts_closed_with_a_warning(
    path: Path, caplog: pytest.LogCaptureFixture, column: str, value: object
) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    breaker.isolate("maintenance")
    store.close()
    with sqlite3.connect(path) as db:
        db.execute(f"UPDATE breaker_state SET {column} = ?", (value,))
    db.close()

    breaker, store, outcome = start(path, rebooted(clock, after=1))
    assert outcome is RestoreOutcome.DISCARDED
    assert breaker.state is CircuitState.CLOSED
    assert store_warnings(caplog)
    store.close()


@pytest.mark.parametrize(
    ("set_mode", "state"),
    [
        (lambda b: b.isolate("isolated by @root"), CircuitState.FORCED_OPEN),
        (lambda b: b.disable("disabled by @root"), CircuitState.DISABLED),
        (lambda b: b.metrics_only("shadow mode by @root"), CircuitState.METRICS_ONLY),
    ],
    ids=["isolated", "disabled", "metrics only"],
)
async def test_operator_modes_survive_a_restart(
    path: Path, set_mode: Callable[[CircuitBreaker], None], state: CircuitState
) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    set_mode(breaker)
    store.close()

    breaker, store, outcome = start(path, rebooted(clock, after=3600))
    seen: list[str] = []
    assert outcome is RestoreOutcome.MODE
    assert breaker.state is state
    reason = breaker.typed_snapshot().last_transition_reason
    assert reason is not None
    assert reason.startswith("restored after restart: ")
    assert "by @root" in reason
    breaker.add_listener(lambda event: seen.append(event.reason))
    breaker.reset("reset by @root")
    store.close()

    breaker, store, outcome = start(path, rebooted(clock, after=3601))
    assert outcome is RestoreOutcome.CLOSED
    assert breaker.state is CircuitState.CLOSED
    assert seen == ["reset by @root"]
    store.close()


async def test_the_cooldown_level_of_a_flapping_service_survives_a_restart(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    down = Downstream()
    for _ in range(2):
        await trip(breaker, down)
        clock.advance(breaker.retry_after)
        await breaker.call(down.ok)
    assert breaker.typed_snapshot().cooldown_level == 2
    store.close()

    soon = rebooted(clock, after=30)
    breaker, store, outcome = start(path, soon)
    assert outcome is RestoreOutcome.CLOSED
    assert breaker.typed_snapshot().cooldown_level == 2
    await trip(breaker, down)
    assert breaker.retry_after == pytest.approx(240)
    store.close()

    calm = rebooted(soon, after=10_000)
    breaker, store, _ = start(path, calm)
    breaker.reset()
    store.close()
    breaker, store, _ = start(path, rebooted(calm, after=1))
    assert breaker.typed_snapshot().cooldown_level == 0
    store.close()


async def test_a_closed_breaker_steps_down_while_the_bot_is_down(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    down = Downstream()
    await trip(breaker, down)
    clock.advance(60)
    await breaker.call(down.ok)
    store.close()

    breaker, store, _ = start(path, rebooted(clock, after=60))
    assert breaker.typed_snapshot().cooldown_level == 0
    store.close()


async def test_the_figures_that_tripped_it_survive_a_restart(path: Path) -> None:
    clock = FakeClock()
    breaker, store, _ = start(path, clock)
    await trip(breaker, Downstream())
    store.close()

    breaker, store, _ = start(path, rebooted(clock, after=5))
    snap = breaker.typed_snapshot()
    assert snap.tripped_by is not None
    assert snap.tripped_by.describe() == "2 consecutive failures"
    assert snap.consecutive_failures == 2
    store.close()

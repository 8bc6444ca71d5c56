"""core.alerts: transition summaries, status and diagnosis alerts, and the coalescing batcher."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from edge_voice.core.alerts import (
    EMBED_TOTAL_LIMIT,
    FIELD_COUNT_LIMIT,
    FIELD_VALUE_LIMIT,
    STATE_COLOURS,
    Alert,
    AlertBatcher,
    diagnosis_alert,
    discord_time,
    status_alert,
    transition_alert,
)
from edge_voice.core.breaker import (
    BreakerSnapshot,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    TransitionEvent,
)
from edge_voice.core.clock import FakeClock
from edge_voice.core.config import CanaryConfig
from edge_voice.core.diagnostics.report import (
    DiagnosticsResult,
    DnsResult,
    HandshakeResult,
    SynthesisResult,
    TcpResult,
    TlsResult,
    diagnose,
)
from edge_voice.core.tts.breakers import ServiceBreakers
from edge_voice.core.tts.edge import EdgeProvider
from edge_voice.core.tts.service import TTSService
from tests.admin_cog_support import WindowSleep

CLOSED, OPEN, HALF = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
CONFIG = CircuitBreakerConfig(consecutive_failures=3, cooldown_period=60.0, cooldown_jitter=0.0)


def recorder(clock: FakeClock, name: str = "edge") -> tuple[CircuitBreaker, list[TransitionEvent]]:
    breaker = CircuitBreaker(name, CONFIG, clock, wall_clock=clock.wall, jitter=lambda: 0.0)
    events: list[TransitionEvent] = []
    breaker.add_listener(events.append)
    return breaker, events


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        breaker.record_failure(breaker.acquire(), "NoAudioReceived")


def trip(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, 3)


def half_open(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker, clock)
    clock.advance(61)
    breaker.acquire()


def close_again(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker, clock)
    breaker.reset("reset by root")


def field(alert: Alert, name: str) -> str:
    return dict(alert.fields)[name]


# ---------------------------------------------------------------- single transitions


@pytest.mark.parametrize(
    ("drive", "title", "colour", "next_trial", "reason", "trips"),
    [
        (
            trip,
            "TTS breaker edge: CLOSED → OPEN",
            STATE_COLOURS[OPEN],
            "in 60 s (<t:{open_until}:R>)",
            "3 consecutive failures, last: NoAudioReceived",
            "1 (1 in a row)",
        ),
        (
            half_open,
            "TTS breaker edge: OPEN → HALF_OPEN",
            STATE_COLOURS[HALF],
            "now: trial calls running (1 in flight)",
            "cooldown of 60s elapsed",
            "1 (1 in a row)",
        ),
        (
            close_again,
            "TTS breaker edge: OPEN → CLOSED",
            STATE_COLOURS[CLOSED],
            "-",
            "reset by root",
            "1 (0 in a row)",
        ),
    ],
)
def test_single_transition_alert(
    drive: Callable[[CircuitBreaker, FakeClock], None],
    title: str,
    colour: int,
    next_trial: str,
    reason: str,
    trips: str,
) -> None:
    clock = FakeClock()
    breaker, events = recorder(clock)
    opened_wall = clock.wall()
    drive(breaker, clock)

    alert = transition_alert(events[-1:])

    assert alert.title == title
    assert alert.colour == colour
    assert field(alert, "Next trial") == next_trial.format(open_until=int(opened_wall + 60))
    assert reason in field(alert, "Reason")
    assert reason in alert.description
    assert field(alert, "Trips so far") == trips
    assert field(alert, "Last failure") == f"<t:{int(opened_wall)}:R> (NoAudioReceived)"
    assert field(alert, "Time") == f"<t:{int(clock.wall())}:f> (<t:{int(clock.wall())}:R>)"
    assert alert.at == events[-1].at


# ---------------------------------------------------------------- summaries


def test_burst_becomes_one_summary_with_path_and_final_state() -> None:
    clock = FakeClock()
    edge, events = recorder(clock)
    voice, _ = recorder(clock, "edge:de-DE-KillianNeural")
    voice.add_listener(events.append)
    trip(edge, clock)
    clock.advance(61)
    trial = edge.acquire()  # HALF_OPEN
    edge.record_failure(trial, "again")
    clock.advance(3)
    trip(voice, clock)

    alert = transition_alert(events)

    assert alert.title == "TTS breakers: 4 transitions in 64 s, now OPEN"
    assert alert.colour == STATE_COLOURS[OPEN]
    lines = alert.description.splitlines()
    assert lines[0] == "**edge**: 3 transitions: CLOSED → OPEN → HALF_OPEN → OPEN, now **OPEN**"
    assert lines[1] == "**edge:de-DE-KillianNeural**: 1 transition: CLOSED → OPEN, now **OPEN**"
    assert "trial call failed: again" in field(alert, "edge")
    assert "Trips so far: 2" in field(alert, "edge")
    assert field(alert, "edge").count("in 120 s") == 1  # the cooldown grew on the second trip


def test_long_flapping_path_is_shortened() -> None:
    clock = FakeClock()
    breaker, events = recorder(clock)
    for _ in range(10):
        breaker.force_open("flap", duration=1)
        clock.advance(1)
        breaker.reset("flap back")

    alert = transition_alert(events)

    assert alert.title == "TTS breakers: 20 transitions in 10 s, now CLOSED"
    assert alert.colour == STATE_COLOURS[CLOSED]
    assert "CLOSED → OPEN → CLOSED → … 14 more … → OPEN → CLOSED → OPEN → CLOSED" in (
        alert.description
    )


def test_no_events_is_an_error() -> None:
    with pytest.raises(ValueError, match="no transitions"):
        transition_alert([])


# ---------------------------------------------------------------- status, diagnosis, limits


@pytest.mark.parametrize(
    ("drive", "state"),
    [(None, CLOSED), (trip, OPEN), (half_open, HALF)],
)
def test_status_alert_is_coloured_by_the_service_breaker(
    drive: Callable[[CircuitBreaker, FakeClock], None] | None, state: CircuitState
) -> None:
    clock = FakeClock()
    service = _service(clock)
    if drive is not None:
        drive(service.service_breaker, clock)

    alert = status_alert(service.health())

    assert alert.colour == STATE_COLOURS[state]
    assert alert.title.endswith(state.value)
    names = [name for name, _ in alert.fields]
    assert names == ["Service breaker (edge)", "Voice v1", "Voice v2", "During outages"]
    assert "**State:** " in field(alert, "Service breaker (edge)")
    assert state.value in field(alert, "Service breaker (edge)")
    assert "**State:** 🟢 CLOSED" in field(alert, "Voice v1")


def test_status_shows_times_as_discord_timestamps_and_troubled_voices() -> None:
    clock = FakeClock()
    service = _service(clock)
    breaker = service.breakers.voice("v2")
    breaker.record_success(breaker.acquire())
    clock.advance(5)
    opened = clock.wall()
    trip(breaker, clock)
    clock.advance(20)

    alert = status_alert(service.health())
    voice = field(alert, "Voice v2")
    assert "the next message is the trial call" in field(alert, "During outages")

    assert alert.colour == STATE_COLOURS[CLOSED]  # the service itself still speaks
    assert "Voices not CLOSED: v2." in alert.description
    assert f"**Last failure:** <t:{int(opened)}:R> (NoAudioReceived)" in voice
    assert f"**Last success:** <t:{int(opened - 5)}:R>" in voice
    assert f"**Opened:** <t:{int(opened)}:R>" in voice
    assert f"**Next trial:** in 40 s (<t:{int(opened + 60)}:R>)" in voice
    assert "**Tripped by:** 3 consecutive failures" in voice
    assert "**Failures:** 3 in a row · 75% of the last 4 calls (window 60 s)" in voice
    assert "**Trips so far:** 1" in voice
    assert "**Last failure:** never" in field(alert, "Voice v1")


def _service(clock: FakeClock) -> TTSService:
    """A real service whose breakers the tests drive by hand; it never synthesizes."""
    return TTSService(
        EdgeProvider(connect_timeout=1.0, read_timeout=1.0),
        voices=["v1", "v2"],
        breakers=ServiceBreakers(
            "edge", CONFIG, clock=clock, wall_clock=clock.wall, jitter=lambda: 0.0
        ),
    )


def test_diagnosis_alert_lists_checks_fixes_and_breakers() -> None:
    refused = DiagnosticsResult(
        "127.0.0.1",
        9,
        DnsResult(ok=True, latency_ms=1.2, detail="resolved to 127.0.0.1"),
        TcpResult(ok=False, latency_ms=0.4, detail="connection refused", refused=True),
        TlsResult(ok=False, skipped=True, detail="skipped: tcp check failed"),
        HandshakeResult(ok=False, skipped=True, detail="skipped: tcp check failed"),
        SynthesisResult(ok=False, skipped=True, detail="skipped: tcp check failed"),
    )
    clock = FakeClock()
    diagnosis = diagnose(refused, [b.snapshot() for b in _service(clock).breakers])

    alert = diagnosis_alert(diagnosis, "Startup")

    assert alert.title == "Startup"
    assert alert.colour == STATE_COLOURS[OPEN]
    assert "TCP connection to 127.0.0.1:9 refused" in alert.description
    names = [name for name, _ in alert.fields]
    assert names[:5] == ["✅ dns (1 ms)", "❌ tcp (0 ms)", "⏭️ tls", "⏭️ websocket", "⏭️ synthesis"]
    assert "• Allow outgoing HTTPS (TCP 9)" in field(alert, "Suggested fixes")
    assert "• edge: CLOSED" in field(alert, "Breakers")


def test_alert_build_fits_discord_embed_limits() -> None:
    fields = [(f"field {i}", "x" * 2000) for i in range(40)]
    alert = Alert.build("t" * 300, "d" * 5000, 0, fields)

    assert len(alert.title) == 256
    assert alert.title.endswith("…")
    assert len(alert.fields) <= FIELD_COUNT_LIMIT
    assert all(len(value) <= FIELD_VALUE_LIMIT for _, value in alert.fields)
    sizes = [len(alert.title), len(alert.description), *(len(n + v) for n, v in alert.fields)]
    assert sum(sizes) <= EMBED_TOTAL_LIMIT
    assert alert.fields[-1][0] == "…"
    assert alert.fields[-1][1].endswith("more not shown")


def test_discord_time() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
    assert discord_time(at) == f"<t:{int(at.timestamp())}:R>"
    assert discord_time(at, "f") == f"<t:{int(at.timestamp())}:f>"
    assert discord_time(None) == "never"


# ---------------------------------------------------------------- the batcher


class Posts(list[Alert]):
    """An alert sink that records what it is given."""

    async def __call__(self, alert: Alert) -> None:
        self.append(alert)


def event(clock: FakeClock, new: CircuitState, old: CircuitState = CLOSED) -> TransitionEvent:
    at = datetime.fromtimestamp(clock.wall(), tz=UTC)
    return TransitionEvent("edge", old, new, f"to {new}", at, BreakerSnapshot("edge", new, trips=1))


async def test_events_within_a_window_are_posted_once() -> None:
    clock, sleep = FakeClock(), WindowSleep()
    posted = Posts()
    batcher = AlertBatcher(posted, 10.0, sleep=sleep)
    batcher.add(event(clock, OPEN))
    await sleep.entered.wait()  # the window is open and its task is sleeping
    clock.advance(4)
    batcher.add(event(clock, HALF, OPEN))
    batcher.add(event(clock, OPEN, HALF))
    assert (posted, batcher.pending, sleep.delays) == ([], 3, [10.0])

    sleep.end_window()
    await batcher.drain()

    [alert] = posted
    assert alert.title == "TTS breakers: 3 transitions in 4 s, now OPEN"
    assert batcher.pending == 0

    batcher.add(event(clock, CLOSED, OPEN))  # after the window: a new one opens
    await sleep.entered.wait()
    sleep.end_window()
    await batcher.drain()
    assert [a.title for a in posted[1:]] == ["TTS breaker edge: OPEN → CLOSED"]
    assert sleep.delays == [10.0, 10.0]


async def test_real_breaker_flapping_reaches_the_batcher_as_one_post() -> None:
    clock = FakeClock()
    posted = Posts()

    async def advancing_sleep(delay: float) -> None:
        clock.advance(delay)

    batcher = AlertBatcher(posted, 10.0, sleep=advancing_sleep)
    breaker, _ = recorder(clock)
    breaker.add_listener(batcher.add)
    for _ in range(5):
        trip(breaker, clock)
        clock.advance(1)
        breaker.reset()
    await batcher.drain()

    [alert] = posted
    assert alert.title == "TTS breakers: 10 transitions in 5 s, now CLOSED"


async def test_a_failing_post_is_logged_and_later_windows_still_post(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, sleep = FakeClock(), WindowSleep()
    posted: list[Alert] = []

    async def post(alert: Alert) -> None:
        if not posted:
            posted.append(alert)
            raise ConnectionResetError("log channel gone")
        posted.append(alert)

    batcher = AlertBatcher(post, 1.0, sleep=sleep)
    batcher.add(event(clock, OPEN))
    await sleep.entered.wait()
    sleep.end_window()
    await batcher.drain()
    batcher.add(event(clock, CLOSED, OPEN))
    await sleep.entered.wait()
    sleep.end_window()
    await batcher.drain()

    assert len(posted) == 2
    assert "could not post 1 breaker transition(s)" in caplog.text
    assert "ConnectionResetError: log channel gone" in caplog.text


async def test_a_post_that_hangs_is_cut_off_by_its_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def post(alert: Alert) -> None:
        await never

    async def no_wait(delay: float) -> None:
        return None

    batcher = AlertBatcher(post, 1.0, sleep=no_wait, post_deadline=0.01)
    batcher.add(event(FakeClock(), OPEN))
    await batcher.drain()

    assert "could not post" in caplog.text
    assert "TimeoutError" in caplog.text


async def test_close_posts_what_the_open_window_held_and_ignores_later_events() -> None:
    clock, sleep = FakeClock(), WindowSleep()
    posted = Posts()
    batcher = AlertBatcher(posted, 600.0, sleep=sleep)
    batcher.add(event(clock, OPEN))
    batcher.add(event(clock, HALF, OPEN))
    await sleep.entered.wait()

    await batcher.close()  # the window never ended: close must not wait for it
    batcher.add(event(clock, CLOSED, HALF))
    await batcher.drain()

    assert [a.title for a in posted] == ["TTS breakers: 2 transitions in 0 s, now HALF_OPEN"]
    assert batcher.pending == 0
    assert sleep.gate.cancelled()  # the window was cut short, not waited out


def test_an_event_without_a_running_loop_is_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def post(alert: Alert) -> None:  # pragma: no cover - must not be called
        raise AssertionError

    batcher = AlertBatcher(post, 1.0)
    with caplog.at_level(logging.WARNING):
        batcher.add(event(FakeClock(), OPEN))

    assert batcher.pending == 0
    assert "no running event loop" in caplog.text


def test_status_reports_the_cache_and_what_listeners_get_during_outages() -> None:
    clock = FakeClock()
    service = TTSService(
        EdgeProvider(connect_timeout=1.0, read_timeout=1.0),
        voices=["v1"],
        breakers=ServiceBreakers("edge", clock=clock, wall_clock=clock.wall),
        canary=CanaryConfig(),
    )
    service.service_breaker.force_open("outage")
    stats = {"hits": 7, "misses": 3, "evictions": 2, "entries": 5, "bytes": 3 << 20,
             "max_bytes": 16 << 20}  # fmt: skip
    alert = status_alert(service.health(), cache=stats, on_open="offline_voice")
    assert "spoken by the offline voice" in alert.description
    assert field(alert, "Audio cache") == (
        "7 hits · 3 misses · 2 evictions\n5 phrases, 3.0 of 16.0 MiB"
    )
    outages = field(alert, "During outages")
    assert "offline voice speaks" in outages
    assert "canaries" in outages


def test_status_says_when_the_canary_cannot_be_spoken() -> None:
    service = TTSService(
        EdgeProvider(connect_timeout=1.0, read_timeout=1.0),
        voices=["v1"],
        canary=CanaryConfig(text="..."),
    )
    assert service.canary is not None
    service.canary.config_error = "canary '...' with v1 cannot be spoken: input: empty"
    outages = field(status_alert(service.health(), on_open="text"), "During outages")
    assert "next message is the trial call" in outages
    assert "cannot be spoken" in outages

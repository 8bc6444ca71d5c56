"""What operators are told: breaker transitions, status and diagnoses as embed-shaped alerts.

Pure formatting (no Discord import): an :class:`Alert` has exactly the parts a
Discord embed has, already clipped to Discord's limits, and times are written as
Discord timestamps (``<t:epoch:R>``), which each reader's client shows in their
own time zone. :class:`AlertBatcher` is the one piece with asyncio: it coalesces
transitions that arrive within a window into one alert, so a flapping service
cannot flood a channel.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from edge_voice.core.breaker.events import TransitionEvent
from edge_voice.core.breaker.snapshot import BreakerSnapshot
from edge_voice.core.breaker.states import CircuitState
from edge_voice.core.diagnostics.report import Diagnosis, Verdict

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

STATE_COLOURS = {
    CircuitState.CLOSED: 0x2ECC71,  # green
    CircuitState.HALF_OPEN: 0xF5A623,  # amber
    CircuitState.OPEN: 0xE74C3C,  # red
    CircuitState.FORCED_OPEN: 0x992D22,  # dark red
    CircuitState.DISABLED: 0x95A5A6,  # grey
    CircuitState.METRICS_ONLY: 0x3498DB,  # blue
}
STATE_ICONS = {
    CircuitState.CLOSED: "🟢",
    CircuitState.HALF_OPEN: "🟠",
    CircuitState.OPEN: "🔴",
    CircuitState.FORCED_OPEN: "⛔",
    CircuitState.DISABLED: "⚪",
    CircuitState.METRICS_ONLY: "🔵",
}
_SEVERITY = {
    CircuitState.CLOSED: 0,
    CircuitState.METRICS_ONLY: 1,
    CircuitState.DISABLED: 1,
    CircuitState.HALF_OPEN: 2,
    CircuitState.OPEN: 3,
    CircuitState.FORCED_OPEN: 3,
}

# Discord's embed limits.
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FIELD_COUNT_LIMIT = 25
EMBED_TOTAL_LIMIT = 6000
_PATH_SHOWN = 8
_MORE_RESERVE = 40  # room for the "N more not shown" field


@dataclass(frozen=True)
class Alert:
    """An embed's worth of information: title, description, colour, fields, time."""

    title: str
    description: str
    colour: int
    fields: tuple[tuple[str, str], ...] = ()
    at: datetime | None = None

    @classmethod
    def build(
        cls,
        title: str,
        description: str,
        colour: int,
        fields: Sequence[tuple[str, str]] = (),
        at: datetime | None = None,
    ) -> Alert:
        """An alert with every part clipped so the whole fits in one Discord embed."""
        title = clip(title, TITLE_LIMIT)
        description = clip(description, DESCRIPTION_LIMIT)
        budget = EMBED_TOTAL_LIMIT - len(title) - len(description) - _MORE_RESERVE
        kept: list[tuple[str, str]] = []
        for index, (name, value) in enumerate(fields):
            name, value = clip(name, FIELD_NAME_LIMIT), clip(value or "-", FIELD_VALUE_LIMIT)
            left = len(fields) - index
            full = len(kept) == FIELD_COUNT_LIMIT - 1 and left > 1
            if full or len(name) + len(value) > budget:
                kept.append(("…", f"{left} more not shown"))
                break
            kept.append((name, value))
            budget -= len(name) + len(value)
        return cls(title, description, colour, tuple(kept), at)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def discord_time(at: datetime | None, style: str = "R") -> str:
    """A Discord timestamp (``R`` relative, ``f`` date and time, ``T`` time), or "never"."""
    return "never" if at is None else f"<t:{math.floor(at.timestamp())}:{style}>"


def worst(states: Sequence[CircuitState]) -> CircuitState:
    """The most alarming of ``states`` (OPEN, then HALF_OPEN, then CLOSED)."""
    return max(states, key=_SEVERITY.__getitem__, default=CircuitState.CLOSED)


def next_trial_at(snapshot: BreakerSnapshot) -> datetime | None:
    """When an OPEN breaker admits its next trial call, from its snapshot; else None."""
    if snapshot.state is not CircuitState.OPEN or snapshot.opened_at is None:
        return None
    return snapshot.opened_at + timedelta(seconds=snapshot.cooldown)


def _next_trial(snapshot: BreakerSnapshot) -> str:
    state = snapshot.state
    if state is CircuitState.HALF_OPEN:
        return f"now: trial calls running ({snapshot.half_open_in_flight} in flight)"
    if state is CircuitState.FORCED_OPEN:
        return "none: isolated until reset"
    if state is not CircuitState.OPEN:
        return "-"
    seconds = math.ceil(snapshot.retry_after)
    return f"in {seconds} s ({discord_time(next_trial_at(snapshot))})"


def _failures(snapshot: BreakerSnapshot) -> str:
    slow = f" · {snapshot.slow_call_rate:.0%} slow" if snapshot.window_slow_calls else ""
    return (
        f"{snapshot.consecutive_failures} in a row · "
        f"{snapshot.failure_rate:.0%} of the last {snapshot.window_calls} calls{slow} "
        f"(window {snapshot.window})"
    )


def breaker_report(snapshot: BreakerSnapshot) -> str:
    """Multi-line operator view of one breaker snapshot (one embed field's value)."""
    state = snapshot.state
    lines = [f"**State:** {STATE_ICONS[state]} {state.value}"]
    if state.is_mode:
        lines.append(f"**Set:** {clip(snapshot.last_transition_reason or '-', 200)}")
    if snapshot.tripped_by is not None:
        lines.append(f"**Tripped by:** {snapshot.tripped_by.describe()}")
    lines += [
        f"**Failures:** {_failures(snapshot)}",
        f"**Last failure:** {_last_failure(snapshot)}",
        f"**Last success:** {discord_time(snapshot.last_success)}",
    ]
    if not state.admits_all:
        lines.append(f"**Opened:** {discord_time(snapshot.opened_at)}")
    lines += [
        f"**Next trial:** {_next_trial(snapshot)}",
        f"**Trips so far:** {snapshot.trips}",
    ]
    return "\n".join(lines)


def status_alert(
    health: Mapping[str, Any],
    *,
    cache: Mapping[str, int] | None = None,
    on_open: str = "text",
    streams: Mapping[str, float] | None = None,
) -> Alert:
    """``/tts status``: the service breaker, then each voice's, coloured by the service state.

    ``health`` is :meth:`core.tts.service.TTSService.health`: the service breaker's
    snapshot at the top level and each voice's under ``voices``. ``cache`` is
    :meth:`core.cache.AudioCache.stats`; ``on_open`` is what listeners get while OPEN;
    ``streams`` is :meth:`core.admission.StreamAdmission.stats`.
    """
    service = BreakerSnapshot.from_dict(health)
    state = service.state
    provider = health.get("provider", "tts")
    voices = {
        v: BreakerSnapshot.from_dict(snap) for v, snap in (health.get("voices") or {}).items()
    }
    fields = [(f"Service breaker ({provider})", breaker_report(service))]
    fields += [(f"Voice {voice}", breaker_report(snap)) for voice, snap in voices.items()]
    fields.append(("During outages", _outage_report(health.get("canary") or {}, on_open)))
    if cache is not None:
        fields.append(("Audio cache", _cache_report(cache)))
    if streams is not None:
        fields.append(("Voice streams", _streams_report(streams)))
    troubled = [v for v, snap in voices.items() if snap.state is not CircuitState.CLOSED]
    instead = "posted as text" if on_open == "text" else "spoken by the offline voice"
    summary = {
        CircuitState.CLOSED: "Speech is served normally.",
        CircuitState.HALF_OPEN: "Testing whether the service has recovered.",
        CircuitState.OPEN: f"The service is failing: messages are {instead} instead.",
        CircuitState.FORCED_OPEN: f"Isolated by an operator: messages are {instead} instead.",
        CircuitState.DISABLED: "The breaker is disabled: every request goes to the service.",
        CircuitState.METRICS_ONLY: "The breaker only measures: it never stops a request.",
    }[state]
    if troubled:
        summary += " Voices not CLOSED: " + ", ".join(troubled) + "."
    return Alert.build(
        f"TTS status: {STATE_ICONS[state]} {state.value}", summary, STATE_COLOURS[state], fields
    )


def _outage_report(canary: Mapping[str, Any], on_open: str) -> str:
    listeners = {
        "text": "messages posted as text",
        "offline_voice": "offline voice speaks",
        "offline_voice_and_text": "offline voice speaks, text posted too",
    }.get(on_open, on_open)
    if canary.get("config_error"):
        trials = "the next message is the trial call (canaries off: they cannot be spoken)"
    elif canary.get("enabled"):
        prober = (
            "paused (no requests)"
            if canary.get("paused_idle")
            else ("testing" if canary.get("running") else "idle")
        )
        trials = f"canaries ({prober}, {canary.get('sent', 0)} sent)"
    else:
        trials = "the next message is the trial call"
    return f"Listeners: {listeners}\nRecovery test: {trials}"


def _streams_report(stats: Mapping[str, float]) -> str:
    budget, cap = stats.get("budget_ms", 0), stats.get("max_streams", 0)
    limits = []
    if budget:
        limits.append(f"CPU {stats.get('load_ms', 0):.0f} of {budget:.0f} ms/s")
    if cap:
        limits.append(f"at most {cap:.0f} at once")
    admission = " · ".join(limits) if limits else "admission control off"
    return (
        f"{stats.get('playing', 0):.0f} playing · {stats.get('refused', 0):.0f} refused "
        f"(posted as text: at capacity)\n{admission}"
    )


def _cache_report(stats: Mapping[str, int]) -> str:
    mib = 1024 * 1024
    return (
        f"{stats.get('hits', 0)} hits · {stats.get('misses', 0)} misses · "
        f"{stats.get('evictions', 0)} evictions\n"
        f"{stats.get('entries', 0)} phrases, "
        f"{stats.get('bytes', 0) / mib:.1f} of {stats.get('max_bytes', 0) / mib:.1f} MiB"
    )


def _path(states: Sequence[CircuitState]) -> str:
    names = [s.value for s in states]
    if len(names) > _PATH_SHOWN:
        names = [*names[:3], f"… {len(names) - _PATH_SHOWN + 1} more …", *names[-4:]]
    return " → ".join(names)


def transition_alert(events: Sequence[TransitionEvent]) -> Alert:
    """One alert for ``events`` (in order): the transition itself, or a summary of many.

    A summary says, per breaker, how many transitions, the path of states and the
    state now, so one post replaces a burst of flapping.
    """
    if not events:
        raise ValueError("no transitions to report")
    if len(events) == 1:
        return _single_transition(events[0])
    by_breaker: dict[str, list[TransitionEvent]] = {}
    for event in events:
        by_breaker.setdefault(event.breaker, []).append(event)
    span = (events[-1].at - events[0].at).total_seconds()
    lines = []
    fields = []
    for name, seen in by_breaker.items():
        last = seen[-1]
        path = _path([seen[0].old, *(e.new for e in seen)])
        lines.append(
            f"**{name}**: {len(seen)} transition{'s' * (len(seen) != 1)}: {path}, "
            f"now **{last.new.value}**"
        )
        detail = f"Last reason: {clip(last.reason, 300)}\nNext trial: {_next_trial(last.snapshot)}"
        detail += f"\nTrips so far: {last.snapshot.trips}"
        fields.append((name, detail))
    now = worst([seen[-1].new for seen in by_breaker.values()])
    title = f"TTS breakers: {len(events)} transitions in {span:.0f} s, now {now.value}"
    return Alert.build(title, "\n".join(lines), STATE_COLOURS[now], fields, events[-1].at)


def _last_failure(snapshot: BreakerSnapshot) -> str:
    text = discord_time(snapshot.last_failure)
    if snapshot.last_failure_reason and snapshot.last_failure is not None:
        text += f" ({clip(snapshot.last_failure_reason, 200)})"
    return text


def _single_transition(event: TransitionEvent) -> Alert:
    snapshot = event.snapshot
    # The trip counts show whether it keeps coming back.
    trips = f"{snapshot.trips} ({snapshot.consecutive_trips} in a row)"
    fields = [
        ("Reason", event.reason),
        ("Last failure", _last_failure(snapshot)),
        ("Time", f"{discord_time(event.at, 'f')} ({discord_time(event.at)})"),
        ("Next trial", _next_trial(snapshot)),
        ("Trips so far", trips),
    ]
    title = f"TTS breaker {event.breaker}: {event.old.value} → {event.new.value}"
    description = f"{STATE_ICONS[event.new]} {event.reason}"
    return Alert.build(title, description, STATE_COLOURS[event.new], fields, event.at)


def diagnosis_alert(diagnosis: Diagnosis, title: str = "TTS diagnosis") -> Alert:
    """A diagnosis as an alert: headline, each check's result and latency, fixes, breakers."""
    fields = []
    for check in diagnosis.checks:
        mark = "⏭️" if check.skipped else "✅" if check.ok else "❌"
        took = "" if check.latency_ms is None else f" ({check.latency_ms:.0f} ms)"
        fields.append((f"{mark} {check.name.value}{took}", check.detail or "ok"))
    if diagnosis.fixes:
        fields.append(("Suggested fixes", "\n".join(f"• {fix}" for fix in diagnosis.fixes)))
    if diagnosis.breakers:
        fields.append(("Breakers", "\n".join(f"• {b.describe()}" for b in diagnosis.breakers)))
    healthy = diagnosis.verdict is Verdict.HEALTHY
    colour = STATE_COLOURS[CircuitState.CLOSED if healthy else CircuitState.OPEN]
    return Alert.build(title, f"**{diagnosis.headline}**", colour, fields)


class AlertBatcher:
    """Coalesces breaker transitions: the first opens a window, its end posts one alert.

    Register :meth:`add` as a breaker listener. ``post`` gets each alert; its
    failures are logged and never reach the breaker. ``sleep`` is injectable so
    tests end a window without waiting for it.
    """

    def __init__(
        self,
        post: Callable[[Alert], Awaitable[None]],
        window: float,
        *,
        sleep: Sleep = asyncio.sleep,
        post_deadline: float = 15.0,
    ) -> None:
        self._post = post
        self.window = window
        self._sleep = sleep
        self.post_deadline = post_deadline
        self._pending: list[TransitionEvent] = []
        self._window: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    @property
    def pending(self) -> int:
        """Transitions waiting for the current window to end."""
        return len(self._pending)

    def add(self, event: TransitionEvent) -> None:
        """Queue ``event``; open a window if none is open (a breaker listener)."""
        if self.closed:
            return
        self._pending.append(event)
        if self._window is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.warning("breaker %s: transition not posted, no running event loop", event.breaker)
            self._pending.clear()
            return
        task = loop.create_task(self._run_window(), name="tts-alert-window")
        self._window = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_window(self) -> None:
        await self._sleep(self.window)
        self._window = None
        await self._send()

    async def _send(self) -> None:
        events, self._pending = self._pending, []
        if not events:
            return
        try:
            async with asyncio.timeout(self.post_deadline):
                await self._post(transition_alert(events))
        except Exception:
            log.exception("could not post %d breaker transition(s)", len(events))

    async def drain(self) -> None:
        """Wait until every window already open has ended and posted."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Stop accepting events, end the open window now and post what it held."""
        self.closed = True
        if self._window is not None:
            self._window.cancel()
            self._window = None
        await self.drain()
        await self._send()


class OperatorLog:
    """Where warnings for the bot's operators go: the log channel, once a cog connects it.

    The voice cog warns through it (a text channel it cannot post to); the admin cog
    connects it to the log channel. Without a connection warnings are only logged.
    """

    def __init__(self) -> None:
        self._post: Callable[[Alert], Awaitable[None]] | None = None

    def connect(self, post: Callable[[Alert], Awaitable[None]]) -> None:
        """Send later warnings to ``post`` (which must not raise)."""
        self._post = post

    def disconnect(self, post: Callable[[Alert], Awaitable[None]]) -> None:
        """Stop sending warnings to ``post`` (if it is the one connected)."""
        if self._post is post:
            self._post = None

    async def warn(self, text: str) -> None:
        """Log ``text`` and post it to the operators' channel when one is connected."""
        log.warning("operator warning: %s", text)
        post = self._post
        if post is None:
            return
        alert = Alert.build(
            "TTS warning", text, STATE_COLOURS[CircuitState.HALF_OPEN], at=datetime.now(UTC)
        )
        try:
            await post(alert)
        except Exception:
            log.exception("could not post an operator warning")

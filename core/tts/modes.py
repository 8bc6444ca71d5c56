"""The operator's modes for the whole TTS service (``/tts mode``), on every breaker it has.

``normal`` is a breaker doing its job. The other three are Resilience4j's manual states:
``isolated`` (FORCED_OPEN: Edge is not called at all, every message gets the fallback,
no canaries, until someone switches back), ``disabled`` (DISABLED: every call goes to
Edge and nothing is recorded) and ``metrics only`` (METRICS_ONLY: every call goes to
Edge and is recorded, the circuit never trips). A mode is a breaker state, so it is
saved and restored with the breaker (SQLite, or Redis for many processes) and posted to
the log channel as a transition, with the reason that names who set it.

The breakers are process-wide (one Edge for every server the bot is in), so a mode acts
on every server at once: the admin cog may restrict who can set it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from edge_voice.core.breaker import CircuitBreaker, CircuitState


class ServiceMode(StrEnum):
    """What ``/tts mode`` offers."""

    NORMAL = "normal"
    ISOLATED = "isolated"
    DISABLED = "disabled"
    METRICS_ONLY = "metrics only"


MODE_STATES: dict[ServiceMode, CircuitState] = {
    ServiceMode.ISOLATED: CircuitState.FORCED_OPEN,
    ServiceMode.DISABLED: CircuitState.DISABLED,
    ServiceMode.METRICS_ONLY: CircuitState.METRICS_ONLY,
}
"""The breaker state each mode other than ``normal`` puts every breaker in."""

DESCRIPTIONS: dict[ServiceMode, str] = {
    ServiceMode.NORMAL: "the breakers trip on failures and recover by themselves",
    ServiceMode.ISOLATED: "Edge is not called; every message gets the fallback",
    ServiceMode.DISABLED: "every message goes to Edge; failures are not recorded",
    ServiceMode.METRICS_ONLY: "every message goes to Edge; failures are recorded, never trip",
}


@dataclass(frozen=True, slots=True)
class ModeChange:
    """What switching to a mode did: the mode, and each breaker's state before."""

    mode: ServiceMode
    before: dict[str, CircuitState]

    @property
    def changed(self) -> bool:
        """Whether any breaker was not already where the mode puts it."""
        target = MODE_STATES.get(self.mode)
        if target is None:
            return any(state.is_mode for state in self.before.values())
        return any(state is not target for state in self.before.values())


def current_mode(service_breaker: CircuitBreaker) -> ServiceMode:
    """The mode the service breaker is in (any ordinary state is ``normal``)."""
    for mode, state in MODE_STATES.items():
        if service_breaker.state is state:
            return mode
    return ServiceMode.NORMAL


def apply_mode(breakers: Iterable[CircuitBreaker], mode: ServiceMode, reason: str) -> ModeChange:
    """Put every breaker in ``mode``; ``reason`` (who, and with what) goes with each
    transition. ``normal`` takes the breakers that are in a mode back to CLOSED and
    leaves the others as they are (an OPEN one keeps its outage: ``/tts reset`` is for
    that)."""
    targets = list(breakers)
    before = {breaker.name: breaker.state for breaker in targets}
    target = MODE_STATES.get(mode)
    for breaker in targets:
        if target is None:
            if breaker.state.is_mode:
                breaker.reset(reason)
            continue
        if breaker.state is target:
            continue
        if mode is ServiceMode.ISOLATED:
            breaker.isolate(reason)
        elif mode is ServiceMode.DISABLED:
            breaker.disable(reason)
        else:
            breaker.metrics_only(reason)
    return ModeChange(mode, before)

"""Transition events and their delivery to listeners.

A listener is any callable taking a :class:`TransitionEvent`; it may be a
coroutine function. Listeners run after the breaker's state has changed and
can never break a call: a sync listener that raises is logged, an async one is
run as a task whose failure is logged.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from edge_voice.core.breaker.snapshot import BreakerSnapshot
from edge_voice.core.breaker.states import CircuitState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TransitionEvent:
    """One breaker state change as listeners see it."""

    breaker: str
    old: CircuitState
    new: CircuitState
    reason: str
    """Why it changed; for an operator's action, the reason string the caller passed."""
    at: datetime
    snapshot: BreakerSnapshot
    """The breaker's ``typed_snapshot()`` right after the change."""


Listener = Callable[[TransitionEvent], Awaitable[None] | None]


class ListenerSet:
    """Registered listeners, and the tasks of async ones still running."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, listener: Listener) -> None:
        """Register ``listener`` for every later transition."""
        self._listeners.append(listener)

    def remove(self, listener: Listener) -> None:
        """Unregister ``listener``; unknown listeners are ignored."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def emit(self, event: TransitionEvent) -> None:
        """Deliver ``event`` to every listener without letting one break the caller."""
        for listener in list(self._listeners):
            try:
                result = listener(event)
            except Exception:
                log.exception("breaker %s: listener %r failed", event.breaker, listener)
                continue
            if inspect.isawaitable(result):
                self._start(listener, result, event)

    def _start(
        self, listener: Listener, awaitable: Awaitable[None], event: TransitionEvent
    ) -> None:
        async def run() -> None:
            try:
                await awaitable
            except Exception:
                log.exception("breaker %s: listener %r failed", event.breaker, listener)

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            log.warning(
                "breaker %s: async listener %r skipped, no running loop", event.breaker, listener
            )
            return
        # Keep a reference: the loop holds tasks only weakly.
        task = loop.create_task(run(), name=f"breaker-listener-{event.breaker}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the async listeners already started (tests and shutdown use this)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

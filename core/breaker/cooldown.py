"""Cooldown levels: how long each trip stays OPEN, and how a flapping service is remembered.

Level 0 is ``cooldown_period``; level ``n`` is ``cooldown_period * multiplier**n``
plus up to ``jitter`` of that at random, never above ``max_cooldown_period``.
Each trip opens at the current level and raises it by one. Closing does not
forget the level (Envoy's ejection multiplier does the same): it steps back
down one level per ``cooldown_period`` spent CLOSED. So a service that flaps is
probed less and less often, while one outage after a long healthy stretch
starts at the base cooldown. Only ``reset()`` forgets the level at once.
"""

from __future__ import annotations

from collections.abc import Callable

from edge_voice.core.breaker.config import CircuitBreakerConfig

MAX_LEVEL = 64
"""No level above this: 100**64 is still a finite float, and the cap binds far earlier."""


class CooldownSchedule:
    """The cooldown of each level for one config, with jitter drawn from ``jitter()``."""

    __slots__ = ("_base", "_cap", "_jitter", "_multiplier", "_share", "top")

    def __init__(self, config: CircuitBreakerConfig, jitter: Callable[[], float]) -> None:
        self._base = config.cooldown_period
        self._cap = config.max_cooldown_period
        self._multiplier = config.cooldown_multiplier
        self._share = config.cooldown_jitter
        self._jitter = jitter
        top = 1
        # The first level whose cooldown reaches the cap: higher ones would only
        # take longer to step back down from. Without growth one level is all there is.
        while self._multiplier > 1.0 and top < MAX_LEVEL and self.plain(top) < self._cap:
            top += 1
        self.top = top
        """The highest level; a trip at this level stays there."""

    def plain(self, level: int) -> float:
        """The cooldown of ``level`` without jitter, capped."""
        return min(self._cap, self._base * self._multiplier**level)

    def level_of(self, cooldown: float) -> int:
        """The lowest level whose cooldown (without jitter) is at least ``cooldown``."""
        level = 0
        while level < self.top and self.plain(level) < cooldown:
            level += 1
        return level

    def draw(self, level: int, floor: float = 0.0) -> float:
        """The cooldown of a trip at ``level``: exact at level 0, else with jitter added;
        never below ``floor`` (the cooldown it grows from), never above the cap."""
        if level == 0:
            return min(self._cap, max(floor, self._base))
        grown = self._base * self._multiplier**level
        grown += grown * self._share * self._jitter()
        return min(self._cap, max(floor, grown))

    def decayed(self, level: int, calm_since: float | None, now: float) -> int:
        """``level`` after the healthy time since ``calm_since`` (None: not CLOSED)."""
        if calm_since is None or level == 0:
            return level
        # Whole cooldown periods only; a clock that went backwards steps nothing.
        steps = max(0.0, now - calm_since) // self._base
        return int(max(0.0, level - steps))

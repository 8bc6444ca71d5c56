"""Admission control: start a voice stream only while the process can keep its cadence.

Discord wants one 20 ms packet per stream, on time. Past what one core can do, every
stream stutters, not just the newest (``bench/voice_load.py``). So each stream is given
a CPU cost, per second of audio, by what it has to do (convert audio, or only send
packets that are ready); a new stream is admitted while the costs of those playing plus
its own stay within the budget, and ``max_streams`` caps the count whatever the costs.
A refused message is posted as text at once, with the reason (the player does that).

Pure bookkeeping: no clock, no I/O. One :class:`StreamAdmission` per process, shared by
every guild's player; on one event loop each call is atomic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from edge_voice.core.config import PlayerConfig


class StreamKind(StrEnum):
    """What a stream costs the process while it plays."""

    TRANSCODE = "transcode"
    """Audio converted to Opus as it plays (Edge's MP3, the offline voice)."""
    REPLAY = "replay"
    """Opus packets that need no conversion (a cached phrase, Edge's WebM Opus passed
    through): only paced and sent."""


@dataclass(frozen=True, slots=True)
class AdmissionConfig:
    """Costs and budget, in milliseconds of CPU per second of audio.

    ``budget_ms`` 0 switches the cost check off; ``max_streams`` 0 leaves the count
    uncapped. With both off every stream is admitted.
    """

    budget_ms: float = 0.0
    transcode_ms: float = 1.0
    replay_ms: float = 1.0
    max_streams: int = 0

    def __post_init__(self) -> None:
        if self.budget_ms < 0 or self.max_streams < 0:
            raise ValueError("budget_ms and max_streams must not be negative")
        if self.transcode_ms <= 0 or self.replay_ms <= 0:
            raise ValueError("stream costs must be positive")

    def cost(self, kind: StreamKind) -> float:
        """The CPU a stream of ``kind`` takes, ms per second of audio."""
        return self.transcode_ms if kind is StreamKind.TRANSCODE else self.replay_ms


@dataclass(frozen=True, slots=True, eq=False)
class Ticket:
    """One admitted stream; give it back with :meth:`StreamAdmission.release`."""

    kind: StreamKind
    cost: float


@dataclass(frozen=True, slots=True)
class Refusal:
    """A stream that was not admitted, and why (said in the text post)."""

    kind: StreamKind
    reason: str


class StreamAdmission:
    """Counts the streams playing and admits new ones within the budget.

    ``playing``, ``load_ms`` and ``refused`` are plain attributes (for metrics and
    ``/tts status``); ``on_refused`` listeners are called with the kind refused.
    """

    def __init__(self, config: AdmissionConfig) -> None:
        self.config = config
        self.playing = 0
        self.load_ms = 0.0
        self.refused = 0
        self.refused_by_kind: dict[StreamKind, int] = dict.fromkeys(StreamKind, 0)
        self.on_refused: list[Callable[[StreamKind], None]] = []
        self._tickets: set[Ticket] = set()

    @property
    def enabled(self) -> bool:
        """Whether anything can be refused."""
        return bool(self.config.budget_ms or self.config.max_streams)

    def admit(self, kind: StreamKind) -> Ticket | Refusal:
        """A ticket for one more stream of ``kind``, or the :class:`Refusal` (counted)."""
        reason = self.refusal(kind)
        if reason is not None:
            self.refused += 1
            self.refused_by_kind[kind] += 1
            for listener in list(self.on_refused):
                listener(kind)
            return Refusal(kind, reason)
        cost = self.config.cost(kind)
        ticket = Ticket(kind, cost)
        self._tickets.add(ticket)
        self.playing += 1
        self.load_ms += cost
        return ticket

    def refusal(self, kind: StreamKind) -> str | None:
        """Why one more stream of ``kind`` would be refused now, or None if it fits."""
        config = self.config
        if config.max_streams and self.playing >= config.max_streams:
            return f"{self.playing} of at most {config.max_streams} voice streams are playing"
        cost = config.cost(kind)
        if config.budget_ms and self.load_ms + cost > config.budget_ms + 1e-9:
            return (
                f"{self.playing} voice streams are playing; one more would need "
                f"{self.load_ms + cost:.0f} of {config.budget_ms:.0f} ms of CPU per second"
            )
        return None

    def stats(self) -> dict[str, float]:
        """The counts for ``/tts status``: playing, load and budget (ms/s), cap, refused."""
        return {
            "playing": self.playing,
            "load_ms": self.load_ms,
            "budget_ms": self.config.budget_ms,
            "max_streams": self.config.max_streams,
            "refused": self.refused,
        }

    def release(self, ticket: Ticket) -> None:
        """The stream ended (or never started): its cost is free again. Idempotent."""
        if ticket not in self._tickets:
            return
        self._tickets.discard(ticket)
        self.playing -= 1
        self.load_ms = max(0.0, self.load_ms - ticket.cost) if self._tickets else 0.0


def admission_config(player: PlayerConfig) -> AdmissionConfig:
    """``[player]``'s ``cpu_budget`` (a share of one core), stream costs and cap."""
    return AdmissionConfig(
        budget_ms=player.cpu_budget * 1000.0,
        transcode_ms=player.stream_cost_ms,
        replay_ms=player.replay_cost_ms,
        max_streams=player.max_streams,
    )

"""The vocabulary of one spoken message: what was asked, and what became of it.

Pure data plus a small pure policy (one notice per outage), shared by the player and the
cogs. The "NAME said" prefix is the text policy's (:mod:`edge_voice.core.text.policy`);
:class:`SpeakerPrefixer` is re-exported here for the modules that import it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from edge_voice.core.posting import PostOutcome
from edge_voice.core.text.cleanup import defuse_mentions
from edge_voice.core.text.policy import SpeakerPrefixer
from edge_voice.core.text.speakable import CheckedText

__all__ = [
    "OutageNotice",
    "SpeakerPrefixer",
    "SpeechOutcome",
    "SpeechResult",
    "TextPostReason",
    "Utterance",
    "posted_while_not_connected",
    "text_post_for",
]


class SpeechOutcome(StrEnum):
    """What happened to a message someone asked to hear: exactly one of these."""

    SPOKEN = "spoken"
    """The listeners heard it (Edge, a cached phrase, or the offline voice)."""
    POSTED_AS_TEXT = "posted_as_text"
    """It could not be spoken and was posted in the text channel instead."""
    FAILED = "failed"
    """Neither: the reason says why (unspeakable text, or the text post failed too)."""


class TextPostReason(StrEnum):
    """Why a message was posted as text instead of spoken."""

    VOICE_UNAVAILABLE = "voice unavailable"
    """The service breaker is OPEN (or every voice's is)."""
    SYNTHESIS_FAILED = "synthesis failed"
    """Every retry and backup voice failed."""
    CUT_OFF = "voice cut off"
    """Synthesis or the voice connection broke after playback had started."""
    NOT_CONNECTED = "not connected"
    """The bot is not in a voice channel in this guild."""
    QUEUE_FULL = "queue full"
    AT_CAPACITY = "at capacity"
    """One more voice stream would break the cadence of those playing (admission
    control); the post says so."""
    WAITED_TOO_LONG = "waited too long"
    SHUTTING_DOWN = "shutting down"
    INTERNAL_ERROR = "internal error"
    """A bug in the player; logged with its traceback."""


class FailureReason(StrEnum):
    """Why a message was neither spoken nor posted."""

    UNSPEAKABLE = "unspeakable"
    """Nothing in it can be spoken (the caller is told; the message itself stays)."""
    TEXT_POST_FAILED = "text post failed"
    """It could not be spoken, and posting it as text failed too."""
    NO_TIME_LEFT = "no time left"
    """The bot was shutting down and ran out of time to post it."""
    CLEARED = "cleared from the queue"
    """Someone emptied the guild's queue with /clear."""
    INTERNAL_ERROR = "internal error"
    """The player stopped while handling it (a bug; logged with its traceback)."""


@dataclass(frozen=True, slots=True)
class SpeechResult:
    """The outcome of one message, with the reason and any detail for people and logs."""

    outcome: SpeechOutcome
    reason: str = ""
    """Empty, "cached" or "offline voice" when spoken; a :class:`TextPostReason` when
    posted as text; a :class:`FailureReason` when failed."""
    detail: str = ""

    @property
    def spoken(self) -> bool:
        """True when the listeners heard it."""
        return self.outcome is SpeechOutcome.SPOKEN

    @classmethod
    def failed(cls, reason: FailureReason, detail: str = "") -> SpeechResult:
        """A failed outcome."""
        return cls(SpeechOutcome.FAILED, reason.value, detail)


@dataclass(frozen=True, slots=True)
class Utterance:
    """A message queued for a guild: the text to say and who asked."""

    text: str
    """Cleaned text, ready for synthesis (no prefix)."""
    author_id: int
    author_name: str
    requested_at: float
    """Monotonic reading when the message arrived; staleness is measured from it."""
    spoken_prefix: str = ""
    """Said before ``text`` (e.g. "Anna said: "), not part of the text post."""
    spoken: CheckedText | None = None
    """What the voice says, as the text policy made and checked it (it may differ from
    prefix + text: "Anna sent an image"); ``None``: prefix + text, checked at synthesis."""

    @property
    def spoken_text(self) -> str:
        """What the voice says."""
        if self.spoken is not None:
            return self.spoken
        return f"{self.spoken_prefix}{self.text}"


def text_post_for(utterance: Utterance) -> str:
    """The text post that stands in for speech: ``🔇 NAME: text``.

    Mentions in the name and the text are defused here too, whoever built the utterance:
    the post must not show a mention pill (see :mod:`edge_voice.core.text.post`).
    """
    return f"🔇 {defuse_mentions(utterance.author_name)}: {defuse_mentions(utterance.text)}"


def posted_while_not_connected(posted: PostOutcome | None) -> SpeechResult:
    """What became of a message posted as text because the bot is not in voice, by the
    post's outcome (None: there was no text channel to post it in)."""
    why = TextPostReason.NOT_CONNECTED.value
    if posted is None:
        detail = f"{why}, and there is no text channel to post in"
        return SpeechResult.failed(FailureReason.TEXT_POST_FAILED, detail)
    if not posted.delivered:
        detail = f"{why}, and posting it as text failed: {posted.reason}"
        return SpeechResult.failed(FailureReason.TEXT_POST_FAILED, detail)
    return SpeechResult(SpeechOutcome.POSTED_AS_TEXT, why)


@dataclass
class OutageNotice:
    """One "voice is unavailable" notice per outage, and one when voice is back.

    An outage starts at the first message that could not be spoken because of
    the service and ends at the next message that was spoken.
    """

    in_outage: bool = False

    def on_fallback(self) -> bool:
        """A message fell back to text for a service reason; True if a notice is due."""
        if self.in_outage:
            return False
        self.in_outage = True
        return True

    def on_spoken(self) -> bool:
        """A message was spoken; True if the outage just ended (announce recovery)."""
        was = self.in_outage
        self.in_outage = False
        return was

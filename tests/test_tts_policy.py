"""The retry and blame tables of core/tts/policy.py, pinned kind by kind.

``TTSError.retryable`` once said 403 and 429 were worth retrying while the service's
retry loop (``policy.is_retryable``) said they were not; the property now asks the
policy, and this table is the one answer both give.
"""

from __future__ import annotations

import pytest

from edge_voice.core.tts.errors import ErrorKind, InvalidText, InvalidVoiceSettings, TTSError
from edge_voice.core.tts.outcomes import SynthesisFailed
from edge_voice.core.tts.policy import is_retryable, is_voice_scoped

RETRIED = {
    ErrorKind.NETWORK: True,
    ErrorKind.TIMEOUT: True,
    ErrorKind.REJECTED: False,
    ErrorKind.RATE_LIMITED: False,
    ErrorKind.UNAVAILABLE: True,
    ErrorKind.NO_AUDIO: True,
    ErrorKind.PROTOCOL: True,
    ErrorKind.INPUT: False,
}

VOICE_SCOPED = {ErrorKind.NO_AUDIO, ErrorKind.PROTOCOL}


def test_the_table_names_every_kind() -> None:
    assert set(RETRIED) == set(ErrorKind)


@pytest.mark.parametrize(("kind", "retried"), RETRIED.items(), ids=lambda v: str(v))
def test_the_error_and_the_policy_agree_on_retries(kind: ErrorKind, retried: bool) -> None:
    error = TTSError(kind, "scripted", status=403 if kind is ErrorKind.REJECTED else None)
    assert is_retryable(kind) is retried
    assert error.retryable is retried
    assert SynthesisFailed(error, []).retryable is retried


@pytest.mark.parametrize("kind", list(ErrorKind), ids=str)
def test_voice_scoped_kinds(kind: ErrorKind) -> None:
    assert is_voice_scoped(kind) is (kind in VOICE_SCOPED)


def test_input_errors_are_never_retried() -> None:
    assert not InvalidText("empty").retryable
    assert not InvalidVoiceSettings("no such voice").retryable

"""The speakability guard (core/text/speakable.py) and checked text through the service."""

from __future__ import annotations

import copy
import pickle
import sys
import unicodedata
from collections.abc import AsyncGenerator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_voice.core.speech import Utterance
from edge_voice.core.text.speakable import (
    CheckedText,
    check_speakable,
    has_speakable_char,
    normalize_text,
)
from edge_voice.core.tts import service as service_module
from edge_voice.core.tts.errors import ErrorKind, InvalidText
from edge_voice.core.tts.provider import EDGE_MP3, SynthesisRequest
from edge_voice.core.tts.service import TTSService


@pytest.mark.parametrize("max_chars", [0, -1])
def test_limits_must_be_positive(max_chars: int) -> None:
    with pytest.raises(ValueError, match="max_chars"):
        check_speakable("hi", max_chars=max_chars)


SPEAKABLE = [
    pytest.param("hello", "hello", id="word"),
    pytest.param("  hello \n\t world  ", "hello world", id="whitespace-collapsed"),
    pytest.param("42", "42", id="digits"),
    pytest.param("½", "½", id="other-number"),
    pytest.param("...a?!", "...a?!", id="one-letter-among-punctuation"),
    pytest.param("👍 ok", "👍 ok", id="emoji-with-word"),
    pytest.param("Hallo 世界 مرحبا", "Hallo 世界 مرحبا", id="mixed-scripts"),
    pytest.param("\u200fمرحبا\u200e world", "مرحبا world", id="rtl-marks-removed"),
    pytest.param("e\u0301te\u0301", "été", id="combining-composed"),
    pytest.param(
        "Z\u0335\u0321a\u0337l\u0336g\u0334o", "Z\u0335\u0321a\u0337l\u0336g\u0334o", id="zalgo"
    ),
    pytest.param("h\u200be\u200cl\u200dl\ufeffo", "hello", id="zero-width-inside"),
    pytest.param("<speak>hi</speak>", "<speak>hi</speak>", id="ssml-tag-literal"),
    pytest.param(
        "</prosody></voice><voice name='x'>pwned",
        "</prosody></voice><voice name='x'>pwned",
        id="ssml-injection-literal",
    ),
    pytest.param("&lt;b&gt; &amp;", "&lt;b&gt; &amp;", id="entities-not-unescaped"),
    pytest.param("a" * 100, "a" * 100, id="exactly-max"),
]


@pytest.mark.parametrize(("text", "expected"), SPEAKABLE)
def test_check_speakable_accepts(text: str, expected: str) -> None:
    assert check_speakable(text, max_chars=100) == expected


UNSPEAKABLE = [
    pytest.param("", "empty", id="empty"),
    pytest.param("   ", "whitespace", id="spaces"),
    pytest.param("\n\t\r\u3000", "whitespace", id="other-whitespace"),
    pytest.param("\x00\x01\x7f", "invisible", id="control-chars"),
    pytest.param("\u200b\u200c\u200d\u2060\ufeff", "invisible", id="zero-width"),
    pytest.param("\u200f\u202e\u2066", "invisible", id="bidi-marks-only"),
    pytest.param("ㅤ \u2800", "invisible", id="hangul-filler-braille-blank"),
    pytest.param("\ud800", "invisible", id="lone-surrogate"),
    pytest.param("\ue000\U000f0000", "invisible", id="private-use"),
    pytest.param("......", "only punctuation", id="dots"),
    pytest.param("?!", "only punctuation", id="question-bang"),
    pytest.param("👍", "only emoji or symbols", id="one-emoji"),
    pytest.param("👍🏽 🎉❤️", "only emoji or symbols", id="emoji-with-modifiers"),
    pytest.param("★ → ∞ $", "only emoji or symbols", id="symbols"),
    pytest.param("\u0301\u0308", "only combining marks", id="orphan-combining-marks"),
    pytest.param("?! 👍", "only punctuation, symbols or marks", id="punctuation-and-emoji"),
    pytest.param("a" * 101, "101 characters", id="one-over"),
    pytest.param("a" * 100_000, "100000 characters", id="huge"),
    pytest.param("<>", "only emoji or symbols", id="math-brackets"),
]


@pytest.mark.parametrize(("text", "reason"), UNSPEAKABLE)
def test_check_speakable_rejects(text: str, reason: str) -> None:
    with pytest.raises(InvalidText, match=reason) as raised:
        check_speakable(text, max_chars=100)
    assert raised.value.kind is ErrorKind.INPUT
    assert not raised.value.retryable


def test_length_is_checked_after_normalization() -> None:
    padded = "\u200b" * 1000 + " word " + " " * 1000
    assert check_speakable(padded, max_chars=4) == "word"


@settings(max_examples=300, deadline=None)
@given(text=st.text(), max_chars=st.integers(1, 50))
def test_check_speakable_returns_speech_or_raises_invalid_text(text: str, max_chars: int) -> None:
    try:
        spoken = check_speakable(text, max_chars=max_chars)
    except InvalidText:
        return
    assert any(unicodedata.category(char)[0] in "LN" for char in spoken)
    assert len(spoken) <= max_chars
    assert spoken == normalize_text(spoken)
    assert check_speakable(spoken, max_chars=max_chars) == spoken


def test_isalnum_is_exactly_letters_and_digits() -> None:
    # has_speakable_char relies on it for speed.
    differ = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if chr(code).isalnum() != (unicodedata.category(chr(code))[0] in "LN")
    ]
    assert differ == []
    assert has_speakable_char("...a")
    assert not has_speakable_char("... ★ \u0301")


# --- checked text -------------------------------------------------------------


def test_checked_text_is_checked_when_made() -> None:
    checked = CheckedText("  hallo \u200b welt ", max_chars=20)
    assert checked == "hallo welt"
    assert isinstance(checked, str)
    with pytest.raises(InvalidText, match="no letter or digit"):
        CheckedText("....", max_chars=20)
    with pytest.raises(InvalidText, match="over the limit"):
        CheckedText("hallo welt", max_chars=5)


def test_anything_made_from_checked_text_is_plain_text() -> None:
    checked = CheckedText("hallo welt", max_chars=20)
    for derived in (checked[:5], checked + "!", f"{checked}", checked.upper(), str(checked)):
        assert type(derived) is str


def test_copies_of_checked_text_are_checked_text() -> None:
    checked = CheckedText("hallo", max_chars=20)
    for copied in (copy.copy(checked), copy.deepcopy(checked), pickle.loads(pickle.dumps(checked))):
        assert type(copied) is CheckedText
        assert copied == checked


class OneChunk:
    name = "edge"
    audio_format = EDGE_MP3

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def stream(self, request: SynthesisRequest) -> AsyncGenerator[bytes, None]:
        self.texts.append(request.text)
        yield b"audio"


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the service's guard checks."""
    seen: list[str] = []
    real = service_module.check_speakable

    def counting(text: str, *, max_chars: int) -> str:
        seen.append(text)
        return real(text, max_chars=max_chars)

    monkeypatch.setattr(service_module, "check_speakable", counting)
    return seen


async def test_the_service_does_not_check_checked_text_again(checks: list[str]) -> None:
    provider = OneChunk()
    service = TTSService(provider, voices=["de-DE-KillianNeural"], max_chars=50)
    checked = CheckedText("Anna sagt: hallo", max_chars=50)
    utterance = Utterance("hallo", 1, "Anna", 0.0, spoken_prefix="Anna sagt: ", spoken=checked)

    # What the player does: prepare the utterance's spoken text, then stream the request.
    request = service.prepare(utterance.spoken_text)
    chunks = [chunk async for chunk in service.stream(request.text, request.settings)]

    assert chunks == [b"audio"]
    assert provider.texts == ["Anna sagt: hallo"]
    assert checks == []


async def test_the_service_still_checks_plain_and_too_long_text(checks: list[str]) -> None:
    service = TTSService(OneChunk(), voices=["de-DE-KillianNeural"], max_chars=10)

    assert service.prepare(" hallo ").text == "hallo"
    with pytest.raises(InvalidText, match="over the limit of 10"):
        service.prepare(CheckedText("hallo zusammen", max_chars=50))  # checked for a larger limit
    assert checks == [" hallo ", "hallo zusammen"]


def test_an_utterance_without_checked_text_says_prefix_and_text() -> None:
    utterance = Utterance("hallo", 1, "Anna", 0.0, spoken_prefix="Anna sagt: ")
    assert utterance.spoken_text == "Anna sagt: hallo"
    assert type(utterance.spoken_text) is str

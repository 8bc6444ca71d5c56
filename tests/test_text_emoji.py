"""Emoji names (core/text/emoji_names.py): CLDR names in the voice's language."""

from __future__ import annotations

import pytest

from edge_voice.core.text.emoji_names import drop_stray_components, emoji_name, name_emoji

SCOTLAND = "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"


@pytest.mark.parametrize(
    ("emoji", "english", "german"),
    [
        pytest.param("❤️", "red heart", "rotes herz", id="heart"),
        pytest.param("👍🏽", "thumbs up", "daumen hoch", id="skin-tone-not-said"),
        pytest.param("🇩🇪", "flag Germany", "flagge deutschland", id="flag"),
        pytest.param(SCOTLAND, "flag Scotland", "flagge schottland", id="subdivision-flag"),
        pytest.param("😂", "face with tears of joy", "gesicht mit freudentränen", id="face"),
        pytest.param("👩🏽\u200d💻", "woman technologist", "it-expertin", id="zwj-with-tone"),
        pytest.param("🇩", "D", "D", id="lone-regional-indicator"),
    ],
)
def test_names_in_english_and_german(emoji: str, english: str, german: str) -> None:
    assert emoji_name(emoji, "en", "flag") == english
    assert emoji_name(emoji, "de", "Flagge") == german


def test_a_language_without_names_falls_back_to_english() -> None:
    assert emoji_name("❤️", "xx", "flag") == "red heart"


def test_french_names_come_from_the_data_too() -> None:
    assert emoji_name("❤️", "fr", "drapeau") == "cœur rouge"


def test_a_pictograph_without_a_cldr_name_is_named_by_unicode() -> None:
    assert emoji_name("\U0001f000", "de", "Flagge") == "mahjong tile east wind"
    assert emoji_name("\U0001faff", "en", "flag") == ""  # unassigned: nothing to say


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("ok 👍", "ok thumbs up", id="after-a-word"),
        pytest.param("hi😂there", "hi face with tears of joy there", id="spaced-from-words"),
        pytest.param("*😂*", "*face with tears of joy*", id="glued-to-markdown"),
        pytest.param("👍👍 👍\n👍", "thumbs up", id="run-said-once"),
        pytest.param("👍🏻👍🏿", "thumbs up", id="tones-are-one-emoji"),
        pytest.param("👍😂👍", "thumbs up face with tears of joy thumbs up", id="non-adjacent"),
        pytest.param("© ™ ↔ ▶", "© ™ ↔ ▶", id="symbols-in-text-presentation-stay"),
        pytest.param("©️", "copyright", id="symbol-asking-for-emoji"),
        pytest.param("Grüße, 世界", "Grüße, 世界", id="letters-untouched"),
    ],
)
def test_name_emoji(text: str, expected: str) -> None:
    assert name_emoji(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("<\u200d@1>", "<@1>", id="joiner-cannot-hide-a-mention"),
        pytest.param("1\ufe0f\u20e3 #\ufe0f\u20e3", "1 #", id="keycaps-are-their-sign"),
        pytest.param("a\U0001f3fd", "a", id="tone-after-a-letter"),
        pytest.param("👍\U0001f3fd ❤\ufe0f", "👍\U0001f3fd ❤\ufe0f", id="components-of-emoji-stay"),
    ],
)
def test_drop_stray_components(text: str, expected: str) -> None:
    assert drop_stray_components(text) == expected

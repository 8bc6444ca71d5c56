"""core.voices.catalogue: the shipped snapshot, lookups, autocomplete, nearest matches."""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

import pytest

from edge_voice.core.voices.catalogue import (
    AUTOCOMPLETE_LIMIT,
    VoiceCatalogue,
    VoiceInfo,
    VoiceListError,
    catalogue_document,
    parse_catalogue_document,
    parse_voice_list,
    shipped_catalogue,
)

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = shipped_catalogue()


def test_the_snapshot_ships_with_the_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    assert "edge_voice.core.voices" in setuptools["packages"]
    assert setuptools["package-data"]["edge_voice.core.voices"] == ["edge_voices.json"]
    document = json.loads((ROOT / "core" / "voices" / "edge_voices.json").read_text())
    assert document["format"] == 1
    assert "zddgg/aigc-platform-server" in document["source"]


def test_the_snapshot_holds_edges_voices() -> None:
    assert len(CATALOGUE) == 318
    killian = CATALOGUE.get("de-DE-KillianNeural")
    assert killian == VoiceInfo(
        "de-DE-KillianNeural",
        "de-DE",
        "Male",
        "Microsoft Killian Online (Natural) - German (Germany)",
    )
    assert killian.language == "de"
    assert killian.name == "KillianNeural"
    assert killian.given_name == "Killian"
    assert CATALOGUE.get("de-DE-FlorianMultilingualNeural").given_name == "Florian"  # type: ignore[union-attr]
    assert len(CATALOGUE.locales()) == 140
    assert {"de", "en", "ja", "zh"} <= set(CATALOGUE.languages())


def test_lookups_ignore_letter_case_but_exact_spelling_is_known() -> None:
    assert "de-de-killianneural" in CATALOGUE
    assert CATALOGUE.canonical(" de-de-KILLIANneural ") == "de-DE-KillianNeural"
    assert CATALOGUE.has_exact("de-DE-KillianNeural")
    assert not CATALOGUE.has_exact("de-de-killianneural")
    assert CATALOGUE.get("Katja") is None
    assert CATALOGUE.canonical("nope") is None


def test_voices_of_a_locale_or_a_language() -> None:
    de_at = [v.short_name for v in CATALOGUE.voices_for("de-AT")]
    assert de_at == ["de-AT-IngridNeural", "de-AT-JonasNeural"]
    german = {v.locale for v in CATALOGUE.voices_for("DE")}
    assert german == {"de-AT", "de-CH", "de-DE"}
    assert CATALOGUE.voices_for("xx") == ()
    assert [v.short_name for v in CATALOGUE.voices_for("zh-CN-liaoning")] == [
        "zh-CN-liaoning-XiaobeiNeural"
    ]


def names(voices: list[VoiceInfo]) -> list[str]:
    return [v.short_name for v in voices]


def test_autocomplete_ranks_name_prefix_then_locale_then_substring() -> None:
    assert names(CATALOGUE.autocomplete("de-DE-K")) == ["de-DE-KatjaNeural", "de-DE-KillianNeural"]
    # "AT": the de-AT locale before a name that merely starts with it (Athina).
    at = names(CATALOGUE.autocomplete("AT"))
    assert at[:3] == ["de-AT-IngridNeural", "de-AT-JonasNeural", "el-GR-AthinaNeural"]
    assert names(CATALOGUE.autocomplete("kil")) == ["de-DE-KillianNeural"]
    # Anywhere in the friendly name: the language's English name.
    german = names(CATALOGUE.autocomplete("German"))
    assert german
    assert all(name.startswith("de-") for name in german)


def test_autocomplete_is_bounded_and_prefers_the_guilds_locale() -> None:
    everything = CATALOGUE.autocomplete("")
    assert len(everything) == AUTOCOMPLETE_LIMIT
    preferred = CATALOGUE.autocomplete("", prefer_locale="ja-JP")
    assert names(preferred)[:2] == ["ja-JP-KeitaNeural", "ja-JP-NanamiNeural"]
    english = CATALOGUE.autocomplete("en", prefer_locale="en-GB")
    assert {v.locale for v in english[:5]} == {"en-GB"}
    assert len(CATALOGUE.autocomplete("e", limit=3)) == 3
    assert CATALOGUE.autocomplete("zzzz") == []


def test_labels_fit_discords_choice_limit() -> None:
    assert all(len(voice.label) <= 100 for voice in CATALOGUE.voices)
    assert CATALOGUE.get("de-DE-KillianNeural").label == (  # type: ignore[union-attr]
        "de-DE-KillianNeural · Male · German (Germany)"
    )


@pytest.mark.parametrize(
    ("typed", "first"),
    [
        ("Katja", "de-DE-KatjaNeural"),
        ("katia", "de-DE-KatjaNeural"),
        ("de-DE-Kilian", "de-DE-KillianNeural"),
        ("de-de-killianneural", "de-DE-KillianNeural"),
        ("en-US-Arya", "en-US-AriaNeural"),
        ("KillianNeural", "de-DE-KillianNeural"),
    ],
)
def test_nearest_finds_what_was_meant(typed: str, first: str) -> None:
    nearest = CATALOGUE.nearest(typed)
    assert nearest[0] == first
    assert len(nearest) <= 3


def test_nearest_gives_nothing_for_nonsense_and_is_fast() -> None:
    assert CATALOGUE.nearest("") == []
    assert CATALOGUE.nearest("qqqq") == []
    started = time.perf_counter()
    for typed in ("Katja", "de-DE-Kilian", "en-US-Arya", "Killian"):
        CATALOGUE.nearest(typed)
    # It runs on the event loop when a command refuses a voice: keep it short.
    assert time.perf_counter() - started < 0.2


def test_parsing_skips_entries_edge_tts_could_not_use() -> None:
    voices = parse_voice_list(
        [
            {"ShortName": "de-DE-KillianNeural", "Locale": "de-DE", "Gender": "Male"},
            {"ShortName": "bogus", "Locale": "de-DE"},
            {"ShortName": "de-DE-ConradNeural", "Locale": "en-US"},
            {"Locale": "de-DE"},
            "not a voice",
            {"ShortName": "de-DE-KatjaNeural", "Locale": "de-DE", "Gender": 3},
        ]
    )
    assert [(v.short_name, v.gender) for v in voices] == [
        ("de-DE-KillianNeural", "Male"),
        ("de-DE-KatjaNeural", ""),
    ]
    with pytest.raises(VoiceListError, match="none of the 1 entries"):
        parse_voice_list([{"ShortName": "x"}])
    with pytest.raises(VoiceListError, match="expected a list"):
        parse_voice_list({"voices": []})


def test_documents_round_trip_and_foreign_ones_are_refused() -> None:
    voices = CATALOGUE.voices[:3]
    catalogue, fetched_at = parse_catalogue_document(catalogue_document(voices, 123.0))
    assert catalogue.voices == voices
    assert fetched_at == 123.0
    for bad in ([], {"format": 2}, {"format": 1, "fetched_at": "x", "voices": []}):
        with pytest.raises(VoiceListError):
            parse_catalogue_document(bad)
    with pytest.raises(VoiceListError):
        VoiceCatalogue([])

"""The text policy (core/text/policy.py): prefix, length budget, cut, attachments, text posts."""

from __future__ import annotations

import pytest

from edge_voice.core import speech
from edge_voice.core.posting import PostOutcome
from edge_voice.core.text.attachments import Attachment, AttachmentKind, kind_of
from edge_voice.core.text.cleanup import Lookups
from edge_voice.core.text.policy import (
    Message,
    SpeakerPrefixer,
    Speech,
    Unspeakable,
    cut_at_word,
    speech_for,
)
from edge_voice.core.text.post import escape_markdown, name_for_post
from edge_voice.core.text.speakable import CheckedText
from edge_voice.core.text.words import ENGLISH, GERMAN, language_of, words_for

IMAGE = Attachment("cat.png", "image/png")
VIDEO = Attachment("clip.mov", "video/quicktime")
AUDIO = Attachment("voice-message.ogg", "audio/ogg")
PDF = Attachment("plan.pdf", "application/pdf")
LONG_NAME = "Maximilian Alexander Bartholomew"  # 32 characters, Discord's longest nickname


def said(
    content: str,
    *,
    name: str = "Anna",
    max_chars: int = 300,
    language: str = "en",
    attachments: tuple[Attachment, ...] = (),
    stickers: tuple[str, ...] = (),
    prefixer: SpeakerPrefixer | None = None,
    announce: bool = True,
) -> Speech:
    result = speech_for(
        Message(content, 1, name, attachments, stickers),
        max_chars=max_chars,
        language=language,
        prefixer=prefixer,
        announce=announce,
    )
    assert isinstance(result, Speech), result
    return result


def announcing() -> SpeakerPrefixer:
    return SpeakerPrefixer(every=30.0)


# --- the "NAME said" prefix -------------------------------------------------------


def test_prefix_in_the_voices_language() -> None:
    assert said("hallo", prefixer=announcing()).spoken == "Anna said: hallo"
    german = said("hallo", prefixer=announcing(), language="de-DE-KillianNeural")
    assert german.spoken == "Anna sagt: hallo"
    assert (german.prefix, german.text) == ("Anna sagt: ", "hallo")


def test_prefixer_decides_and_announce_false_still_counts_the_speaker() -> None:
    prefixer = announcing()
    speak = [
        speech_for(Message(text, author, "Anna" if author == 1 else "Ben"), max_chars=100,
                   prefixer=prefixer, now=now, announce=announce)
        for text, author, now, announce in [
            ("eins", 1, 0.0, False), ("zwei", 1, 10.0, True), ("drei", 2, 11.0, True),
            ("vier", 1, 12.0, True),
        ]
    ]  # fmt: skip
    assert [s.spoken for s in speak if isinstance(s, Speech)] == [
        "eins",
        "zwei",
        "Ben said: drei",
        "Anna said: vier",
    ]


def test_no_prefixer_no_prefix() -> None:
    assert said("hallo").spoken == "hallo"


def test_an_unspeakable_message_is_not_the_speakers_turn() -> None:
    prefixer = announcing()
    assert isinstance(speech_for(Message("....", 1, "Anna"), max_chars=50, prefixer=prefixer),
                      Unspeakable)  # fmt: skip
    assert said("hallo", prefixer=prefixer).spoken == "Anna said: hallo"


def test_spoken_name_is_cleaned_and_never_resolves_a_mention() -> None:
    lookups = Lookups(user=lambda _id: "Admin")
    result = speech_for(
        Message("hi", 1, "<@42> **x**"), max_chars=100, lookups=lookups, prefixer=announcing()
    )
    assert isinstance(result, Speech)
    assert result.spoken == "someone x said: hi"


def test_a_name_with_nothing_to_say_is_someone() -> None:
    assert said("hi", name="ㅤ...", prefixer=announcing(), language="de").spoken == "jemand sagt: hi"


# --- the length budget (issue 8, defect 4) ----------------------------------------


def test_long_name_and_small_limit_still_says_the_message_cut() -> None:
    # Before: the prefix alone (39 characters) filled the limit, so the utterance was
    # longer than max_chars and the player rejected it: the message was silently lost.
    result = said("wir treffen uns heute um acht im Sprachkanal", name=LONG_NAME, max_chars=30,
                  prefixer=announcing())  # fmt: skip
    assert result.spoken == "wir treffen uns heute um acht"
    assert result.cut
    assert result.name_shortened


@pytest.mark.parametrize(
    ("content", "max_chars", "expected"),
    [
        pytest.param("hi", 60, f"{LONG_NAME} said: hi", id="everything-fits"),
        pytest.param("wort " * 20, 60, "Maximilian said: wort wort wort wort wort wort wort wort",
                     id="name-shortened-to-a-third-then-text-cut"),
        pytest.param("one two three four", 40, "Maximilian said: one two three four",
                     id="name-shortened-text-whole"),
        pytest.param("one two three four", 25, "one two three four", id="name-dropped-text-whole"),
        pytest.param("abcdefghij", 4, "abcd", id="tiny-limit-hard-cut"),
    ],
)  # fmt: skip
def test_the_name_yields_before_the_text(content: str, max_chars: int, expected: str) -> None:
    result = said(content, name=LONG_NAME, max_chars=max_chars, prefixer=announcing())
    assert result.spoken == expected
    assert len(result.spoken) <= max_chars


def test_short_names_keep_their_prefix_on_long_messages() -> None:
    result = said("wort " * 40, max_chars=60, prefixer=announcing())
    assert result.spoken.startswith("Anna said: wort wort")
    assert len(result.spoken) <= 60
    assert result.cut
    assert not result.name_shortened


@pytest.mark.parametrize(
    ("content", "max_chars", "expected"),
    [
        pytest.param("one two three", 13, "one two three", id="exact-fit"),
        pytest.param("one two three", 12, "one two", id="cut-at-space"),
        pytest.param("one two three", 7, "one two", id="cut-just-after-word"),
        pytest.param("one two three", 6, "one", id="cut-mid-word"),
        pytest.param("abcdefghij", 4, "abcd", id="single-long-word-hard-cut"),
        pytest.param("!!! ... a b", 3, "a b", id="keeps-a-letter"),
        pytest.param("?! ...", 2, "?!", id="nothing-to-keep"),
    ],
)
def test_cut_at_word(content: str, max_chars: int, expected: str) -> None:
    assert cut_at_word(content, max_chars) == expected


def test_long_code_is_still_hidden_when_cut() -> None:
    assert said("```" + "x" * 5000 + "``` hi", max_chars=10).spoken == "code hi"


def test_the_post_keeps_the_text_the_prefix_left_out() -> None:
    result = said("wort " * 40, max_chars=60, prefixer=announcing())
    assert len(result.text) > len(result.spoken) - len(result.prefix)
    assert len(result.text) <= 60


def test_the_result_is_checked_text() -> None:
    assert isinstance(said("hallo").spoken, CheckedText)


@pytest.mark.parametrize("max_chars", [0, -1])
def test_limit_must_be_positive(max_chars: int) -> None:
    with pytest.raises(ValueError, match="max_chars"):
        speech_for(Message("hi", 1, "Anna"), max_chars=max_chars)


# --- nothing to say -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param("", "text is empty", id="empty"),
        pytest.param("\u200b", "text is empty", id="invisible"),
        pytest.param("****", "text is empty", id="only-markup"),
        pytest.param("....", "text has no letter or digit to speak: only punctuation", id="dots"),
        pytest.param("?! ★", "no letter or digit to speak: only punctuation, symbols", id="mixed"),
    ],
)
def test_unspeakable_messages_say_why(content: str, reason: str) -> None:
    result = speech_for(Message(content, 1, "Anna"), max_chars=100)
    assert isinstance(result, Unspeakable)
    assert reason in result.reason


def test_an_emoji_alone_is_speakable_now() -> None:
    assert said("👍").spoken == "thumbs up"


# --- attachments and stickers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("attachments", "stickers", "english", "german"),
    [
        pytest.param((IMAGE,), (), "Anna sent an image", "Anna hat ein Bild geschickt",
                     id="one-image"),
        pytest.param((IMAGE, IMAGE, IMAGE), (), "Anna sent 3 images",
                     "Anna hat 3 Bilder geschickt", id="counted"),
        pytest.param((PDF, IMAGE, AUDIO, VIDEO, PDF), (),
                     "Anna sent an image, a video, an audio file and 2 files",
                     "Anna hat ein Bild, ein Video, eine Audiodatei und 2 Dateien geschickt",
                     id="by-kind"),
        pytest.param((), ("Wave",), "Anna sent the sticker Wave",
                     "Anna hat den Sticker Wave geschickt", id="sticker"),
        pytest.param((IMAGE,), (":)",), "Anna sent an image and a sticker",
                     "Anna hat ein Bild und einen Sticker geschickt", id="unnamed-sticker"),
    ],
)  # fmt: skip
def test_a_message_of_only_attachments(
    attachments: tuple[Attachment, ...], stickers: tuple[str, ...], english: str, german: str
) -> None:
    for language, expected in (("en", english), ("de", german)):
        result = said("", attachments=attachments, stickers=stickers, language=language)
        assert result.spoken == expected
        assert result.prefix == ""


def test_text_then_its_attachments() -> None:
    prefixer = announcing()
    assert said("look at this", attachments=(IMAGE,), prefixer=prefixer).spoken == (
        "Anna said: look at this, with an image"
    )
    german = said("schau mal!", attachments=(IMAGE,), stickers=("Wave",), language="de")
    assert german.spoken == "schau mal! Dazu ein Bild und den Sticker Wave"
    assert german.text == "schau mal! [ein Bild und Sticker Wave]"


def test_unspeakable_text_with_an_attachment_says_the_attachment() -> None:
    result = said("....", attachments=(IMAGE,))
    assert (result.spoken, result.text) == ("Anna sent an image", "[an image]")


def test_attachments_are_said_even_in_a_tiny_budget() -> None:
    for max_chars in (1, 5, 12, 20):
        result = said("", name=LONG_NAME, attachments=(IMAGE,), max_chars=max_chars)
        assert 0 < len(result.spoken) <= max_chars


def test_the_text_comes_before_the_attachments_when_space_runs_out() -> None:
    result = said("wort " * 40, attachments=(IMAGE,), max_chars=40)
    assert result.spoken.endswith(", with an image")
    assert len(result.spoken) <= 40
    tight = said("hallo du", attachments=(IMAGE,), max_chars=8)
    assert (tight.spoken, tight.cut) == ("hallo du", True)


@pytest.mark.parametrize(
    ("attachment", "kind"),
    [
        (Attachment("x.bin", "image/gif"), AttachmentKind.IMAGE),
        (Attachment("IMG_1.JPG"), AttachmentKind.IMAGE),
        (Attachment("clip.webm"), AttachmentKind.VIDEO),
        (Attachment("song", "audio/mpeg"), AttachmentKind.AUDIO),
        (Attachment("notes.txt", "text/plain; charset=utf-8"), AttachmentKind.FILE),
        (Attachment(""), AttachmentKind.FILE),
    ],
)
def test_kind_of(attachment: Attachment, kind: AttachmentKind) -> None:
    assert kind_of(attachment) is kind


# --- the text post's name (issue 8, defect 5) -------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("<@123456789012345678>", "< 123456789012345678>", id="raw-mention-nickname"),
        pytest.param("<@&1> <#2>", "< &1> < 2>", id="role-and-channel"),
        pytest.param("@everyone", "everyone", id="mass-mention"),
        pytest.param("**Bob** _x_ `y` ||z|| ~~w~~", r"\*\*Bob\*\* \_x\_ \`y\` \|\|z\|\| \~\~w\~\~",
                     id="markdown-escaped"),
        pytest.param("[free nitro](https://x.y)", r"\[free nitro](https://x.y)", id="masked-link"),
        pytest.param("> quote", r"\> quote", id="quote"),
        pytest.param("# big", r"\# big", id="heading"),
        pytest.param("\u202eevil\u200b 🏳️\u200d🌈", "evil 🏳️\u200d🌈", id="invisible-emoji-whole"),
        pytest.param("ㅤ", "someone", id="blank"),
    ],
)  # fmt: skip
def test_name_for_post(name: str, expected: str) -> None:
    assert name_for_post(name) == expected


def test_text_post_never_shows_a_mention_pill() -> None:
    result = said("hi <@7>", name="<@123>")
    post = speech.text_post_for(
        speech.Utterance(result.text, 1, result.author_name, 0.0, spoken=result.spoken)
    )
    assert post == "🔇 < 123>: hi someone"
    # A hand-built utterance (another cog, a benchmark) is defused too.
    raw = speech.Utterance("ping <@1> @here", 1, "<@&2>", 0.0)
    assert "<@" not in speech.text_post_for(raw)
    assert "@here" not in speech.text_post_for(raw)


def test_a_post_while_not_connected_says_what_became_of_it() -> None:
    posted = speech.posted_while_not_connected(PostOutcome(delivered=True, attempts=1))
    assert posted == speech.SpeechResult(speech.SpeechOutcome.POSTED_AS_TEXT, "not connected")
    lost = speech.posted_while_not_connected(PostOutcome(False, 3, "missing access"))
    assert (lost.outcome, lost.reason) == (speech.SpeechOutcome.FAILED, "text post failed")
    assert lost.detail == "not connected, and posting it as text failed: missing access"
    nowhere = speech.posted_while_not_connected(None)
    assert nowhere.detail == "not connected, and there is no text channel to post in"


def test_escape_markdown_matches_discord_for_plain_names() -> None:
    assert escape_markdown("FakeApp_3") == r"FakeApp\_3"


# --- words and languages ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("voice", "language", "words"),
    [
        ("de-DE-KillianNeural", "de", GERMAN),
        ("de-AT-JonasNeural", "de", GERMAN),
        ("en-US-AriaNeural", "en", ENGLISH),
        ("fr-FR-DeniseNeural", "fr", ENGLISH),
        ("de", "de", GERMAN),
        ("", "en", ENGLISH),
    ],
)
def test_language_of_a_voice(voice: str, language: str, words: object) -> None:
    assert language_of(voice) == language
    assert words_for(voice) is words


def test_speaker_prefixer_is_still_importable_from_speech() -> None:
    assert speech.SpeakerPrefixer is SpeakerPrefixer
    prefixer = SpeakerPrefixer(every=30)
    assert prefixer.prefix(1, "Anna", 0.0) == "Anna said: "
    assert prefixer.prefix(1, "Anna", 10.0) == ""

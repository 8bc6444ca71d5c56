"""Message cleanup and the speakability guard: tables for every rule, properties for the rest."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_voice.core.tts.errors import ErrorKind, InvalidText
from edge_voice.core.tts.text import (
    SpokenWords,
    check_speakable,
    clean_discord_message,
    normalize_text,
)

USERS = {1: "Alice", 2: "Bob", 3: "\u200bZoë\u200d"}
ROLES = {10: "Moderators", 11: "@everyone"}
CHANNELS = {20: "general", 21: "bot_commands"}


def clean(content: str, max_chars: int = 500) -> str:
    return clean_discord_message(
        content,
        max_chars=max_chars,
        resolve_user=USERS.get,
        resolve_role=ROLES.get,
        resolve_channel=CHANNELS.get,
    )


def case(content: str, expected: str, id: str) -> object:
    return pytest.param(content, expected, id=id)


MENTIONS = [
    case("hi <@1>", "hi Alice", "user"),
    case("hi <@!2>!", "hi Bob!", "user-nickname-form"),
    case("hi <@999>", "hi someone", "user-unknown"),
    case("<@3> joined", "Zoë joined", "user-name-loses-zero-width"),
    case("ping <@&10>", "ping Moderators", "role"),
    case("ping <@&99>", "ping a role", "role-unknown"),
    case("ping <@&11>", "ping everyone", "role-named-everyone-defused"),
    case("go to <#20>", "go to general", "channel"),
    case("go to <#21>", "go to bot commands", "channel-underscores"),
    case("go to <#99>", "go to a channel", "channel-unknown"),
    case("@everyone wake up", "everyone wake up", "everyone"),
    case("@here wake up", "here wake up", "here"),
    case("@@everyone and @Here", "everyone and here", "everyone-doubled-and-cased"),
    case("<@abc> <@>", "< abc> < >", "malformed-mention-defused"),
    case("<@123456789012345678901234>", "< 123456789012345678901234>", "overlong-id"),
    case("<<@1>>", "<Alice>", "bracketed-mention"),
]

LINKS = [
    case("see https://example.com/a_b_c?x=1", "see link", "https"),
    case("see http://example.com", "see link", "http"),
    case("see <https://example.com/x> now", "see link now", "suppressed-embed"),
    case("is it https://example.com/x.", "is it link.", "trailing-full-stop"),
    case("(https://example.com/x)", "(link)", "in-parentheses"),
    case("read [the docs](https://d.example/x) now", "read the docs now", "masked-link"),
    case("read [docs](<https://d.example/x>)", "read docs", "masked-suppressed"),
    case("ftp://example.com", "ftp://example.com", "other-scheme-untouched"),
]

EMOJI = [
    case("<:big_smile:123456>", "big smile", "custom"),
    case("<a:party_parrot:123456> yay", "party parrot yay", "animated"),
    case("ok 👍", "ok thumbs up sign", "unicode"),
    case("👍👍👍👍", "thumbs up sign", "run-collapsed"),
    case("😂 😂  😂 lol", "face with tears of joy lol", "spaced-run-collapsed"),
    case("👍👎", "thumbs up sign thumbs down sign", "different-not-collapsed"),
    case("👍😂👍", "thumbs up sign face with tears of joy thumbs up sign", "non-adjacent"),
    case("hi😂there", "hi face with tears of joy there", "glued-to-words"),
    case("❤️", "heavy black heart", "variation-selector"),
    case("👍🏽👍🏿", "thumbs up sign", "skin-tones-dropped"),
    case("🇩🇪 🇫🇷", "flag D E flag F R", "flags"),
    case("1️⃣ #️⃣", "1 #", "keycaps"),
    case("*😂*", "face with tears of joy", "emoji-in-italics"),
    case("25°C ©", "25°C ©", "plain-symbols-left-to-the-voice"),
]

CODE_AND_SPOILERS = [
    case("look ```py\nprint('x')\n``` here", "look code here", "code-block"),
    case("```\n<@1> https://x.y\n```", "code", "code-block-hides-everything"),
    case("run `rm -rf /` now", "run code now", "inline-code"),
    case("``a ` b`` done", "code done", "double-backtick-code"),
    case("```oops", "oops", "unterminated-fence-dropped"),
    case("it's ||Snape|| lol", "it's spoiler lol", "spoiler"),
    case("||multi\nline||", "spoiler", "spoiler-multiline"),
    case("||`x`||", "spoiler", "code-in-spoiler"),
    case("a || b", "a || b", "lone-pipes-kept"),
]

MARKDOWN = [
    case("**bold** *it* __under__ ~~gone~~", "bold it under gone", "emphasis"),
    case("***both*** and _it_", "both and it", "nested-and-underscore"),
    case("*a **b** c*", "a b c", "bold-inside-italic"),
    case("snake_case_name", "snake_case_name", "intra-word-underscores"),
    case("2 * 3 * 4", "2 * 3 * 4", "spaced-stars-not-markup"),
    case("** not bold **", "** not bold **", "spaced-markers-not-markup"),
    case("****", "", "marker-run"),
    case("# Title\n## Sub\n### Small", "Title Sub Small", "headings"),
    case("-# tiny print", "tiny print", "subtext"),
    case("> quoted\n>>> rest", "quoted rest", "block-quotes"),
    case("- one\n* two\n+ three", "one two three", "bullets"),
    case("a\r# b\u2028> c", "a b c", "other-line-breaks"),
    case(r"\*not italic\* \_x\_", "not italic x", "escapes"),
    case(r"\`not code\` \|\|not spoiler\|\|", "not code not spoiler", "escaped-fences"),
    case("1. first", "1. first", "numbered-list-kept"),
]

TIMES = [
    case("at <t:1700000000>", "at 2023-11-14 22:13 UTC", "default-style"),
    case("at <t:1700000000:t>", "at 22:13 UTC", "short-time"),
    case("at <t:1700000000:T>", "at 22:13:20 UTC", "long-time"),
    case("on <t:1700000000:d> or <t:1700000000:D>", "on 2023-11-14 or 2023-11-14", "dates"),
    case("ends <t:1700000000:R>", "ends 2023-11-14 22:13 UTC", "relative-as-absolute"),
    case("year <t:99999999999999999:F>!", "year !", "out-of-range-dropped"),
    case("use </tts say:123> or <id:customize>", "use tts say or customize", "command-and-nav"),
]

WHITESPACE_AND_INVISIBLES = [
    case("  lots\n\n of\t\tspace  ", "lots of space", "collapsed"),
    case("a\u00a0\u2003b", "a b", "unicode-spaces"),
    case("a\x00b\x07c\x1bd", "abcd", "control-chars"),
    case("zero\u200bwidth\u200c\u200d\u2060\ufeff!", "zerowidth!", "zero-width"),
    case("\u202eevil\u202c \u200fmark", "evil mark", "bidi-controls"),
    case("ㅤ\u2800ㅤ", "", "blank-lookalikes"),
    case("<\u200b@1>", "Alice", "zero-width-cannot-hide-a-mention"),
    case("caf\u200be\u0301", "café", "marks-compose-after-removal"),
    case("", "", "empty"),
]

LITERAL = [
    case("<speak>hi</speak> &amp; &lt;", "<speak>hi</speak> &amp; &lt;", "ssml-untouched"),
    case("Hallo 世界 مرحبا", "Hallo 世界 مرحبا", "mixed-scripts"),
]

COMBINATIONS = [
    case(
        "**@everyone** check https://x.y/z ||spoiler|| <@1> 👍👍 `code`",
        "everyone check link spoiler Alice thumbs up sign code",
        "everything",
    ),
    case("> **<@1>** said: _see <#20>_ 🎉🎉", "Alice said: see general party popper", "quote"),
    case("~~<@&10>~~ <:pepe_hands:1>💀", "Moderators pepe hands skull", "struck-role"),
    case("||<@1>|| and `@everyone`", "spoiler and code", "hidden-mentions-not-resolved"),
    case("[<@1>](https://x.y)", "Alice", "mention-in-masked-link"),
]


@pytest.mark.parametrize(
    ("content", "expected"),
    MENTIONS
    + LINKS
    + EMOJI
    + CODE_AND_SPOILERS
    + MARKDOWN
    + TIMES
    + WHITESPACE_AND_INVISIBLES
    + LITERAL
    + COMBINATIONS,
)
def test_clean_discord_message(content: str, expected: str) -> None:
    assert clean(content) == expected


@pytest.mark.parametrize(
    ("content", "max_chars", "expected"),
    [
        pytest.param("one two three", 13, "one two three", id="exact-fit"),
        pytest.param("one two three", 12, "one two", id="cut-at-space"),
        pytest.param("one two three", 7, "one two", id="cut-just-after-word"),
        pytest.param("one two three", 6, "one", id="cut-mid-word"),
        pytest.param("abcdefghij", 4, "abcd", id="single-long-word-hard-cut"),
        pytest.param("<@1> <@2> <@1>", 9, "Alice Bob", id="counts-resolved-names"),
        pytest.param("```" + "x" * 5000 + "``` hi", 10, "code hi", id="long-code-still-hidden"),
    ],
)
def test_clean_cuts_at_a_word_boundary(content: str, max_chars: int, expected: str) -> None:
    assert clean(content, max_chars) == expected


def test_clean_uses_the_given_words() -> None:
    german = SpokenWords(someone="jemand", link="Link", code="Code", spoiler="Spoiler")
    cleaned = clean_discord_message(
        "<@5> https://x.y `a` ||b||", max_chars=100, resolve_user=lambda _id: None, words=german
    )
    assert cleaned == "jemand Link Code Spoiler"


def test_clean_passes_ids_to_resolvers() -> None:
    seen: list[tuple[str, int]] = []

    def resolver(kind: str) -> Callable[[int], str]:
        def resolve(snowflake: int) -> str:
            seen.append((kind, snowflake))
            return f"{kind}{snowflake}"

        return resolve

    cleaned = clean_discord_message(
        "<@!123456789012345678> <@&2> <#3>",
        max_chars=100,
        resolve_user=resolver("u"),
        resolve_role=resolver("r"),
        resolve_channel=resolver("c"),
    )
    assert cleaned == "u123456789012345678 r2 c3"
    assert seen == [("u", 123456789012345678), ("r", 2), ("c", 3)]


@pytest.mark.parametrize("max_chars", [0, -1])
def test_limits_must_be_positive(max_chars: int) -> None:
    with pytest.raises(ValueError, match="max_chars"):
        clean_discord_message("hi", max_chars=max_chars)
    with pytest.raises(ValueError, match="max_chars"):
        check_speakable("hi", max_chars=max_chars)


# --- check_speakable ---------------------------------------------------------

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


# --- properties --------------------------------------------------------------

# Pieces of Discord syntax, whole and broken, glued together in any order.
# fmt: off
TOKENS = [
    "<@1>", "<@!2>", "<@&10>", "<#20>", "<@999>", "@everyone", "@here", "<@", "<", "@",
    "https://x.y/a_b", "<https://x.y>", "[t](https://x.y)", "<:a_b:1>", "<t:1700000000:R>",
    "```", "`", "||", "**", "*", "__", "_", "~~", "\\", "#", "> ", "- ", "\n", " ", "a", "B1",
    "👍", "😂", "\u200b", "\ufe0f", "🇩", "🇪", "\x00", ":", "&", "!", "/", "(", ")",
]
# fmt: on
DISCORD_TOKENS = st.sampled_from(TOKENS)
DISCORD_TEXT = st.lists(DISCORD_TOKENS | st.text(max_size=5), max_size=40).map("".join)
ANY_TEXT = st.text() | DISCORD_TEXT


@settings(max_examples=300, deadline=None)
@given(content=ANY_TEXT, max_chars=st.integers(1, 200), name=st.text(max_size=20))
def test_clean_output_is_bounded_and_defused(content: str, max_chars: int, name: str) -> None:
    cleaned = clean_discord_message(
        content,
        max_chars=max_chars,
        resolve_user=lambda _id: name,
        resolve_role=lambda _id: name,
        resolve_channel=lambda _id: name,
    )
    assert len(cleaned) <= max_chars
    assert "<@" not in cleaned
    assert "@everyone" not in cleaned.lower()
    assert "@here" not in cleaned.lower()
    assert cleaned == cleaned.strip()
    assert "  " not in cleaned
    assert all(unicodedata.category(char) not in ("Cc", "Cf", "Cs") for char in cleaned)


@settings(max_examples=300, deadline=None)
@given(content=DISCORD_TEXT)
def test_clean_is_idempotent(content: str) -> None:
    once = clean(content, max_chars=10_000)
    assert clean(once, max_chars=10_000) == once


@settings(max_examples=200, deadline=None)
@given(content=DISCORD_TEXT, max_chars=st.integers(1, 100))
def test_cut_output_is_a_prefix_of_the_whole(content: str, max_chars: int) -> None:
    whole = clean(content, max_chars=10_000)
    cut = clean(content, max_chars=max_chars)
    assert whole.startswith(cut)
    if cut != whole and " " in whole[: max_chars + 1]:
        assert whole[len(cut)] == " ", "cut mid-word although a space was in reach"


@settings(max_examples=300, deadline=None)
@given(text=st.text() | DISCORD_TEXT, max_chars=st.integers(1, 50))
def test_check_speakable_returns_speech_or_raises_invalid_text(text: str, max_chars: int) -> None:
    try:
        spoken = check_speakable(text, max_chars=max_chars)
    except InvalidText:
        return
    assert any(unicodedata.category(char)[0] in "LN" for char in spoken)
    assert len(spoken) <= max_chars
    assert spoken == normalize_text(spoken)
    assert check_speakable(spoken, max_chars=max_chars) == spoken

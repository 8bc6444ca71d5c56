"""Message cleanup (core/text/cleanup.py): one table per rule, in English and German."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from edge_voice.core.text.cleanup import Lookups, clean_message, clean_name, defuse_mentions
from edge_voice.core.text.words import ENGLISH, GERMAN, SpokenWords

USERS = {1: "Alice", 2: "Bob", 3: "\u200bZoë\u200d", 4: "..."}
ROLES = {10: "Moderators", 11: "@everyone"}
CHANNELS = {20: "general", 21: "bot_commands"}
LOOKUPS = Lookups(USERS.get, ROLES.get, CHANNELS.get)


def clean(content: str, words: SpokenWords = ENGLISH) -> str:
    return clean_message(content, lookups=LOOKUPS, words=words)


def case(content: str, expected: str, id: str) -> object:
    return pytest.param(content, expected, id=id)


MENTIONS = [
    case("hi <@1>", "hi Alice", "user"),
    case("hi <@!2>!", "hi Bob!", "user-nickname-form"),
    case("hi <@999>", "hi someone", "user-unknown"),
    case("hi <@4>", "hi someone", "user-named-nothing-speakable"),
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
    case("Https://example.com/x from my phone", "link from my phone", "capitalized-scheme"),
    case("HTTP://EXAMPLE.COM", "link", "upper-case"),
    case("[docs](Https://d.example/x)", "docs", "masked-capitalized"),
]

EMOJI = [
    case("<:big_smile:123456>", "big smile", "custom"),
    case("<a:party_parrot:123456> yay", "party parrot yay", "animated"),
    case("ok 👍", "ok thumbs up", "unicode-cldr-name"),
    case("👍👍👍👍", "thumbs up", "run-collapsed"),
    case("😂 😂  😂 lol", "face with tears of joy lol", "spaced-run-collapsed"),
    case("👍👎", "thumbs up thumbs down", "different-not-collapsed"),
    case("👍😂👍", "thumbs up face with tears of joy thumbs up", "non-adjacent"),
    case("hi😂there", "hi face with tears of joy there", "glued-to-words"),
    case("❤️", "red heart", "variation-selector"),
    case("❤", "red heart", "text-presentation-pictograph"),
    case("👍🏽👍🏿", "thumbs up", "skin-tones-dropped"),
    case("🇩🇪 🇫🇷", "flag Germany flag France", "flags"),
    case("🇦🇦", "flag A A", "unknown-flag-spelled"),
    case(
        "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
        "flag Scotland",
        "subdivision-flag",
    ),
    case(
        "👨\u200d👩\u200d👧 👩🏽\u200d💻",
        "family man woman girl woman technologist",
        "zwj-sequences",
    ),
    case("🏳️\u200d🌈", "rainbow flag", "zwj-flag"),
    case("©️ ™️", "copyright trade mark", "symbols-asking-for-emoji"),
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
    case("*a _b* c_", "a b c", "crossing-spans"),
    case("~single~ ~~double~~", "~single~ double", "single-tilde-is-text"),
    case("***a** b*", "a b", "bold-closes-first"),
    case("a*b*c", "abc", "intra-word-stars"),
    case("*" * 12 + "x" + "*" * 12, "x", "marker-piles"),
    case("*a " * 5 + "b" + " a*" * 5, "a a a a a b a a a a a", "deep-nesting"),
    case("**- x**", "x", "bullet-inside-emphasis"),
]

TIMES = [
    case("at <t:1700000000>", "at 2023-11-14 22:13 UTC", "default-style"),
    case("at <t:1700000000:t>", "at 22:13 UTC", "short-time"),
    case("at <t:1700000000:T>", "at 22:13:20 UTC", "long-time"),
    case("on <t:1700000000:d> or <t:1700000000:D>", "on 2023-11-14 or 2023-11-14", "dates"),
    case("ends <t:1700000000:R>", "ends 2023-11-14 22:13 UTC", "relative-as-absolute"),
    case("year <t:99999999999999999:F>!", "year a date!", "out-of-range-is-a-date"),
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
        "everyone check link spoiler Alice thumbs up code",
        "everything",
    ),
    case("> **<@1>** said: _see <#20>_ 🎉🎉", "Alice said: see general party popper", "quote"),
    case("~~<@&10>~~ <:pepe_hands:1>💀", "Moderators pepe hands skull", "struck-role"),
    case("||<@1>|| and `@everyone`", "spoiler and code", "hidden-mentions-not-resolved"),
    case("[<@1>](https://x.y)", "Alice", "mention-in-masked-link"),
]


REPEATS = [
    case("aaaaaaaaaaaah", "aaah", "letters"),
    case("nooooooooo!!!!!!!!!!", "nooo!!!", "letters-and-punctuation"),
    case("Schifffahrt ...", "Schifffahrt ...", "three-stay"),
    case("1000000 and 0000", "1000000 and 0000", "digits-are-numbers"),
    case("wow#######", "wow###", "hashes"),
    case("#### not a heading", "not a heading", "deep-heading-markers"),
    case("**aaaaa**a", "aaa", "run-joined-by-unwrapping"),
    case("eee@everyone", "eeeveryone", "run-joined-by-defusing"),
    case("ааааааа", "ааа", "any-script"),
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
    + REPEATS
    + COMBINATIONS,
)
def test_clean_message(content: str, expected: str) -> None:
    assert clean(content) == expected


GERMAN_CASES = [
    case("<@5> https://x.y `a` ||b||", "jemand Link Code Spoiler", "words"),
    case("<@&99> in <#99>", "eine Rolle in ein Kanal", "unknown-role-and-channel"),
    case("@everyone @here", "alle alle hier", "mass-mentions"),
    case("❤️ 👍🏽", "rotes herz daumen hoch", "emoji"),
    case("🇩🇪", "flagge deutschland", "flag-has-its-word"),
    case("🇦🇦", "Flagge A A", "unknown-flag"),
    case("<:big_smile:1> Hallo", "big smile Hallo", "custom-emoji-as-named"),
]


@pytest.mark.parametrize(("content", "expected"), GERMAN_CASES)
def test_clean_message_in_german(content: str, expected: str) -> None:
    assert clean(content, GERMAN) == expected


def test_clean_passes_ids_to_resolvers() -> None:
    seen: list[tuple[str, int]] = []

    def resolver(kind: str) -> Callable[[int], str]:
        def resolve(snowflake: int) -> str:
            seen.append((kind, snowflake))
            return f"{kind}{snowflake}"

        return resolve

    lookups = Lookups(resolver("u"), resolver("r"), resolver("c"))
    cleaned = clean_message("<@!123456789012345678> <@&2> <#3>", lookups=lookups)
    assert cleaned == "u123456789012345678 r2 c3"
    assert seen == [("u", 123456789012345678), ("r", 2), ("c", 3)]


NAMES = [
    case("Alice", "Alice", "plain"),
    case("**Bob** 🙂", "Bob slightly smiling face", "markdown-and-emoji"),
    case("cool_guy_99", "cool guy 99", "underscores"),
    case("<@123>", "someone", "a-mention-is-not-resolved"),
    case("@everyone", "everyone", "mass-mention"),
    case("`rm` ||x||", "rm x", "code-and-spoiler-markers"),
    case("https://evil.example", "link", "link"),
    case("\u202eevil\u200b", "evil", "invisible"),
    case("Zoëëëëëë", "Zoëëë", "repeats"),
    case("ㅤ", "", "blank"),
]


@pytest.mark.parametrize(("name", "expected"), NAMES)
def test_clean_name(name: str, expected: str) -> None:
    assert clean_name(name) == expected


def test_a_name_never_resolves_the_mention_it_contains() -> None:
    # A nickname "<@ADMIN>" must not be read as the admin's name.
    lookups = Lookups(user=lambda _id: "<@1> the Admin")
    assert clean_message("hi <@2>", lookups=lookups) == "hi someone the Admin"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<@1> <@&2> <#3> <<@@4>", "< 1> < &2> < 3> << 4>"),
        ("@everyone @@here @Everyone", "everyone here Everyone"),
        ("mail@example.com", "mail@example.com"),
    ],
)
def test_defuse_mentions_without_words(text: str, expected: str) -> None:
    assert defuse_mentions(text) == expected

"""Properties of the text code over generated Discord text (hypothesis).

Cleaning is idempotent; no mention survives in what is spoken or posted, names included;
the spoken text fits ``max_chars``; a message with a letter, a digit or an attachment is
never turned into nothing; and the cleanup takes linear time on nested markup.
"""

from __future__ import annotations

import time
import unicodedata

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge_voice.core.speech import Utterance, text_post_for
from edge_voice.core.text.attachments import Attachment
from edge_voice.core.text.cleanup import Lookups, clean_message
from edge_voice.core.text.policy import Message, SpeakerPrefixer, Speech, speech_for
from edge_voice.core.text.speakable import has_speakable_char, normalize_text
from edge_voice.core.text.words import ENGLISH, GERMAN

# Pieces of Discord syntax, whole and broken, glued together in any order.
# fmt: off
TOKENS = [
    "<@1>", "<@!2>", "<@&10>", "<#20>", "<@999>", "@everyone", "@here", "@HERE", "<@", "<@&",
    "<#", "<", "@", "#", "https://x.y/a_b", "Https://X.y", "<https://x.y>", "[t](https://x.y)",
    "<:a_b:1>", "<t:1700000000:R>", "<t:99999999999999999>", "```", "`", "||", "**", "*",
    "__", "_", "~~", "~", "\\", "# ", "> ", "- ", "-# ", "\n", " ", "a", "B1", "aaaaa", "!!!!",
    "👍", "😂", "👍🏽", "❤️", "🇩🇪", "🇩", "1️⃣", "\u200d", "\u200b", "\ufe0f", "\x00", ":",
    "&", "!", "/", "(", ")", "[", "]",
]
# fmt: on
DISCORD_TEXT = st.lists(st.sampled_from(TOKENS) | st.text(max_size=5), max_size=40).map("".join)
ANY_TEXT = st.text() | DISCORD_TEXT
NAMES = st.sampled_from(["Alice", "<@1>", "@everyone", "**x**", "a_b", "..."]) | st.text(
    max_size=24
)
WORD = st.from_regex(r"[A-Za-zÄÖÜäöüß0-9]{1,8}", fullmatch=True)
ATTACHMENTS = st.lists(
    st.sampled_from(
        [Attachment("a.png", "image/png"), Attachment("b.mp4"), Attachment("c.pdf", None)]
    ),
    max_size=3,
).map(tuple)
STICKERS = st.lists(st.sampled_from(["Wave", ":)", "<@1>"]), max_size=2).map(tuple)
LANGUAGES = st.sampled_from(["en", "de-DE-KillianNeural"])


def lookups(name: str) -> Lookups:
    return Lookups(lambda _id: name, lambda _id: name, lambda _id: name)


FIXED = Lookups({1: "Alice", 2: "Bob"}.get, {10: "Mods"}.get, {20: "general"}.get)


def assert_no_mention(text: str) -> None:
    for opener in ("<@", "<@&", "<#"):
        assert opener not in text
    assert "@everyone" not in text.lower()
    assert "@here" not in text.lower()


# --- cleanup -------------------------------------------------------------------------


@settings(max_examples=250, deadline=None)
@given(content=DISCORD_TEXT, words=st.sampled_from([ENGLISH, GERMAN]))
@example(content="*a " * 30 + "b" + " a*" * 30, words=ENGLISH)
@example(content="x\n* *a*", words=ENGLISH)
def test_cleaning_is_idempotent(content: str, words: object) -> None:
    once = clean_message(content, lookups=FIXED, words=words)  # type: ignore[arg-type]
    assert clean_message(once, lookups=FIXED, words=words) == once  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(content=DISCORD_TEXT, name=NAMES)
def test_cleaning_is_idempotent_whatever_the_names(content: str, name: str) -> None:
    once = clean_message(content, lookups=lookups(name))
    assert clean_message(once, lookups=lookups(name)) == once


@settings(max_examples=300, deadline=None)
@given(content=ANY_TEXT, name=NAMES)
def test_cleaned_text_is_plain(content: str, name: str) -> None:
    cleaned = clean_message(content, lookups=lookups(name))
    assert_no_mention(cleaned)
    assert cleaned == cleaned.strip()
    assert "  " not in cleaned
    assert "\n" not in cleaned
    assert all(unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co") for char in cleaned)


# --- the policy ----------------------------------------------------------------------


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    content=ANY_TEXT,
    author=NAMES,
    resolved=NAMES,
    max_chars=st.integers(1, 200),
    attachments=ATTACHMENTS,
    stickers=STICKERS,
    language=LANGUAGES,
    announce=st.booleans(),
)
def test_what_is_spoken_and_posted_fits_and_never_mentions(
    content: str,
    author: str,
    resolved: str,
    max_chars: int,
    attachments: tuple[Attachment, ...],
    stickers: tuple[str, ...],
    language: str,
    announce: bool,
) -> None:
    result = speech_for(
        Message(content, 7, author, attachments, stickers),
        max_chars=max_chars,
        language=language,
        lookups=lookups(resolved),
        prefixer=SpeakerPrefixer(every=30.0),
        announce=announce,
    )
    if not isinstance(result, Speech):
        assert not attachments
        assert not stickers
        return
    assert 0 < len(result.spoken) <= max_chars
    assert has_speakable_char(result.spoken)
    assert result.spoken.startswith(result.prefix)
    post = text_post_for(Utterance(result.text, 7, result.author_name, 0.0, spoken=result.spoken))
    for said in (result.spoken, result.text, result.author_name, post):
        assert_no_mention(said)


@settings(max_examples=250, deadline=None)
@given(
    before=DISCORD_TEXT,
    word=WORD,
    after=DISCORD_TEXT,
    author=NAMES,
    resolved=NAMES,
    max_chars=st.integers(1, 100),
    language=LANGUAGES,
)
def test_a_letter_or_digit_is_never_turned_into_nothing(
    before: str, word: str, after: str, author: str, resolved: str, max_chars: int, language: str
) -> None:
    # Wherever the word lands (in code, a spoiler, a link, a mention), something is said.
    content = f"{before}{word}{after}"
    result = speech_for(
        Message(content, 7, author),
        max_chars=max_chars,
        language=language,
        lookups=lookups(resolved),
        prefixer=SpeakerPrefixer(every=30.0),
    )
    assert isinstance(result, Speech), (content, result)


@settings(max_examples=300, deadline=None)
@given(content=st.text(), max_chars=st.integers(1, 100))
def test_visible_letters_are_never_lost(content: str, max_chars: int) -> None:
    result = speech_for(Message(content, 7, "Anna"), max_chars=max_chars)
    if has_speakable_char(normalize_text(content)):
        assert isinstance(result, Speech), (content, result)


@settings(max_examples=100, deadline=None)
@given(author=NAMES, attachments=ATTACHMENTS.filter(bool), max_chars=st.integers(1, 60))
def test_an_attachment_is_never_turned_into_nothing(
    author: str, attachments: tuple[Attachment, ...], max_chars: int
) -> None:
    result = speech_for(Message("", 7, author, attachments), max_chars=max_chars)
    assert isinstance(result, Speech)
    assert 0 < len(result.spoken) <= max_chars


# --- linear time ---------------------------------------------------------------------

# Openers and closers of nested markup, as people (and attackers) write it; each shape is
# repeated k levels deep around a core. The first is the case that used to be quadratic.
NESTING = [
    ("*a ", " a*"),
    ("**", "**"),
    ("*_", "_*"),
    ("~~", "~~"),
    ("__a ", " a__"),
    ("> - # ", "\n"),
    ("||", "||"),
    ("`", "`"),
    ("[", "](https://x.y)"),
    ("<", ">"),
    ("<@", "@"),
    ("👍🏽", "🇩🇪"),
    ("\\*", "\\*"),
    ("a", "a"),
]
SHAPES = st.tuples(
    st.sampled_from(NESTING) | st.tuples(st.sampled_from(TOKENS), st.sampled_from(TOKENS)),
    st.sampled_from(["b", " b ", "", "<@1>", "x" * 5]),
)


def _seconds(content: str) -> float:
    # This thread's CPU time: what other processes on a loaded machine take is not
    # counted (wall-clock time had the 10x text 36x slower once under 3x overload).
    best = float("inf")
    for _ in range(5):
        started = time.thread_time()
        clean_message(content, lookups=FIXED)
        best = min(best, time.thread_time() - started)
    return best


def _nested(opener: str, closer: str, core: str, length: int) -> str:
    depth = max(1, (length - len(core)) // max(1, len(opener) + len(closer)))
    return opener * depth + core + closer * depth


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=SHAPES)
@example(shape=(("*a ", " a*"), "b"))  # was 105x for 10x the text (bench/text_cleanup.py)
def test_cleanup_time_is_linear_in_the_length(shape: tuple[tuple[str, str], str]) -> None:
    (opener, closer), core = shape
    small, large = _nested(opener, closer, core, 2_000), _nested(opener, closer, core, 20_000)
    # Ten times the text may take ten times as long; quadratic work would take a hundred.
    # 30 leaves room for noise without letting a quadratic step through.
    ratio = _seconds(large) / max(_seconds(small), 1e-5)
    assert ratio < 30, f"{ratio:.0f}x slower for 10x the text: {opener!r} {closer!r} {core!r}"

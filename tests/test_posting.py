"""core.posting: retries, one nonce per post, order per channel, truthful outcomes, warnings."""

from __future__ import annotations

import asyncio

import pytest

from edge_voice.core.posting import (
    MESSAGE_LIMIT,
    ChannelPoster,
    PostError,
    PostErrorKind,
    PostRetry,
)

FAST = PostRetry(base=0.001, cap=0.004)


class ScriptedChannel:
    """Fails each attempt with the next scripted error, then succeeds; records attempts."""

    def __init__(self, *errors: PostError | BaseException | float) -> None:
        self.script = list(errors)
        self.attempts: list[tuple[str, str]] = []
        self.delivered: list[str] = []

    async def send(self, text: str, nonce: str) -> None:
        self.attempts.append((text, nonce))
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, float):
                await asyncio.sleep(step)  # a slow answer
            else:
                raise step
        self.delivered.append(text)


def transient(reason: str = "Discord answered HTTP 503", **options: float) -> PostError:
    return PostError(PostErrorKind.TRANSIENT, reason, **options)


async def test_a_transient_failure_is_retried_with_the_same_nonce() -> None:
    channel = ScriptedChannel(transient(), transient("the connection to Discord failed"))
    poster = ChannelPoster(channel.send, "#tts", retry=FAST)

    outcome = await poster.post("🔇 Anna: hallo")

    assert (outcome.delivered, outcome.attempts) == (True, 3)
    assert channel.delivered == ["🔇 Anna: hallo"]
    assert len({nonce for _, nonce in channel.attempts}) == 1


async def test_each_post_has_its_own_nonce() -> None:
    channel = ScriptedChannel()
    poster = ChannelPoster(channel.send, "#tts")
    await poster.post("one")
    await poster.post("two")
    assert channel.attempts[0][1] != channel.attempts[1][1]


async def test_rate_limit_waits_its_retry_after() -> None:
    channel = ScriptedChannel(transient("rate limited", retry_after=0.05))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    poster = ChannelPoster(channel.send, "#tts", retry=FAST, sleep=sleep)
    outcome = await poster.post("hallo")

    assert outcome.delivered
    assert waits == [pytest.approx(0.05)]


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (PostError(PostErrorKind.PERMANENT, "missing access or permission (HTTP 403)"), True),
        (PostError(PostErrorKind.PERMANENT, "the channel no longer exists (HTTP 404)"), True),
        (PostError(PostErrorKind.REFUSED, "Discord refused the message (HTTP 400)"), False),
    ],
)
async def test_permanent_and_refused_are_not_retried(error: PostError, permanent: bool) -> None:
    channel = ScriptedChannel(error)
    poster = ChannelPoster(channel.send, "#tts", retry=FAST)

    outcome = await poster.post("hallo")

    assert (outcome.delivered, outcome.attempts, outcome.permanent) == (False, 1, permanent)
    assert outcome.reason == error.reason
    assert channel.delivered == []


async def test_gives_up_at_the_deadline_and_says_so() -> None:
    channel = ScriptedChannel(*[transient() for _ in range(1000)])
    poster = ChannelPoster(channel.send, "#tts", deadline=0.05, retry=FAST)

    outcome = await poster.post("hallo")

    assert not outcome.delivered
    assert outcome.attempts > 1
    assert f"gave up after {outcome.attempts} attempts" in outcome.reason


async def test_a_hanging_attempt_is_a_transport_timeout_and_retried() -> None:
    channel = ScriptedChannel(5.0)
    poster = ChannelPoster(channel.send, "#tts", attempt_timeout=0.02, retry=FAST)

    outcome = await poster.post("hallo")

    assert (outcome.delivered, outcome.attempts) == (True, 2)
    assert channel.delivered == ["hallo"]


async def test_a_rate_limit_longer_than_the_deadline_fails_at_once() -> None:
    channel = ScriptedChannel(transient("rate limited for 60.0s", retry_after=60.0))
    poster = ChannelPoster(channel.send, "#tts", deadline=1.0, retry=FAST)

    outcome = await poster.post("hallo")

    assert (outcome.delivered, outcome.attempts) == (False, 1)
    assert "rate limited for 60.0s" in outcome.reason


async def test_posts_to_one_channel_keep_their_order_across_retries() -> None:
    channel = ScriptedChannel(transient(), transient())
    poster = ChannelPoster(channel.send, "#tts", retry=FAST)

    outcomes = await asyncio.gather(*(poster.post(f"message {n}") for n in range(5)))

    assert all(o.delivered for o in outcomes)
    assert channel.delivered == [f"message {n}" for n in range(5)]


async def test_long_text_is_cut_to_discords_limit() -> None:
    channel = ScriptedChannel()
    await ChannelPoster(channel.send, "#tts").post("x" * 5000)
    [text] = channel.delivered
    assert len(text) == MESSAGE_LIMIT
    assert text.endswith("…")


async def test_operators_are_warned_once_per_outage_of_the_channel() -> None:
    forbidden = PostError(PostErrorKind.PERMANENT, "missing access or permission (HTTP 403)")
    channel = ScriptedChannel(forbidden, forbidden, forbidden)
    warnings: list[str] = []

    async def warn(text: str) -> None:
        warnings.append(text)

    poster = ChannelPoster(channel.send, "#tts", warn=warn)
    await poster.post("one")
    await poster.post("two")
    assert len(warnings) == 1
    assert "#tts" in warnings[0]
    assert "missing access" in warnings[0]

    assert (await poster.post("three")).delivered is False  # still in the same outage
    assert (await poster.post("four")).delivered  # fixed
    channel.script = [forbidden]
    await poster.post("five")
    assert len(warnings) == 2


async def test_a_warning_that_fails_never_reaches_the_poster() -> None:
    forbidden = PostError(PostErrorKind.PERMANENT, "missing access or permission (HTTP 403)")
    channel = ScriptedChannel(forbidden)

    async def broken_warning(text: str) -> None:
        raise RuntimeError("log channel gone")

    outcome = await ChannelPoster(channel.send, "#tts", warn=broken_warning).post("hallo")
    assert not outcome.delivered

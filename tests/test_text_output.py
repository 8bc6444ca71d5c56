"""cogs.text_output and the player over it: Discord-side failures of a post, told truthfully.

Issue 8, defects 1 and 2: a network error while posting must not kill the guild's
player (it escaped as a non-HTTPException before), and a text post that failed must
not be reported as posted.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

import aiohttp
import discord
import pytest

from edge_voice.cogs.text_output import ChannelTextOutput, post_error
from edge_voice.core.player import GuildPlayer
from edge_voice.core.posting import PostErrorKind, PostRetry
from edge_voice.core.speech import SpeechOutcome, TextPostReason
from tests.test_player import ThreadedVoice, make_service, utterance


class _Response(NamedTuple):
    status: int
    reason: str


def http_error(kind: type[discord.HTTPException], status: int, text: str) -> Exception:
    return kind(_Response(status, text), {"message": text, "code": 50013 if status == 403 else 0})


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (aiohttp.ServerDisconnectedError(), PostErrorKind.TRANSIENT),
        (ConnectionResetError(104, "Connection reset by peer"), PostErrorKind.TRANSIENT),
        (OSError(101, "Network is unreachable"), PostErrorKind.TRANSIENT),
        (TimeoutError(), PostErrorKind.TRANSIENT),
        (aiohttp.ClientPayloadError("cut"), PostErrorKind.TRANSIENT),
        (
            http_error(discord.DiscordServerError, 503, "Service Unavailable"),
            PostErrorKind.TRANSIENT,
        ),
        (discord.RateLimited(2.5), PostErrorKind.TRANSIENT),
        (http_error(discord.Forbidden, 403, "Missing Permissions"), PostErrorKind.PERMANENT),
        (http_error(discord.NotFound, 404, "Unknown Channel"), PostErrorKind.PERMANENT),
        (http_error(discord.HTTPException, 400, "Invalid Form Body"), PostErrorKind.REFUSED),
    ],
)
def test_every_send_failure_has_a_kind(exc: Exception, kind: PostErrorKind) -> None:
    error = post_error(exc)
    assert error.kind is kind
    assert error.reason


def test_a_rate_limit_carries_its_wait() -> None:
    assert post_error(discord.RateLimited(2.5)).retry_after == 2.5


class FlakyChannel:
    """A text channel whose sends fail with the scripted exceptions first."""

    name = "tts"

    def __init__(self, *errors: BaseException, always: BaseException | None = None) -> None:
        self.errors = list(errors)
        self.always = always
        self.sent: list[tuple[str, object]] = []
        self.attempts = 0

    async def send(self, content: str, **options: object) -> None:
        self.attempts += 1
        if self.always is not None:
            raise self.always
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((content, options["nonce"]))


def fast_output(channel: FlakyChannel) -> ChannelTextOutput:
    output = ChannelTextOutput(channel)  # type: ignore[arg-type]
    output.poster.retry = PostRetry(base=0.001, cap=0.002)
    return output


async def test_a_dropped_connection_while_posting_keeps_the_player_serving(
    refused_edge_url: str,
) -> None:
    """Edge is down, so every message becomes a text post; the first send hits a dropped
    connection (not an HTTPException). It is retried once and posted once, and every
    message queued behind it still gets its answer."""
    channel = FlakyChannel(aiohttp.ServerDisconnectedError(), ConnectionResetError(104, "reset"))
    voice = ThreadedVoice()
    player = GuildPlayer(make_service(consecutive_failures=1), voice, fast_output(channel))

    results = await asyncio.wait_for(
        asyncio.gather(*(player.speak(utterance(f"Nachricht {n}")) for n in range(3))), 20
    )

    assert [r.outcome for r in results] == [SpeechOutcome.POSTED_AS_TEXT] * 3
    posts = [content for content, _ in channel.sent if content.startswith("🔇 Anna")]
    assert posts == [f"🔇 Anna: Nachricht {n}" for n in range(3)]
    await player.close()
    assert player.worker_restarts == 0


@pytest.mark.parametrize(
    "failure",
    [
        http_error(discord.Forbidden, 403, "Missing Permissions"),
        http_error(discord.NotFound, 404, "Unknown Channel"),
        http_error(discord.HTTPException, 400, "Invalid Form Body"),
    ],
)
async def test_a_failed_text_post_is_reported_as_failed_not_posted(
    refused_edge_url: str, failure: Exception
) -> None:
    channel = FlakyChannel(always=failure)
    service = make_service()
    service.service_breaker.force_open("outage", duration=600)
    player = GuildPlayer(service, ThreadedVoice(), fast_output(channel))

    result = await asyncio.wait_for(player.speak(utterance()), 10)

    assert result.outcome is SpeechOutcome.FAILED
    assert result.reason == "text post failed"
    assert TextPostReason.VOICE_UNAVAILABLE.value in result.detail
    assert str(failure.status) in result.detail  # type: ignore[attr-defined]
    assert channel.sent == []
    # The player is still alive and answers the next message the same truthful way.
    again = await asyncio.wait_for(player.speak(utterance("Noch eine")), 10)
    assert again.outcome is SpeechOutcome.FAILED
    await player.close()


async def test_a_5xx_that_persists_fails_the_message_within_the_deadline(
    refused_edge_url: str,
) -> None:
    channel = FlakyChannel(always=http_error(discord.DiscordServerError, 502, "Bad Gateway"))
    output = fast_output(channel)
    output.poster.deadline = 0.2
    service = make_service()
    service.service_breaker.force_open("outage", duration=600)
    player = GuildPlayer(service, ThreadedVoice(), output)

    result = await asyncio.wait_for(player.speak(utterance()), 10)

    assert result.outcome is SpeechOutcome.FAILED
    assert "502" in result.detail
    assert "gave up after" in result.detail
    assert channel.attempts > 1
    await player.close()

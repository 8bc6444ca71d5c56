"""End to end: Discord's REST API fails while the bot posts text (issue 8, defects 1 and 2).

Edge is OPEN (the service breaker forced open), so every message becomes a text post
through discord.py's real HTTP client; the fake Discord scripts the failures of
``POST /channels/{id}/messages`` in the bound channel.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edge_voice.core.player import OUTAGE_NOTICE
from tests.e2e_support import E2E, e2e_bot, log_lines, text_post_for_member
from tests.fakes.discord.faults import (
    RestFault,
    dropped,
    forbidden,
    http_error,
    lost_answer,
    not_found,
    rate_limited,
)
from tests.fakes.discord.rest import MESSAGES

SAY = "Bitte vorlesen"


def open_edge(e2e: E2E) -> None:
    e2e.voice_cog.service.service_breaker.force_open("Edge is down in this test", duration=600)


def bound_channel_posts(e2e: E2E) -> list[object]:
    """Every POST the bot made to the bound channel, as the fake received them."""
    return e2e.fake.requests.matching("POST", MESSAGES, channel_id=e2e.scene.text.id)


TRANSIENT = {
    "connection dropped": lambda channel: dropped("POST", MESSAGES, channel_id=channel, times=2),
    "503": lambda channel: http_error("POST", MESSAGES, 503, channel_id=channel, times=2),
    "429": lambda channel: rate_limited("POST", MESSAGES, 0.3, channel_id=channel, times=2),
    "answer lost": lambda channel: lost_answer("POST", MESSAGES, channel_id=channel, times=2),
}


@pytest.mark.parametrize("fault", list(TRANSIENT))
async def test_a_transient_failure_while_posting_is_retried_once_per_message_in_order(
    tmp_path: Path, fault: str
) -> None:
    async with e2e_bot(tmp_path) as e2e:
        await e2e.join()
        open_edge(e2e)
        script = e2e.fake.rest_fault(TRANSIENT[fault](e2e.scene.text.id))
        for text in ("Eins", "Zwei", "Drei"):
            await e2e.say_in_channel(text)

        expected = [OUTAGE_NOTICE] + [
            text_post_for_member(e2e.member, t) for t in ("Eins", "Zwei", "Drei")
        ]
        await e2e.wait_for(lambda: e2e.posts() == expected, 8)
        assert script.hits == 2
        player = e2e.player()
        assert player.worker_restarts == 0
        # The player lives on: the next message is handled like any other.
        await e2e.say_in_channel("Vier")
        await e2e.wait_for(lambda: len(e2e.posts()) == 5)
        assert e2e.posts()[-1] == text_post_for_member(e2e.member, "Vier")
        if fault == "answer lost":
            # Two attempts reached Discord and took effect; one nonce kept it one message.
            nonces = [r.json["nonce"] for r in bound_channel_posts(e2e)[:3]]
            assert nonces[0] == nonces[1] == nonces[2]


@pytest.mark.parametrize(
    ("status", "make"),
    [(403, forbidden), (404, not_found)],
    ids=["403 missing permission", "404 unknown channel"],
)
async def test_a_channel_that_refuses_posts_fails_the_message_truthfully(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int, make: object
) -> None:
    caplog.set_level(logging.INFO)
    async with e2e_bot(tmp_path) as e2e:
        await e2e.join()
        open_edge(e2e)
        fault: RestFault = make("POST", MESSAGES, channel_id=e2e.scene.text.id, times=None)  # type: ignore[operator]
        e2e.fake.rest_fault(fault)

        first = await e2e.slash("say", text=SAY)
        second = await e2e.slash("say", text="Noch einmal")

        reason = f"HTTP {status}"
        for record in (first, second):
            reply = record.texts[-1]  # after the defer
            assert reply.startswith("⚠️ I couldn't speak it or post it: voice unavailable, ")
            assert reason in reply
            assert record.ephemeral
        # The log says what the reply said: failed, and why.
        failed = [line for line in log_lines(caplog, "edge_voice.core.player") if "failed" in line]
        assert len(failed) == 2
        assert all("text post failed" in line and reason in line for line in failed)
        # One warning to the operators for the whole outage, however many posts failed.
        await e2e.wait_for(lambda: len(e2e.operator_warnings()) == 1)
        (warning,) = e2e.operator_warnings()
        assert warning.startswith("I can't post in #general: ")
        assert reason in warning
        assert e2e.posts() == []
        assert e2e.player().worker_restarts == 0

        # The channel works again: posts go out, and a new outage is reported again.
        e2e.fake.faults.clear()
        third = await e2e.slash("say", text="Jetzt geht es")
        assert "posted it as text" in third.texts[-1]
        e2e.fake.rest_fault(make("POST", MESSAGES, channel_id=e2e.scene.text.id, times=None))  # type: ignore[operator]
        await e2e.slash("say", text="Wieder kaputt")
        await e2e.wait_for(lambda: len(e2e.operator_warnings()) == 2)

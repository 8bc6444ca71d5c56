"""Slash command replies: private, mention-free, and bounded by a deadline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from discord.webhook.async_ import AsyncWebhookAdapter

from edge_voice.cogs import replies
from tests.fakes.discord_harness import TestBot, add_member, invoke_slash
from tests.fakes.edge_server import FakeEdgeServer
from tests.voice_cog_support import voice_bot


@pytest.fixture
async def tb(edge_server: FakeEdgeServer) -> AsyncIterator[TestBot]:
    async with voice_bot() as harness:
        yield harness


async def test_replies_are_ephemeral_and_mention_free(tb: TestBot) -> None:
    member = add_member(tb.guild, "Anna")
    result = await invoke_slash(tb.bot, tb.guild, member, tb.text_channel, "skip")
    assert len(result) == 1
    assert result[0].ephemeral
    assert result[0].mentions_suppressed


async def test_a_reply_that_hangs_is_given_up_and_logged(
    tb: TestBot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def never_answers(*_: object, **__: object) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(AsyncWebhookAdapter, "create_interaction_response", never_answers)
    monkeypatch.setattr(replies, "REPLY_DEADLINE", 0.1)
    member = add_member(tb.guild, "Anna")
    with caplog.at_level(logging.WARNING, logger="edge_voice.cogs.replies"):
        await asyncio.wait_for(
            invoke_slash(tb.bot, tb.guild, member, tb.text_channel, "skip"), timeout=5
        )
    assert "could not answer Anna" in caplog.text
    assert "TimeoutError" in caplog.text

"""Slash command replies: private, mention-free, and bounded by a deadline (on the fake Discord)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from tests.e2e_support import e2e_bot, log_lines
from tests.fakes.discord.faults import slow
from tests.fakes.discord.rest import INTERACTION_CALLBACK


async def test_replies_are_ephemeral_and_mention_free(tmp_path: Path) -> None:
    async with e2e_bot(tmp_path) as e2e:
        record = await e2e.slash("skip")
        assert record.type == 4
        assert record.ephemeral
        assert record.allowed_mentions == {"parse": []}


async def test_a_reply_that_hangs_is_given_up_and_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with e2e_bot(tmp_path) as e2e:
        # load_extension ran the cogs afresh; patch the replies module they use.
        replies = sys.modules["edge_voice.cogs.replies"]
        monkeypatch.setattr(replies, "REPLY_DEADLINE", 0.1)
        e2e.fake.rest_fault(slow("POST", INTERACTION_CALLBACK, 1.0))
        caplog.set_level(logging.WARNING, logger="edge_voice.cogs.replies")

        record = await e2e.fake.invoke_slash(e2e.member, e2e.scene.text, "skip", wait=False)
        await e2e.wait_for(lambda: any("could not answer" in line for line in log_lines(caplog)))
        (line,) = [line for line in log_lines(caplog) if "could not answer" in line]
        assert line.startswith("could not answer alice")
        assert "TimeoutError" in line
        assert not record.answered  # the answer came too late to count

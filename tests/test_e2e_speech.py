"""End to end: /join, a message heard, /say answered truthfully."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e_support import e2e_bot


async def test_join_and_a_message_is_heard(tmp_path: Path) -> None:
    async with e2e_bot(tmp_path) as e2e:
        await e2e.join()
        await e2e.say_in_channel("Hallo zusammen")
        (heard,) = await e2e.wait_heard(1)
        assert heard.packets_per_second() == pytest.approx(50, abs=3)
        assert heard.rms() > 0.05
        assert heard.duration == pytest.approx(0.6, abs=0.15)

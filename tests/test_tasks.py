"""cancel_and_wait: stops the task, and never swallows the caller's own cancellation."""

from __future__ import annotations

import asyncio
import logging

import pytest

from edge_voice.core.tasks import cancel_and_wait


async def test_stops_the_task() -> None:
    task = asyncio.create_task(asyncio.Event().wait())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert task.cancelled()


async def test_a_cancelled_caller_stays_cancelled() -> None:
    child_started = asyncio.Event()

    async def child() -> None:
        child_started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.01)

    async def parent() -> str:
        task = asyncio.create_task(child())
        await child_started.wait()
        await cancel_and_wait(task)
        return "kept running after it was cancelled"

    outer = asyncio.create_task(parent())
    await child_started.wait()
    await asyncio.sleep(0)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer


async def test_the_task_s_own_error_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(broken(), name="broken-task")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR):
        await cancel_and_wait(task)
    assert "broken-task failed" in caplog.text

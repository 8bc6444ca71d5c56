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


async def test_cleanup_inside_an_already_cancelled_task_runs_to_the_end() -> None:
    """discord.py's close() after Ctrl-C runs inside the cancelled main task: every
    cancel_and_wait in that cleanup must return, not re-raise the old cancellation."""
    steps: list[str] = []

    async def host() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            helper = asyncio.create_task(asyncio.Event().wait())
            await asyncio.sleep(0)
            await cancel_and_wait(helper)
            steps.append("first helper stopped")
            await cancel_and_wait(asyncio.create_task(asyncio.sleep(10)))
            steps.append("second helper stopped")
            raise

    task = asyncio.create_task(host())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert steps == ["first helper stopped", "second helper stopped"]

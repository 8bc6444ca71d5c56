"""Small asyncio helpers for stopping tasks correctly."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has finished.

    Its ``CancelledError`` is absorbed, but if the *calling* task is being
    cancelled meanwhile, that cancellation is re-raised: a blanket
    ``suppress(CancelledError)`` around ``await task`` would swallow it and leave
    the caller running after it was told to stop.
    """
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise

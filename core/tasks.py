"""Small asyncio helpers for stopping tasks correctly."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has finished.

    Its ``CancelledError`` is absorbed, but if the *calling* task is being
    cancelled meanwhile, that cancellation is re-raised: a blanket
    ``suppress(CancelledError)`` around ``await task`` would swallow it and leave
    the caller running after it was told to stop. An error the task itself ended
    with is logged, not raised: the caller only wanted it gone.
    """
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    except Exception:
        log.exception("task %s failed before it was stopped", task.get_name())

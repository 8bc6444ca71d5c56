"""Small asyncio helpers for stopping tasks correctly."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has finished.

    Its ``CancelledError`` is absorbed. If the *calling* task is cancelled while it waits
    here, that cancellation is re-raised: a blanket ``suppress(CancelledError)`` would
    swallow it and leave the caller running after it was told to stop. A cancellation
    the caller had already received before it came here (cleanup running inside a
    cancelled task, as discord.py's ``Client.close()`` does after Ctrl-C under
    ``asyncio.run``) is not this call's to re-raise: that would cut the rest of the
    cleanup short. An error the task itself ended with is logged, not raised.
    """
    current = asyncio.current_task()
    cancelling_before = current.cancelling() if current is not None else 0
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if current is not None and current.cancelling() > cancelling_before:
            raise
    except Exception:
        log.exception("task %s failed before it was stopped", task.get_name())

"""The voice catalogue in use: the shipped snapshot, replaced by Edge's list when reachable.

:class:`CatalogueKeeper` starts with the snapshot, adopts the cached copy from the data
directory if one is there, and fetches Edge's voice list at most once per
``[voices] refresh_interval`` (the cache's fetch time counts, so restarts do not
refetch). A list that arrives is written to the cache atomically (a temporary file,
then a rename); a cache file that cannot be read or parsed is ignored with a warning
and replaced by the next good fetch. Nothing here blocks start-up: the keeper answers
from the snapshot until a better list is there, file I/O runs on worker threads, and
the fetch has its own deadline (:func:`core.tts.edge.fetch_voice_list`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from edge_voice.core.clock import WallClock, wall_time
from edge_voice.core.config import Config
from edge_voice.core.tasks import cancel_and_wait
from edge_voice.core.tts.errors import TTSError
from edge_voice.core.voices.catalogue import (
    VoiceCatalogue,
    VoiceListError,
    catalogue_document,
    parse_catalogue_document,
    parse_voice_list,
    shipped_catalogue,
)

log = logging.getLogger(__name__)

CACHE_FILE_NAME: Final = "edge_voices.json"
"""The cached copy of Edge's voice list, in ``[state] data_dir``."""

MIN_RETRY_DELAY: Final = 60.0
"""The background loop never wakes more often than this, whatever the interval."""

Fetch = Callable[[], Awaitable[list[dict[str, Any]]]]
Sleep = Callable[[float], Awaitable[None]]


class RefreshResult(StrEnum):
    """What one :meth:`CatalogueKeeper.refresh` did."""

    REFRESHED = "refreshed"
    NOT_DUE = "not due"
    FAILED = "failed"
    DISABLED = "disabled"


class CatalogueKeeper:
    """Holds the current :class:`VoiceCatalogue` and keeps it fresh.

    ``fetch`` returns Edge's raw voice list (by default, :func:`default_fetch` binds
    :func:`core.tts.edge.fetch_voice_list` to a deadline) and raises :class:`TTSError`.
    ``refresh_interval`` is in seconds; 0 means the snapshot (or cache) is never
    refreshed. ``cache_path`` None keeps nothing on disk.
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        cache_path: Path | None,
        refresh_interval: float,
        wall_clock: WallClock = wall_time,
        sleep: Sleep = asyncio.sleep,
        snapshot: VoiceCatalogue | None = None,
    ) -> None:
        if refresh_interval < 0:
            raise ValueError("refresh_interval must be >= 0")
        self._fetch = fetch
        self.cache_path = cache_path
        self.refresh_interval = refresh_interval
        self._wall = wall_clock
        self._sleep = sleep
        self._current = snapshot or shipped_catalogue()
        self.fetched_at: float | None = None
        """Epoch seconds of the fetch behind :attr:`current`; None for the snapshot."""
        self._last_attempt: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def current(self) -> VoiceCatalogue:
        """The catalogue to answer from right now (cheap: no I/O)."""
        return self._current

    async def load_cache(self) -> bool:
        """Adopt the cached list if there is a readable one; True if it was adopted."""
        if self.cache_path is None:
            return False
        loaded = await asyncio.to_thread(_read_cache, self.cache_path)
        if loaded is None:
            return False
        self._current, self.fetched_at = loaded
        self._last_attempt = self.fetched_at
        log.info("voice list: %d voices from the cache %s", len(self._current), self.cache_path)
        return True

    def due(self) -> bool:
        """Whether a fetch is allowed now: one per interval, counting failed attempts."""
        if self.refresh_interval == 0:
            return False
        if self._last_attempt is None:
            return True
        elapsed = self._wall() - self._last_attempt
        # A clock turned back makes the last attempt look like the future: fetch anew.
        return elapsed >= self.refresh_interval or elapsed < 0

    def seconds_until_due(self) -> float:
        """How long until :meth:`due` turns true (0 if it is; inf if refreshing is off)."""
        if self.refresh_interval == 0:
            return float("inf")
        if self.due() or self._last_attempt is None:
            return 0.0
        return self.refresh_interval - (self._wall() - self._last_attempt)

    async def refresh(self, *, force: bool = False) -> RefreshResult:
        """Fetch Edge's list if due (or ``force``), adopt it and cache it; never raises."""
        if self.refresh_interval == 0 and not force:
            return RefreshResult.DISABLED
        async with self._lock:
            if not force and not self.due():
                return RefreshResult.NOT_DUE
            self._last_attempt = self._wall()
            try:
                catalogue = VoiceCatalogue(parse_voice_list(await self._fetch()))
            except (TTSError, VoiceListError) as exc:
                log.warning("voice list: refresh failed, keeping %d voices: %s", len(self), exc)
                return RefreshResult.FAILED
            except Exception:
                # A fetch that raises anything else is a bug; the bot keeps its list.
                log.exception(
                    "voice list: refresh failed unexpectedly, keeping %d voices", len(self)
                )
                return RefreshResult.FAILED
            self._current, self.fetched_at = catalogue, self._last_attempt
            log.info("voice list: %d voices from Edge", len(catalogue))
            if self.cache_path is not None:
                document = catalogue_document(catalogue.voices, self.fetched_at)
                await asyncio.to_thread(_write_cache, self.cache_path, document)
            return RefreshResult.REFRESHED

    def __len__(self) -> int:
        return len(self._current)

    def start(self) -> None:
        """Load the cache and keep refreshing in the background until :meth:`close`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="voice-list-refresh"
            )

    async def _run(self) -> None:
        await self.load_cache()
        while self.refresh_interval > 0:
            await self.refresh()
            await self._sleep(max(MIN_RETRY_DELAY, self.seconds_until_due()))

    async def close(self) -> None:
        """Stop the background refresh (an unfinished fetch is cancelled)."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)


def default_fetch(timeout: float) -> Fetch:
    """Edge's voice list through edge-tts, each fetch bounded by ``timeout`` seconds."""
    # Imported here: only a keeper that really talks to Edge needs the client.
    from edge_voice.core.tts.edge import fetch_voice_list

    async def fetch() -> list[dict[str, Any]]:
        return await fetch_voice_list(deadline=timeout)

    return fetch


def _read_cache(path: Path) -> tuple[VoiceCatalogue, float | None] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("voice list: cannot read the cache %s (%s); using the shipped list", path, exc)
        return None
    try:
        catalogue, fetched_at = parse_catalogue_document(json.loads(text))
    except (ValueError, VoiceListError) as exc:
        log.warning("voice list: ignoring the corrupt cache %s (%s)", path, exc)
        return None
    if fetched_at is None:
        log.warning("voice list: ignoring the cache %s: it has no fetch time", path)
        return None
    return catalogue, fetched_at


def _write_cache(path: Path, document: dict[str, Any]) -> None:
    # A temporary file in the same directory, then a rename: readers see the old list
    # or the new one, never half of one, even if the process dies mid-write.
    temporary: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=path.name, suffix=".tmp", delete=False
        ) as handle:
            temporary = Path(handle.name)
            json.dump(document, handle, ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        log.warning("voice list: cannot write the cache %s: %s", path, exc)
        if temporary is not None:
            with contextlib.suppress(OSError):
                temporary.unlink()


def keeper_from_config(config: Config, **overrides: Any) -> CatalogueKeeper:
    """A keeper caching in ``[state] data_dir`` and fetching per ``[voices]``."""
    options: dict[str, Any] = {
        "cache_path": Path(config.state.data_dir) / CACHE_FILE_NAME,
        "refresh_interval": config.voices.refresh_interval,
    }
    options.update(overrides)
    fetch = options.pop("fetch", None) or default_fetch(config.voices.fetch_timeout)
    return CatalogueKeeper(fetch, **options)

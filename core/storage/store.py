"""The host-facing entry point: one store file, its settings and its sessions.

    store = await StateStore.open(config, catalogue=keeper)   # keeper: CatalogueKeeper
    ...
    await store.close()

The cogs reach everything through this object; opening reads every row once (on the
store's worker thread), after which reads are memory lookups.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_voice.core.clock import WallClock, wall_time
from edge_voice.core.config import Config
from edge_voice.core.storage.database import Database
from edge_voice.core.storage.sessions import SessionStore
from edge_voice.core.storage.settings import SettingsRepository
from edge_voice.core.voices.catalogue import VoiceCatalogue, shipped_catalogue

IN_MEMORY = Path(":memory:")
"""``path`` for a store kept in memory only: settings last as long as the process (for a
host that injects its own context without a store, and for tests)."""


@dataclass
class StateStore:
    """The open store: :attr:`settings` and :attr:`sessions` over one :attr:`database`."""

    database: Database
    settings: SettingsRepository
    sessions: SessionStore

    @classmethod
    async def open(
        cls,
        config: Config,
        *,
        catalogue: Callable[[], VoiceCatalogue] = shipped_catalogue,
        path: Path | None = None,
        wall_clock: WallClock = wall_time,
    ) -> StateStore:
        """Open (and migrate) the store in ``[state] data_dir`` (or at ``path``; see
        :data:`IN_MEMORY`).

        ``catalogue`` returns the voice catalogue in use, e.g.
        ``lambda: keeper.current`` for a :class:`core.voices.refresh.CatalogueKeeper`.
        Raises :class:`core.storage.database.StorageError`.
        """
        database = await Database.open(path or Database.in_data_dir(config.state.data_dir))
        try:
            settings = await SettingsRepository.load(
                database, config, catalogue, wall_clock=wall_clock
            )
            sessions = await SessionStore.load(database, wall_clock=wall_clock)
        except BaseException:
            await database.close()
            raise
        return cls(database, settings, sessions)

    async def close(self) -> None:
        """Finish pending writes and close the file. Idempotent."""
        await self.database.close()

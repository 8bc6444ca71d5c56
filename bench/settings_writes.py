"""How long a settings write holds the event loop, next to writing on the loop itself.

``SettingsRepository.update_guild`` validates on the loop and runs the SQLite write on
the store's worker thread. While writes run one after another, a callback re-schedules
itself with ``call_soon`` and records the gaps between its runs: the longest gap during
a write is the longest the loop was held by anything else (our steps, the executor
hand-over, the GIL while the worker runs Python). An idle round gives the floor. For
comparison, the same write done synchronously on the loop: what a store without a
worker thread would cost the loop.

    .venv/bin/python bench/settings_writes.py

Exits 1 when the p99 of the longest hold per write is over 1 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_voice.core.config import parse_config  # noqa: E402
from edge_voice.core.storage.store import StateStore  # noqa: E402

WRITES = 2000
TARGET_MS = 1.0


class Pinger:
    """Runs on every loop iteration and keeps the longest gap between two runs."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.longest = 0.0
        self.last = time.perf_counter()
        self.running = True
        loop.call_soon(self.ping)

    def ping(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self.last)
        self.last = now
        if self.running:
            self.loop.call_soon(self.ping)

    def take(self) -> float:
        longest, self.longest = self.longest, 0.0
        return longest


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure(folder: Path) -> tuple[list[float], list[float], list[float]]:
    config = parse_config({"state": {"data_dir": str(folder)}})
    store = await StateStore.open(config)
    pinger = Pinger(asyncio.get_running_loop())
    idle: list[float] = []
    held: list[float] = []
    try:
        for _ in range(200):
            await asyncio.sleep(0)
            idle.append(pinger.take())
        for number in range(WRITES):
            pinger.take()
            rate = f"{number % 100:+d}%"
            await store.settings.update_guild(1000 + number % 50, {"rate": rate, "autojoin": True})
            held.append(pinger.take())
    finally:
        pinger.running = False
        await store.close()

    direct: list[float] = []
    with (
        contextlib.closing(
            sqlite3.connect(folder / "direct.sqlite3", isolation_level=None)
        ) as conn,
        conn,
    ):
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE t (guild_id INTEGER PRIMARY KEY, rate TEXT, autojoin INTEGER)")
        for number in range(WRITES):
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO t VALUES (?, ?, 1) ON CONFLICT (guild_id) DO UPDATE SET "
                "rate = excluded.rate, autojoin = excluded.autojoin",
                (1000 + number % 50, f"{number % 100:+d}%"),
            )
            conn.execute("COMMIT")
            direct.append(time.perf_counter() - started)
    return held, idle, direct


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        held, idle, direct = asyncio.run(measure(Path(folder)))
    rows = [
        ("longest loop hold during a write", held),
        ("longest loop hold, idle loop", idle),
        ("the same write done on the loop", direct),
    ]
    print(f"settings writes: {WRITES}, times in ms (p50 / p99 / max)")
    for label, values in rows:
        ms = [value * 1000 for value in values]
        print(
            f"  {label:34} {statistics.median(ms):6.3f} / {percentile(ms, 0.99):6.3f} / "
            f"{max(ms):6.3f}"
        )
    p99 = percentile(held, 0.99) * 1000
    met = p99 <= TARGET_MS
    print(
        f"target: p99 of the longest loop hold during a write {p99:.3f} ms <= {TARGET_MS} ms: "
        f"{'met' if met else 'MISSED'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

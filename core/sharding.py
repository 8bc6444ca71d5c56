"""Which Discord shards this process serves: ``SHARD_COUNT``/``SHARD_IDS`` or the config.

Large bots split their guilds over shards, and the shards over processes. The host reads
``[discord] shard_count`` and ``shard_ids``; the environment variables ``SHARD_COUNT`` and
``SHARD_IDS`` (``"0,1"``) override them, so one config file can start every process of a
fleet. Pure: the plan is data, the host turns it into discord.py's options.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SHARD_COUNT_ENV = "SHARD_COUNT"
SHARD_IDS_ENV = "SHARD_IDS"


class ShardingError(ValueError):
    """The shard settings contradict each other; the message says which and how."""


@dataclass(frozen=True, slots=True)
class ShardPlan:
    """``count`` 0: no sharding (one connection for every guild)."""

    count: int = 0
    ids: tuple[int, ...] = ()

    @property
    def auto_sharded(self) -> bool:
        """One process serving several shards: discord.py's ``AutoShardedBot``."""
        return self.count > 0 and len(self.ids) != 1

    def bot_options(self) -> dict[str, object]:
        """Keyword arguments for ``commands.Bot`` (one shard) or ``AutoShardedBot``."""
        if self.count == 0:
            return {}
        if len(self.ids) == 1:
            return {"shard_id": self.ids[0], "shard_count": self.count}
        if self.ids:
            return {"shard_ids": list(self.ids), "shard_count": self.count}
        return {"shard_count": self.count}

    def describe(self) -> str:
        """For the start-up log line."""
        if self.count == 0:
            return "not sharded"
        served = ", ".join(map(str, self.ids)) if self.ids else "all"
        return f"shards {served} of {self.count}"


def shard_plan(
    count: int, ids: Sequence[int], environ: Mapping[str, str] | None = None
) -> ShardPlan:
    """The plan from the config's ``count`` and ``ids``, overridden by the environment.

    Raises :class:`ShardingError` for ids without a count, ids outside ``0..count-1``,
    repeated ids, or environment values that are not numbers.
    """
    env = environ or {}
    raw_count = env.get(SHARD_COUNT_ENV, "").strip()
    raw_ids = env.get(SHARD_IDS_ENV, "").strip()
    if raw_count:
        count = _number(SHARD_COUNT_ENV, raw_count)
    if raw_ids:
        ids = [_number(SHARD_IDS_ENV, part) for part in raw_ids.split(",") if part.strip()]
    if count < 0:
        raise ShardingError(f"shard count must be 0 (no sharding) or more, got {count}")
    if ids and count == 0:
        raise ShardingError(
            f"shard ids {list(ids)} need a shard count ({SHARD_COUNT_ENV} or [discord] shard_count)"
        )
    outside = [i for i in ids if not 0 <= i < count]
    if outside:
        raise ShardingError(f"shard ids {outside} are outside 0..{count - 1}")
    if len(set(ids)) != len(ids):
        raise ShardingError(f"shard ids {list(ids)} repeat a shard")
    return ShardPlan(count, tuple(sorted(ids)))


def _number(name: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ShardingError(f"{name} must be a whole number, got {raw!r}") from None

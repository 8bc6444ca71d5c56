"""The reference host sharded: the plan from SHARD_COUNT/SHARD_IDS or the config, and a
two-shard host connecting to the fake Discord and speaking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_voice.bot import ShardedTTSBot, TTSBot, host_for
from edge_voice.core.config import Config, parse_config
from edge_voice.core.sharding import ShardingError, ShardPlan, shard_plan
from tests.e2e_support import e2e_bot
from tests.fake_discord_support import Scene
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.model import guild_shard


@pytest.mark.parametrize(
    ("count", "ids", "env", "expected"),
    [
        (0, (), {}, ShardPlan()),
        (4, (), {}, ShardPlan(4)),
        (4, (2,), {}, ShardPlan(4, (2,))),
        (0, (), {"SHARD_COUNT": "4", "SHARD_IDS": "3, 1"}, ShardPlan(4, (1, 3))),
        (2, (0,), {"SHARD_IDS": "1"}, ShardPlan(2, (1,))),
        (2, (0,), {"SHARD_COUNT": "", "SHARD_IDS": ""}, ShardPlan(2, (0,))),
    ],
)
def test_the_plan_takes_the_environment_over_the_config(
    count: int, ids: tuple[int, ...], env: dict[str, str], expected: ShardPlan
) -> None:
    assert shard_plan(count, ids, env) == expected


@pytest.mark.parametrize(
    ("count", "ids", "env", "message"),
    [
        (0, (1,), {}, "need a shard count"),
        (2, (2,), {}, "outside 0..1"),
        (2, (1, 1), {}, "repeat"),
        (0, (), {"SHARD_COUNT": "two"}, "whole number"),
        (-1, (), {}, r"0 \(no sharding\) or more"),
    ],
)
def test_contradictory_shard_settings_are_refused(
    count: int, ids: tuple[int, ...], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ShardingError, match=message):
        shard_plan(count, ids, env)


def test_one_shard_is_a_plain_bot_several_are_auto_sharded() -> None:
    config = Config()
    one = host_for(config, ShardPlan(4, (2,)))
    several = host_for(config, ShardPlan(4, (0, 1)))
    whole = host_for(config, ShardPlan())
    assert type(one) is TTSBot
    assert (one.shard_id, one.shard_count) == (2, 4)
    assert type(several) is ShardedTTSBot
    assert (several.shard_ids, several.shard_count) == ([0, 1], 4)
    assert type(whole) is TTSBot
    assert whole.shard_count is None


def test_the_config_keys_parse_and_reject_negative_counts() -> None:
    config = parse_config({"discord": {"shard_count": 3, "shard_ids": [0, 2]}})
    assert (config.discord.shard_count, config.discord.shard_ids) == (3, (0, 2))
    with pytest.raises(ValueError, match="shard_count"):
        parse_config({"discord": {"shard_count": -1}})


class QuickTwoShardHost(ShardedTTSBot):
    """The host as ``SHARD_COUNT=2`` makes it, without discord.py's 5 s between shards."""

    def __init__(self, config: Config, **options: Any) -> None:
        super().__init__(
            config, **{**shard_plan(0, (), {"SHARD_COUNT": "2"}).bot_options(), **options}
        )

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No wait between the two IDENTIFYs."""


async def test_a_two_shard_host_connects_both_shards_and_speaks(tmp_path: Path) -> None:
    other: dict[str, Any] = {}

    def add_other_shard_guild(fake: FakeDiscord, scene: Scene) -> None:
        shard = 1 - guild_shard(scene.guild.id, 2)
        other["guild"] = fake.add_guild("other shard", shard=(shard, 2))

    async with e2e_bot(
        tmp_path,
        bot_cls=QuickTwoShardHost,
        fake_options={"shard_count": 2},
        setup=add_other_shard_guild,
    ) as e2e:
        bot = e2e.bot
        assert bot.shard_count == 2
        assert sorted(p["d"]["shard"] for p in e2e.fake.gateway.identifies) == [[0, 2], [1, 2]]
        shards = {g.id: g.shard_id for g in bot.guilds}
        assert shards == {
            e2e.scene.guild.id: guild_shard(e2e.scene.guild.id, 2),
            other["guild"].id: guild_shard(other["guild"].id, 2),
        }
        assert set(shards.values()) == {0, 1}
        await e2e.join()
        await e2e.say_in_channel("Hallo von zwei Shards")
        (heard,) = await e2e.wait_heard(1)
        assert heard.packets

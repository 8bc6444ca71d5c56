"""cogs/admin.py: /tts status | diagnose | reset through INTERACTION_CREATE on the fake Discord.

Every command enters as an interaction payload; answers are what discord.py sent to the
fake's interaction routes. The service is real, on a fake clock; the diagnostics check a
127.0.0.1 port that refuses connections.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import discord
import pytest
from discord.ext import commands

from edge_voice.cogs.tts_context import TTSContext
from edge_voice.core.config import ConfigError
from edge_voice.core.tts.service import TTSService
from edge_voice.core.tts.service_from_config import service_from_config
from tests.admin_cog_support import (
    ADMINISTRATOR,
    MANAGE_GUILD,
    NO_PINGS,
    NOTHING,
    AdminBot,
    config_for,
    fail,
    refused_port,
    running_admin_bot,
)
from tests.fakes.discord.interactions import InteractionRecord

GREEN, AMBER, RED = 0x2ECC71, 0xF5A623, 0xE74C3C


@pytest.fixture
def port() -> Iterator[int]:
    with refused_port() as held:
        yield held


@pytest.fixture
async def ab(port: int) -> AsyncIterator[AdminBot]:
    async with running_admin_bot(port) as running:
        yield running


def only_embed(record: InteractionRecord) -> dict[str, Any]:
    assert (record.type, record.ephemeral) == (4, True)
    assert record.allowed_mentions == NO_PINGS
    [embed] = record.embeds
    return embed


def fields(embed: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["value"] for f in embed["fields"]}


# ---------------------------------------------------------------- who may run it


async def test_group_is_guild_only_and_hidden_from_non_admins(ab: AdminBot) -> None:
    tree = ab.bot.tree
    group = tree.get_command("tts")
    assert group is not None
    payload = group.to_dict(tree)

    assert payload["default_member_permissions"] == MANAGE_GUILD
    assert payload["dm_permission"] is False
    assert [o["name"] for o in payload["options"]] == [
        "status",
        "diagnose",
        "reset",
        "mode",
        "settings",
        "set",
    ]


@pytest.mark.parametrize("sub", ["status", "diagnose", "reset"])
async def test_member_without_the_permission_is_refused(ab: AdminBot, sub: str) -> None:
    ab.service.service_breaker.force_open("outage")

    record = await ab.tts(sub, permissions=NOTHING)

    assert record.ephemeral
    assert record.content == f"You need the **Manage Server** permission to use /tts {sub}."
    assert not record.embeds
    assert ab.service.service_breaker.state.value == "OPEN"  # reset did not run


async def test_configured_admin_permission_is_respected(port: int) -> None:
    async with running_admin_bot(port, admin_permission="administrator") as ab:
        group = ab.bot.tree.get_command("tts")
        assert group is not None
        assert group.to_dict(ab.bot.tree)["default_member_permissions"] == ADMINISTRATOR

        refused = await ab.tts("status", permissions=MANAGE_GUILD)
        allowed = await ab.tts("status", permissions=ADMINISTRATOR)

    assert refused.content == "You need the **Administrator** permission to use /tts status."
    assert only_embed(allowed)["title"] == "TTS status: 🟢 CLOSED"


async def test_unknown_admin_permission_is_a_clear_error(port: int) -> None:
    # The config refuses the name when it loads (tests/test_config_checks.py); a Config
    # built in code skips that, and the cog must still refuse it clearly.
    valid = config_for(port)
    config = dataclasses.replace(
        valid, discord=dataclasses.replace(valid.discord, admin_permission="manage_guilds")
    )
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.none())
    bot.tts_context = TTSContext(config, service_from_config(config))  # type: ignore[attr-defined]
    with pytest.raises(commands.ExtensionFailed) as failed:
        await bot.load_extension("edge_voice.cogs.admin")

    error = failed.value.original
    assert isinstance(error, ConfigError)
    assert error.key == "discord.admin_permission"
    assert "expected a Discord permission name such as 'manage_guild'" in str(error)
    assert "got 'manage_guilds'" in str(error)
    await bot.tts_context.service.close()  # type: ignore[attr-defined]


# ---------------------------------------------------------------- /tts status


async def test_status_closed_is_green(ab: AdminBot) -> None:
    embed = only_embed(await ab.tts("status"))

    assert embed["color"] == GREEN
    assert embed["title"] == "TTS status: 🟢 CLOSED"
    assert list(fields(embed)) == [
        "Service breaker (edge)",
        "Voice de-DE-KillianNeural",
        "Voice de-DE-ConradNeural",
        "During outages",
        "Audio cache",
    ]
    assert fields(embed)["Audio cache"].startswith("0 hits · 0 misses · 0 evictions")
    service = fields(embed)["Service breaker (edge)"]
    assert "**State:** 🟢 CLOSED" in service
    assert "**Last failure:** never" in service
    assert "**Next trial:** -" in service
    assert "**Trips so far:** 0" in service


async def test_status_open_is_red_with_counts_times_and_next_trial(ab: AdminBot) -> None:
    breaker = ab.service.service_breaker
    breaker.record_success(breaker.acquire())
    ab.clock.advance(30)
    failed_at = int(ab.clock.wall())
    fail(breaker, 3, "NoAudioReceived: no audio")
    ab.clock.advance(15)

    embed = only_embed(await ab.tts("status"))
    service = fields(embed)["Service breaker (edge)"]

    assert embed["color"] == RED
    assert embed["title"] == "TTS status: 🔴 OPEN"
    assert "posted as text" in embed["description"]
    assert "**State:** 🔴 OPEN" in service
    assert "**Tripped by:** 3 consecutive failures" in service
    assert "**Failures:** 3 in a row · 75% of the last 4 calls (window 60 s)" in service
    assert f"**Last failure:** <t:{failed_at}:R> (NoAudioReceived: no audio)" in service
    assert f"**Last success:** <t:{failed_at - 30}:R>" in service
    assert f"**Opened:** <t:{failed_at}:R>" in service
    assert f"**Next trial:** in 45 s (<t:{failed_at + 60}:R>)" in service
    assert "**Trips so far:** 1" in service


async def test_status_half_open_is_amber(ab: AdminBot) -> None:
    breaker = ab.service.service_breaker
    breaker.force_open("maintenance", duration=20)
    ab.clock.advance(21)
    breaker.acquire()  # the first call after the cooldown is the trial

    embed = only_embed(await ab.tts("status"))
    service = fields(embed)["Service breaker (edge)"]

    assert embed["color"] == AMBER
    assert embed["title"] == "TTS status: 🟠 HALF_OPEN"
    assert "**State:** 🟠 HALF_OPEN" in service
    assert "**Next trial:** now: trial calls running (1 in flight)" in service


async def test_status_shows_a_failing_voice_while_the_service_speaks(ab: AdminBot) -> None:
    fail(ab.service.breakers.voice("de-DE-KillianNeural"), 3)
    failing: float = ab.service.breakers.voice("de-DE-KillianNeural").retry_after

    embed = only_embed(await ab.tts("status"))

    assert embed["color"] == GREEN
    assert "Voices not CLOSED: de-DE-KillianNeural." in embed["description"]
    assert "🔴 OPEN" in fields(embed)["Voice de-DE-KillianNeural"]
    assert f"in {failing:.0f} s" in fields(embed)["Voice de-DE-KillianNeural"]
    assert "🟢 CLOSED" in fields(embed)["Voice de-DE-ConradNeural"]


# ---------------------------------------------------------------- /tts diagnose


async def test_diagnose_defers_then_reports_checks_diagnosis_and_fixes(
    ab: AdminBot, port: int
) -> None:
    record = await ab.tts("diagnose")

    assert (record.type, record.ephemeral) == (5, True)
    [followup] = record.followups
    assert followup.flags & 64  # ephemeral
    [embed] = followup.embeds
    found = fields(embed)
    assert embed["color"] == RED
    assert f"TCP connection to 127.0.0.1:{port} refused" in embed["description"]
    names = list(found)
    assert names[0].startswith("✅ dns (")
    assert names[1].startswith("❌ tcp (")
    assert names[2:5] == ["⏭️ tls", "⏭️ websocket", "⏭️ synthesis"]
    assert found[names[1]] == f"connection to 127.0.0.1:{port} refused"
    assert "firewall" in found["Suggested fixes"]
    assert "edge: CLOSED" in found["Breakers"]


# ---------------------------------------------------------------- /tts reset


async def test_reset_closes_every_breaker_confirms_and_logs_who(ab: AdminBot) -> None:
    fail(ab.service.service_breaker, 3)
    fail(ab.service.breakers.voice("de-DE-ConradNeural"), 3)
    await ab.cog.alerts.drain()  # the openings are posted before the reset
    root = ab.scene.admin
    before = len(ab.log_posts())

    reply = await ab.fake.invoke_slash(root, ab.scene.text, "tts", "reset")

    assert reply.ephemeral
    assert reply.content == (
        "Reset 3 breakers (edge: OPEN, edge:de-DE-ConradNeural: OPEN). "
        "Speech is tried again with the next message."
    )
    assert {b.state.value for b in ab.service.breakers} == {"CLOSED"}
    await ab.fake.wait_for(lambda: "TTS breakers reset" in ab.log_titles()[before:])
    [posted] = [p for p in ab.log_posts()[before:] if p.embeds[0]["title"] == "TTS breakers reset"]
    description = posted.embeds[0]["description"]
    assert description == f"<@{root.id}> (root) reset the breakers with /tts reset."
    assert posted.allowed_mentions == NO_PINGS
    await ab.cog.alerts.drain()
    [closing] = [
        p.embeds[0] for p in ab.log_posts()[before:] if "now CLOSED" in p.embeds[0]["title"]
    ]
    assert closing["title"] == "TTS breakers: 2 transitions in 0 s, now CLOSED"
    assert "**edge**: 1 transition: OPEN → CLOSED" in closing["description"]
    assert "Last reason: reset by root with /tts reset" in fields(closing)["edge"]


# ---------------------------------------------------------------- errors


class BrokenHealth(TTSService):
    def health(self) -> dict[str, Any]:
        raise RuntimeError("snapshot exploded")


async def test_an_error_becomes_a_short_ephemeral_message_and_a_logged_traceback(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_admin_bot(port, service_cls=BrokenHealth) as ab:
        with caplog.at_level(logging.ERROR, logger="edge_voice.cogs.admin"):
            record = await ab.tts("status")

    assert record.ephemeral
    assert record.content == "/tts status failed (RuntimeError). The details are in the bot's log."
    [logged] = [r for r in caplog.records if r.name == "edge_voice.cogs.admin" and r.exc_info]
    assert logged.exc_info is not None
    assert str(logged.exc_info[1]) == "snapshot exploded"


async def test_an_error_after_deferring_becomes_an_ephemeral_followup(
    ab: AdminBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise OSError("check crashed")

    # load_extension ran cogs.admin as a fresh module object: patch the one the cog uses.
    monkeypatch.setattr(sys.modules[type(ab.cog).__module__], "diagnose_service", broken)

    record = await ab.tts("diagnose")

    assert record.type == 5
    [followup] = record.followups
    assert followup.flags & 64  # ephemeral
    assert followup.content == "/tts diagnose failed (OSError). The details are in the bot's log."

"""/tts mode end to end: admins switch every breaker's mode, it is logged, it survives a
restart, members and other servers are refused."""

from __future__ import annotations

from pathlib import Path

from edge_voice.core.breaker import CircuitState
from edge_voice.core.tts.modes import ModeChange, ServiceMode, apply_mode
from tests.e2e_support import e2e_bot, text_post_for_member
from tests.fakes.discord.interactions import EPHEMERAL


async def test_isolated_never_calls_edge_and_normal_brings_speech_back(tmp_path: Path) -> None:
    async with e2e_bot(tmp_path) as e2e:
        await e2e.join()
        admin = e2e.scene.admin
        service = e2e.voice_cog.service

        reply = await e2e.slash("tts", "mode", member=admin, mode="isolated")
        assert reply.flags == EPHEMERAL
        assert reply.content.startswith("🛠️ Mode: **isolated** (was normal)")
        assert {b.state for b in service.breakers} == {CircuitState.FORCED_OPEN}

        await e2e.say_in_channel("Bitte nicht sprechen")
        post = text_post_for_member(e2e.member, "Bitte nicht sprechen")
        await e2e.wait_for(lambda: post in e2e.posts())
        assert e2e.edge_texts() == []  # Edge was never asked, not even by a canary
        titles = [m.embeds[0]["title"] for m in e2e.log_posts() if m.embeds]
        assert "TTS mode: isolated" in titles
        logged = next(m for m in e2e.log_posts() if m.embeds[0]["title"] == "TTS mode: isolated")
        assert "root" in logged.embeds[0]["description"]  # who did it

        again = await e2e.slash("tts", "mode", member=admin, mode="isolated")
        assert again.content.startswith("The mode is already **isolated**")

        back = await e2e.slash("tts", "mode", member=admin, mode="normal")
        assert back.content.startswith("🛠️ Mode: **normal** (was isolated)")
        assert {b.state for b in service.breakers} == {CircuitState.CLOSED}
        await e2e.say_in_channel("Jetzt wieder")
        await e2e.wait_heard(1)
        assert e2e.edge_texts() == ["Jetzt wieder"]


async def test_members_are_refused(tmp_path: Path) -> None:
    async with e2e_bot(tmp_path) as e2e:
        refused = await e2e.slash("tts", "mode", member=e2e.scene.alice, mode="disabled")
        assert refused.content == "You need the **Manage Server** permission to use /tts mode."
        assert e2e.voice_cog.service.service_breaker.state is CircuitState.CLOSED


async def test_only_the_control_servers_may_switch_it(tmp_path: Path) -> None:
    async with e2e_bot(tmp_path, discord={"control_guild_ids": [1]}) as e2e:
        for command in (("tts", "mode"), ("tts", "reset")):
            options = {"mode": "disabled"} if command[1] == "mode" else {}
            refused = await e2e.slash(*command, member=e2e.scene.admin, **options)
            assert "every server the bot is in" in refused.content
        assert e2e.voice_cog.service.service_breaker.state is CircuitState.CLOSED


async def test_a_mode_survives_a_restart(tmp_path: Path) -> None:
    async with e2e_bot(tmp_path) as e2e:
        await e2e.slash("tts", "mode", member=e2e.scene.admin, mode="metrics only")
        assert e2e.voice_cog.service.service_breaker.state is CircuitState.METRICS_ONLY
    async with e2e_bot(tmp_path) as e2e:  # the same data directory
        assert e2e.voice_cog.service.service_breaker.state is CircuitState.METRICS_ONLY
        status = await e2e.slash("tts", "status", member=e2e.scene.admin)
        assert "METRICS_ONLY" in status.embeds[0]["title"]


def test_normal_leaves_an_ordinary_outage_alone() -> None:
    from edge_voice.core.breaker import CircuitBreaker
    from edge_voice.core.clock import FakeClock

    clock = FakeClock()
    open_one, moded = CircuitBreaker("edge", clock=clock), CircuitBreaker("edge:x", clock=clock)
    open_one.force_open("outage", duration=60)
    moded.disable("by someone")

    change = apply_mode([open_one, moded], ServiceMode.NORMAL, "back to normal")

    assert (open_one.state, moded.state) == (CircuitState.OPEN, CircuitState.CLOSED)
    assert change == ModeChange(
        ServiceMode.NORMAL, {"edge": CircuitState.OPEN, "edge:x": CircuitState.DISABLED}
    )
    assert change.changed

"""The cogs' shared context: built from config, shared, closed by its last user,
and carrying breaker state across a restart."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
from pathlib import Path

import discord
import pytest
from discord.ext import commands

from edge_voice.cogs.tts_context import (
    TTSContext,
    acquire_tts_context,
    build_tts_context,
    release_tts_context,
)
from edge_voice.core.admission import Refusal, StreamKind
from edge_voice.core.breaker import CircuitBreakerConfig, CircuitOpenError
from edge_voice.core.config import (
    CacheConfig,
    Config,
    DeadlineConfig,
    FallbackConfig,
    RetryConfig,
    StateConfig,
    VoicesConfig,
    parse_config,
)
from edge_voice.core.tts.outcomes import SynthesisFailed
from edge_voice.core.tts.service_from_config import service_from_config
from tests.fakes.edge_server import FakeEdgeServer, FaultMode, FaultPlan


def config_in(data_dir: Path, **changes: object) -> Config:
    settings: dict[str, object] = {
        "breaker": CircuitBreakerConfig(
            consecutive_failures=2, cooldown_period=600, max_cooldown_period=600
        ),
        "retry": RetryConfig(attempts=1, backoff_base=0),
        "deadlines": DeadlineConfig(connect=1, read=1, total=3),
        "state": StateConfig(persist=True, data_dir=str(data_dir)),
        "cache": CacheConfig(enabled=True, max_bytes=1 << 20),
    }
    settings.update(changes)
    return Config(**settings)  # type: ignore[arg-type]


async def test_an_outage_survives_a_restart(edge_server: FakeEdgeServer, tmp_path: Path) -> None:
    edge_server.plan = FaultPlan(FaultMode.UNAVAILABLE)
    before = build_tts_context(config_in(tmp_path))
    for _ in range(2):
        with pytest.raises(SynthesisFailed):
            await before.service.synthesize("Hallo")
    assert before.service.service_breaker.state.value == "OPEN"
    await before.close()
    reached = edge_server.connection_count

    edge_server.plan = FaultPlan()
    after = build_tts_context(config_in(tmp_path))
    breaker = after.service.service_breaker
    assert breaker.state.value == "OPEN"
    assert 590 < breaker.retry_after <= 600
    for _ in range(5):
        with pytest.raises(CircuitOpenError):
            await after.service.synthesize("Hallo")
    assert edge_server.connection_count == reached
    await after.close()


async def test_without_persistence_a_restart_starts_closed(
    edge_server: FakeEdgeServer, tmp_path: Path
) -> None:
    edge_server.plan = FaultPlan(FaultMode.UNAVAILABLE)
    config = config_in(tmp_path, state=StateConfig(persist=False, data_dir=str(tmp_path)))
    before = build_tts_context(config)
    for _ in range(2):
        with pytest.raises(SynthesisFailed):
            await before.service.synthesize("Hallo")
    await before.close()
    after = build_tts_context(config)
    assert after.service.service_breaker.state.value == "CLOSED"
    assert list(tmp_path.iterdir()) == []
    await after.close()


async def test_offline_mode_builds_a_offline_voice(tmp_path: Path) -> None:
    text_only = build_tts_context(config_in(tmp_path))
    assert text_only.offline_voice is None
    await text_only.close()
    both = build_tts_context(
        config_in(tmp_path, fallback=FallbackConfig(on_open="offline_voice_and_text"))
    )
    assert both.offline_voice is not None
    assert both.offline_voice.also_post_text
    assert both.offline_voice.provider.name == "espeak"
    await both.close()


async def test_shared_by_cogs_and_closed_by_the_last(tmp_path: Path) -> None:
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.none())
    bot.tts_config = config_in(  # type: ignore[attr-defined]
        tmp_path, fallback=FallbackConfig(on_open="offline_voice")
    )
    first = acquire_tts_context(bot)
    second = acquire_tts_context(bot)
    assert first is second
    assert first.offline_voice is not None
    # Make the offline voice start its worker thread, so closing has something to stop.
    async with contextlib.aclosing(
        first.offline_voice.provider.stream(first.service.prepare("Hallo"))
    ) as audio:
        assert await anext(audio)
    workers = {t for t in threading.enumerate() if "espeak" in t.name.lower()}
    assert workers
    await release_tts_context(bot)
    assert getattr(bot, "tts_context", None) is first
    await release_tts_context(bot)
    assert getattr(bot, "tts_context", None) is None
    await asyncio.sleep(0)
    assert all(not t.is_alive() for t in workers)
    assert first.store is not None
    assert first.store.closed
    await bot.close()


async def test_the_state_store_opens_once_in_the_data_dir_and_closes_with_the_last_cog(
    tmp_path: Path,
) -> None:
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.none())
    bot.tts_config = config_in(  # type: ignore[attr-defined]
        tmp_path, voices=VoicesConfig(refresh_interval=0)
    )
    context = acquire_tts_context(bot)
    acquire_tts_context(bot)
    state = await context.open_state()
    assert await context.open_state() is state  # the second cog gets the same store
    assert (tmp_path / "edge_voice.sqlite3").is_file()
    assert context.voices is not None
    assert context.catalogue is context.voices.current
    await state.settings.update_guild(1, {"rate": "+10%"})
    await release_tts_context(bot)
    await release_tts_context(bot)
    assert context.state is None
    assert context.voices is None
    await bot.close()


async def test_an_injected_context_gets_a_store_in_memory_closed_by_the_last_cog(
    tmp_path: Path,
) -> None:
    config = config_in(tmp_path)
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.none())
    injected = TTSContext(config, service_from_config(config))
    bot.tts_context = injected  # type: ignore[attr-defined]
    assert acquire_tts_context(bot) is injected
    state = await injected.open_state()
    await state.settings.update_guild(1, {"rate": "+10%"})
    assert list(tmp_path.iterdir()) == []  # memory only, the shipped voice list
    assert injected.voices is None
    await release_tts_context(bot)
    assert injected.state is None
    assert bot.tts_context is injected  # type: ignore[attr-defined]
    await injected.service.close()
    await bot.close()


async def test_a_relative_data_dir_of_a_config_built_in_code_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    config = config_in(tmp_path, voices=VoicesConfig(refresh_interval=0))
    config = dataclasses.replace(config, state=StateConfig(persist=False, data_dir="relative"))
    context = build_tts_context(config)
    with caplog.at_level(logging.WARNING, logger="edge_voice.cogs.tts_context"):
        await context.open_state()
    await context.close()
    assert f"relative to the working directory ({tmp_path / 'relative'})" in caplog.text
    assert (tmp_path / "relative" / "edge_voice.sqlite3").is_file()


async def test_admission_refusals_are_counted_in_the_metrics(tmp_path: Path) -> None:
    config = parse_config(
        {"state": {"data_dir": str(tmp_path)}, "player": {"max_streams": 1}}, "<test>"
    )
    context = build_tts_context(config)
    try:
        admission = context.admission
        assert admission is not None
        ticket = admission.admit(StreamKind.TRANSCODE)
        assert isinstance(admission.admit(StreamKind.REPLAY), Refusal)
        admission.release(ticket)
        registry = context.metrics.registry
        assert registry.get_sample_value("tts_admission_refusals_total") == 1
    finally:
        await context.close()

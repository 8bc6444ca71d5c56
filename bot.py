"""Reference host for the TTS cogs.

    python bot.py          run the bot (needs DISCORD_TOKEN in the environment)
    python bot.py check    test config, network and speech offline from Discord; exit 0 if it speaks

Reads ``config.toml`` beside this file in a checkout (``TTS_CONFIG`` names another
one); installed from the wheel, without ``TTS_CONFIG``, it runs on the built-in
defaults and keeps its data in the user's data directory, not in site-packages. The
token is read from ``DISCORD_TOKEN`` only: never from the config, never logged.
Exit codes: 0 fine, 1 the check failed or the bot stopped on an error, 2 a
configuration problem (bad config, missing or rejected token).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import aiohttp
import discord
from discord.ext import commands

from edge_voice.core.config import Config, ConfigError, load_config
from edge_voice.core.config_location import default_config, find_config
from edge_voice.core.selfcheck import run_self_check
from edge_voice.core.sharding import ShardingError, ShardPlan, shard_plan
from edge_voice.core.tasks import cancel_and_wait

log = logging.getLogger("bot")

TOKEN_ENV = "DISCORD_TOKEN"
DEFAULT_CONFIG = Path(__file__).with_name("config.toml")
IN_CHECKOUT = Path(__file__).with_name("pyproject.toml").is_file()
"""A source checkout (``make run``): its config.toml and data/ are the operator's. In an
installed package the config.toml beside this file is a copy to start from."""
EXTENSIONS = ("edge_voice.cogs.voice", "edge_voice.cogs.admin")
SYNC_DEADLINE = 30.0
SHUTDOWN_DEADLINE = 9.5
"""Seconds ``close()`` may take after SIGINT/SIGTERM; the process must be gone within 10 s."""
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def load_host_config(environ: Mapping[str, str]) -> tuple[Config, str]:
    """The config and where it came from: ``$TTS_CONFIG``, else, in a checkout,
    ``config.toml`` beside this file.

    A named file must exist; without one, the built-in defaults apply, with the data in
    the user's data directory (:func:`edge_voice.core.config_location.user_data_dir`).
    """
    path = find_config(environ, DEFAULT_CONFIG if IN_CHECKOUT else None)
    if path is None:
        config = default_config(environ)
        return config, f"built-in defaults (no config file; data in {config.state.data_dir})"
    return load_config(path), str(path)


def setup_logging(level: str) -> None:
    """Log to stderr at ``level``; discord.py's own logging goes through the same handler."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)-8s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def bot_intents() -> discord.Intents:
    """The gateway intents the cogs need."""
    intents = discord.Intents.default()  # guilds, guild messages, voice states
    # Privileged: enable both under Bot -> Privileged Gateway Intents in the developer
    # portal, or Discord refuses the connection. message_content lets the voice cog
    # read the bound text channel; members gives display names for "NAME said".
    intents.message_content = True
    intents.members = True
    return intents


async def load_extensions(bot: commands.Bot, names: Sequence[str]) -> list[str]:
    """Load each extension; one that fails is logged with its traceback and skipped."""
    loaded = []
    for name in names:
        try:
            await bot.load_extension(name)
        except commands.ExtensionError as exc:
            log.error("extension %s not loaded: %s", name, exc, exc_info=exc)
        else:
            loaded.append(name)
    log.info("extensions loaded: %s", ", ".join(loaded) or "none")
    return loaded


async def sync_commands(bot: commands.Bot, guild_ids: Sequence[int]) -> None:
    """Sync slash commands to ``guild_ids`` (instantly available there), or globally."""
    targets: list[discord.Object | None] = [discord.Object(id=g) for g in guild_ids] or [None]
    for guild in targets:
        where = f"guild {guild.id}" if guild else "globally (may take up to an hour)"
        try:
            if guild is not None:
                bot.tree.copy_global_to(guild=guild)
            async with asyncio.timeout(SYNC_DEADLINE):
                synced = await bot.tree.sync(guild=guild)
        except (discord.HTTPException, TimeoutError) as exc:
            log.warning("slash command sync %s failed: %r", where, exc)
        else:
            log.info("synced %d slash command(s) %s", len(synced), where)


class _TTSHost:
    """What both host classes add to discord.py's bot: the options, the config, the cogs."""

    def __init__(self, config: Config, **options: Any) -> None:
        super().__init__(  # type: ignore[call-arg]  # discord.py's bot, next in the MRO
            command_prefix=commands.when_mentioned,
            intents=bot_intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.tts_config = config  # read by cogs.tts_context before any cog loads

    async def setup_hook(self) -> None:
        bot = cast(commands.Bot, self)
        await load_extensions(bot, EXTENSIONS)
        settings = self.tts_config.discord
        if settings.sync_commands:
            await sync_commands(bot, settings.sync_guild_ids)

    async def on_ready(self) -> None:
        bot = cast(commands.Bot, self)
        log.info("logged in as %s in %d guild(s)", bot.user, len(bot.guilds))


class TTSBot(_TTSHost, commands.Bot):
    """A bot that hosts the TTS cogs with ``config``: one connection, or one shard of
    several (``shard_id``, ``shard_count``)."""


class ShardedTTSBot(_TTSHost, commands.AutoShardedBot):
    """The TTS host serving several shards in one process (``shard_ids``, ``shard_count``;
    without a count discord.py asks Discord how many)."""


def host_for(config: Config, plan: ShardPlan, **options: Any) -> TTSBot | ShardedTTSBot:
    """The host for ``plan``: ``ShardedTTSBot`` when this process serves several shards."""
    options = {**plan.bot_options(), **options}
    if plan.auto_sharded:
        return ShardedTTSBot(config, **options)
    return TTSBot(config, **options)


def run_check(config: Config, source: str) -> int:
    """``python bot.py check``: print the self-check report; 0 when speech works."""
    report = asyncio.run(run_self_check(config, source))
    print(report.render())
    return report.exit_code


def run_bot(config: Config, token: str, plan: ShardPlan | None = None, **bot_options: Any) -> int:
    """Run until SIGINT or SIGTERM, then shut down cleanly; the process exit code.

    A rejected token or missing intents are configuration problems (exit 2); Discord
    unreachable at start is one line and exit 1.
    """
    try:
        host = host_for(config, plan or ShardPlan(), **bot_options)
        return asyncio.run(serve(host, token))
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return EXIT_FAILED


async def serve(bot: commands.Bot | commands.AutoShardedBot, token: str) -> int:
    """Run ``bot`` until it stops or a signal arrives, then close it (see :func:`run_bot`).

    ``bot.run()`` would close the bot inside the main task asyncio.run cancels on
    Ctrl-C, and leaves SIGTERM (docker, systemd) to kill the process outright. Here
    both signals set an event, and ``close()`` runs in a task nobody cancelled: the cogs
    post what is still queued, leave voice, and the gateway closes with a close frame.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for number in signals:
        loop.add_signal_handler(number, _on_signal, stop, number)
    try:
        async with bot:
            running = asyncio.create_task(bot.start(token), name="discord-client")
            stopping = asyncio.create_task(stop.wait(), name="wait-for-signal")
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stopping.done():
                log.info("shutting down: posting what is queued, leaving voice")
                try:
                    async with asyncio.timeout(SHUTDOWN_DEADLINE):
                        await bot.close()
                except TimeoutError:
                    log.error("shutdown took longer than %.0fs; stopping anyway", SHUTDOWN_DEADLINE)
            else:
                stopping.cancel()
            if not running.done():  # close() ends bot.start(); give it a moment
                await asyncio.wait({running}, timeout=1.0)
            if not running.done():
                await cancel_and_wait(running)
            return _exit_code(running)
    finally:
        for number in signals:
            loop.remove_signal_handler(number)


def _on_signal(stop: asyncio.Event, number: int) -> None:
    if stop.is_set():
        log.warning("second %s: stopping without waiting", signal.Signals(number).name)
        raise KeyboardInterrupt
    log.info("%s received", signal.Signals(number).name)
    stop.set()


def _exit_code(running: asyncio.Task[None]) -> int:
    if running.cancelled():
        return EXIT_OK
    error = running.exception()
    if error is None:
        return EXIT_OK
    if isinstance(error, discord.LoginFailure):
        print(f"error: Discord rejected the token in {TOKEN_ENV}.", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(error, discord.PrivilegedIntentsRequired):
        print(
            "error: enable the Message Content and Server Members intents for this bot "
            "in the Discord developer portal (Bot -> Privileged Gateway Intents).",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if isinstance(error, aiohttp.ClientConnectorError | discord.GatewayNotFound | OSError):
        print(f"error: cannot reach Discord: {error}", file=sys.stderr)
        return EXIT_FAILED
    log.critical("the bot stopped: %r", error, exc_info=error)
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args not in ([], ["check"]):
        print(f"usage: {Path(sys.argv[0]).name} [check]", file=sys.stderr)
        return EXIT_USAGE
    try:
        config, source = load_host_config(os.environ)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(config.logging.level)
    if args == ["check"]:
        return run_check(config, source)
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        print(
            f"error: set {TOKEN_ENV} in the environment to the bot token from the Discord "
            "developer portal (the token is never read from the config file).",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        plan = shard_plan(config.discord.shard_count, config.discord.shard_ids, os.environ)
    except ShardingError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    log.info("config: %s; %s", source, plan.describe())
    return run_bot(config, token, plan)


if __name__ == "__main__":
    sys.exit(main())

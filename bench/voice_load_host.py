"""The bot side of ``bench/voice_load.py``: the reference host's ``TTSBot``, alone on one core.

    python bench/voice_load_host.py CONFIG_JSON LAG_FILE CPU

Started by ``bench/voice_load.py`` with the fake Discord's and the fake Edge's addresses
in the environment (``tests.fakes.discord.launch.launch_env``). It pins itself to CPU
``CPU`` before anything else runs, points discord.py and edge-tts at the fakes, builds
``TTSBot`` from the JSON config, and runs it until SIGTERM.

Beside the bot it runs one probe: a task that sleeps 5 ms at a time and writes how late
each wake-up was (``time.monotonic()`` and the lag, one line each) to ``LAG_FILE``, so the
parent can read the loop lag of each ladder level (CLOCK_MONOTONIC is system-wide).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import ssl
import sys
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROBE_INTERVAL = 0.005
FLUSH_EVERY = 100


async def probe_loop_lag(out: IO[str]) -> None:
    """Write ``monotonic lag`` lines: how late each 5 ms sleep woke (loop blocked or busy)."""
    loop = asyncio.get_running_loop()
    lines = 0
    while True:
        due = loop.time() + PROBE_INTERVAL
        await asyncio.sleep(PROBE_INTERVAL)
        now = loop.time()
        out.write(f"{time.monotonic():.6f} {max(0.0, now - due):.6f}\n")
        lines += 1
        if lines % FLUSH_EVERY == 0:
            out.flush()


def report_pacer(bot: Any) -> None:
    """How often the shared pacer fell behind (stderr), for reading a ladder's late share."""
    from edge_voice.cogs.tts_context import _ATTRIBUTE

    context = getattr(bot, _ATTRIBUTE, None)
    pacer = getattr(context, "pacer", None)
    if pacer is not None:
        print(
            f"voice_load_host: pacer late ticks {pacer.late_ticks}, resyncs {pacer.resyncs}",
            file=sys.stderr,
        )


async def serve(config_json: str, lag_file: IO[str]) -> None:
    """Run the bot until SIGTERM, with the lag probe beside it."""
    import aiohttp

    import edge_voice
    from edge_voice.bot import TTSBot
    from edge_voice.core.config import parse_config
    from tests.fakes.discord.launch import API_ENV, CA_ENV, EDGE_ENV, GATEWAY_ENV, point_discord
    from tests.fakes.edge_server import edge_client_pointed_at

    print(f"voice_load_host: edge_voice from {list(edge_voice.__path__)}", file=sys.stderr)
    point_discord(os.environ[API_ENV], os.environ[GATEWAY_ENV])
    config = parse_config(json.loads(config_json), "<voice_load>")
    context = ssl.create_default_context(cafile=os.environ[CA_ENV])
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    with edge_client_pointed_at(os.environ[EDGE_ENV]):
        options: dict[str, Any] = {
            "connector": aiohttp.TCPConnector(ssl=context, limit=0),
            "guild_ready_timeout": 0.05,
        }
        bot = TTSBot(config, **options)
        probe = asyncio.create_task(probe_loop_lag(lag_file))
        async with bot:
            running = asyncio.create_task(bot.start("voice-load-token"))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
            report_pacer(bot)
            await bot.close()
            for task in (running, stopping, probe):
                task.cancel()
            await asyncio.gather(running, stopping, probe, return_exceptions=True)
        lag_file.flush()


def main() -> int:
    """Pin to the CPU, then serve."""
    config_json, lag_path, cpu = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.sched_setaffinity(0, {cpu})
    logging.basicConfig(level=os.environ.get("VOICE_LOAD_LOG", "ERROR"))
    with open(lag_path, "w") as lag_file:
        asyncio.run(serve(config_json, lag_file))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""bot.py, the reference host: token and config handling, extensions, command sync, ``check``.

Subprocess tests run ``python bot.py`` from the repository root the way ``make run`` does.
The login test points discord.py's REST base at a local HTTP server that rejects the token,
so the real login path runs without reaching Discord.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import discord
import pytest
from discord.ext import commands
from discord.ext.test import backend as dpy_backend

import bot as host
from edge_voice.cogs.tts_context import TTSContext
from edge_voice.core.config import ConfigError, parse_config
from edge_voice.core.selfcheck import run_self_check
from edge_voice.core.tts.service_from_config import service_from_config
from tests.admin_cog_support import refused_port
from tests.fakes.discord_harness import make_test_bot
from tests.fakes.edge_server import FakeEdgeServer

ROOT = Path(host.__file__).resolve().parent
SECRET = "MTIzNDU2Nzg5.secret-token-never-printed.abcdef"
DEBUG_CONFIG = '[logging]\nlevel = "DEBUG"\n'


def run_bot(
    *args: str, env: dict[str, str], timeout: float = 20.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "bot.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "TTS_CONFIG")}
    return {**env, **extra}


def edge_resolves() -> bool:
    try:
        socket.getaddrinfo("speech.platform.bing.com", 443)
    except OSError:
        return False
    return True


# ---------------------------------------------------------------- token and config


def test_missing_token_exits_2_with_a_clear_message() -> None:
    done = run_bot(env=clean_env())

    assert done.returncode == 2
    assert "set DISCORD_TOKEN in the environment" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("args", [(), ("check",)])
def test_bad_config_exits_2_naming_file_key_expected_and_got(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[breaker]\nwindow_size = "ten"\n')

    done = run_bot(*args, env=clean_env(TTS_CONFIG=str(bad), DISCORD_TOKEN=SECRET))

    assert done.returncode == 2
    assert f"config error: {bad}: breaker.window_size: expected an integer, got 'ten'" in (
        done.stderr
    )
    assert SECRET not in done.stdout + done.stderr


def test_a_named_config_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="no such file"):
        host.load_host_config({"TTS_CONFIG": str(missing)})


def test_unknown_arguments_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert host.main(["serve"]) == 2
    assert "usage:" in capsys.readouterr().err


class RejectingDiscordApi(BaseHTTPRequestHandler):
    """Answers every request the way Discord answers a bad token."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, **dict(self.headers)})
        body = json.dumps({"message": "401: Unauthorized", "code": 0}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def discord_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, str]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), RejectingDiscordApi)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    RejectingDiscordApi.seen = []
    monkeypatch.setattr(discord.http.Route, "BASE", f"http://127.0.0.1:{server.server_port}/api")
    try:
        yield RejectingDiscordApi.seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_token_is_sent_to_discord_but_never_printed_or_logged(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    discord_api: list[dict[str, str]],
) -> None:
    config = tmp_path / "debug.toml"
    config.write_text(DEBUG_CONFIG)
    monkeypatch.setenv("TTS_CONFIG", str(config))
    monkeypatch.setenv("DISCORD_TOKEN", f"  {SECRET}\n")
    # main() configures the root logger; give it a scratch handler list to replace.
    monkeypatch.setattr(logging.root, "handlers", [])
    monkeypatch.setattr(logging.root, "level", logging.WARNING)

    code = host.main([])

    out, err = capsys.readouterr()
    assert code == 2
    assert "Discord rejected the token in DISCORD_TOKEN" in err
    assert "DEBUG" in err  # debug logging was on, and still no token
    assert [request["path"] for request in discord_api] == ["/api/users/@me"]
    assert discord_api[0]["Authorization"] == f"Bot {SECRET}"  # read from the env, stripped
    assert SECRET not in out + err
    assert "secret-token" not in out + err


# ---------------------------------------------------------------- the host bot


async def test_bot_asks_for_the_intents_the_cogs_need() -> None:
    config = parse_config({"discord": {"sync_commands": False}})
    tts_bot = host.TTSBot(config)
    try:
        intents = tts_bot.intents
        assert (intents.guilds, intents.voice_states, intents.guild_messages) == (True,) * 3
        assert (intents.message_content, intents.members) == (True, True)
        assert tts_bot.tts_config is config
        mentions: Any = tts_bot.allowed_mentions
        assert mentions.to_dict() == {"parse": []}
    finally:
        await tts_bot.close()


async def test_a_failing_extension_is_logged_and_the_others_load(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with refused_port() as port:
        config = parse_config({"edge": {"host": "127.0.0.1", "port": port}})

        async def inject(bot: commands.Bot) -> None:
            bot.tts_context = TTSContext(config, service_from_config(config))  # type: ignore[attr-defined]

        async with await make_test_bot(setup=inject) as tb:
            names = [*host.EXTENSIONS, "edge_voice.cogs.does_not_exist"]
            with caplog.at_level(logging.INFO, logger="bot"):
                loaded = await host.load_extensions(tb.bot, names)
            cogs = sorted(tb.bot.cogs)

    assert loaded == ["edge_voice.cogs.voice", "edge_voice.cogs.admin"]
    assert "TTS admin" in cogs
    [failure] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "extension edge_voice.cogs.does_not_exist not loaded" in failure.getMessage()
    assert failure.exc_info is not None


@pytest.mark.parametrize(
    ("guild_ids", "expected"),
    [((111, 222), [("guild", 111), ("guild", 222)]), ((), [("global", None)])],
)
async def test_commands_sync_to_listed_guilds_or_globally(
    guild_ids: tuple[int, ...], expected: list[tuple[str, int | None]]
) -> None:
    with refused_port() as port:
        config = parse_config({"edge": {"host": "127.0.0.1", "port": port}})

        async def inject(bot: commands.Bot) -> None:
            bot.tts_context = TTSContext(config, service_from_config(config))  # type: ignore[attr-defined]

        async with await make_test_bot(["edge_voice.cogs.admin"], setup=inject) as tb:
            synced: list[tuple[str, int | None, list[str]]] = []
            http: Any = tb.bot.http

            # Discord's side of a sync cannot run here: record what would be sent.
            async def guild_upsert(app_id: int, guild_id: int, payload: Any) -> list[Any]:
                synced.append(("guild", guild_id, [c["name"] for c in payload]))
                return [{**c, "id": "1", "application_id": str(app_id)} for c in payload]

            async def global_upsert(app_id: int, payload: Any) -> list[Any]:
                synced.append(("global", None, [c["name"] for c in payload]))
                return [{**c, "id": "1", "application_id": str(app_id)} for c in payload]

            http.bulk_upsert_guild_commands = guild_upsert
            http.bulk_upsert_global_commands = global_upsert
            await host.sync_commands(tb.bot, guild_ids)

    assert [(kind, where) for kind, where, _ in synced] == expected
    assert all("tts" in names for _, _, names in synced)


async def test_a_failed_sync_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    async with await make_test_bot() as tb:
        http: Any = tb.bot.http

        async def refuse(*args: Any, **kwargs: Any) -> None:
            raise discord.Forbidden(dpy_backend.FakeRequest(403, "Missing Access"), "no scope")

        http.bulk_upsert_guild_commands = refuse
        with caplog.at_level(logging.WARNING, logger="bot"):
            await host.sync_commands(tb.bot, [333])

    assert "slash command sync guild 333 failed" in caplog.text


# ---------------------------------------------------------------- check


def test_check_offline_exits_1_and_says_edge_cannot_be_resolved(tmp_path: Path) -> None:
    if edge_resolves():
        pytest.skip("this machine can resolve the Edge host; the offline check does not apply")
    config = tmp_path / "debug.toml"
    config.write_text(DEBUG_CONFIG)

    done = run_bot("check", env=clean_env(TTS_CONFIG=str(config), DISCORD_TOKEN=SECRET))

    assert done.returncode == 1
    assert "Cannot resolve speech.platform.bing.com" in done.stdout
    assert "[FAIL] dns" in done.stdout
    assert "Speech test (service -> Opus packets): FAILED" in done.stdout
    assert "RESULT: FAIL - the bot cannot speak: Cannot resolve speech.platform.bing.com" in (
        done.stdout
    )
    assert SECRET not in done.stdout + done.stderr


async def test_check_against_the_fake_edge_server_speaks(edge_server: FakeEdgeServer) -> None:
    url = urlsplit(edge_server.url)
    config = parse_config({"edge": {"host": "127.0.0.1", "port": url.port}})

    report = await run_self_check(config, "test config")

    assert report.ok
    assert report.exit_code == 0
    assert report.speech.packets > 10
    assert report.speech.error is None
    text = report.render()
    assert (
        f"Speech test (service -> Opus packets): OK: {report.speech.packets} Opus packets" in text
    )
    # The fake server speaks plain ws://, so the TLS check fails while speech works.
    assert "[FAIL] tls" in text
    assert text.endswith(
        "RESULT: OK - speech works, although the diagnostics above found a problem "
        f"on the path to 127.0.0.1:{url.port}."
    )
    assert edge_server.connection_count >= 1

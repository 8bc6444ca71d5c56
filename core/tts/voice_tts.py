"""The seed project's module-level API, kept so its callers keep working.

Every function delegates to one process-wide :class:`TTSService` (built from
``$TTS_CONFIG`` or ``./config.toml`` on first use; swap it with
:func:`configure`). New code should hold a ``TTSService`` itself.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from edge_voice.core.breaker import CircuitOpenError
from edge_voice.core.config import Config, EdgeConfig, load_config
from edge_voice.core.config_location import find_config
from edge_voice.core.diagnostics.checks import check_dns, check_tcp
from edge_voice.core.diagnostics.report import render_text
from edge_voice.core.diagnostics.service_check import TEST_PHRASE, diagnose_service
from edge_voice.core.tts.audio_file import synthesize_to_file
from edge_voice.core.tts.errors import TTSError
from edge_voice.core.tts.service import TTSService
from edge_voice.core.tts.service_from_config import service_from_config

log = logging.getLogger(__name__)

_service: TTSService | None = None
_edge = EdgeConfig()
_last_error: str | None = None


def configure(config: Config | TTSService) -> TTSService:
    """Use ``config`` (or this ready service) for every later call; returns the service."""
    global _service, _edge
    if isinstance(config, TTSService):
        _service = config
    else:
        _service = service_from_config(config)
        _edge = config.edge
    return _service


def get_service() -> TTSService:
    """The process-wide service, created from the default config on first use."""
    return _service if _service is not None else configure(_seed_config())


def _seed_config() -> Config:
    # The seed project read ./config.toml; its callers still run beside theirs. Only the
    # service is built from it, so no data lands in the working directory.
    path = find_config(default_path="config.toml")
    return Config() if path is None else load_config(path)


async def text_to_speech(text: str, output_file: str | Path | None = None) -> str | None:
    """Synthesize ``text`` to ``output_file`` (a temporary .mp3 if None).

    Returns the written path, or None when every retry and backup voice failed
    or the circuit is open; the reason is logged (with a diagnosis on failure).
    """
    global _last_error
    service = get_service()
    if output_file is None:
        with tempfile.NamedTemporaryFile(prefix="tts-", suffix=".mp3", delete=False) as handle:
            output_file = handle.name
    try:
        written = await synthesize_to_file(service, text, output_file)
    except CircuitOpenError as exc:
        _last_error = str(exc)
        log.warning("TTS skipped: %s", exc)
        return None
    except TTSError as exc:
        _last_error = str(exc)
        log.error("TTS failed: %s\n%s", exc, await diagnose_tts_failure())
        return None
    _last_error = None
    return str(written)


def get_tts_service_health() -> dict[str, Any]:
    """The service breaker's snapshot at the top level, each voice's under ``voices``."""
    return get_service().health()


def get_error_state() -> dict[str, Any]:
    """The state callers of the seed API polled: circuit state, failures, last error."""
    health = get_service().health()
    return {
        "circuit_state": health["state"],
        "circuit_open": health["circuit_open"],
        "consecutive_failures": health["consecutive_failures"],
        "last_failure": health["last_failure"],
        "last_success": health["last_success"],
        "retry_after": health["retry_after"],
        "last_error": _last_error,
    }


def reset_tts_circuit_breaker() -> None:
    """Close every breaker of the service and clear the last error."""
    global _last_error
    get_service().breakers.reset("manual reset")
    _last_error = None


reset_circuit_breaker = reset_tts_circuit_breaker


async def check_network_connectivity() -> dict[str, Any]:
    """DNS resolution of the Edge host and a TCP connect to it, each bounded."""
    dns = await check_dns(_edge.host, _edge.port, deadline=5.0)
    tcp = await check_tcp(_edge.host, _edge.port, addresses=dns.addresses, deadline=5.0)
    return {
        "dns_resolution": dns.ok,
        "tcp_connection": dns.ok and tcp.ok,
        "host": _edge.host,
        "port": _edge.port,
        "dns_detail": dns.detail,
        "tcp_detail": tcp.detail if dns.ok else "skipped: DNS failed",
    }


async def test_tts_connectivity() -> dict[str, Any]:
    """Network checks, then a real test synthesis.

    The synthesis goes through the breakers when they admit it (so its outcome
    is recorded like any request); while OPEN it is a direct probe that records
    nothing, so a test cannot close a circuit behind the breaker's back.
    """
    network = await check_network_connectivity()
    service = get_service()
    through_breaker = service.service_breaker.would_admit()
    try:
        if through_breaker:
            audio = await service.synthesize(TEST_PHRASE)
        else:
            audio = await service.synthesize_unguarded(TEST_PHRASE)
    except (TTSError, CircuitOpenError) as exc:
        return {**network, "synthesis": False, "recorded": through_breaker, "error": str(exc)}
    return {**network, "synthesis": True, "recorded": through_breaker, "audio_bytes": len(audio)}


# Not a pytest test, despite the seed API's name.
test_tts_connectivity.__test__ = False  # type: ignore[attr-defined]


async def diagnose_tts_failure() -> str:
    """A plain-text diagnosis: every probe, the verdict, fixes and breaker states."""
    return render_text(await diagnose_service(get_service(), _edge))

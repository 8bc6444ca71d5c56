"""Diagnose a running :class:`~core.tts.service.TTSService`: checks, breakers, verdict.

The one place that joins the checks, the service's breakers and the report, so
``/tts diagnose``, ``python bot.py check`` and the seed facade say the same thing.
"""

from __future__ import annotations

from edge_voice.core.config import EdgeConfig
from edge_voice.core.diagnostics.checks import CheckDeadlines, run_diagnostics
from edge_voice.core.diagnostics.report import Diagnosis, diagnose
from edge_voice.core.tts.edge import edge_tts_version
from edge_voice.core.tts.service import TTSService

TEST_PHRASE = "Test."


async def diagnose_service(
    service: TTSService,
    edge: EdgeConfig | None = None,
    *,
    deadlines: CheckDeadlines | None = None,
    test_phrase: str = TEST_PHRASE,
) -> Diagnosis:
    """Run every check, then a live test synthesis that bypasses the breakers.

    The live synthesis uses the service's primary voice and records nothing in
    the breakers: diagnosing must neither depend on nor disturb their state.
    """
    edge = edge or EdgeConfig()

    async def synthesize() -> bytes:
        return await service.synthesize_unguarded(test_phrase)

    results = await run_diagnostics(synthesize, host=edge.host, port=edge.port, deadlines=deadlines)
    breakers = [breaker.typed_snapshot() for breaker in service.breakers]
    return diagnose(results, breakers, edge_tts_version=edge_tts_version())

"""Why can't the bot speak? Probes along the path to Edge TTS and their diagnosis.

:mod:`core.diagnostics.probes` does the I/O (``run_diagnostics``);
:mod:`core.diagnostics.report` is pure (``diagnose``, ``render_text``). This package
re-exports only the pure part, so importing it pulls in no network library.
"""

from edge_voice.core.diagnostics.report import (
    Diagnosis,
    DiagnosticsResult,
    ProbeName,
    ProbeResult,
    Verdict,
    diagnose,
    render_text,
)

__all__ = [
    "Diagnosis",
    "DiagnosticsResult",
    "ProbeName",
    "ProbeResult",
    "Verdict",
    "diagnose",
    "render_text",
]

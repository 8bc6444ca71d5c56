"""Why can't the bot speak? Checks along the path to Edge TTS and their diagnosis.

:mod:`core.diagnostics.checks` does the I/O (``run_diagnostics``);
:mod:`core.diagnostics.report` is pure (``diagnose``, ``render_text``). This package
re-exports only the pure part, so importing it pulls in no network library.
"""

from edge_voice.core.diagnostics.report import (
    CheckName,
    CheckResult,
    Diagnosis,
    DiagnosticsResult,
    Verdict,
    diagnose,
    render_text,
)

__all__ = [
    "CheckName",
    "CheckResult",
    "Diagnosis",
    "DiagnosticsResult",
    "Verdict",
    "diagnose",
    "render_text",
]

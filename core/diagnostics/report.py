"""Check results and what they mean: one headline, suggested fixes, breaker states.

Pure: no asyncio, no network library. :mod:`core.diagnostics.checks` fills the
result types defined here; :func:`diagnose` turns them (plus breaker snapshots)
into a :class:`Diagnosis` that renders as log text or as plain data for an embed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Self

from edge_voice.core.tts.errors import ErrorKind

if TYPE_CHECKING:
    from edge_voice.core.breaker.snapshot import BreakerSnapshot

EDGE_HOST = "speech.platform.bing.com"
EDGE_PORT = 443
CLOCK_SKEW_LIMIT_SECONDS = 300.0
"""Beyond this the Sec-MS-GEC token, derived from our clock, is likely refused."""


class CheckName(StrEnum):
    """The checks, in the order they run."""

    DNS = "dns"
    TCP = "tcp"
    TLS = "tls"
    WEBSOCKET = "websocket"
    SYNTHESIS = "synthesis"


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """What one check saw. Checks never raise: failures are described here.

    ``error`` is the exception's class name; ``timed_out`` means the check's own
    deadline ran out; ``skipped`` means an earlier failure made it pointless.
    """

    name: ClassVar[CheckName]
    ok: bool
    latency_ms: float | None = None
    detail: str = ""
    skipped: bool = False
    timed_out: bool = False
    error: str | None = None

    @classmethod
    def skipped_after(cls, earlier: CheckResult) -> Self:
        """A result for a check not run because ``earlier`` failed (or was skipped)."""
        why = earlier.detail if earlier.skipped else f"skipped: {earlier.name} check failed"
        return cls(ok=False, skipped=True, detail=why)

    @property
    def failed(self) -> bool:
        """Ran and did not succeed (a skipped check has not failed)."""
        return not self.ok and not self.skipped


@dataclass(frozen=True, kw_only=True)
class DnsResult(CheckResult):
    """Name resolution of the Edge host."""

    name: ClassVar[CheckName] = CheckName.DNS
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class TcpResult(CheckResult):
    """A plain TCP connect; ``refused`` tells an active refusal from silence."""

    name: ClassVar[CheckName] = CheckName.TCP
    refused: bool = False


@dataclass(frozen=True, kw_only=True)
class TlsResult(CheckResult):
    """The TLS handshake; ``issuer`` is read even when verification fails."""

    name: ClassVar[CheckName] = CheckName.TLS
    issuer: str | None = None
    verify_message: str | None = None
    tls_version: str | None = None


@dataclass(frozen=True, kw_only=True)
class HandshakeResult(CheckResult):
    """The WebSocket upgrade; ``skew_seconds`` is the server's Date minus our clock."""

    name: ClassVar[CheckName] = CheckName.WEBSOCKET
    status: int | None = None
    server_date: datetime | None = None
    skew_seconds: float | None = None


@dataclass(frozen=True, kw_only=True)
class SynthesisResult(CheckResult):
    """A short live synthesis through the caller's synthesizer."""

    name: ClassVar[CheckName] = CheckName.SYNTHESIS
    error_kind: ErrorKind | None = None
    status: int | None = None
    voice: str | None = None


@dataclass(frozen=True)
class DiagnosticsResult:
    """All check results of one run, in check order."""

    host: str
    port: int
    dns: DnsResult
    tcp: TcpResult
    tls: TlsResult
    websocket: HandshakeResult
    synthesis: SynthesisResult

    @property
    def checks(self) -> tuple[CheckResult, ...]:
        """The results in the order the checks ran."""
        return (self.dns, self.tcp, self.tls, self.websocket, self.synthesis)


class Verdict(StrEnum):
    """The kind of problem a diagnosis names."""

    HEALTHY = "healthy"
    DNS = "dns"
    NETWORK = "network"
    TLS = "tls"
    REJECTED = "rejected"
    CLOCK_SKEW = "clock_skew"
    RATE_LIMITED = "rate_limited"
    OUTAGE = "outage"
    SYNTHESIS = "synthesis"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class BreakerSummary:
    """The operator-facing part of a ``CircuitBreaker.typed_snapshot()``."""

    name: str
    state: str
    consecutive_failures: int
    failure_rate: float
    last_failure: datetime | None
    last_failure_reason: str | None
    retry_after: float
    trips: int

    @classmethod
    def from_snapshot(cls, snapshot: BreakerSnapshot | Mapping[str, Any]) -> BreakerSummary:
        """The summary of a typed snapshot (or of its dict form, absent keys defaulted)."""
        if isinstance(snapshot, Mapping):
            # Here, not at the top: the breaker package brings asyncio, which this
            # module keeps out of the processes that only render reports.
            from edge_voice.core.breaker.snapshot import BreakerSnapshot

            snapshot = BreakerSnapshot.from_dict(snapshot)
        return cls(
            name=snapshot.name,
            state=snapshot.state.value,
            consecutive_failures=snapshot.consecutive_failures,
            failure_rate=snapshot.failure_rate,
            last_failure=snapshot.last_failure,
            last_failure_reason=snapshot.last_failure_reason,
            retry_after=snapshot.retry_after,
            trips=snapshot.trips,
        )

    def describe(self) -> str:
        """One line: state, counts, last failure and time to the next trial."""
        parts = [
            self.state,
            f"{self.consecutive_failures} consecutive failures",
            f"failure rate {self.failure_rate:.0%}",
            f"{self.trips} trips",
        ]
        if self.last_failure is not None:
            why = f" ({self.last_failure_reason})" if self.last_failure_reason else ""
            parts.append(f"last failure {self.last_failure.isoformat(timespec='seconds')}{why}")
        if self.state == "OPEN":
            parts.append(f"next trial in {math.ceil(self.retry_after)} s")
        return f"{self.name}: " + ", ".join(parts)


@dataclass(frozen=True)
class Diagnosis:
    """One headline, what to do about it, and the evidence."""

    verdict: Verdict
    headline: str
    fixes: tuple[str, ...]
    checks: tuple[CheckResult, ...]
    breakers: tuple[BreakerSummary, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """Plain data (str, float, bool, None, lists, dicts) for an embed or JSON."""
        return {
            "verdict": self.verdict.value,
            "headline": self.headline,
            "fixes": list(self.fixes),
            "checks": [
                {
                    "name": p.name.value,
                    "ok": p.ok,
                    "skipped": p.skipped,
                    "latency_ms": None if p.latency_ms is None else round(p.latency_ms, 1),
                    "detail": p.detail,
                }
                for p in self.checks
            ],
            "breakers": [
                {
                    "name": b.name,
                    "state": b.state,
                    "consecutive_failures": b.consecutive_failures,
                    "failure_rate": b.failure_rate,
                    "trips": b.trips,
                    "last_failure": None if b.last_failure is None else b.last_failure.isoformat(),
                    "last_failure_reason": b.last_failure_reason,
                    "retry_after": b.retry_after,
                    "summary": b.describe(),
                }
                for b in self.breakers
            ],
        }


def diagnose(
    results: DiagnosticsResult,
    breakers: Sequence[BreakerSnapshot | Mapping[str, Any]] = (),
    *,
    edge_tts_version: str | None = None,
    skew_limit_seconds: float = CLOCK_SKEW_LIMIT_SECONDS,
) -> Diagnosis:
    """Name the first problem along the path to Edge and suggest fixes.

    The checks run outward (DNS, TCP, TLS, WebSocket, synthesis), so the first
    failure is the cause and later ones are consequences. ``edge_tts_version``
    is the installed client's version, quoted in the advice for a refused handshake.
    """
    summaries = tuple(BreakerSummary.from_snapshot(b) for b in breakers)
    verdict, headline, fixes = _classify(results, edge_tts_version, skew_limit_seconds)
    fixes += [
        f"Breaker {b.name} is OPEN: the bot falls back to text for {math.ceil(b.retry_after)} s, "
        "then tries again (or reset it now with /tts reset)."
        for b in summaries
        if b.state == "OPEN" and verdict is Verdict.HEALTHY
    ]
    return Diagnosis(verdict, headline, tuple(fixes), results.checks, summaries)


def _classify(
    r: DiagnosticsResult, version: str | None, skew_limit: float
) -> tuple[Verdict, str, list[str]]:
    target = f"{r.host}:{r.port}"
    if r.dns.failed:
        return (
            Verdict.DNS,
            f"Cannot resolve {r.host}: {r.dns.detail}",
            [
                "Check that this machine is online.",
                "Check its DNS settings (e.g. /etc/resolv.conf, or the container's DNS).",
                f"Check whether a filter blocks lookups of {r.host}.",
            ],
        )
    if r.tcp.failed:
        how = "refused" if r.tcp.refused else "timed out" if r.tcp.timed_out else "failed"
        return (
            Verdict.NETWORK,
            f"TCP connection to {target} {how}: a firewall or proxy is in the way",
            [
                f"Allow outgoing HTTPS (TCP {r.port}) to {r.host} in the firewall.",
                "If this network requires a proxy, set HTTPS_PROXY for the bot.",
            ],
        )
    if r.tls.failed:
        return _classify_tls(r)
    ws = r.websocket
    if ws.failed:
        return _classify_handshake(ws, version, skew_limit)
    syn = r.synthesis
    if syn.failed:
        return _classify_synthesis(syn, version)
    if syn.skipped:
        return (
            Verdict.HEALTHY,
            f"The network path to {r.host} works (no test synthesis was run)",
            [],
        )
    return Verdict.HEALTHY, "Healthy: Edge TTS is reachable and speaks", []


def _classify_tls(r: DiagnosticsResult) -> tuple[Verdict, str, list[str]]:
    tls = r.tls
    if tls.timed_out:
        return (
            Verdict.NETWORK,
            f"TLS handshake with {r.host} timed out: a firewall or proxy is stalling it",
            ["Check the firewall or proxy between this machine and the internet."],
        )
    headline = f"TLS handshake with {r.host} failed: {tls.verify_message or tls.detail}"
    fixes = ["Update the CA certificates (pip install -U certifi; the OS ca-certificates)."]
    message = (tls.verify_message or "").lower()
    if "expired" in message or "not yet valid" in message:
        fixes.insert(0, "Check the system clock: certificate validity depends on it.")
    if tls.issuer and "microsoft" not in tls.issuer.lower():
        headline += f" (certificate issued by {tls.issuer})"
        fixes.insert(
            0,
            f"The certificate comes from '{tls.issuer}', not Microsoft: an intercepting proxy "
            f"or antivirus is probably inspecting HTTPS. Exempt {r.host} from inspection.",
        )
    return Verdict.TLS, headline, fixes


def _classify_status(
    status: int, skew: float | None, version: str | None, skew_limit: float
) -> tuple[Verdict, str, list[str]] | None:
    installed = f"edge-tts {version}" if version else "the installed edge-tts"
    if status in (401, 403):
        upgrade = f"Upgrade edge-tts ({installed} is installed): pip install -U edge-tts."
        if skew is not None and abs(skew) > skew_limit:
            side = "behind" if skew > 0 else "ahead of"
            return (
                Verdict.CLOCK_SKEW,
                f"Edge rejected the client (HTTP {status}): this machine's clock is "
                f"{abs(skew):.0f} s {side} the server's",
                ["Fix the system clock (enable NTP time sync).", upgrade],
            )
        compared = "clocks agree" if skew is not None else "server sent no usable Date"
        return (
            Verdict.REJECTED,
            f"Edge rejected the client (HTTP {status}, {compared}): {installed} is probably stale",
            [upgrade, "Check the system clock (NTP) as well."],
        )
    if status == 429:
        return (
            Verdict.RATE_LIMITED,
            "Edge is rate limiting this address (HTTP 429)",
            ["Wait about 5 minutes before retrying.", "Reduce how many requests run at once."],
        )
    if 500 <= status < 600:
        return (
            Verdict.OUTAGE,
            f"Edge TTS service outage (HTTP {status})",
            ["Wait: the breaker retries on its own and speech resumes when Edge recovers."],
        )
    return None


def _classify_handshake(
    ws: HandshakeResult, version: str | None, skew_limit: float
) -> tuple[Verdict, str, list[str]]:
    if ws.status is not None:
        found = _classify_status(ws.status, ws.skew_seconds, version, skew_limit)
        if found is not None:
            return found
    if ws.timed_out:
        return (
            Verdict.NETWORK,
            "WebSocket handshake timed out after TLS succeeded: a proxy may block WebSockets",
            ["Allow WebSocket upgrades to the Edge host in the proxy or firewall."],
        )
    return (
        Verdict.UNKNOWN,
        f"WebSocket handshake failed: {ws.detail}",
        ["Retry later; if it persists, report it with this diagnosis."],
    )


_STATUS_OF_KIND = {
    ErrorKind.REJECTED: 403,
    ErrorKind.RATE_LIMITED: 429,
    ErrorKind.UNAVAILABLE: 503,
}


def _classify_synthesis(
    syn: SynthesisResult, version: str | None
) -> tuple[Verdict, str, list[str]]:
    kind = syn.error_kind
    status = syn.status or (_STATUS_OF_KIND.get(kind) if kind else None)
    if status is not None:
        found = _classify_status(status, None, version, CLOCK_SKEW_LIMIT_SECONDS)
        if found is not None:
            return found
    voice = f" with voice {syn.voice}" if syn.voice else ""
    what = kind.value if kind else (syn.error or "error")
    return (
        Verdict.SYNTHESIS,
        f"The network path works but test synthesis{voice} failed ({what}): "
        "Edge outage or a blocked voice",
        [
            "Try another voice (Microsoft sometimes stops serving a voice).",
            "If every voice fails, Edge is having an outage: wait and retry later.",
        ],
    )


def render_text(diagnosis: Diagnosis) -> str:
    """Multi-line plain text for logs and code blocks."""
    lines = [f"Diagnosis: {diagnosis.headline}", "Checks:"]
    for p in diagnosis.checks:
        mark = "skip" if p.skipped else "ok" if p.ok else "FAIL"
        took = "" if p.latency_ms is None else f"{p.latency_ms:.0f} ms"
        lines.append(f"  [{mark:>4}] {p.name.value:<9} {took:>8}  {p.detail}")
    if diagnosis.fixes:
        lines.append("Suggested fixes:")
        lines += [f"  - {fix}" for fix in diagnosis.fixes]
    if diagnosis.breakers:
        lines.append("Breakers:")
        lines += [f"  - {b.describe()}" for b in diagnosis.breakers]
    return "\n".join(lines)

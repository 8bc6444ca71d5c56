"""After `make mutation`: the score, every survivor, and proof that mutants were really tested.

Run inside .mutation/ (the Makefile does). Exits 1 below the target score, or when
the mutants of a function the tests pin down exactly were not all killed: that
would mean the tests imported the unmutated checkout instead of the mutants.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TARGET = 97.0
PROOF = "edge_voice.core.breaker.window.xǁCountWindowǁadd__mutmut_"
"""Every mutant of CountWindow.add changes a count the window tests assert."""


def main() -> int:
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    subprocess.run([mutmut, "export-cicd-stats"], check=True, capture_output=True)
    stats = json.loads(Path("mutants/mutmut-cicd-stats.json").read_text())
    listing = subprocess.run(
        [mutmut, "results", "--all", "true"], check=True, capture_output=True, text=True
    ).stdout
    status = dict(line.strip().rsplit(": ", 1) for line in listing.splitlines() if ": " in line)
    killed = stats["killed"] + stats["timeout"]
    tested = stats["total"] - stats["skipped"]
    score = 100.0 * killed / tested if tested else 0.0
    survivors = sorted(name for name, verdict in status.items() if verdict != "killed"
                       and verdict != "timeout")  # fmt: skip
    print(f"mutants: {stats}")
    print(f"mutation score: {killed} of {tested} killed = {score:.1f} % (target {TARGET:g} %)")
    for name in survivors:
        print(f"  {status[name]}: {name}")
    proof = {name: verdict for name, verdict in status.items() if name.startswith(PROOF)}
    proven = bool(proof) and all(verdict == "killed" for verdict in proof.values())
    print(f"proof: {len(proof)} mutants of CountWindow.add, all killed: {proven}")
    return 0 if score >= TARGET and proven else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Time of the message cleanup: typical messages and adversarial ones, at 2,000 to 20,000 chars.

Run ``.venv/bin/python bench/text_cleanup.py`` from the repo root. Each input is cleaned
by ``clean_discord_message`` (core/tts/text.py: the cleanup without the rest of the
policy), best of several runs, on one loop-free thread: the figure is what one message
blocks the event loop for.

``--module FILE`` times another version of core/tts/text.py instead, e.g. the one before
the linear cleanup::

    git show 7cfcbc1:core/tts/text.py > /tmp/old_text.py
    .venv/bin/python bench/text_cleanup.py --module /tmp/old_text.py

Targets (exit 1 when missed): a typical 2,000-character message under 1 ms, every
adversarial 2,000-character input under 5 ms, and 10x the input under 30x the time.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

Clean = Callable[[str], str]
TYPICAL_TARGET_MS = 1.0
ADVERSARIAL_TARGET_MS = 5.0
RATIO_TARGET = 30.0
SIZES = (2_000, 4_000, 20_000)

TYPICAL = (
    "Hallo <@1>, kurzer Stand zum Spieleabend am Freitag: Wir treffen uns um **acht Uhr** "
    "im Sprachkanal, die Regeln stehen hier https://example.com/regeln und wer noch ein "
    "Headset braucht, meldet sich bitte bis Donnerstag 👍. "
)


def _nested(opener: str, closer: str, core: str = "b") -> Callable[[int], str]:
    def build(length: int) -> str:
        depth = max(1, (length - len(core)) // (len(opener) + len(closer)))
        return opener * depth + core + closer * depth

    return build


def _repeated(unit: str) -> Callable[[int], str]:
    return lambda length: (unit * (length // len(unit) + 1))[:length]


ADVERSARIAL: dict[str, Callable[[int], str]] = {
    "nested *a ... a* (issue 9)": _nested("*a ", " a*"),
    "nested __a ... a__": _nested("__a ", " a__"),
    "nested *_ ... _*": _nested("*_", "_*"),
    "nested ||spoilers||": _nested("||", "||"),
    "one long run": _repeated("a"),
    "many emoji": _repeated("😂👍🏽🇩🇪❤️ "),
    "many mentions": _repeated("<@1> "),
    "broken mentions": _repeated("<@"),
    "backticks": _repeated("`a"),
    "line markers": _repeated("> - # x\n"),
}


def load(module: Path | None) -> Clean:
    """The cleanup to time: this checkout's, or the one in ``module``."""
    if module is None:
        from edge_voice.core.tts.text import clean_discord_message
    else:
        spec = importlib.util.spec_from_file_location("text_under_test", module)
        if spec is None or spec.loader is None:
            raise SystemExit(f"{module} is not a Python module")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = loaded
        spec.loader.exec_module(loaded)
        clean_discord_message = loaded.clean_discord_message

    def clean(content: str) -> str:
        result: str = clean_discord_message(
            content, max_chars=1_000_000, resolve_user=lambda _id: "Anna"
        )
        return result

    return clean


def best_ms(clean: Clean, content: str, budget_s: float = 2.0) -> float:
    """The fastest of up to 20 runs (fewer when one run takes long)."""
    best = float("inf")
    spent = 0.0
    for _ in range(20):
        started = time.perf_counter()
        clean(content)
        took = time.perf_counter() - started
        best, spent = min(best, took), spent + took
        if spent > budget_s:
            break
    return best * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--module", type=Path, help="a core/tts/text.py to time instead")
    parser.add_argument("--max-size", type=int, default=SIZES[-1], help="skip larger inputs")
    args = parser.parse_args()
    clean = load(args.module)
    sizes = [size for size in SIZES if size <= args.max_size]
    missed = []
    print(f"{'input':30}" + "".join(f"{size:>12,}" for size in sizes) + "   ratio 10x")
    inputs = {"typical message": _repeated(TYPICAL), **ADVERSARIAL}
    for name, build in inputs.items():
        times = [best_ms(clean, build(size)) for size in sizes]
        ratio = times[-1] / times[0] if len(sizes) == 3 else float("nan")
        print(f"{name:30}" + "".join(f"{ms:>9.2f} ms" for ms in times) + f"   {ratio:6.1f}x")
        target = TYPICAL_TARGET_MS if name == "typical message" else ADVERSARIAL_TARGET_MS
        if times[0] > target:
            missed.append(f"{name}: {times[0]:.2f} ms at 2,000 characters (target {target} ms)")
        if ratio > RATIO_TARGET:
            missed.append(f"{name}: {ratio:.0f}x for 10x the text (target {RATIO_TARGET:.0f}x)")
    for line in missed:
        print(f"MISSED {line}")
    if not missed:
        print(
            f"targets: every input <= {ADVERSARIAL_TARGET_MS} ms at 2,000 characters (typical "
            f"<= {TYPICAL_TARGET_MS} ms), <= {RATIO_TARGET:.0f}x for 10x the text: met"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

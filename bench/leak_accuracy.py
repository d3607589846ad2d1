#!/usr/bin/env python3
"""How well `gotop check` tells leaks from healthy busy programs.

Starts every leaking and every healthy workload of the Go test targets at
once, runs one `gotop check --json` on all of them for the default 30 s (as a
CI job would), and prints per target: what it must find, the verdict, the time
to detection (seconds from the start of the watch until a finding of the
expected kind first appeared), and whether the finding names the expected
place (a heap leak can be found from the live heap before, or without, heap
profile samples enough to name its allocation site). The summary counts true
and false positives: a finding that is not expected is a false positive, on a
healthy target or beside a leak. With --rounds, each round starts fresh
targets and the table shows how often each was judged right.

Usage: .venv/bin/python bench/leak_accuracy.py [--for 30s] [--toolchains go,go1.27] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from gotargets import TOOLCHAINS, RunningTarget, start_target  # noqa: E402
from leakcases import EXPECTED, HEALTHY, UNNAMED_HEAP, Case, findings_of, matches, of_kind  # noqa: E402


@dataclass
class Outcome:
    """One target in one round."""

    verdict: str
    detected: dict[tuple[str, str], float | None]  # expected finding -> seconds to detection (None: missed)
    named: dict[tuple[str, str], bool]  # expected finding -> found in its place (not just "live heap")
    unexpected: list[str]  # findings that should not be there, as "kind where"

    @property
    def right(self) -> bool:
        return None not in self.detected.values() and all(self.named.values()) and not self.unexpected


@dataclass
class Tally:
    """One target over all rounds."""

    case: Case
    outcomes: list[Outcome] = field(default_factory=list)


def run_round(cases: list[Case], duration: str) -> dict[Case, Outcome]:
    targets: list[RunningTarget] = []
    try:
        for case in cases:
            targets.append(start_target(case.binary, toolchain=case.toolchain, args=case.args(), env=case.env(),
                                        config_dir=Path(tempfile.mkdtemp(prefix="gops-config-"))))
        result = subprocess.run(
            [sys.executable, "-m", "gotop", "check", *(str(t.pid) for t in targets), "--for", duration, "--json"],
            cwd=ROOT, capture_output=True, text=True, timeout=600)
    finally:
        for target in targets:
            target.kill()
    if not result.stdout.startswith("{"):
        sys.exit(f"gotop check failed (exit {result.returncode}): {result.stderr}")
    report = json.loads(result.stdout)
    return {case: judge(case, findings_of(report, target.pid),
                        next(t for t in report["targets"] if t["pid"] == target.pid))
            for case, target in zip(cases, targets)}


def judge(case: Case, findings: list[dict], target: dict) -> Outcome:
    """Time to detection: until a finding of the expected kind first appeared
    (gotop check's first_found: a live heap finding counts before its site is
    named); per function where a target leaks goroutines in several."""
    detected, named = {}, {}
    for expected in sorted(case.expected):
        in_place = next((f for f in findings if matches(expected, f)), None)
        unnamed = next((f for f in findings if of_kind(expected, f) and f["where"] == UNNAMED_HEAP), None)
        several = sum(kind == expected[0] for kind, _ in case.expected) > 1
        if in_place is not None and several:
            detected[expected] = in_place["found_after"]
        else:
            detected[expected] = target["first_found"][expected[0]] if in_place or unnamed else None
        named[expected] = in_place is not None
    unexpected = [f"{f['kind']} {f['where']}" for f in findings if not any(
        matches(e, f) or (of_kind(e, f) and f["where"] == UNNAMED_HEAP) for e in case.expected)]
    return Outcome("leak" if findings else "ok", detected, named, unexpected)


def print_table(tallies: list[Tally], rounds: int) -> None:
    rows = [("target", "expected", "verdict", "time to detection", "place named", "right", "unexpected findings")]
    for t in tallies:
        kinds = sorted({kind for kind, _ in t.case.expected})
        expected = "; ".join(f"{kind}: " + ", ".join(w for k, w in sorted(t.case.expected) if k == kind)
                             for kind in kinds) or "nothing"
        verdicts = "/".join(sorted({o.verdict for o in t.outcomes}))
        named = f"{sum(all(o.named.values()) for o in t.outcomes)}/{rounds}" if t.case.expected else "-"
        rows.append((str(t.case), expected, verdicts, detection_times(t), named,
                     f"{sum(o.right for o in t.outcomes)}/{rounds}",
                     "; ".join(sorted({u for o in t.outcomes for u in o.unexpected})) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * width for width in widths))


def detection_times(t: Tally) -> str:
    """Per expected finding: seconds to detection (median and max over rounds), or how often missed."""
    parts = []
    for expected in sorted(t.case.expected):
        times = [o.detected[expected] for o in t.outcomes if o.detected[expected] is not None]
        missed = len(t.outcomes) - len(times)
        text = "-" if not times else f"{times[0]:.0f} s" if len(times) == 1 else (
            f"{statistics.median(times):.0f} s (max {max(times):.0f})")
        parts.append(text + (f", missed {missed}x" if missed else ""))
    return "; ".join(parts) or "-"


def print_summary(tallies: list[Tally]) -> None:
    outcomes = [(t.case, o) for t in tallies for o in t.outcomes]
    expected = [(case, d) for case, o in outcomes for d in o.detected.values()]
    true_positives = sum(d is not None for _, d in expected)
    leak_runs = [o for case, o in outcomes if case.expected]
    healthy_runs = [o for case, o in outcomes if not case.expected]
    false_positives = sum(len(o.unexpected) for _, o in outcomes)
    times = [d for _, d in expected if d is not None]
    print(f"\ntrue positives: {true_positives}/{len(expected)} expected findings found "
          f"({sum(None not in o.detected.values() for o in leak_runs)}/{len(leak_runs)} leaking targets fully found)")
    print(f"false negatives: {len(expected) - true_positives}")
    named = [n for _, o in outcomes for n in o.named.values()]
    print(f"places named: {sum(named)}/{len(named)} (the others found as a rising live heap, site not named)")
    print(f"false positives: {false_positives} unexpected findings "
          f"({sum(bool(o.unexpected) for o in healthy_runs)}/{len(healthy_runs)} healthy targets flagged, "
          f"{sum(len(o.unexpected) for o in leak_runs)} extra findings on leaking targets)")
    if times:
        print(f"time to detection: median {statistics.median(times):.0f} s, max {max(times):.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--for", dest="duration", default="30s", help="how long gotop check watches (default 30s)")
    parser.add_argument("--toolchains", default="go", help="Go toolchains to build the targets with, e.g. go,go1.27")
    parser.add_argument("--rounds", type=int, default=1, help="fresh targets and one check per round (default 1)")
    args = parser.parse_args()
    toolchains = [tc for tc in args.toolchains.split(",") if TOOLCHAINS[tc].available()]
    cases = [Case(w, toolchain=tc) for tc in toolchains for w in (*EXPECTED, *HEALTHY)]
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    print(f"gotop {revision}; {len(cases)} targets ({', '.join(toolchains)}), gotop check --for {args.duration}, "
          f"{args.rounds} round(s); host: {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    tallies = [Tally(case) for case in cases]
    for _ in range(args.rounds):
        outcomes = run_round(cases, args.duration)
        for tally in tallies:
            tally.outcomes.append(outcomes[tally.case])
    print_table(tallies, args.rounds)
    print_summary(tallies)


if __name__ == "__main__":
    main()

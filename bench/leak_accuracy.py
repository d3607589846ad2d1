#!/usr/bin/env python3
"""How well `gotop check` tells leaks from healthy busy programs, and how true its rates are.

1. workloads  every leaking and every healthy workload of the Go test targets at its
              default pace, started at once and watched by one `gotop check --json`
              (as a CI job would): per target what it must find, the verdict, the
              time to detection (from the start of the watch until a finding of the
              expected kind first appeared) and whether it names the expected place.
2. rates      leaks of known rate over three decades and more (heap 64 KiB/s to 20
              MiB/s, goroutines one every 10 s to 1000 a second, open files 1 to 100
              a second), on a quiet machine and on one kept busy by a CPU burner
              (sha256sum), all of one round watched by one check: per case how often
              it was found, how often it failed the gate, the time to find it and to
              meet the gate's bar, and the error of its rate.
3. services   Prometheus, etcd and caddy from Debian's packages under steady load (a
              loop of real requests, tests/serviceload.py), each checked --service-checks
              times for --service-for (the three at once): false leak verdicts (exit 1),
              and findings below the gate's bar.
4. started    each healthy workload of a stripped binary (-s -w) started by a `gotop
              check --for 20s -- CMD` of its own, as tests/test_program.py and a CI
              job gating a fresh build do: gotop reads its GC trace and its memory.
              --started-checks checks of each, STARTED_AT_ONCE at a time beside a CPU
              burner: false leak verdicts (exit 1) and findings below the gate's bar.
              (CI saw one finding below the bar on healthy-churn, read from its GC
              trace, under load: 8 of 60 such checks before its fix, 16d9c09.)

Each part prints its table and a summary: found / missed / false, median time to
find, rate error. The machine is whatever else runs on it too ("quiet" only adds
no burner of ours); the header says its load average.

Usage: .venv/bin/python bench/leak_accuracy.py [--only workloads,rates,services,started]
       [--for 30s] [--rounds 1] [--machine quiet,loaded] [--toolchains go,go1.27]
       [--service-checks 20] [--service-for 60s] [--started-checks 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from gotargets import TOOLCHAINS, RunningTarget, start_target, target_binary  # noqa: E402
from leakcases import (  # noqa: E402
    HEALTHY,
    LEAKS_AT_DEFAULT,
    RATE_TOLERANCE,
    UNNAMED_HEAP,
    Case,
    await_first_leak,
    cpu_burner,
    findings_of,
    found_in_place,
    matches,
    of_kind,
)
from serviceload import ServiceLoad  # noqa: E402
from services import running_service, unavailable  # noqa: E402
from waiting import eventually  # noqa: E402

KIB, MIB = 1 << 10, 1 << 20
RATED = [
    *(Case("leak-heap", n=rate) for rate in (64 * KIB, 640 * KIB, 6400 * KIB, 20 * MIB)),
    *(Case("leak-recv", n=ms) for ms in (10_000, 1000, 100, 10, 1)),  # goroutines: 0.1 to 1000 a second
    *(Case("leak-fds", n=ms) for ms in (1000, 100, 10)),  # open files: 1 to 100 a second
]
SERVICES = ("prometheus", "etcd", "caddy")
STARTED_AT_ONCE = 12
STARTED_FOR = "20s"
STRIPPED = ("-ldflags=-s -w",)


def check(pids: list[int], duration: str) -> dict:
    """One `gotop check --json` of the processes, in a process of its own."""
    result = subprocess.run([sys.executable, "-m", "gotop", "check", *map(str, pids), "--for", duration, "--json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    if not result.stdout.startswith("{"):
        sys.exit(f"gotop check failed (exit {result.returncode}): {result.stderr}")
    return json.loads(result.stdout) | {"exit": result.returncode}


@contextmanager
def started(cases: list[Case]) -> Iterator[dict[Case, RunningTarget]]:
    """The cases' targets, the slow goroutine leaks first and from their first leaked goroutine on."""
    targets: dict[Case, RunningTarget] = {}
    try:
        for case in sorted(cases, key=lambda c: not slow_goroutine_leak(c)):
            targets[case] = start_target(case.binary, toolchain=case.toolchain, args=case.args(), env=case.env(),
                                         config_dir=Path(tempfile.mkdtemp(prefix="gops-config-")))
            if slow_goroutine_leak(case):
                asyncio.run(eventually(lambda t=targets[case], c=case: await_first_leak(t, c), timeout=60))
        yield targets
    finally:
        for target in targets.values():
            target.kill()


def slow_goroutine_leak(case: Case) -> bool:
    """A goroutine leak slower than one every 5 s: its first step must come before the watch."""
    return case.workload == "leak-recv" and (case.n or 100) > 5000


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} s" if values else "-"


def print_table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * width for width in widths))


# --- 1. the workloads at their default pace -------------------------------------------------------


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
    return Outcome(target["verdict"], detected, named, unexpected)


def workloads(toolchains: list[str], duration: str, rounds: int) -> None:
    cases = [Case(w, toolchain=tc) for tc in toolchains for w in (*LEAKS_AT_DEFAULT, *HEALTHY)]
    print(f"\n1. workloads: {len(cases)} targets ({', '.join(toolchains)}), gotop check --for {duration}, "
          f"{rounds} round(s)\n")
    tallies = [Tally(case) for case in cases]
    for _ in range(rounds):
        with started(cases) as targets:
            report = check([t.pid for t in targets.values()], duration)
        for tally in tallies:
            pid = targets[tally.case].pid
            tally.outcomes.append(judge(tally.case, findings_of(report, pid),
                                        next(t for t in report["targets"] if t["pid"] == pid)))
    rows = [("target", "expected", "verdict", "time to detection", "place named", "right", "unexpected findings")]
    for t in tallies:
        kinds = sorted({kind for kind, _ in t.case.expected})
        expected = "; ".join(f"{kind}: " + ", ".join(w for k, w in sorted(t.case.expected) if k == kind)
                             for kind in kinds) or "nothing"
        named = f"{sum(all(o.named.values()) for o in t.outcomes)}/{rounds}" if t.case.expected else "-"
        rows.append((str(t.case), expected, "/".join(sorted({o.verdict for o in t.outcomes})), detection_times(t),
                     named, f"{sum(o.right for o in t.outcomes)}/{rounds}",
                     "; ".join(sorted({u for o in t.outcomes for u in o.unexpected})) or "-"))
    print_table(rows)
    outcomes = [(t.case, o) for t in tallies for o in t.outcomes]
    expected = [d for _, o in outcomes for d in o.detected.values()]
    found = [d for d in expected if d is not None]
    healthy = [o for case, o in outcomes if not case.expected]
    print(f"\nfound {len(found)}/{len(expected)} expected findings, missed {len(expected) - len(found)}; "
          f"false: {sum(o.verdict == 'leak' for o in healthy)}/{len(healthy)} healthy targets judged leak, "
          f"{sum(len(o.unexpected) for _, o in outcomes)} unexpected findings in all; "
          f"median time to find {median(found)}")


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


# --- 2. leaks of known rate -------------------------------------------------------------------------


@dataclass
class RateTally:
    """One rated case on one kind of machine, over all rounds."""

    case: Case
    machine: str
    found: list[dict] = field(default_factory=list)  # its finding in each round it was found
    rounds: int = 0
    other_findings: list[str] = field(default_factory=list)  # findings of other kinds or places on its target

    def errors(self) -> list[float]:
        assert self.case.rate_per_min is not None
        return [abs(f["rate_per_min"] / self.case.rate_per_min - 1) for f in self.found]


def rates(duration: str, rounds: int, machines: list[str]) -> None:
    print(f"\n2. rates: {len(RATED)} leaks of known rate, gotop check --for {duration}, {rounds} round(s) "
          f"on a machine {' and '.join(machines)}\n")
    tallies = {(case, machine): RateTally(case, machine) for machine in machines for case in RATED}
    for machine in machines:
        for _ in range(rounds):
            with cpu_burner() if machine == "loaded" else nullcontext(), started(RATED) as targets:
                report = check([t.pid for t in targets.values()], duration)
            for case, target in targets.items():
                tally = tallies[case, machine]
                tally.rounds += 1
                findings = findings_of(report, target.pid)
                in_place = found_in_place(case, findings)
                tally.found.extend(in_place[:1])
                tally.other_findings.extend(f"{f['kind']} {f['where']} ({f['confidence']})"
                                            for f in findings if f not in in_place)
    rows = [("leak", "rate", "machine", "found", "fails gate", "time to find", "to the gate", "rate error",
             "within 25 %")]
    for t in tallies.values():
        errors = t.errors()
        rows.append((str(t.case), rate_text(t.case), t.machine, f"{len(t.found)}/{t.rounds}",
                     f"{sum(f['fails_gate'] for f in t.found)}/{t.rounds}",
                     median([f["found_after"] for f in t.found]),
                     median([f["confirmed_after"] for f in t.found if f["confirmed_after"] is not None]),
                     f"{statistics.median(errors):.0%} (max {max(errors):.0%})" if errors else "-",
                     f"{sum(e <= RATE_TOLERANCE for e in errors)}/{len(errors)}"))
    print_table(rows)
    for machine in machines:
        machine_tallies = [t for t in tallies.values() if t.machine == machine]
        runs = sum(t.rounds for t in machine_tallies)
        found = [f for t in machine_tallies for f in t.found]
        errors = [e for t in machine_tallies for e in t.errors()]
        print(f"\n{machine}: found {len(found)}/{runs}, missed {runs - len(found)}, "
              f"failed the gate {sum(f['fails_gate'] for f in found)}/{runs}; "
              f"median time to find {median([f['found_after'] for f in found])}, to the gate "
              f"{median([f['confirmed_after'] for f in found if f['confirmed_after'] is not None])}; "
              f"rate error median {statistics.median(errors):.0%}, max {max(errors):.0%}, "
              f"{sum(e <= RATE_TOLERANCE for e in errors)}/{len(errors)} within 25 %")
        others = {f"{t.case}: {other}" for t in machine_tallies for other in t.other_findings}
        print(f"  other findings on their targets: {'; '.join(sorted(others)) or 'none'}")


def rate_text(case: Case) -> str:
    rate = (case.rate_per_min or 0.0) / 60
    if case.workload == "leak-heap":
        return f"{rate / MIB:g} MiB/s" if rate >= MIB else f"{rate / KIB:g} KiB/s"
    return f"{rate:g}/s"


# --- 3. healthy real services -------------------------------------------------------------------------


def services(checks: int, duration: str) -> None:
    names = [name for name in SERVICES if unavailable(name) is None]
    print(f"\n3. services: {', '.join(names) or 'none installed'} under steady load, {checks} check(s) of "
          f"{duration} each (the services checked at once)\n")
    if not names:
        return
    reports: dict[str, list[dict]] = {name: [] for name in names}
    with ExitStack() as stack:
        running = {name: stack.enter_context(running_service(name, Path(tempfile.mkdtemp(prefix=f"{name}-"))))
                   for name in names}
        loads = {name: stack.enter_context(ServiceLoad(service)) for name, service in running.items()}
        for _ in range(checks):
            with ThreadPoolExecutor(len(names)) as pool:
                futures = {name: pool.submit(check, [running[name].pid], duration) for name in names}
                for name, future in futures.items():
                    reports[name].append(future.result())
        requests = {name: load.requests for name, load in loads.items()}
        failures = {name: len(load.failures) for name, load in loads.items()}
    rows = [("service", "checks", "exit 1 (false leak)", "exit 0", "other exits", "findings below the bar",
             "requests answered", "failed")]
    for name in names:
        exits = [r["exit"] for r in reports[name]]
        below = [f"{f['kind']} {f['where']}" for r in reports[name] for f in r["findings"] if not f["fails_gate"]]
        rows.append((name, str(len(exits)), str(exits.count(1)), str(exits.count(0)),
                     str(len(exits) - exits.count(0) - exits.count(1)),
                     f"{len(below)}" + (f" ({'; '.join(sorted(set(below)))})" if below else ""),
                     f"{requests[name]:,}", str(failures[name])))
    print_table(rows)
    total = sum(len(r) for r in reports.values())
    false = sum(r["exit"] == 1 for rs in reports.values() for r in rs)
    print(f"\nfalse leak verdicts: {false}/{total} checks")


# --- 4. healthy programs started by gotop check -----------------------------------------------------


def check_started(command: list[str]) -> dict:
    """One `gotop check --json -- COMMAND`, which starts the program and stops it at the end."""
    result = subprocess.run([sys.executable, "-m", "gotop", "check", "--for", STARTED_FOR, "--json", "--", *command],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    if not result.stdout.startswith("{"):
        sys.exit(f"gotop check -- {' '.join(command)} failed (exit {result.returncode}): {result.stderr}")
    return json.loads(result.stdout) | {"exit": result.returncode}


def started_checks(checks: int) -> None:
    binary = str(target_binary("plain", flags=STRIPPED))
    print(f"\n4. started: {len(HEALTHY)} healthy workloads of a stripped binary, each started by its own gotop "
          f"check --for {STARTED_FOR} -- CMD, {checks} check(s) of each, {STARTED_AT_ONCE} at a time beside a "
          f"CPU burner\n")
    commands = [(workload, [binary, "-workload", workload]) for workload in HEALTHY for _ in range(checks)]
    with cpu_burner(), ThreadPoolExecutor(STARTED_AT_ONCE) as pool:
        reports = list(zip((w for w, _ in commands), pool.map(check_started, (c for _, c in commands))))
    rows = [("workload", "checks", "exit 1 (false leak)", "exit 0", "exit 3 (partial watch)", "other exits",
             "findings below the bar")]
    for workload in HEALTHY:
        mine = [r for w, r in reports if w == workload]
        exits = [r["exit"] for r in mine]
        below = [f"{f['kind']} {f['where']} ({f['confidence']})" for r in mine for f in r["findings"]
                 if not f["fails_gate"]]
        rows.append((workload, str(len(mine)), str(exits.count(1)), str(exits.count(0)), str(exits.count(3)),
                     str(len(exits) - exits.count(0) - exits.count(1) - exits.count(3)),
                     f"{len(below)}" + (f" ({'; '.join(sorted(set(below)))})" if below else "")))
    print_table(rows)
    false = sum(r["exit"] == 1 for _, r in reports)
    below = sum(not f["fails_gate"] for _, r in reports for f in r["findings"])
    print(f"\nfalse leak verdicts: {false}/{len(reports)} checks; findings below the bar: {below}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="workloads,rates,services,started", help="parts to run (default all four)")
    parser.add_argument("--for", dest="duration", default="30s", help="how long each leak check watches (30s)")
    parser.add_argument("--rounds", type=int, default=1, help="fresh targets and one check per round (default 1)")
    parser.add_argument("--machine", default="quiet,loaded", help="rates on a quiet machine, a loaded one or both")
    parser.add_argument("--toolchains", default="go", help="Go toolchains to build the workloads with, e.g. go,go1.27")
    parser.add_argument("--service-checks", type=int, default=20, help="checks of each service (default 20)")
    parser.add_argument("--service-for", default="60s", help="how long each service check watches (60s)")
    parser.add_argument("--started-checks", type=int, default=12, help="started checks of each healthy workload (12)")
    args = parser.parse_args()
    parts = args.only.split(",")
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    print(f"gotop {revision}; host: {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if "workloads" in parts:
        workloads([tc for tc in args.toolchains.split(",") if TOOLCHAINS[tc].available()], args.duration, args.rounds)
    if "rates" in parts:
        rates(args.duration, args.rounds, args.machine.split(","))
    if "services" in parts:
        services(args.service_checks, args.service_for)
    if "started" in parts:
        started_checks(args.started_checks)


if __name__ == "__main__":
    main()

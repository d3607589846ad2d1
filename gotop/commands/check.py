"""`gotop check TARGET... [--for DURATION] [--json]`: a leak gate for CI and dev builds.

`gotop check [...] -- CMD [ARGS...]` starts the program itself (engine/program.py,
its GC trace on), watches its Go program the same way, and stops it at the end:
the gate for a dev build in one line. The program ending by itself before the
end is an error (exit 2) that says its exit status and its last lines of stderr.

Watches the targets headless for the whole duration (every run the same
length, whatever it finds), polling faster than the TUI does so that 30 s is
enough: grouped goroutines and descriptors every 2 s, the runtime's
goroutineleak profile every 10 s where offered while a goroutine group grows (each
request runs a GC cycle in the target). A heap profile is taken at the
start (or as soon as the target opens an endpoint that serves one: a program
gotop started opens its listeners after it starts), and then every 5 s while
the live heap after GC rises: their difference
names the sites that keep it (a heap profile costs the target 1.3 MB of
allocation, its gzip writer: taken every 5 s, they drove an idle service's GC;
bench/footprint.py). The leak detectors (gotop.engine.leaks) run after every
poll, so each finding records when it was first seen, and when it first met the
gate's bar; the verdict is theirs at the end. Every finding is shown with its
confidence; only those that meet the bar (evidence a healthy, busy service does
not produce: see gotop.engine.leaks) make the verdict `leak`.

A gate that cannot look must not pass: each detector (goroutine groups, the
heap after GC, descriptors) needs readings enough to judge a trend, and the
verdict says which had them:

  leak     a finding meets the gate's bar (even if a detector could
           not watch)                                                  exit 1
  blind    neither goroutine groups nor the heap could be watched:
           nothing but /proc (no net/http/pprof, no GC cycle seen)     exit 2
  partial  some detector could not watch                               exit 3, 0 with --allow-partial
  ok       every detector watched the whole time, and nothing it found
           meets the bar                                               exit 0

Exit status 2 also when a target could not be checked at all (cannot be
named or reached, exits or stops answering). The watch ends early when every
target has exited.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from argparse import Namespace
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from gotop.commands.common import FailureLines, close_targets, open_targets
from gotop.engine.history import TargetHistory, TargetState, Update
from gotop.engine.leaks import (
    Coverage,
    Detector,
    Finding,
    LeakKind,
    Ref,
    coverage,
    find_leaks,
    gc_cycles,
    live_heap_rise,
    window_start,
)
from gotop.engine.poller import Poller, ProfileDemand, Tiers, keep_polling
from gotop.engine.program import Exit, Program, ProgramExited, take_late_endpoints
from gotop.engine.target import Target
from gotop.errors import GotopError
from gotop.sources.procfs import ProcessGone
from gotop.textsafe import plain
from gotop.units import fmt_bytes, fmt_count

CHECK_TIERS = Tiers(interval=1.0, slow_every=2.0)
LEAK_PROOF_EVERY = 10.0  # seconds between goroutineleak profiles while a goroutine group grows
HEAP_EVERY = 5.0  # seconds between heap profiles while the live heap rises: their difference names the sites
HEAP_WANTED = "gotop check: a first heap profile, or the live heap rises"  # its wants (a ProfileDemand owner)
PROOF_WANTED = "gotop check: a goroutine group grows"
FIRST_ANSWER_TIMEOUT = 15.0  # a safety net: each poll has its own transport timeouts
# History kept beyond the duration, so that the first readings are judged too, and the GC cycle the
# first one reports if it ended within a minute before the watch (a fast leak doubles its heap goal
# at each cycle: watched late, it has few left in the watch)
WINDOW_MARGIN = 60.0
EXIT_WAIT = 5.0  # seconds a started command may take to end once its Go program has


class CheckError(GotopError):
    """A target could not be checked."""


class Outcome(str, Enum):
    """The verdict on one target, or on all of them (the worst one), worst first."""

    LEAK = "leak"
    BLIND = "blind"
    PARTIAL = "partial"
    OK = "ok"


EXIT_STATUS = {Outcome.LEAK: 1, Outcome.BLIND: 2, Outcome.PARTIAL: 3, Outcome.OK: 0}
RUNTIME_DETECTORS = (Detector.GOROUTINES, Detector.HEAP)  # what /proc cannot tell
DETECTOR_TITLES = {Detector.GOROUTINES: "goroutine groups", Detector.HEAP: "heap after GC",
                   Detector.DESCRIPTORS: "descriptors"}


@dataclass
class Watch:
    """One target under check: its history and what the detectors found when."""

    target: Target
    history: TargetHistory
    started: float  # unix time the watch began
    heap_every: float = HEAP_EVERY
    heap_demand: ProfileDemand = field(default_factory=ProfileDemand)  # its poller's
    leak_demand: ProfileDemand = field(default_factory=ProfileDemand)  # its poller's goroutineleak profiles
    found_after: dict[tuple[LeakKind, Ref], float] = field(default_factory=dict)  # finding key -> seconds
    confirmed_after: dict[tuple[LeakKind, Ref], float] = field(default_factory=dict)  # ... until it met the bar
    fetched: Counter = field(default_factory=Counter)  # what the polls brought that the history keeps no count of
    last_problem: str | None = None  # the latest error a poll reported
    failure_lines: FailureLines = field(default_factory=lambda: FailureLines("check"))

    def __post_init__(self) -> None:
        self._want_heap_profiles(self.started)

    def on_update(self, update: Update) -> None:
        self.history.apply(update)
        self._show_failure()
        for name in ("sample", "leaks", "heap"):
            self.fetched[name] += getattr(update, name) is not None
        self.last_problem = update.error or self.last_problem
        findings = find_leaks(self.history, update.time)
        for finding in findings:
            self.found_after.setdefault(finding.key, update.time - self.started)
            if finding.fails_gate:
                self.confirmed_after.setdefault(finding.key, update.time - self.started)
        if any(f.kind is LeakKind.GOROUTINES for f in findings):  # the runtime's proof, where it offers one
            self.leak_demand.want(PROOF_WANTED, LEAK_PROOF_EVERY)
        else:
            self.leak_demand.drop(PROOF_WANTED)
        self._want_heap_profiles(update.time)

    def _want_heap_profiles(self, now: float) -> None:
        """The first heap profile, and more while the live heap rises (see the module doc)."""
        first = not self.fetched["heap"] and self.target.has_heap_profiles
        if first or heap_rising(self.history, now):
            self.heap_demand.want(HEAP_WANTED, self.heap_every)
        else:
            self.heap_demand.drop(HEAP_WANTED)

    def crashed(self, text: str) -> None:
        """Handling a poll failed (the poller runs again: see keep_polling)."""
        self.history.apply(Update(time.time(), TargetState.FAILED, error=text))
        self._show_failure()

    def _show_failure(self) -> None:
        h, label = self.history, self.target.label
        self.failure_lines.show(label, f"{label}: {h.error}" if h.state is TargetState.FAILED else None)

    def problem(self) -> str | None:
        """Why this target was not checked for the whole duration, if it was not."""
        if self.history.state is TargetState.EXITED:
            return f"exited after {(self.history.last_update or self.started) - self.started:.0f} s"
        if self.history.state is TargetState.UNREACHABLE:
            return f"stopped answering: {self.history.error}"
        if self.history.state is TargetState.FAILED:
            return f"could not be polled: {self.history.error}"
        return None

    def first_found(self) -> dict[str, float]:
        """Per kind of leak, seconds until the first finding of that kind, even
        one replaced since (a live heap finding, once its site was named)."""
        first: dict[str, float] = {}
        for (kind, _), seconds in self.found_after.items():
            first[kind.value] = min(seconds, first.get(kind.value, seconds))
        return first

    def why_not(self, c: Coverage) -> str:
        """Why a detector could not watch: what was (not) read, and what it takes."""
        label, seconds = self.target.label, (self.history.last_update or self.started) - self.started
        failed = f" (last problem: {self.last_problem})" if self.last_problem else ""
        if c.readings:
            return f"{c.readings} {c.unit} in {seconds:.0f} s, {c.needed} needed: watch longer (--for)"
        if c.detector is Detector.GOROUTINES:
            if not self.target.has_goroutine_groups:
                return f"no goroutine groups: {label} serves no net/http/pprof and its memory cannot be read"
            return f"no goroutine groups read{failed}"
        if c.detector is Detector.HEAP:
            if self.target.gctrace is not None:
                return (f"no GC cycles: none in its GC trace in {seconds:.0f} s (GOGC=off, or too little "
                        "allocation); the live heap is judged once per GC cycle")
            if not len(self.history.series["num_gc"]):
                return f"no GC cycles: no memstats read from {label}{failed}"
            return (f"no GC cycles: no GC ran in {seconds:.0f} s (GOGC=off, or too little allocation); "
                    "the live heap is judged once per GC cycle")
        if self.target.pid is None:
            return f"no descriptor counts: {label} is not a process on this host"
        return f"no descriptor counts: /proc/{self.target.pid}/fd could not be read{failed}"


@dataclass(frozen=True)
class Verdict:
    watch: Watch
    findings: tuple[Finding, ...]
    coverage: tuple[Coverage, ...]

    @property
    def outcome(self) -> Outcome:
        if any(f.fails_gate for f in self.findings):
            return Outcome.LEAK
        unwatched = {c.detector for c in self.coverage if not c.watched}
        if unwatched >= set(RUNTIME_DETECTORS):
            return Outcome.BLIND
        return Outcome.PARTIAL if unwatched else Outcome.OK

    def checked(self) -> dict[str, int]:
        """What the check went on: the readings the detectors judged (their coverage),
        what else the polls brought, and the GC cycles the target ran meanwhile."""
        readings = {c.detector: c.readings for c in self.coverage}
        fetched, num_gc = self.watch.fetched, self.watch.history.series["num_gc"].values
        return {
            "samples": fetched["sample"],
            "goroutine_profiles": readings[Detector.GOROUTINES],
            "goroutineleak_profiles": fetched["leaks"],
            "gc_cycles": int(num_gc[-1] - num_gc[0]) if num_gc else 0,
            "heap_profiles": fetched["heap"],
            "descriptor_counts": readings[Detector.DESCRIPTORS],
        }


def overall(verdicts: list[Verdict]) -> Outcome:
    """The worst verdict of all targets."""
    return min((v.outcome for v in verdicts), key=list(Outcome).index)


def exit_status(verdicts: list[Verdict], allow_partial: bool = False) -> int:
    outcome = overall(verdicts)
    if outcome is not Outcome.LEAK and any(v.watch.problem() for v in verdicts):
        return 2  # a target was not watched to the end
    if outcome is Outcome.PARTIAL and allow_partial:
        return 0
    return EXIT_STATUS[outcome]


def run(args: Namespace) -> int:
    if args.program is not None:
        if args.targets:
            raise CheckError("check targets, or start a program after --, not both")
        return run_program(args)
    if not args.targets:
        raise CheckError("nothing to check: give TARGET... or -- CMD [ARGS...]")
    duration = args.duration
    targets = open_targets(args.targets)
    print(f"gotop check: watching {len(targets)} target{'s' if len(targets) != 1 else ''} "
          f"for {duration:g} s", file=sys.stderr)
    verdicts = asyncio.run(check(targets, duration))
    if args.json:
        print(json.dumps(to_json(list(zip(args.targets, verdicts)), duration), indent=2))
    else:
        print(format_verdicts(verdicts))
    return exit_status(verdicts, args.allow_partial)


def run_program(args: Namespace) -> int:
    """`gotop check -- CMD`: start the program, watch its Go program, stop it, judge."""
    program = Program(args.program, Path(args.log) if args.log else None)
    print(f"gotop check: starting {program.command}", file=sys.stderr, flush=True)
    program.start()
    try:
        try:
            process = program.find_go_process()
            target = Target.for_process(process, gctrace=program.output)
            print(f"gotop check: watching {target.label} for {args.duration:g} s", file=sys.stderr, flush=True)
            verdicts = asyncio.run(check_started(target, args.duration))
            # Its Go program gone, the command ends too (`go run` reports the exit status of its child).
            early = program.wait(EXIT_WAIT) if verdicts[0].watch.history.state is TargetState.EXITED else None
        except (ProgramExited, ProcessGone, CheckError) as e:  # gone while gotop opened it: its exit says why
            # A process seen gone may still be ending (its memory released, not yet a zombie to reap).
            early = program.wait(EXIT_WAIT) if isinstance(e, ProcessGone) else program.exit()
            if early is None:
                raise
            return _early_exit(args, program, str(e) if isinstance(e, ProgramExited)
                               else f"`{program.command}` {early.describe()}, before gotop could watch it")
    finally:
        program.stop()
    report = ProgramReport(program, early)
    if args.json:
        document = to_json([(program.command, verdicts[0])], args.duration) | {"program": report.to_json()}
        print(json.dumps(document | ({"verdict": "error"} if early else {}), indent=2))
    else:
        print(format_verdicts(verdicts, report))
    if early is not None:
        return 2  # the program ended by itself: whatever was found, the check is cut short
    return exit_status(verdicts, args.allow_partial)


def _early_exit(args: Namespace, program: Program, message: str) -> int:
    report = ProgramReport(program, program.exit())
    if args.json:
        print(json.dumps({"verdict": "error", "error": message, "duration": args.duration, "targets": [],
                          "findings": [], "program": report.to_json()}, indent=2))
    print(f"gotop check: {plain(message)}", file=sys.stderr)
    print("\n".join(report.stderr_lines()), file=sys.stderr)
    return 2


@dataclass(frozen=True)
class ProgramReport:
    """What `gotop check -- CMD` says of the program it started."""

    program: Program
    early: Exit | None  # how it ended by itself, before the check did

    def stderr_lines(self) -> list[str]:
        tail = self.program.last_stderr()
        head = f"its last lines of stderr (all of its output: {self.program.log_path}):" if tail else (
            f"it wrote nothing to stderr (all of its output: {self.program.log_path})")
        return [head, *(f"  {plain(line)}" for line in tail)]

    def lines(self) -> list[str]:
        if self.early is None:
            return [f"program: {plain(self.program.command)}: stopped by gotop at the end; "
                    f"its output: {self.program.log_path}"]
        return [f"program: {plain(self.program.command)} {self.early.describe()}, before the end of the check",
                *self.stderr_lines()]

    def to_json(self) -> dict:
        exit = self.early
        return {"command": self.program.argv, "pid": self.program.pid, "log": str(self.program.log_path),
                "exited": exit is not None, "exit_status": exit.status if exit else None,
                "exited_after": round(exit.after, 1) if exit else None,
                "stderr_tail": self.program.last_stderr()}


async def check(targets: list[Target], duration: float, *, tiers: Tiers = CHECK_TIERS,
                heap_every: float = HEAP_EVERY) -> list[Verdict]:
    """Watch the targets for `duration` seconds, then judge each one."""
    started = time.time()
    watches = [Watch(t, TargetHistory(tiers.interval, duration + WINDOW_MARGIN), started, heap_every)
               for t in targets]
    pollers = [Poller(w.target, w.on_update, tiers, w.heap_demand, leak_demand=w.leak_demand) for w in watches]
    tasks = [asyncio.create_task(keep_polling(p, w.crashed)) for p, w in zip(pollers, watches)]
    try:
        await _first_answers(watches)
        # The whole duration, or until every target exited (its poller then ends).
        await asyncio.wait(tasks, timeout=max(0.0, started + duration - time.time()))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await close_targets(targets)
    return [_judge(w) for w in watches]


async def check_started(target: Target, duration: float) -> list[Verdict]:
    """`check` of the Go program gotop started, taking the endpoints it opens meanwhile."""
    looking = asyncio.create_task(take_late_endpoints(target))
    try:
        return await check([target], duration)
    finally:
        looking.cancel()
        await asyncio.gather(looking, return_exceptions=True)


def heap_rising(history: TargetHistory, now: float) -> bool:
    """Whether the live heap after GC rises, as the heap detector sees it before it asks
    for a witness (the heap goal, or a site that keeps what it allocates)."""
    return live_heap_rise(gc_cycles(history, window_start(history, now)))[0] is not None


def _judge(watch: Watch) -> Verdict:
    end = watch.history.last_update or watch.started
    return Verdict(watch, find_leaks(watch.history, end), coverage(watch.history, end))


async def _first_answers(watches: list[Watch]) -> None:
    """Fail early, as for a bad name, when a target does not answer its first poll."""
    deadline = time.monotonic() + FIRST_ANSWER_TIMEOUT
    while any(w.history.last_update is None for w in watches):
        if time.monotonic() > deadline:
            silent = [w.target.label for w in watches if w.history.last_update is None]
            raise CheckError(f"no answer in {FIRST_ANSWER_TIMEOUT:g} s from {', '.join(silent)}")
        await asyncio.sleep(0.05)
    for w in watches:
        if w.history.last_sample is None:  # the first poll failed
            raise CheckError(f"{w.target.label}: {w.history.error or w.history.state.value}")


# --- output -----------------------------------------------------------------------------------


def format_verdicts(verdicts: list[Verdict], program: ProgramReport | None = None) -> str:
    lines = []
    for v in verdicts:
        problem = v.watch.problem()
        lines.append(f"{plain(v.watch.target.label)}: {v.outcome.value}"
                     + (f" (not fully checked: {plain(problem)})" if problem else ""))
        for f in v.findings:
            lines.extend(_format_finding(f, v.watch.found_after.get(f.key), v.watch.confirmed_after.get(f.key)))
        for c in v.coverage:
            title = DETECTOR_TITLES[c.detector]
            lines.append(f"  watched: {title} ({c.readings} {c.unit})" if c.watched
                         else f"  not watched: {title}: {plain(v.watch.why_not(c))}")
        lines.append("  checked: " + ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in v.checked().items()))
    lines.extend(program.lines() if program else ())
    ended = program.early if program else None
    lines.append(f"verdict: {_summary(verdicts) if ended is None else f'error (the program {ended.describe()})'}")
    return "\n".join(lines)


def _summary(verdicts: list[Verdict]) -> str:
    outcome = overall(verdicts)
    of = sum(v.outcome is outcome for v in verdicts)
    targets = f"{of} of {len(verdicts)} target{'s' if len(verdicts) != 1 else ''}"
    below = sum(not f.fails_gate for v in verdicts for f in v.findings)
    below_bar = f"; {below} finding{'s' if below != 1 else ''} below the gate's bar" if below else ""
    if outcome is Outcome.LEAK:
        count = sum(f.fails_gate for v in verdicts for f in v.findings)
        return f"leak ({count} finding{'s' if count != 1 else ''} in {targets}{below_bar})"
    if outcome is Outcome.BLIND:
        return f"blind ({targets}: neither goroutine groups nor the heap could be watched{below_bar})"
    if outcome is Outcome.PARTIAL:
        return f"partial ({targets} not fully watched; --allow-partial accepts it{below_bar})"
    return f"ok ({below_bar.removeprefix('; ')})" if below else "ok"


def _format_finding(f: Finding, found_after: float | None, confirmed_after: float | None) -> list[str]:
    rate = f"{'+' if f.rate_per_min >= 0 else '-'}" + (
        f"{fmt_bytes(abs(f.rate_per_min))}" if f.unit == "bytes" else f"{fmt_count(abs(f.rate_per_min))} {f.unit}")
    since = time.strftime("%H:%M:%S", time.localtime(f.since))
    found = f", found after {found_after:.0f} s" if found_after is not None else ""
    met = f" (met its bar after {confirmed_after:.0f} s)" if confirmed_after is not None else ""
    gate = f"fails the gate{met}" if f.fails_gate else f"below the gate's bar: {f.short_of}"
    return [
        f"  {f.kind.value:<10}  {plain(f.where)}",
        f"  {'':<10}  {rate}/min since {since}, confidence {f.confidence.value}{found}",
        f"  {'':<10}  {gate}",
        *(f"  {'':<10}  {e.basis.value}: {plain(e.text)}" for e in f.evidence),
    ]


def to_json(named: list[tuple[str, Verdict]], duration: float) -> dict:
    """The verdicts, each with its target as typed."""
    return {
        "verdict": overall([v for _, v in named]).value,
        "duration": duration,
        "targets": [{
            "target": typed, "pid": v.watch.target.pid, "label": v.watch.target.label,
            "verdict": v.outcome.value, "problem": v.watch.problem(), "checked": v.checked(),
            "watched": {c.detector.value: {
                "watched": c.watched, "readings": c.readings, "needed": c.needed, "unit": c.unit,
                "why_not": None if c.watched else v.watch.why_not(c),
            } for c in v.coverage},
            "first_found": {kind: round(s, 1) for kind, s in v.watch.first_found().items()},
        } for typed, v in named],
        "findings": [
            {"target": typed, **f.to_json(), "found_after": _rounded(v.watch.found_after.get(f.key)),
             "confirmed_after": _rounded(v.watch.confirmed_after.get(f.key))}
            for typed, v in named for f in v.findings
        ],
    }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)

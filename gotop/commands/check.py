"""`gotop check TARGET... [--for DURATION] [--json]`: a leak gate for CI and dev builds.

Watches the targets headless for the whole duration (every run the same
length, whatever it finds), polling faster than the TUI does so that 30 s is
enough: grouped goroutines and descriptors every 2 s, the runtime's
goroutineleak profile every 10 s where offered, a heap profile every 5 s. The
leak detectors (gotop.engine.leaks) run after every poll, so each finding
records when it was first seen; the verdict is theirs at the end.

Exit status: 1 if a target leaks, else 2 if a target could not be checked
(cannot be named or reached, exits or stops answering), else 0.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from argparse import Namespace
from collections import Counter
from dataclasses import dataclass, field

from gotop.commands.common import FailureLines
from gotop.discovery.processes import Scanner
from gotop.engine.history import TargetHistory, TargetState, Update
from gotop.engine.leaks import Finding, LeakKind, Ref, find_leaks
from gotop.engine.poller import Poller, Tiers, keep_polling
from gotop.engine.target import Target
from gotop.errors import GotopError
from gotop.textsafe import plain
from gotop.units import fmt_bytes, fmt_count

CHECK_TIERS = Tiers(interval=1.0, slow_every=2.0, leak_every=10.0)
HEAP_EVERY = 5.0  # seconds between heap profiles: their difference names the growing sites
FIRST_ANSWER_TIMEOUT = 15.0  # a safety net: each poll has its own transport timeouts
WINDOW_MARGIN = 10.0  # history kept beyond the duration, so the first readings are judged too


class CheckError(GotopError):
    """A target could not be checked."""


@dataclass
class Watch:
    """One target under check: its history and what the detectors found when."""

    target: Target
    history: TargetHistory
    started: float  # unix time the watch began
    found_after: dict[tuple[LeakKind, Ref], float] = field(default_factory=dict)  # finding key -> seconds
    fetched: Counter = field(default_factory=Counter)  # what the polls brought, by name
    exited_after: float | None = None
    failure_lines: FailureLines = field(default_factory=lambda: FailureLines("check"))

    def on_update(self, update: Update) -> None:
        self.history.apply(update)
        self._show_failure()
        for name in ("sample", "goroutines", "leaks", "heap", "fds"):
            self.fetched[name] += getattr(update, name) is not None
        if update.state is TargetState.EXITED:
            self.exited_after = update.time - self.started
        for finding in find_leaks(self.history, update.time):
            self.found_after.setdefault(finding.key, update.time - self.started)

    def crashed(self, text: str) -> None:
        """Handling a poll failed (the poller runs again: see keep_polling)."""
        self.history.apply(Update(time.time(), TargetState.FAILED, error=text))
        self._show_failure()

    def _show_failure(self) -> None:
        h, label = self.history, self.target.label
        self.failure_lines.show(label, f"{label}: {h.error}" if h.state is TargetState.FAILED else None)

    def problem(self) -> str | None:
        """Why this target was not checked for the whole duration, if it was not."""
        if self.exited_after is not None:
            return f"exited after {self.exited_after:.0f} s"
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

    def checked(self) -> dict[str, int]:
        """How much each detector had to go on."""
        num_gc = self.history.series["num_gc"]
        return {
            "samples": self.fetched["sample"],
            "goroutine_profiles": self.fetched["goroutines"],
            "goroutineleak_profiles": self.fetched["leaks"],
            "gc_cycles": int(num_gc.last - num_gc.values[0]) if len(num_gc) else 0,
            "heap_profiles": self.fetched["heap"],
            "descriptor_counts": self.fetched["fds"],
        }


@dataclass(frozen=True)
class Verdict:
    watch: Watch
    findings: tuple[Finding, ...]

    @property
    def leaks(self) -> bool:
        return bool(self.findings)


def run(args: Namespace) -> int:
    duration = args.duration
    scanner = Scanner()
    targets = [Target.open(text, scanner=scanner) for text in args.targets]
    print(f"gotop check: watching {len(targets)} target{'s' if len(targets) != 1 else ''} "
          f"for {duration:g} s", file=sys.stderr)
    verdicts = asyncio.run(check(targets, duration))
    leaking = any(v.leaks for v in verdicts)
    print(json.dumps(to_json(verdicts, duration), indent=2) if args.json else format_verdicts(verdicts))
    if leaking:
        return 1
    return 2 if any(v.watch.problem() for v in verdicts) else 0


async def check(targets: list[Target], duration: float, *, tiers: Tiers = CHECK_TIERS,
                heap_every: float = HEAP_EVERY) -> list[Verdict]:
    """Watch the targets for `duration` seconds, then judge each one."""
    started = time.time()
    watches = [Watch(t, TargetHistory(tiers.interval, duration + WINDOW_MARGIN), started) for t in targets]
    pollers = [Poller(w.target, w.on_update, tiers) for w in watches]
    for poller in pollers:
        poller.heap_demand.want(check, heap_every)
    tasks = [asyncio.create_task(keep_polling(p, w.crashed)) for p, w in zip(pollers, watches)]
    try:
        await _first_answers(watches)
        await asyncio.sleep(max(0.0, started + duration - time.time()))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(t.aclose() for t in targets), return_exceptions=True)
    return [Verdict(w, find_leaks(w.history, w.history.last_update or started)) for w in watches]


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


def format_verdicts(verdicts: list[Verdict]) -> str:
    lines = []
    for v in verdicts:
        problem = v.watch.problem()
        status = "LEAK" if v.leaks else "not fully checked" if problem else "ok"
        lines.append(f"{plain(v.watch.target.label)}: {status}" + (f" ({plain(problem)})" if problem else ""))
        for f in v.findings:
            lines.extend(_format_finding(f, v.watch.found_after.get(f.key)))
        checked = v.watch.checked()
        lines.append("  checked: " + ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in checked.items()))
    count = sum(len(v.findings) for v in verdicts)
    leaking = sum(v.leaks for v in verdicts)
    lines.append(f"verdict: leak ({count} finding{'s' if count != 1 else ''} in {leaking} of {len(verdicts)} "
                 f"target{'s' if len(verdicts) != 1 else ''})" if count else "verdict: ok")
    return "\n".join(lines)


def _format_finding(f: Finding, found_after: float | None) -> list[str]:
    rate = f"{'+' if f.rate_per_min >= 0 else '-'}" + (
        f"{fmt_bytes(abs(f.rate_per_min))}" if f.unit == "bytes" else f"{fmt_count(abs(f.rate_per_min))} {f.unit}")
    since = time.strftime("%H:%M:%S", time.localtime(f.since))
    found = f", found after {found_after:.0f} s" if found_after is not None else ""
    return [
        f"  {f.kind.value:<10}  {plain(f.where)}",
        f"  {'':<10}  {rate}/min since {since}, confidence {f.confidence.value}{found}",
        *(f"  {'':<10}  {e.basis.value}: {plain(e.text)}" for e in f.evidence),
    ]


def to_json(verdicts: list[Verdict], duration: float) -> dict:
    return {
        "verdict": "leak" if any(v.leaks for v in verdicts) else "ok",
        "duration": duration,
        "targets": [{
            "target": v.watch.target.label, "pid": v.watch.target.pid,
            "verdict": "leak" if v.leaks else "ok", "problem": v.watch.problem(), "checked": v.watch.checked(),
            "first_found": {kind: round(s, 1) for kind, s in v.watch.first_found().items()},
        } for v in verdicts],
        "findings": [
            {"target": v.watch.target.label, **f.to_json(), "found_after": _rounded(v.watch.found_after.get(f.key))}
            for v in verdicts for f in v.findings
        ],
    }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)

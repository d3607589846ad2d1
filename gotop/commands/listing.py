"""`gotop list`: the Go processes on this host and how each can be reached."""

from __future__ import annotations

import json
import os
from argparse import Namespace
from collections import defaultdict

from gotop.commands.table import render
from gotop.discovery.processes import GoProcess, Scanner, Skipped
from gotop.textsafe import plain

NAMED_PER_REASON = 10  # skipped processes named per reason; the rest are counted
_CAP_SYS_PTRACE = 19  # reading another user's /proc/PID/exe takes it


def marks(proc: GoProcess) -> str:
    """'M A P E', 'M R', '-' ...: see the legend in `gotop --help`."""
    found = [m for m, present in (("M", proc.memory), ("A", proc.agent), ("P", proc.pprof), ("E", proc.expvar),
                                  ("R", proc.metrics)) if present]
    if proc.other_netns:
        found.append("@ns")
    return " ".join(found) or "-"


def run(args: Namespace) -> int:
    result = Scanner().scan()
    procs = sorted(result.processes, key=lambda p: p.pid)
    skipped = sorted(result.skipped, key=lambda s: s.pid)
    if args.json:
        print(json.dumps({
            "processes": [p.to_json() for p in procs],
            "skipped": [{"pid": s.pid, "name": s.name, "reason": s.reason} for s in skipped],
        }, indent=2))
        return 0
    rows = [
        [str(p.pid), str(p.ppid), plain(p.name), marks(p), p.go_version or "?", plain(p.exe)]
        for p in procs
    ]
    print(render(["PID", "PPID", "NAME", "VIA", "GO", "PATH"], rows))
    if skipped:
        print("\n" + format_skipped(skipped))
    return 0


def format_skipped(skipped: list[Skipped]) -> str:
    """Which processes could not be inspected, why, and what would help."""
    by_reason: dict[str, list[Skipped]] = defaultdict(list)
    for s in skipped:
        by_reason[s.reason].append(s)
    count = len(skipped)
    lines = [f"{count} process{'es' if count > 1 else ''} not inspected ({_remedy()}):"]
    for reason, procs in sorted(by_reason.items()):
        named = ", ".join(f"pid {s.pid} ({plain(s.name)})" for s in procs[:NAMED_PER_REASON])
        more = f" and {len(procs) - NAMED_PER_REASON} more (--json names all)" if len(procs) > NAMED_PER_REASON else ""
        lines.append(f"  {plain(reason)}: {named}{more}")
    return "\n".join(lines)


def _remedy() -> str:
    if os.geteuid() != 0:
        return "run gotop as their owner or as root to see them"
    if not _has_capability(_CAP_SYS_PTRACE):
        return "refused even to root: gotop runs without CAP_SYS_PTRACE here"
    return "refused even to root"


def _has_capability(bit: int) -> bool:
    try:
        with open("/proc/self/status") as f:
            effective = next(line.split()[1] for line in f if line.startswith("CapEff:"))
        return bool(int(effective, 16) >> bit & 1)
    except (OSError, StopIteration, IndexError, ValueError):
        return True  # unknown: claim nothing

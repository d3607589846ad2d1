"""`gotop list`: the Go processes on this host and how each can be reached."""

from __future__ import annotations

import json
from argparse import Namespace

from gotop.commands.table import render
from gotop.discovery.processes import GoProcess, Scanner
from gotop.textsafe import plain


def marks(proc: GoProcess) -> str:
    """'A P E', 'A', 'P', '-' ...: see the legend in `gotop --help`."""
    found = [m for m, present in (("A", proc.agent), ("P", proc.pprof), ("E", proc.expvar)) if present]
    if proc.other_netns:
        found.append("@ns")
    return " ".join(found) or "-"


def run(args: Namespace) -> int:
    result = Scanner().scan()
    procs = sorted(result.processes, key=lambda p: p.pid)
    if args.json:
        print(json.dumps([p.to_json() for p in procs], indent=2))
        return 0
    rows = [
        [str(p.pid), str(p.ppid), plain(p.name), marks(p), p.go_version or "?", plain(p.exe)]
        for p in procs
    ]
    print(render(["PID", "PPID", "NAME", "VIA", "GO", "PATH"], rows))
    if result.skipped:
        reasons = sorted({s.reason for s in result.skipped})
        count = len(result.skipped)
        print(f"\n{count} process{'es' if count > 1 else ''} not inspected ({'; '.join(reasons)}): "
              "run gotop as their owner or as root to see them")
    return 0

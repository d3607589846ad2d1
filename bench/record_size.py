#!/usr/bin/env python3
"""How big recordings get and what recording costs.

Records N real Go targets (mixed workloads: leaks, churn, pools, plain) with
`gotop record` at the default 1 s interval for a few minutes, then prints bytes
per target-minute, the extrapolation to an hour of 10 targets, the recorder's
CPU (percent of one core), and the same session's size as the gops CLI would
leave it (its `memstats` and `stats` text per poll, gzip-compressed) as a peer.

Usage: .venv/bin/python bench/record_size.py [--targets 10] [--minutes 3]
"""

from __future__ import annotations

import argparse
import gzip
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from gotargets import gops_cli, start_target  # noqa: E402

from gotop.engine.recording import Recording  # noqa: E402

WORKLOADS = [
    ("agentpprof", "leak-send"), ("pprofonly", "retain-map"), ("agentpprof", "healthy-churn"),
    ("agentpprof", "healthy-pool"), ("pprofonly", "leak-fds"), ("plain", "idle"),
    ("agentpprof", "park"), ("pprofonly", "healthy-spawn"), ("agentpprof", "retain-slice"),
    ("agentpprof", "healthy-cache"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=3.0)
    args = parser.parse_args()

    chosen = [WORKLOADS[i % len(WORKLOADS)] for i in range(args.targets)]
    targets = [start_target(binary, args=["-workload", workload]) for binary, workload in chosen]
    out = Path(tempfile.mkdtemp()) / "bench.gotop"
    seconds = args.minutes * 60
    try:
        recorder = subprocess.Popen([sys.executable, "-m", "gotop", "record", *(str(t.pid) for t in targets),
                                     "-o", str(out), "--for", f"{seconds}s"])
        proc = psutil.Process(recorder.pid)
        time.sleep(5)  # past start-up: measure the steady cost
        cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
        while recorder.poll() is None and time.monotonic() - t0 < seconds - 10:
            cpu1, t1 = sum(proc.cpu_times()[:2]), time.monotonic()
            time.sleep(1)
        recorder.wait()
        peer = gops_text_size([t for t in targets if t.agent_port], args.minutes)
    finally:
        for t in targets:
            t.kill()

    size = os.path.getsize(out)
    with sqlite3.connect(out) as db:
        heaps = db.execute("SELECT count(*), coalesce(sum(length(profile)), 0) FROM heaps").fetchone()
    samples = sum(1 for _ in Recording(str(out)).updates())
    per_target_minute = size / (args.targets * args.minutes)
    agents = sum(1 for t in targets if t.agent_port)
    print(f"{args.targets} targets x {args.minutes:g} min at 1 s: {samples} polls, {heaps[0]} heap profiles "
          f"({heaps[1] / 1024:.0f} KiB)")
    print(f"recording: {size / 1024:.0f} KiB = {per_target_minute / 1024:.1f} KiB per target-minute "
          f"-> {per_target_minute * 10 * 60 / 2**20:.1f} MiB for an hour of 10 targets")
    print(f"recorder CPU: {(cpu1 - cpu0) / (t1 - t0) * 100:.1f}% of one core")
    print(f"peer: the gops CLI's memstats+stats text for the {agents} agent targets, gzipped: "
          f"{peer / 1024:.1f} KiB per target-minute (gotop keeps more: goroutine groups, GC pauses, heap "
          f"profiles, OS figures); ratio gotop/peer {per_target_minute / peer:.2f}")


def gops_text_size(targets, minutes: float) -> float:
    """Bytes per target-minute of `gops memstats` + `gops stats` output at 1 s, gzip-compressed."""
    text = b""
    for _ in range(20):
        for t in targets:
            for command in ("memstats", "stats"):
                text += subprocess.run([str(gops_cli()), command, f"127.0.0.1:{t.agent_port}"],
                                       capture_output=True, check=True).stdout
        time.sleep(1)
    per_poll_round = len(gzip.compress(text)) / 20
    return per_poll_round * 60 / len(targets)


if __name__ == "__main__":
    main()

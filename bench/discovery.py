#!/usr/bin/env python3
"""Discovery speed: `gotop list` beside the gops CLI, on a host with many processes.

Starts Go targets (agent+pprof, pprof only, plain) and 1000 extra `sleep`
processes, then times, in the same run:
  - `gops` (v0.3.28, built into a cache) listing the host, whole process;
  - `gotop list --json`, whole process (a cold scan plus interpreter start-up);
  - an in-process cold scan and a warm rescan with gotop's Scanner.
Prints medians, peak RSS of the whole-process runs, and the ratios.

Usage: .venv/bin/python bench/discovery.py [--sleepers 1000] [--reps 7]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from gotargets import GOPS_VERSION, gops_cli, start_target  # noqa: E402

from gotop.discovery.processes import Scanner  # noqa: E402


def run_whole(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes) and stdout of one run of `cmd`."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[0]} failed")
    return elapsed, usage.ru_maxrss * 1024, out.decode()


def median_of(reps: int, fn) -> float:
    return statistics.median(fn() for _ in range(reps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sleepers", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()

    gops = gops_cli()
    targets = [start_target(name) for name in ("agentpprof", "pprofonly", "plain") for _ in range(3)]
    sleepers = [subprocess.Popen(["sleep", "3600"]) for _ in range(args.sleepers)]
    try:
        nprocs = len(os.listdir("/proc"))
        gops_runs = [run_whole([str(gops)]) for _ in range(args.reps)]
        gotop_runs = [run_whole([sys.executable, "-m", "gotop", "list", "--json"]) for _ in range(args.reps)]
        for t in targets:  # both found every target
            assert all(f"{t.pid} " in out for _, _, out in gops_runs), "gops missed a target"
            assert all(f'"pid": {t.pid},' in out for _, _, out in gotop_runs), "gotop missed a target"

        cold = []
        warm = []
        for _ in range(args.reps):
            scanner = Scanner()
            start = time.perf_counter()
            scanner.scan()
            cold.append(time.perf_counter() - start)
            start = time.perf_counter()
            scanner.scan()
            warm.append(time.perf_counter() - start)
    finally:
        for s in sleepers:
            s.kill()
        for s in sleepers:
            s.wait()
        for t in targets:
            t.kill()

    gops_s = statistics.median(r[0] for r in gops_runs)
    gotop_s = statistics.median(r[0] for r in gotop_runs)
    gops_rss = max(r[1] for r in gops_runs)
    gotop_rss = max(r[1] for r in gotop_runs)
    cold_s, warm_s = statistics.median(cold), statistics.median(warm)
    print(f"host: {nprocs} /proc entries ({args.sleepers} sleepers, {len(targets)} Go targets), "
          f"{args.reps} runs each, medians")
    print(f"{'':34}{'time':>10}{'peak RSS':>12}{'gops / this':>14}")
    print(f"{'gops ' + GOPS_VERSION + ' (whole process)':34}{gops_s * 1e3:8.1f}ms"
          f"{gops_rss / 2**20:9.1f}MiB{1.0:13.2f}x")
    print(f"{'gotop list --json (whole process)':34}{gotop_s * 1e3:8.1f}ms"
          f"{gotop_rss / 2**20:9.1f}MiB{gops_s / gotop_s:13.2f}x")
    print(f"{'gotop Scanner, cold scan':34}{cold_s * 1e3:8.1f}ms{'':12}{gops_s / cold_s:13.2f}x")
    print(f"{'gotop Scanner, warm rescan':34}{warm_s * 1e3:8.1f}ms{'':12}{gops_s / warm_s:13.2f}x")
    print(f"ratios: gotop list / gops = {gotop_s / gops_s:.2f} (time), {gotop_rss / gops_rss:.2f} (RSS); "
          f"warm rescan is {gops_s / warm_s:.1f}x faster than a gops listing")


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    main()

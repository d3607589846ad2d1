#!/usr/bin/env python3
"""What a target's goroutine count costs gotop: one process of 100, then of 10,000
goroutines, watched as the TUI watches the processes of its list.

For each kind (plain: read from its memory; pprofonly: net/http/pprof), a target
parks --small, then --large goroutines (the `park` workload), and gotop's engine
(a Fleet with the TUI's tiers, the target on screen) watches it alone for
--seconds; printed: gotop's CPU per second of watching (after its first polls),
and the ratio large / small. Then the same with the process screen open on it
(the slow tier at its own pace: groups every 5 s whatever the count does).

Goal (issue 13): a process with 10,000 goroutines costs gotop less than 5 times
one with 100 (beyond what reading them needs: on the process screen, its groups
are read every 5 s, and a census grows with the goroutines).

Usage: .venv/bin/python bench/goroutine_cost.py [--seconds 60] [--small 100] [--large 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from gotargets import start_target  # noqa: E402

from gotop.engine.fleet import Fleet  # noqa: E402
from gotop.engine.poller import Tiers  # noqa: E402
from gotop.engine.target import Target  # noqa: E402

SETTLE = 3.0  # seconds of first polls (the reader made, the first groups read) left out


async def watch(pid: int, seconds: float, closely: bool) -> float:
    """gotop's CPU (ms per second) watching `pid` on screen, or on the process screen."""
    fleet = Fleet(lambda _w: None, Tiers.for_screens(), discover=False)
    async with fleet.running():
        watched = fleet.add(Target.open(str(pid)))
        fleet.view("list", [watched])
        if closely:
            watched.follow("process screen")
        await asyncio.sleep(SETTLE)
        groups = len(watched.history.series["goroutine_groups"])
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        spent = (time.process_time() - cpu) / (time.perf_counter() - wall)
        read = len(watched.history.series["goroutine_groups"]) - groups
    print(f"      groups read {read} times in {seconds:.0f} s", flush=True)
    return spent * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=10_000)
    args = parser.parse_args()
    for kind in ("plain", "pprofonly"):
        for closely in (False, True):
            where = "process screen" if closely else "list"
            costs = {}
            for n in (args.small, args.large):
                target = start_target(kind, args=["-workload", "park", "-n", str(n)])
                try:
                    print(f"{kind}, {n:,} goroutines, on the {where}:", flush=True)
                    costs[n] = asyncio.run(watch(target.pid, args.seconds, closely))
                finally:
                    target.kill()
                print(f"    gotop {costs[n]:.3f} ms of CPU a second", flush=True)
            ratio = costs[args.large] / costs[args.small]
            verdict = "OK" if closely or ratio < 5 else "OVER"
            print(f"  {kind} on the {where}: {args.large:,} / {args.small:,} goroutines: {ratio:.2f}x"
                  + ("" if closely else f"  {verdict} (<5x)"), flush=True)


if __name__ == "__main__":
    main()

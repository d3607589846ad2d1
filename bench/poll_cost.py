#!/usr/bin/env python3
"""What one poll costs: gotop's sample path beside the gops CLI, on the same target.

gotop polls in-process (one `Target.sample()`: memstats + stats + OS figures,
as the TUI does each tick); the gops CLI needs two processes per poll
(`gops memstats` + `gops stats`). For each, in the same run, prints the CPU
time of the monitor per sample and the CPU time the target spent answering
per sample, and the ratios.

Usage: .venv/bin/python bench/poll_cost.py [--polls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from gotargets import GOPS_VERSION, gops_cli, start_target  # noqa: E402

from gotop.engine.target import Target  # noqa: E402


def target_cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def gotop_polls(spec: str, polls: int) -> tuple[float, float, str]:
    """CPU per poll of gotop and of the target, and the sources the poll read."""
    async with Target.open(spec) as target:
        sources = (await target.sample()).sources  # connections, imports and caches warm
        before_self, before_target = time.process_time(), target_cpu(target.pid)
        for _ in range(polls):
            await target.sample()
        return ((time.process_time() - before_self) / polls,
                (target_cpu(target.pid) - before_target) / polls,
                " + ".join(sorted(set(sources.values()))))


def gops_polls(gops: Path, agent: str, pid: int, polls: int) -> tuple[float, float, str]:
    before_self, before_target = children_cpu(), target_cpu(pid)
    for _ in range(polls):
        for command in ("memstats", "stats"):
            subprocess.run([str(gops), command, agent], stdout=subprocess.DEVNULL, check=True)
    return (children_cpu() - before_self) / polls, (target_cpu(pid) - before_target) / polls, "agent"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--polls", type=int, default=300)
    args = parser.parse_args()

    gops = gops_cli()
    target = start_target("agentpprof", args=["-workload", "park", "-n", "200"])
    try:
        rows = {
            "gotop, pid": asyncio.run(gotop_polls(str(target.pid), args.polls)),
            "gotop, agent only (host:port)": asyncio.run(gotop_polls(target.ready["agent"], args.polls)),
            f"gops {GOPS_VERSION} memstats + stats": gops_polls(gops, target.ready["agent"], target.pid, args.polls),
        }
    finally:
        target.kill()

    peer_self, peer_target, _ = rows[f"gops {GOPS_VERSION} memstats + stats"]
    print(f"{args.polls} polls of one idle agentpprof target (200 parked goroutines); CPU time per poll")
    print(f"{'':40}{'monitor':>10}{'target':>10}{'gops/this (monitor)':>22}  read from")
    for name, (own, tgt, sources) in rows.items():
        print(f"{name:40}{own * 1e3:8.2f}ms{tgt * 1e3:8.2f}ms{peer_self / own:21.1f}x  {sources}")
    best = min(own for own, _, _ in rows.values())
    print(f"ratio: gotop's cheapest poll costs the monitor {peer_self / best:.1f}x less CPU than the gops CLI; "
          f"target CPU per poll {peer_target * 1e3:.2f} ms (gops) vs "
          f"{rows['gotop, agent only (host:port)'][1] * 1e3:.2f} ms (gotop, same agent commands)")


if __name__ == "__main__":
    main()

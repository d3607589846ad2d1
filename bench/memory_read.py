#!/usr/bin/env python3
"""The memory source beside the agent and pprof paths: gotop's CPU per reading, and the cost to the target.

For targets with 100, 1000 and 10,000 goroutines (the `park` workload of the
agentpprof test target, which serves the gops agent, net/http/pprof and
expvar), gotop reads the goroutine count and groups and the memstats through
each source in turn, many times, and reports:

  - gotop's CPU per reading (process CPU time, not wall time): memory (one
    reading gives count, groups and memstats), agent (stats + memstats),
    pprof (goroutine profile fetched and grouped) with expvar memstats;
  - the target's allocation per reading: bytes the target allocated while
    being read, from its own runtime counters (gcController.totalAlloc, read
    through the memory source, which allocates nothing) minus what it
    allocates idle over the same time.

Usage: .venv/bin/python bench/memory_read.py [--readings 200] [--sizes 100,1000,10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from gotargets import start_target  # noqa: E402
from tui_cost import load_average  # noqa: E402

from gotop.discovery.processes import Scanner  # noqa: E402
from gotop.engine.target import Target  # noqa: E402
from gotop.sources.memory import MemoryReader  # noqa: E402


def cpu() -> float:
    t = os.times()
    return t.user + t.system


async def per_reading(read: Callable[[], Awaitable[object]], readings: int) -> float:
    """gotop's CPU seconds per reading."""
    await read()  # connections and caches warm
    start = cpu()
    for _ in range(readings):
        await read()
    return (cpu() - start) / readings


def allocated(reader: MemoryReader) -> int:
    m = reader.read().memstats
    assert m.total_alloc is not None, "this Go release keeps no totalAlloc counter"
    return m.total_alloc


async def target_cost(reader: MemoryReader, read: Callable[[], Awaitable[object]], readings: int) -> float:
    """Bytes the target allocates per reading, beyond what it allocates idle meanwhile.
    Counters flush when a span is refilled: many readings make it exact on average."""
    start, began = allocated(reader), time.monotonic()
    for _ in range(readings):
        await read()
    spent, took = allocated(reader) - start, time.monotonic() - began
    idle_start = allocated(reader)
    await asyncio.sleep(took)
    idle = allocated(reader) - idle_start
    return max(0, spent - idle) / readings


async def bench(size: int, readings: int) -> dict[str, tuple[float, float]]:
    target = start_target("agentpprof", args=["-workload", "park", "-n", str(size)])
    try:
        proc = Scanner().inspect(target.pid)
        reader = MemoryReader(proc.pid, proc.go_version)
        memory = Target.for_process(proc, only="memory")
        agent = Target.for_process(proc, only="agent")
        pprof = Target.for_process(proc, only="pprof")
        expvar = Target.for_process(proc, only="expvar")

        async def memory_read() -> object:
            return await asyncio.to_thread(reader.read)

        async def agent_read() -> object:
            return await asyncio.gather(agent.stats(), agent.memstats())

        async def pprof_read() -> object:
            return await asyncio.gather(pprof.goroutine_profile(), expvar.memstats())

        results = {}
        for name, read in (("memory", memory_read), ("agent", agent_read), ("pprof+expvar", pprof_read)):
            results[name] = (await per_reading(read, readings), await target_cost(reader, read, readings))
        for t in (memory, agent, pprof, expvar):
            await t.aclose()
        return results
    finally:
        target.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=200)
    parser.add_argument("--sizes", default="100,1000,10000")
    args = parser.parse_args()
    print(f"load average at start: {load_average()}")
    print(f"{'goroutines':>10}  {'source':<13} {'gotop CPU/reading':>18} {'target allocates/reading':>25}")
    baseline: dict[int, float] = {}
    for size in (int(s) for s in args.sizes.split(",")):
        for name, (cpu_s, alloc) in asyncio.run(bench(size, args.readings)).items():
            baseline.setdefault(size, cpu_s)
            ratio = cpu_s / baseline[size]
            print(f"{size:>10,}  {name:<13} {cpu_s * 1e3:>12.3f} ms ({ratio:4.1f}x) {alloc:>19,.0f} B")
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The memory source beside the agent and pprof paths: gotop's CPU per reading, and the cost to the target.

Targets (the agentpprof test target: gops agent, net/http/pprof and expvar in
one process) at about 100, 1000 and 10,000 goroutines, each in three shapes,
since a bench of idle targets flatters:

  parked   `park -n N`: N goroutines blocked on one channel;
  busy     `healthy-pool -n N`: N workers taking a job every 5 ms between them
           (4 KiB allocated per job), most waiting in chan receive;
  leaking  `leak-all -n 40000/N`: four leak patterns (blocked sends, receives,
           selects and ticker loops that wake every second), growing N/10 a
           second; measured from 0.9 N on, while it grows.

For each target, one reading through each source, in turn, `--readings` times:

  memory         one MemoryReader.read() (count, groups, memstats), as the
                 engine's worker thread does it;
  memory/engine  the same through Target (stats, memstats and groups asked
                 together share one reading, on a worker thread);
  agent          gops agent stats + memstats (no groups: the agent has only
                 full dumps, which stop the world);
  pprof+expvar   the goroutine profile (protobuf, grouped) + expvar memstats.

Columns, per reading:
  - gotop CPU: this process's CPU time (all threads) around each reading, the
    sources interleaved so that a growing target is the same for all;
    "x memory" is that over the memory reading's;
  - target CPU: the target's CPU time (/proc/PID/stat, clock ticks) over a
    block of readings of one source, less what it spends idle as long;
  - target allocates: bytes the target allocated over a block of readings of
    one source (gcController.totalAlloc, read through the memory source, which
    allocates nothing: the method check shows it), less what it allocates idle
    as long (the mean of an idle window before and after the block; "±" is
    half their difference, per reading). The runtime adds small objects to
    totalAlloc when their span leaves a P's cache, so a block of K readings is
    exact to a few spans over K.

Usage: .venv/bin/python bench/memory_read.py [--readings 100] [--sizes 100,1000,10000] [--shapes parked,busy,leaking]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from gotargets import RunningTarget, start_target  # noqa: E402
from tui_cost import gotop_revision, load_average  # noqa: E402

from gotop.discovery.processes import Scanner  # noqa: E402
from gotop.engine.target import Target  # noqa: E402
from gotop.model.goruntime import ReadingRejected  # noqa: E402
from gotop.sources.memory import MemoryReader, MemoryReading  # noqa: E402

SHAPES = {  # name -> (workload, its -n for a target of about `size` goroutines)
    "parked": ("park", lambda size: size),
    "busy": ("healthy-pool", lambda size: size),
    "leaking": ("leak-all", lambda size: max(1, 40_000 // size)),
}
LEAK_START = 0.9  # a leaking target is measured from this share of its size on
LEAK_WAIT = 60.0  # seconds it may take to get there
METHOD_CHECK_READINGS = (200, 20)  # memory readings, goroutine profile fetches


Read = Callable[[], Awaitable[object]]


def target_cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


class Counters:
    """The target's own allocation counter, read from its memory (which costs it nothing)."""

    def __init__(self, pid: int, go_version: str) -> None:
        self.reader = MemoryReader(pid, go_version)

    def reading(self) -> MemoryReading:
        for _ in range(100):
            try:
                return self.reader.read()
            except ReadingRejected:  # torn by the running target: read again
                continue
        raise RuntimeError("100 torn readings in a row")

    def allocated(self) -> int:
        total = self.reading().memstats.total_alloc
        assert total is not None, "this Go release keeps no totalAlloc counter"
        return total

    def goroutines(self) -> int:
        return self.reading().stats.goroutines or 0


@dataclass
class TargetCost:
    cpu: float  # seconds per reading
    allocated: float  # bytes per reading
    allocated_error: float  # ± bytes per reading (the idle rate's drift)


async def target_cost(pid: int, counters: Counters, read: Read, readings: int) -> TargetCost:
    """What a block of readings costs the target, beyond what it spends idle as long."""
    async def window(read: Read | None) -> tuple[float, int, float]:
        cpu, allocated, began = target_cpu(pid), counters.allocated(), time.monotonic()
        if read is None:
            await asyncio.sleep(took)
        else:
            for _ in range(readings):
                await read()
        return target_cpu(pid) - cpu, counters.allocated() - allocated, time.monotonic() - began

    cpu, allocated, took = await window(read)
    idle_before, idle_after = await window(None), await window(None)
    scale = took / ((idle_before[2] + idle_after[2]) / 2)  # idle windows run a little long
    idle_cpu = (idle_before[0] + idle_after[0]) / 2 * scale
    idle_alloc = (idle_before[1] + idle_after[1]) / 2 * scale
    return TargetCost(max(0.0, cpu - idle_cpu) / readings, (allocated - idle_alloc) / readings,
                      abs(idle_before[1] - idle_after[1]) / 2 * scale / readings)


async def gotop_cpu(reads: dict[str, Read], readings: int) -> tuple[dict[str, float], dict[str, int]]:
    """gotop's CPU seconds per reading of each source, the sources interleaved; and how many
    memory readings were dropped as torn (a dropped reading costs as much as one kept)."""
    spent = dict.fromkeys(reads, 0.0)
    rejected = dict.fromkeys(reads, 0)
    for read in reads.values():
        await read()  # connections and caches warm
    gc.collect()
    for _ in range(readings):
        for name, read in reads.items():
            start = time.process_time()
            try:
                await read()
            except ReadingRejected:
                rejected[name] += 1
            spent[name] += time.process_time() - start
    return {name: cpu / readings for name, cpu in spent.items()}, rejected


@dataclass
class Row:
    size: int
    shape: str
    goroutines: tuple[int, int]  # counted before and after the measurement
    source: str
    cpu: float
    rejected: int
    cost: TargetCost


async def bench(size: int, shape: str, readings: int) -> list[Row]:
    workload, n = SHAPES[shape]
    target = start_target("agentpprof", args=["-workload", workload, "-n", str(n(size))])
    try:
        proc = Scanner().inspect(target.pid)
        assert proc.memory, proc.memory_note
        counters = Counters(target.pid, proc.go_version)
        if shape == "leaking":
            await until_goroutines(counters, int(size * LEAK_START))
        reader = MemoryReader(target.pid, proc.go_version)
        targets = {source: Target.for_process(proc, only=source) for source in ("memory", "agent", "pprof", "expvar")}
        memory, agent, pprof, expvar = targets.values()

        async def memory_read() -> object:
            return reader.read()

        async def engine_read() -> object:
            return await asyncio.gather(memory.stats(), memory.memstats(), memory.goroutine_profile())

        async def agent_read() -> object:
            return await asyncio.gather(agent.stats(), agent.memstats())

        async def pprof_read() -> object:
            return await asyncio.gather(pprof.goroutine_profile(), expvar.memstats())

        reads = {"memory": memory_read, "memory/engine": engine_read, "agent": agent_read,
                 "pprof+expvar": pprof_read}
        before = counters.goroutines()
        cpu, rejected = await gotop_cpu(reads, readings)
        after = counters.goroutines()
        rows = []
        for name, read in reads.items():
            cost = await target_cost(target.pid, counters, tolerant(read), readings)
            rows.append(Row(size, shape, (before, after), name, cpu[name], rejected[name], cost))
        for t in targets.values():
            await t.aclose()
        return rows
    finally:
        target.kill()


def tolerant(read: Read) -> Read:
    """`read`, a torn memory reading counting as a reading (it cost what one costs)."""
    async def attempt() -> object:
        try:
            return await read()
        except ReadingRejected:
            return None
    return attempt


async def until_goroutines(counters: Counters, wanted: int) -> None:
    deadline = time.monotonic() + LEAK_WAIT
    while (count := counters.goroutines()) < wanted:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the leaking target has {count} goroutines after {LEAK_WAIT:.0f} s, not {wanted}")
        await asyncio.sleep(0.2)


async def method_check() -> None:
    """Prove the target-cost method on a target that allocates nothing by itself:
    memory readings must leave its totalAlloc as it is, and goroutine profile
    fetches must move it by what a fetch allocates (about 1 MB: the gzip writer)."""
    target: RunningTarget = start_target("agentpprof", args=["-workload", "park", "-n", "100"])
    try:
        proc = Scanner().inspect(target.pid)
        counters = Counters(target.pid, proc.go_version)
        pprof = Target.for_process(proc, only="pprof")
        await pprof.goroutine_profile()  # the HTTP connection and its buffers made
        await asyncio.sleep(0.5)
        memory_readings, fetches = METHOD_CHECK_READINGS
        start = counters.allocated()
        for _ in range(memory_readings):
            counters.reading()
        after_memory = counters.allocated()
        await asyncio.sleep(1.0)
        idle = counters.allocated()
        for _ in range(fetches):
            await pprof.goroutine_profile()
        after_fetches = counters.allocated()
        await pprof.aclose()
    finally:
        target.kill()
    print(f"method check (parked target, 100 goroutines, totalAlloc read from its memory): "
          f"{memory_readings} memory readings moved it by {after_memory - start:,} B; "
          f"1 s idle by {idle - after_memory:,} B; "
          f"{fetches} goroutine profile fetches by {after_fetches - idle:,} B "
          f"({(after_fetches - idle) / fetches:,.0f} B per fetch)")


def print_rows(rows: list[Row]) -> None:
    base = next(r.cpu for r in rows if r.source == "memory")
    for r in rows:
        counted = f"{r.goroutines[0]:,}" if r.goroutines[0] == r.goroutines[1] else \
            f"{r.goroutines[0]:,}-{r.goroutines[1]:,}"
        torn = f"  ({r.rejected} torn)" if r.rejected else ""
        alloc = f"{r.cost.allocated:>12,.0f} ± {r.cost.allocated_error:,.0f} B"
        print(f"{r.shape:<8} {counted:>13}  {r.source:<14}{r.cpu * 1e3:9.3f} ms {r.cpu / base:7.1f}x"
              f"{r.cost.cpu * 1e3:11.3f} ms  {alloc}{torn}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=100, help="readings per source and target")
    parser.add_argument("--sizes", default="100,1000,10000", help="goroutines per target, comma-separated")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="target shapes, comma-separated")
    parser.add_argument("--no-method-check", action="store_true")
    args = parser.parse_args()
    shapes = args.shapes.split(",")
    if unknown := [s for s in shapes if s not in SHAPES]:
        parser.error(f"unknown shape {unknown[0]!r}: one of {', '.join(SHAPES)}")

    print(f"gotop {gotop_revision()}; {args.readings} readings per source and target; "
          f"load average at start: {load_average()}")
    if not args.no_method_check:
        asyncio.run(method_check())
    print(f"{'shape':<8} {'goroutines':>13}  {'source':<14}{'gotop CPU':>12} {'x memory':>8}"
          f"{'target CPU':>14}  {'target allocates':>24}   (per reading)")
    per_goroutine = []
    for size in (int(s) for s in args.sizes.split(",")):
        for shape in shapes:
            rows = asyncio.run(bench(size, shape, args.readings))
            print_rows(rows)
            memory = next(r for r in rows if r.source == "memory")
            per_goroutine.append(f"{shape} {memory.goroutines[1]:,}: {memory.cpu / memory.goroutines[1] * 1e6:.2f} us")
    print("memory reading's CPU per goroutine: " + "; ".join(per_goroutine))
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()

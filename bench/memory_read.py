#!/usr/bin/env python3
"""The memory source beside the agent and pprof paths: gotop's CPU per reading, and the cost to the target.

Targets (the agentpprof test target: gops agent, net/http/pprof and expvar in
one process) at about 100, 1000 and 10,000 goroutines, each in three shapes,
since a bench of idle targets flatters:

  parked   `park -n N`: N goroutines blocked on one channel;
  busy     `healthy-pool -n N`: N workers taking a job every 5 ms between them
           (4 KiB allocated per job), most waiting in chan receive;
  leaking  `leak-all -n 160000/N`: four leak patterns (blocked sends,
           receives, selects, and ticker loops that wake every second),
           growing N/40 a second; measured from 0.8 N on, while it grows.

For each target, one reading through each source, in turn, `--readings` times:

  memory         one MemoryReader.read() and census() (count, groups, memstats),
                 as the engine's worker thread does them; also measured back
                 to back (a loop of memory readings alone: warm caches, less CPU);
  memory count   read() alone (memstats and the count, as runtime.gcount()
                 computes it): what each poll reads, the census being the slow tier's;
  memory/engine  the same through Target (stats, memstats and groups asked
                 together share one reading, on a worker thread);
  agent          gops agent stats + memstats (no groups: the agent has only
                 full dumps, which stop the world);
  pprof+expvar   the goroutine profile (protobuf, grouped) + expvar memstats.

Columns, per reading:
  - gotop CPU: this process's CPU time (all threads) around each reading, the
    sources interleaved so that a growing target is the same for all;
    "x memory" is that over the memory reading's;
  - target CPU and target allocates: the target's CPU time (its threads'
    /proc/PID/task/TID/schedstat, in ns) and the bytes it allocated (gcController.totalAlloc, read
    through the memory source, which allocates nothing: the method check shows
    it) over a block of `--cost-readings` readings of one source, less what it
    spends idle as long (the mean of an idle window before and one after the
    block; "±" is half their difference, per reading). Each window lies
    between two GCs run in the target through its gops agent: a GC adds the
    spans cached by each P to totalAlloc (small objects are counted when their
    span leaves a P's cache), and collects the garbage of what came before.

Usage: .venv/bin/python bench/memory_read.py [--readings 100] [--cost-seconds 1] [--sizes 100,1000,10000]
                                             [--shapes parked,busy,leaking] [--no-method-check] [--no-isolate]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import shlex
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from gotargets import RunningTarget, start_target  # noqa: E402
from tui_cost import gotop_revision, load_average  # noqa: E402

from gotop.discovery.processes import Scanner  # noqa: E402
from gotop.engine.target import Target  # noqa: E402
from gotop.model.goruntime import GoroutineCensus, ReadingRejected  # noqa: E402
from gotop.sources.memory import MemoryReader, MemoryReading  # noqa: E402

SHAPES = {  # name -> (workload, its -n for a target of about `size` goroutines)
    "parked": ("park", lambda size: size),
    "busy": ("healthy-pool", lambda size: size),
    "leaking": ("leak-all", lambda size: max(1, 160_000 // size)),  # N/40 goroutines a second
}
LEAK_START = 0.8  # a leaking target is measured from this share of its size on
LEAK_WAIT = 90.0  # seconds it may take to get there
ISOLATED_ENV = "GOTOP_BENCH_NETNS"
MIN_COST_READINGS = 10  # in a block measured for the target's cost
METHOD_CHECK_READINGS = (200, 20)  # memory readings, goroutine profile fetches


Read = Callable[[], Awaitable[object]]


def target_cpu(pid: int) -> float:
    """CPU seconds the target's threads have run, to the nanosecond (/proc/PID/stat
    counts 10 ms ticks: too coarse for a block of memory readings)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):  # a thread gone meanwhile
            continue
    return total / 1e9


T = TypeVar("T")


class Counters:
    """The target's own allocation counter, read from its memory (which costs it nothing)."""

    def __init__(self, pid: int, go_version: str) -> None:
        self.reader = MemoryReader(pid, go_version)

    def reading(self) -> MemoryReading:
        return self._untorn(self.reader.read)

    def census(self) -> GoroutineCensus:
        return self._untorn(self.reader.census)

    @staticmethod
    def _untorn(read: Callable[[], T]) -> T:
        for _ in range(100):
            try:
                return read()
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
    readings: int  # in the block measured
    cpu: float  # seconds per reading
    cpu_error: float  # ± (half the difference between the idle windows before and after)
    allocated: float  # bytes per reading
    allocated_error: float


@dataclass(frozen=True)
class Window:
    cpu: float  # the target's CPU seconds
    allocated: int  # bytes the target allocated
    seconds: float


async def target_cost(pid: int, counters: Counters, collect: Callable[[], Awaitable[object]], read: Read,
                      readings: int, expected: float) -> TargetCost:
    """What a block of readings costs the target, beyond what it spends idle as long
    (`expected`: seconds the block should take).

    Each window (idle, the block, idle) lies between two garbage collections run
    in the target: a GC adds every P's cached spans to totalAlloc, so the count is
    exact, and it collects the garbage of what came before, whose GC work would
    otherwise land in the next window."""
    async def window(read: Read | None, seconds: float = 0.0) -> Window:
        await collect()
        cpu, allocated, began = target_cpu(pid), counters.allocated(), time.monotonic()
        if read is None:
            await asyncio.sleep(seconds)
        else:
            for _ in range(readings):
                await read()
        took = time.monotonic() - began
        await collect()
        return Window(target_cpu(pid) - cpu, counters.allocated() - allocated, took)

    before = await window(None, expected)
    block = await window(read)
    after = await window(None, block.seconds)
    scale = block.seconds / ((before.seconds + after.seconds) / 2)  # the idle windows' rate over the block's time

    def per_reading(idle_before: float, spent: float, idle_after: float) -> tuple[float, float]:
        return ((spent - (idle_before + idle_after) / 2 * scale) / readings,
                abs(idle_before - idle_after) / 2 * scale / readings)

    return TargetCost(readings, *per_reading(before.cpu, block.cpu, after.cpu),
                      *per_reading(before.allocated, block.allocated, after.allocated))


@dataclass
class GotopCost:
    cpu: dict[str, float]  # source -> CPU seconds per reading
    wall: dict[str, float]  # source -> seconds per reading
    rejected: dict[str, int]  # source -> memory readings dropped as torn (each cost what a reading costs)


async def gotop_cpu(reads: dict[str, Read], readings: int) -> GotopCost:
    """gotop's CPU per reading of each source, the sources interleaved."""
    spent = dict.fromkeys(reads, 0.0)
    waited = dict.fromkeys(reads, 0.0)
    rejected = dict.fromkeys(reads, 0)
    for read in reads.values():
        await read()  # connections and caches warm
    gc.collect()
    for _ in range(readings):
        for name, read in reads.items():
            start, began = time.process_time(), time.monotonic()
            try:
                await read()
            except ReadingRejected:
                rejected[name] += 1
            spent[name] += time.process_time() - start
            waited[name] += time.monotonic() - began
    return GotopCost({name: cpu / readings for name, cpu in spent.items()},
                     {name: wall / readings for name, wall in waited.items()}, rejected)


@dataclass
class Row:
    size: int
    shape: str
    source: str
    cpu: float
    rejected: int
    cost: TargetCost
    goroutines: tuple[int, int] = (0, 0)  # counted before and after the measurement


def back_to_back(read: Callable[[], object], readings: int) -> float:
    """CPU seconds per memory reading, in a loop of nothing else: what the reading itself
    costs with warm caches. Interleaved with other work, as a monitor reads, it costs more."""
    read()
    start = time.process_time()
    for _ in range(readings):
        read()
    return (time.process_time() - start) / readings


async def bench(size: int, shape: str, readings: int, cost_seconds: float) -> tuple[list[Row], tuple[float, float]]:
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
            return reader.read(), reader.census()

        async def count_read() -> object:
            return reader.read()

        async def engine_read() -> object:
            return await asyncio.gather(memory.stats(), memory.memstats(), memory.goroutine_profile())

        async def agent_read() -> object:
            return await asyncio.gather(agent.stats(), agent.memstats())

        async def pprof_read() -> object:
            return await asyncio.gather(pprof.goroutine_profile(), expvar.memstats())

        reads = {"memory": memory_read, "memory count": count_read, "memory/engine": engine_read, "agent": agent_read,
                 "pprof+expvar": pprof_read}
        before = counters.goroutines()
        gotop = await gotop_cpu(reads, readings)
        rows = []
        for name, read in reads.items():
            block = max(MIN_COST_READINGS, math.ceil(cost_seconds / gotop.wall[name]))
            cost = await target_cost(target.pid, counters, agent.gc, tolerant(read), block,
                                     gotop.wall[name] * block)
            rows.append(Row(size, shape, name, gotop.cpu[name], gotop.rejected[name], cost))
        hot = back_to_back(lambda: (counters.reading(), counters.census()), readings), back_to_back(
            counters.reading, readings)
        after = counters.goroutines()
        rows = [replace(row, goroutines=(before, after)) for row in rows]
        for t in targets.values():
            await t.aclose()
        return rows, hot
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
    """Prove the target-cost method on a parked target: between two GCs, memory
    readings move its totalAlloc exactly as much as nothing does (what the
    agent's GC command allocates itself), and goroutine profile fetches by
    what a fetch allocates (about 1 MB, most of it the gzip writer)."""
    target: RunningTarget = start_target("agentpprof", args=["-workload", "park", "-n", "100"])
    try:
        proc = Scanner().inspect(target.pid)
        counters = Counters(target.pid, proc.go_version)
        agent, pprof = (Target.for_process(proc, only=source) for source in ("agent", "pprof"))
        await pprof.goroutine_profile()  # the HTTP connection and its buffers made

        async def between_gcs(action: Callable[[], Awaitable[object]], times: int) -> int:
            await agent.gc()
            start = counters.allocated()
            for _ in range(times):
                await action()
            await agent.gc()
            return counters.allocated() - start

        async def memory_reading() -> None:
            counters.reading()

        async def nothing() -> None:
            pass

        memory_readings, fetches = METHOD_CHECK_READINGS
        alone = await between_gcs(nothing, 1)
        memory = await between_gcs(memory_reading, memory_readings)
        fetched = await between_gcs(pprof.goroutine_profile, fetches)
        for t in (agent, pprof):
            await t.aclose()
    finally:
        target.kill()
    print(f"method check (parked target, 100 goroutines; its totalAlloc, read from its memory, between two GCs): "
          f"moved by {alone:,} B with nothing between; by {memory:,} B with {memory_readings} memory readings; "
          f"by {fetched:,} B with {fetches} goroutine profile fetches ({(fetched - alone) / fetches:,.0f} B a fetch)")


def print_rows(rows: list[Row]) -> None:
    base = next(r.cpu for r in rows if r.source == "memory")
    for r in rows:
        counted = f"{r.goroutines[0]:,}" if r.goroutines[0] == r.goroutines[1] else \
            f"{r.goroutines[0]:,}-{r.goroutines[1]:,}"
        torn = f"  ({r.rejected} torn)" if r.rejected else ""
        c = r.cost
        print(f"{r.shape:<8} {counted:>13}  {r.source:<14}{r.cpu * 1e3:8.3f} ms {r.cpu / base:6.1f}x"
              f"{round(c.cpu * 1e3, 3) + 0.0:10.3f} ± {c.cpu_error * 1e3:.3f} ms"  # + 0.0: no "-0.000"
              f"{round(c.allocated):>13,} ± {round(c.allocated_error):,} B  {c.readings:>5}{torn}")


def isolate() -> str:
    """Re-run this script in a private network namespace (needs root and unshare), so
    that no other monitor on a shared machine reaches the targets' agent and pprof
    endpoints while they are measured (a `gotop list` elsewhere fetches profiles)."""
    if os.environ.get(ISOLATED_ENV):
        return "private network namespace"
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None or os.geteuid() != 0:
        return "not isolated (needs root, unshare and ip): other monitors on the host may probe the targets"
    sys.stdout.flush()
    script = f"{shlex.quote(ip)} link set lo up && exec {shlex.join([sys.executable, *sys.argv])}"
    os.execve(unshare, [unshare, "--net", "sh", "-c", script], os.environ | {ISOLATED_ENV: "1"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=100, help="readings per source and target for gotop's CPU")
    parser.add_argument("--cost-seconds", type=float, default=1.0,
                        help=f"how long a block of readings for the target's cost lasts (at least {MIN_COST_READINGS})")
    parser.add_argument("--sizes", default="100,1000,10000", help="goroutines per target, comma-separated")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="target shapes, comma-separated")
    parser.add_argument("--no-method-check", action="store_true")
    parser.add_argument("--no-isolate", action="store_true", help="run in the host's network namespace")
    args = parser.parse_args()
    isolation = "host network namespace" if args.no_isolate else isolate()
    shapes = args.shapes.split(",")
    if unknown := [s for s in shapes if s not in SHAPES]:
        parser.error(f"unknown shape {unknown[0]!r}: one of {', '.join(SHAPES)}")

    print(f"gotop {gotop_revision()}; per source and target {args.readings} readings for gotop's CPU, "
          f"{args.cost_seconds:g} s blocks for the target's; {isolation}; "
          f"load average at start: {load_average()}")
    if not args.no_method_check:
        asyncio.run(method_check())
    print(f"{'shape':<8} {'goroutines':>13}  {'source':<14}{'gotop CPU':>11} {'x mem':>6}"
          f"{'target CPU':>19}{'target allocates':>24}  {'block':>5}   (per reading)")
    per_goroutine = []
    for size in (int(s) for s in args.sizes.split(",")):
        for shape in shapes:
            rows, hot = asyncio.run(bench(size, shape, args.readings, args.cost_seconds))
            print_rows(rows)
            memory = next(r for r in rows if r.source == "memory")
            goroutines = sum(memory.goroutines) / 2
            print(f"{'':24}memory back to back: {hot[0] * 1e3:.3f} ms; count alone {hot[1] * 1e3:.3f} ms")
            per_goroutine.append(f"{shape} {goroutines:,.0f}: {memory.cpu / goroutines * 1e6:.2f} us, "
                                 f"back to back {hot[0] / goroutines * 1e6:.2f} us")
    print("memory reading's CPU per goroutine (interleaved with the other sources; back to back):")
    print("  " + "\n  ".join(per_goroutine))
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()

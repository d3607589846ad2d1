"""The memory source against the runtime's own view, on real Go processes built
with each toolchain, with DWARF, without (-w) and stripped (-s -w).

The truth is what the same process says through its gops agent, expvar and
net/http/pprof (the agentpprof target serves all three), read just before and
just after the memory: a figure that cannot change between the two (no GC in
between) must be equal.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from gotargets import target_binary
from waiting import eventually, first_result

from gotop.discovery.processes import Scanner
from gotop.engine.target import Target
from gotop.model.goroutines import parse_goroutine_dump
from gotop.model.goruntime import ReadingRejected
from gotop.sources import memory
from gotop.sources.memory import MemoryReader

TOOLCHAINS = ("go", "go1.27", "go1.19")
STRIPS = {"plain": (), "w": ("-ldflags=-w",), "sw": ("-ldflags=-s -w",)}  # DWARF; no DWARF; no symbol table either
PARKED = 150  # goroutines the `park` workload blocks in parkedHere


def _start(go_target, toolchain: str, strip: str, *args: str):
    binary = target_binary("agentpprof", toolchain, flags=STRIPS[strip]) if STRIPS[strip] else None
    return go_target("agentpprof", toolchain=toolchain, binary=binary, args=list(args))


@asynccontextmanager
async def _sources(pid: int) -> AsyncIterator[dict[str, Target]]:
    """The process through each of its sources alone, closed after."""
    proc = Scanner().inspect(pid)
    assert proc.memory, proc.memory_note
    targets = {source: Target.for_process(proc, only=source) for source in ("memory", "expvar", "agent")}
    try:
        yield targets
    finally:
        for t in targets.values():
            await t.aclose()


@pytest.mark.parametrize("strip", STRIPS)
@pytest.mark.parametrize("toolchain", TOOLCHAINS)
async def test_memory_figures_equal_the_runtimes_own(go_target, toolchain, strip):
    target = _start(go_target, toolchain, strip, "-workload", "park", "-n", str(PARKED))
    async with _sources(target.pid) as targets:
        async def between_two_truths():
            """expvar, memory, expvar: the memory reading, if no GC ran meanwhile."""
            before = (await targets["expvar"].memstats())[0]
            reading = await targets["memory"].sample()
            after = (await targets["expvar"].memstats())[0]
            return (before, reading, after) if before.num_gc == after.num_gc else None

        before, reading, after = await first_result(between_two_truths, failing="a GC ran between the truths")
        m = reading.memstats
        assert reading.sources["memstats"] == "memory" and reading.sources["stats"] == "memory"
        assert m.num_gc == before.num_gc
        assert m.pause_ns == before.pause_ns and m.pause_end == before.pause_end
        assert m.pause_total_ns == before.pause_total_ns and m.last_gc == before.last_gc
        assert m.next_gc == before.next_gc
        assert m.num_forced_gc == before.num_forced_gc
        # The heap in use moves with every allocation (expvar's own requests allocate):
        # the memory's figure lies between the two truths, give or take what is cached for allocation.
        low, high = sorted((before.heap_alloc, after.heap_alloc))
        assert low - (1 << 20) <= m.heap_alloc <= high + (1 << 20)
        assert m.heap_inuse is not None and m.heap_inuse >= m.heap_alloc // 2
        assert m.gc_percent == 100 and m.memory_limit is None

        agent = (await targets["agent"].stats())[0]
        assert abs(reading.stats.goroutines - agent.goroutines) <= 3
        assert reading.stats.gomaxprocs == agent.gomaxprocs


@pytest.mark.parametrize("strip", STRIPS)
@pytest.mark.parametrize("toolchain", TOOLCHAINS)
async def test_groups_equal_the_dumps_grouping_by_start_function_and_creation_site(go_target, toolchain, strip):
    target = _start(go_target, toolchain, strip, "-workload", "park", "-n", str(PARKED))
    async with _sources(target.pid) as targets:
        census = (await targets["memory"].goroutine_profile())
        dump = parse_goroutine_dump(await targets["agent"].goroutine_dump_text())
        truth = Counter((g.frames[-1].function, g.created_by.function if g.created_by else "")
                        for g in dump.goroutines)
        mine: Counter[tuple[str, str]] = Counter()
        for group in census.groups:
            mine[(group.frames[0].function, group.created_by or "")] += group.count
        parked = ("gotop.test/targets/internal/workload.parkedHere", "gotop.test/targets/internal/workload.park")
        assert mine[parked] == truth[parked] == PARKED
        # The rest (the agent's and HTTP servers' own goroutines) is the same, but for the
        # connections that come and go with the requests that read the truth.
        assert sum((mine - truth).values()) <= 3 and sum((truth - mine).values()) <= 3
        group = next(g for g in census.groups if (g.frames[0].function, g.created_by) == parked)
        assert group.states == Counter({"chan receive": PARKED})
        assert group.frames[1].file.endswith("basic.go") and group.frames[1].line > 0
        assert group.label == "gotop.test/targets/internal/workload.parkedHere"


CONNECTIONS = 300  # each served by a goroutine of net/http's server, which ends when it closes


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
async def test_the_count_leaves_out_the_goroutines_that_ended_as_the_census_does(go_target, toolchain):
    """The count is read as runtime.gcount() computes it: every goroutine made, less the dead
    ones on the free lists (the scheduler's and each P's: their fields changed in go1.25)
    and the system ones. 300 connections to net/http/pprof's server start 300 goroutines;
    once they close, those goroutines are dead and kept for reuse: the count falls back
    to what the census of every `g` finds, in a stripped build (allp and sched found
    from machine code) of each toolchain."""
    target = _start(go_target, toolchain, "sw", "-workload", "park", "-n", str(PARKED))
    reader = MemoryReader(target.pid, Scanner().inspect(target.pid).go_version)

    def counted() -> tuple[int, int] | None:
        """(count, census), if neither was torn by the running program."""
        try:
            return reader.read().stats.goroutines, reader.census().user
        except ReadingRejected:
            return None

    before = await eventually(lambda: (found := counted()) and found[0] == found[1] and found)
    host, port = target.http_addr.rsplit(":", 1)
    connections = [socket.create_connection((host, int(port))) for _ in range(CONNECTIONS)]
    try:
        await eventually(lambda: (found := counted()) and min(found) >= before[0] + CONNECTIONS)
    finally:
        for connection in connections:
            connection.close()
    after = await eventually(lambda: (found := counted()) and found[0] == found[1] <= before[0] + 3 and found)
    assert after[0] >= PARKED


async def test_the_goroutine_count_follows_a_leak(go_target):
    target = go_target("plain", args=["-workload", "leak-recv", "-n", "20"])
    proc = Scanner().inspect(target.pid)
    assert proc.memory, proc.memory_note
    reader = MemoryReader(target.pid, proc.go_version)
    first = reader.read().stats.goroutines
    assert first is not None
    await eventually(lambda: reader.read().stats.goroutines >= first + 20)



async def test_blocked_goroutines_wait_from_the_gc_that_found_them(go_target):
    """The runtime stamps a blocked goroutine's waitsince when a GC first finds it so,
    with the time of the last mark termination (work.tstart: none before the first GC
    ends, so the first GC leaves it unstamped): after two, the parked group has a wait
    time, under a minute."""
    target = go_target("agentpprof", args=["-workload", "park", "-n", str(PARKED)])
    proc = Scanner().inspect(target.pid)
    reader = MemoryReader(target.pid, proc.go_version)
    parked = "gotop.test/targets/internal/workload.parkedHere"
    async with Target.for_process(proc, only="agent") as agent:
        await agent.gc()
        await agent.gc()
    group = next(g for g in reader.census().profile.groups if g.frames[0].function == parked)
    assert group.count == PARKED and group.max_wait_minutes == 0


def test_the_binaries_mapped_are_bounded_and_their_readers_keep_theirs(go_target, monkeypatch):
    """Past MAX_BINARIES the oldest binary's map leaves the cache (each holds a mapping and a
    descriptor; a dev loop makes a new binary at each build); its process's reader goes on."""
    monkeypatch.setattr(memory, "MAX_BINARIES", 1)
    monkeypatch.setattr(memory, "_maps", OrderedDict())
    first, second = (go_target(kind, args=["-workload", "park", "-n", "30"]) for kind in ("plain", "pprofonly"))
    scanner = Scanner()
    readers = [MemoryReader(t.pid, scanner.inspect(t.pid).go_version) for t in (first, second)]
    assert len(memory._maps) == 1
    for reader in readers:
        assert reader.read().stats.goroutines >= 30
        assert any(g.count == 30 for g in reader.census().profile.groups)


def test_a_census_of_a_binary_with_symbols_loads_no_disassembler(go_target):
    """capstone costs gotop 12 MB of RSS: only a stripped binary's runtime variables need it,
    not the `go f(x)` wrappers a census names by the function they start (parkedHere, here)."""
    target = _start(go_target, "go", "plain", "-workload", "park", "-n", str(PARKED))
    census = (f"target = Target.for_process(Scanner().inspect({target.pid}), only='memory')\n"
              "groups = asyncio.run(target.goroutine_profile()).groups\n"
              "print(sum(g.count for g in groups if g.frames[0].function.endswith('.parkedHere')), "
              "'capstone' in sys.modules)")
    script = "import asyncio, sys\nfrom gotop.discovery.processes import Scanner\n" \
             "from gotop.engine.target import Target\n" + census
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == [str(PARKED), "False"], out.stderr


def test_reading_a_release_with_a_layout_table_loads_no_pyelftools(go_target):
    """pyelftools costs the TUI 2.5 MB of RSS: the headers, symbols and pclntab of a binary are
    read without it, and its DWARF only where no layout table fits the binary's release."""
    target = _start(go_target, "go", "plain", "-workload", "park", "-n", str(PARKED))
    script = ("import asyncio, sys\nfrom gotop.discovery.processes import Scanner\n"
              "from gotop.engine.target import Target\n"
              f"target = Target.for_process(Scanner().inspect({target.pid}), only='memory')\n"
              "groups = asyncio.run(target.goroutine_profile()).groups\n"
              "print(sum(g.count for g in groups), any(m.split('.')[0] == 'elftools' for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    count, elftools_loaded = out.stdout.split()
    assert int(count) >= PARKED and elftools_loaded == "False", out.stderr

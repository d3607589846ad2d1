"""client_golang's generations of Go collector names, served by targets of our own.

tests/targets/promold serves /metrics with client_golang v1.11.1, whose Go
collector calls runtime.ReadMemStats and serves the MemStats names alone;
promnew with v1.25.0, whose collector reads runtime/metrics: its default names,
the runtime/metrics rules on top (-names both), or those alone (-names runtime).
Each is a module of its own (its go.mod pins the version), built through the
module proxy; they serve /metrics and nothing else (no agent, pprof or expvar),
so gotop finds them as it finds node_exporter: by the /metrics probe.

What gotop reads through /metrics is checked against what the memory source
reads of the same process just before and just after, and against what the
program was made to do (N parked goroutines, N retained blocks, GOMAXPROCS,
GOGC and GOMEMLIMIT set in its environment).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import partial

import pytest
from gotargets import TOOLCHAINS, go_version
from waiting import first_result

from gotop.discovery.processes import Scanner
from gotop.engine.target import Target
from gotop.model.memstats import MemStats
from gotop.model.prometheus import parse_metrics
from gotop.sources.http import PprofClient
from gotop.sources.metrics import MetricsClient


@dataclass(frozen=True)
class Generation:
    """A client_golang version serving /metrics, as a target built with a toolchain."""

    target: str  # promold: client_golang v1.11.1; promnew: v1.25.0
    args: tuple[str, ...] = ()
    toolchain: str = "go"

    @property
    def old(self) -> bool:
        return self.target == "promold"


GENERATIONS = {
    "v1.11": Generation("promold"),
    "v1.11-go1.19": Generation("promold", toolchain="go1.19"),  # an old client on an old runtime, as Debian's etcd
    "v1.25": Generation("promnew"),
    "v1.25-both": Generation("promnew", ("-names", "both")),
    "v1.25-runtime": Generation("promnew", ("-names", "runtime")),
}
SCRAPE_GOROUTINES = 10  # a scrape's own goroutines: its connection's, the registry's collector workers, ReadMemStats
BLOCK = 64 << 10  # what the retain workload keeps, n times
MIB = 1 << 20
# The program's own settings, which the new collector serves and the old one does not.
SETTINGS = {"GOMAXPROCS": "1", "GOGC": "150", "GOMEMLIMIT": str(512 * MIB)}

# The runtime/metrics names gotop reads, as each generation serves them (base: the
# collector's names of every version, go_goroutines, go_threads, go_info, go_gc_duration_seconds).
RUNTIME_DEFAULT = {"go_gc_gogc_percent", "go_gc_gomemlimit_bytes", "go_sched_gomaxprocs_threads"}
RUNTIME_RULES = RUNTIME_DEFAULT | {
    "go_gc_heap_goal_bytes", "go_gc_cycles_total_gc_cycles_total", "go_gc_cycles_forced_gc_cycles_total",
    "go_gc_heap_allocs_bytes_total", "go_gc_heap_allocs_objects_total", "go_gc_heap_frees_objects_total",
    "go_gc_heap_tiny_allocs_objects_total", "go_gc_heap_objects_objects", "go_sched_goroutines_goroutines",
    *(f"go_memory_classes_{c}_bytes" for c in (
        "heap_objects", "heap_unused", "heap_free", "heap_released", "heap_stacks", "os_stacks",
        "metadata_mspan_inuse", "metadata_mspan_free", "metadata_mcache_inuse", "metadata_mcache_free",
        "metadata_other", "profiling_buckets", "other", "total")),
}
BASE = {"go_goroutines", "go_threads", "go_info", "go_gc_duration_seconds", "go_gc_duration_seconds_count",
        "go_gc_duration_seconds_sum"}
MEMSTATS_NAMES = {f"go_memstats_{name}" for name in (
    "alloc_bytes", "alloc_bytes_total", "sys_bytes", "mallocs_total", "frees_total", "heap_alloc_bytes",
    "heap_sys_bytes", "heap_idle_bytes", "heap_inuse_bytes", "heap_released_bytes", "heap_objects",
    "stack_inuse_bytes", "stack_sys_bytes", "mspan_inuse_bytes", "mspan_sys_bytes", "mcache_inuse_bytes",
    "mcache_sys_bytes", "buck_hash_sys_bytes", "gc_sys_bytes", "other_sys_bytes", "next_gc_bytes",
    "last_gc_time_seconds")}
OLD_ONLY = {"go_memstats_lookups_total", "go_memstats_gc_cpu_fraction"}  # runtime/metrics has neither
SERVED = {  # generation -> the Go series gotop recognises in its /metrics
    "v1.11": BASE | MEMSTATS_NAMES | OLD_ONLY,
    "v1.11-go1.19": BASE | MEMSTATS_NAMES | OLD_ONLY,
    "v1.25": BASE | MEMSTATS_NAMES | RUNTIME_DEFAULT,
    "v1.25-both": BASE | MEMSTATS_NAMES | RUNTIME_RULES,
    # The MemStats names off: the base collector still serves the last GC's time.
    "v1.25-runtime": BASE | {"go_memstats_last_gc_time_seconds"} | RUNTIME_RULES,
}


def gotop(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gotop", *args], capture_output=True, text=True, timeout=90)


def start(go_target, generation: str, *args: str, env: dict[str, str] | None = None):
    g = GENERATIONS[generation]
    return go_target(g.target, toolchain=g.toolchain, args=[*g.args, *args], env=env)


def available() -> list[str]:
    """The generations whose toolchain is installed (tests/run installs Go 1.19 where it can)."""
    return [name for name, g in GENERATIONS.items() if TOOLCHAINS[g.toolchain].available()]


async def metrics_reading(target):
    """What gotop's /metrics source reads of a target, through its own client."""
    async with PprofClient(f"http://{target.http_addr}") as http:
        return await MetricsClient(http, "/metrics").reading()


def test_list_shows_each_generation_s_metrics_and_nothing_else(go_target):
    targets = {generation: start(go_target, generation) for generation in available()}
    listing = gotop("list", "--json")
    table = gotop("list")
    assert listing.returncode == 0 and table.returncode == 0, listing.stderr + table.stderr
    procs = {p["pid"]: p for p in json.loads(listing.stdout)["processes"]}
    rows = {int(row[0]): row for row in map(str.split, table.stdout.splitlines()) if row and row[0].isdigit()}
    for generation, target in targets.items():
        proc = procs[target.pid]
        assert proc["metrics"] == f"http://{target.http_addr}/metrics", generation
        assert (proc["agent"], proc["pprof"], proc["expvar"]) == (None, None, None), generation
        via = rows[target.pid][3:rows[target.pid].index(proc["go_version"])]
        assert via == (["M", "R"] if proc["memory"] else ["R"]), generation


@pytest.mark.parametrize("generation", GENERATIONS)
async def test_each_generation_serves_its_own_names(go_target, generation):
    reading = await metrics_reading(start(go_target, generation))
    assert reading.go_series == SERVED[generation]


async def test_the_generations_differ_in_what_gotop_can_read(go_target):
    """The old collector has no GOMAXPROCS, GOGC or GOMEMLIMIT: gotop leaves them
    out, not guessed. Every generation serves the heap goal, under one name or the other."""
    for generation in available():
        target = start(go_target, generation, env=SETTINGS)
        reading = await metrics_reading(target)
        m = reading.memstats
        shown = gotop("snapshot", str(target.pid), "--source", "metrics")
        assert shown.returncode == 0, shown.stderr
        old = GENERATIONS[generation].old
        if old:
            assert (reading.stats.gomaxprocs, reading.gogc_percent, reading.memory_limit) == (None, None, None)
            assert m.gc_cpu_fraction is not None and m.lookups is not None, generation
        else:
            assert (reading.stats.gomaxprocs, reading.gogc_percent, reading.memory_limit) == (1, 150, 512 * MIB)
            assert m.gc_cpu_fraction is None and m.lookups is None, generation
        for said in ("GOMAXPROCS 1", "GOGC 150", "GOMEMLIMIT 512 MiB"):
            assert (said in shown.stdout) != old, (generation, said, shown.stdout)
        assert m.next_gc is not None and m.next_gc > 0 and "next GC " in shown.stdout, generation


async def test_runtime_metrics_names_give_what_client_golang_derives_its_memstats_names_from(go_target):
    """One scrape of -names both serves each figure twice, from one runtime/metrics
    reading: gotop's sums of the runtime/metrics names equal client_golang's own."""
    target = start(go_target, "v1.25-both", "-workload", "retain", "-n", "100")
    async with PprofClient(f"http://{target.http_addr}") as http:
        answer = await http.get("/metrics", max_bytes=16 * MIB, headers={"Accept": "text/plain; version=0.0.4"})
    body = answer.body.decode()
    both = parse_metrics(body, answer.content_type)
    runtime_only = parse_metrics(
        "".join(line for line in body.splitlines(keepends=True)
                if not line.removeprefix("# HELP ").removeprefix("# TYPE ").startswith("go_memstats_")),
        answer.content_type)
    assert not runtime_only.go_series & MEMSTATS_NAMES
    m = both.memstats
    derived = {"lookups", "gc_cpu_fraction", "last_gc"}  # not derived: not served by v1.25, or only as MemStats
    expected = MemStats(**{field: getattr(m, field) for field in MemStats.__dataclass_fields__
                           if field not in derived and getattr(m, field) is not None})
    assert runtime_only.memstats == expected
    assert m.heap_alloc >= 100 * BLOCK and m.num_gc > 0
    assert (runtime_only.stats, runtime_only.open_fds, runtime_only.gc_pause_quantiles) == (
        both.stats, both.open_fds, both.gc_pause_quantiles)


# -- gotop's figures through /metrics, between two readings of the memory -------------------------------------

WORKLOADS = {"park": 300, "retain": 200}  # workload -> n: parked goroutines, or retained blocks of 64 KiB


@pytest.mark.parametrize("workload", WORKLOADS)
@pytest.mark.parametrize("generation", GENERATIONS)
async def test_a_snapshot_through_metrics_agrees_with_the_memory_between_two_readings(go_target, generation,
                                                                                        workload):
    n = WORKLOADS[workload]
    target = start(go_target, generation, "-workload", workload, "-n", str(n), env=SETTINGS)
    proc = Scanner().inspect(target.pid)
    assert proc.metrics == f"http://{target.http_addr}/metrics"
    if not proc.memory:
        pytest.skip(f"the target's memory cannot be read here: {proc.memory_note}")
    async with Target.for_process(proc, only="memory") as memory:
        before, snapshot, after = await first_result(partial(_between_two_readings, memory, target.pid),
                                                     failing="a GC ran between the readings")
    assert snapshot["source"] == {"memstats": "metrics", "stats": "metrics", "process": "procfs"}
    m, was, now = snapshot["memstats"], before.memstats, after.memstats
    assert m["num_gc"] == was.num_gc
    assert m["next_gc"] == was.next_gc
    assert m["pause_total_ns"] == pytest.approx(was.pause_total_ns, abs=1000)  # seconds as float64 in /metrics
    assert m["last_gc"] == pytest.approx(was.last_gc, abs=1000)
    # The heap grows with every allocation (a scrape allocates): each figure lies between the two readings,
    # give or take what the memory source counts as cached for allocation.
    for figure in ("heap_alloc", "heap_inuse", "total_alloc"):
        assert getattr(was, figure) - MIB <= m[figure] <= getattr(now, figure) + MIB, figure
    low, high = sorted((before.stats.goroutines, after.stats.goroutines))
    assert low <= snapshot["goroutines"] <= high + SCRAPE_GOROUTINES
    assert before.stats.os_threads <= snapshot["os_threads"] <= after.stats.os_threads
    if GENERATIONS[generation].old:  # not served: left out, not guessed
        assert (snapshot["gomaxprocs"], m["gc_percent"], m["memory_limit"]) == (None, None, None)
    else:
        assert snapshot["gomaxprocs"] == before.stats.gomaxprocs == 1
        assert m["gc_percent"] == was.gc_percent == 150
        assert m["memory_limit"] == was.memory_limit == 512 * MIB
    # What the workload made.
    if workload == "park":
        assert snapshot["goroutines"] >= n
    else:
        assert m["heap_alloc"] >= n * BLOCK and m["num_gc"] > 0  # GCs ran while the blocks were made


async def _between_two_readings(memory: Target, pid: int):
    """memory, `gotop snapshot --source metrics`, memory: that snapshot, if no GC ran meanwhile."""
    before = await memory.sample()
    snapshot = gotop("snapshot", str(pid), "--source", "metrics", "--json")
    after = await memory.sample()
    assert snapshot.returncode == 0, snapshot.stderr
    same_cycle = before.memstats.num_gc == after.memstats.num_gc
    return (before, json.loads(snapshot.stdout), after) if same_cycle else None


@pytest.mark.parametrize("generation", GENERATIONS)
async def test_open_fds_go_version_and_gc_pauses_through_metrics(go_target, generation):
    """process_open_fds against /proc/PID/fd, go_info against the toolchain that built
    the target, and go_gc_duration_seconds' summary against its own sum."""
    target = start(go_target, generation, "-workload", "retain", "-n", str(WORKLOADS["retain"]))
    async with PprofClient(f"http://{target.http_addr}") as http:
        metrics = MetricsClient(http, "/metrics")
        await metrics.reading("warm")  # the connection the next scrape uses is open from now on

        async def fds_between_two_counts():
            before = len(os.listdir(f"/proc/{target.pid}/fd"))
            reading = await metrics.reading(object())  # a new poll: a new scrape
            after = len(os.listdir(f"/proc/{target.pid}/fd"))
            return (before, reading) if before == after else None

        fds, reading = await first_result(fds_between_two_counts, failing="the descriptors moved during a scrape")
    # Older procfs counts the descriptor it reads /proc/self/fd with; newer asks the kernel for the count.
    assert reading.open_fds in (fds, fds + 1)
    assert reading.go_version == go_version(GENERATIONS[generation].toolchain)
    m, pauses = reading.memstats, dict(reading.gc_pause_quantiles)
    assert list(pauses) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert m.num_gc > 0 and 0 < pauses[1.0] <= m.pause_total_ns
    assert list(pauses.values()) == sorted(pauses.values())

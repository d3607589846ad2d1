"""The leak and healthy workloads of the Go test targets (tests/targets/internal/workload),
watched from outside as a monitor would: goroutine groups through net/http/pprof, the heap
right after a forced GC, descriptors and sockets through psutil. Leaks must grow; healthy
busy workloads must stay bounded. All targets run and are sampled at the same time (the
file takes about 20 s). On Go 1.27 the runtime's goroutineleak profile must prove the
channel leaks and stay quiet on the healthy goroutines.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from gotargets import TOOLCHAINS, RunningTarget, start_target
from targetio import http_get

pytestmark = pytest.mark.go  # every test runs Go targets (gotargets.start_target)
WORKLOAD = "gotop.test/targets/internal/workload"
ROUNDS = 12  # samples per target, one a second
WARM_UP = 6  # rounds after which every healthy workload has reached its plateau
SETTLE = 2  # rounds after which a bounded group would have reached its level
KIB, MIB = 1 << 10, 1 << 20
DEFAULT_N = 100

LEAKED_BY = {
    "leak-send": "leakySendResult",
    "leak-recv": "leakyAwaitReply",
    "leak-ticker": "leakyTickerLoop",
    "leak-select": "leakySelectForever",
}


@dataclass(frozen=True, slots=True)
class Run:
    """One target to observe: a binary running a workload with -n."""

    workload: str
    binary: str = "agentpprof"
    n: int = DEFAULT_N

    def args(self) -> list[str]:
        return ["-workload", self.workload, "-n", str(self.n)]


@dataclass(frozen=True, slots=True)
class Group:
    """A goroutine group of a debug=1 profile: its count and the functions on its stack."""

    count: int
    functions: frozenset[str]


@dataclass(frozen=True, slots=True)
class Sample:
    groups: tuple[Group, ...]  # empty without net/http/pprof
    heap_alloc: int | None  # HeapAlloc right after a forced GC
    total_alloc: int | None
    num_fds: int
    exe_files: int  # descriptors open on the target's own executable
    tcp: tuple  # psutil connections of the process, any state

    def goroutines(self, function: str) -> int:
        """Goroutines with `function` (of the workload package) on their stack."""
        name = f"{WORKLOAD}.{function}"
        return sum(g.count for g in self.groups if name in g.functions)

    def biggest_group(self, function: str) -> Group:
        name = f"{WORKLOAD}.{function}"
        return max((g for g in self.groups if name in g.functions), key=lambda g: g.count,
                   default=Group(0, frozenset()))

    def established(self) -> int:
        return sum(c.status == psutil.CONN_ESTABLISHED for c in self.tcp)


_HEADER = re.compile(r"(\d+) @ ")
_FRAME = re.compile(r"#\t+0x[0-9a-f]+\t+(\S+)\+0x[0-9a-f]+\t")


def parse_groups(text: str) -> tuple[Group, ...]:
    """Groups of a count profile at debug=1 (goroutine, goroutineleak)."""
    groups: list[Group] = []
    count, functions = 0, set()
    for line in text.splitlines():
        if header := _HEADER.match(line):
            if count:
                groups.append(Group(count, frozenset(functions)))
            count, functions = int(header.group(1)), set()
        elif frame := _FRAME.match(line):
            functions.add(frame.group(1))
    if count:
        groups.append(Group(count, frozenset(functions)))
    return tuple(groups)


def memstat(heap_text: str, name: str) -> int:
    return int(re.search(rf"^# {name} = (\d+)$", heap_text, re.M).group(1))


def take_sample(target: RunningTarget, proc: psutil.Process) -> Sample:
    # Descriptors first, before this sample's own HTTP connections exist.
    exe = proc.exe()
    exe_files = sum(f.path == exe for f in proc.open_files())
    num_fds = proc.num_fds()
    tcp = tuple(proc.net_connections("tcp"))
    groups, heap_alloc, total_alloc = (), None, None
    if target.http_addr:
        groups = parse_groups(http_get(target.http_addr, "/debug/pprof/goroutine?debug=1").decode())
        heap = http_get(target.http_addr, "/debug/pprof/heap?gc=1&debug=1").decode()
        heap_alloc, total_alloc = memstat(heap, "HeapAlloc"), memstat(heap, "TotalAlloc")
    return Sample(groups, heap_alloc, total_alloc, num_fds, exe_files, tcp)


RUNS = [
    *(Run(name) for name in [*LEAKED_BY, "leak-all", "retain-slice", "retain-map",
                             "leak-fds", "leak-sockets", "healthy-churn", "healthy-pool",
                             "healthy-spawn", "healthy-cache", "healthy-files",
                             "healthy-conns"]),
    # Other binaries and another -n: every binary links every workload.
    Run("leak-fds", binary="plain", n=50),
    Run("leak-sockets", binary="plain", n=50),
    Run("healthy-pool", binary="pprofonly", n=30),
    Run("healthy-cache", n=300),  # full after 15 s: still filling while sampled, however late it starts
]


@pytest.fixture(scope="module")
def observed(tmp_path_factory) -> dict[Run, list[Sample]]:
    """Start every run at once and sample each once a second for ROUNDS rounds."""
    if not TOOLCHAINS["go"].available():
        pytest.skip("Go is not installed")
    started: list[RunningTarget] = []
    lock = threading.Lock()

    def watch(run: Run, config_dir: Path) -> list[Sample]:
        target = start_target(run.binary, args=run.args(), config_dir=config_dir)
        with lock:
            started.append(target)
        proc = psutil.Process(target.pid)
        samples = []
        for _ in range(ROUNDS):
            samples.append(take_sample(target, proc))
            time.sleep(1)
        return samples

    try:
        with ThreadPoolExecutor(len(RUNS)) as pool:
            config_dirs = [tmp_path_factory.mktemp("gops") for _ in RUNS]  # not thread-safe
            return dict(zip(RUNS, pool.map(watch, RUNS, config_dirs)))
    finally:
        for target in started:
            target.kill()


def assert_grows(series: list[int], min_growth: int, tolerance: int = 0) -> None:
    """Never falls (beyond `tolerance`), and still rises by `min_growth` after SETTLE rounds:
    a level reached quickly (short-lived goroutines, a small pool) does not pass."""
    falls = [(a, b) for a, b in zip(series, series[1:]) if b < a - tolerance]
    assert not falls, f"fell: {falls} in {series}"
    assert series[-1] - series[SETTLE] >= min_growth, series


def spread(series: list[int]) -> int:
    return max(series) - min(series)


# --- leaks ------------------------------------------------------------------------------------

@pytest.mark.parametrize("workload", LEAKED_BY)
def test_goroutine_leak_grows_in_its_own_group(observed, workload):
    samples = observed[Run(workload)]
    leaked = LEAKED_BY[workload]
    # 10 leaks a second: about 90 after SETTLE; a third of that is the floor.
    assert_grows([s.goroutines(leaked) for s in samples], min_growth=30)
    top = samples[-1].biggest_group(leaked)
    assert top.count >= 0.9 * samples[-1].goroutines(leaked)  # one stack holds nearly all
    assert max(samples[-1].groups, key=lambda g: g.count) == top


def test_leak_all_shows_each_pattern_as_a_separate_growing_group(observed):
    samples = observed[Run("leak-all")]
    leak_functions = {f"{WORKLOAD}.{f}" for f in LEAKED_BY.values()}
    for leaked in LEAKED_BY.values():
        biggest = [s.biggest_group(leaked) for s in samples]
        assert_grows([g.count for g in biggest], min_growth=30)
        assert len(biggest[-1].functions & leak_functions) == 1, biggest[-1]


@pytest.mark.parametrize(("workload", "min_growth"), [
    ("retain-slice", 1 * MIB),  # 320 KiB/s nominal: about 2.9 MiB after SETTLE
    ("retain-map", 300 * KIB),  # about 100 KiB/s nominal
])
def test_retained_heap_rises_across_forced_gcs(observed, workload, min_growth):
    samples = observed[Run(workload)]
    assert_grows([s.heap_alloc for s in samples], min_growth, tolerance=64 * KIB)


@pytest.mark.parametrize("run", [Run("leak-fds"), Run("leak-fds", binary="plain", n=50)],
                         ids=["agentpprof", "plain"])
def test_leaked_files_stay_open(observed, run):
    samples = observed[run]
    # 10 (-n 50: 20) a second
    assert_grows([s.exe_files for s in samples], min_growth=30)
    assert_grows([s.num_fds for s in samples], min_growth=30)


@pytest.mark.parametrize("run", [Run("leak-sockets"), Run("leak-sockets", binary="plain", n=50)],
                         ids=["agentpprof", "plain"])
def test_leaked_connections_stay_open_at_both_ends(observed, run):
    samples = observed[run]
    # The workload's listener: the one the process's own connections dial.
    ports = [c.laddr.port for c in samples[0].tcp if c.status == psutil.CONN_LISTEN]
    dialled = {c.raddr.port for c in samples[-1].tcp if c.raddr}
    (listener,) = set(ports) & dialled
    server_ends = [sum(c.laddr.port == listener and c.status == psutil.CONN_ESTABLISHED
                       for c in s.tcp) for s in samples]
    client_ends = [sum(bool(c.raddr) and c.raddr.port == listener
                       and c.status == psutil.CONN_ESTABLISHED for c in s.tcp) for s in samples]
    assert_grows(server_ends, min_growth=30)  # 10 (-n 50: 20) a second
    assert_grows(client_ends, min_growth=30)
    # A dialled connection waits in the accept queue for a moment before its server end exists. After a
    # stall of the busy machine the dials it delayed come at once (a second's worth), some while the
    # socket table is read (in pieces): the two counts may differ by as many, either way.
    assert all(abs(c - s) <= 2 + 1000 // run.n for c, s in zip(client_ends, server_ends)), (client_ends, server_ends)


# --- healthy ----------------------------------------------------------------------------------

def test_churn_allocates_much_and_keeps_nothing(observed):
    samples = observed[Run("healthy-churn")]
    allocated = samples[-1].total_alloc - samples[0].total_alloc
    assert allocated > 64 * MIB  # 32 MiB/s nominal
    # A burst (3.2 MiB) may be in flight during the forced GC; nothing accumulates.
    assert max(s.heap_alloc for s in samples) < 8 * MIB
    assert spread([sum(g.count for g in s.groups) for s in samples]) <= 5


@pytest.mark.parametrize("run", [Run("healthy-pool"), Run("healthy-pool", binary="pprofonly", n=30)],
                         ids=["agentpprof", "pprofonly-n30"])
def test_pool_keeps_a_constant_number_of_workers(observed, run):
    samples = observed[run]
    assert [s.goroutines("poolWorker") for s in samples] == [run.n] * ROUNDS
    assert [s.goroutines("feedJobs") for s in samples] == [1] * ROUNDS
    assert samples[-1].total_alloc - samples[0].total_alloc > 1 * MIB  # jobs of 4 KiB, 200/s


def test_spawned_goroutines_come_and_go(observed):
    counts = [s.goroutines("shortLivedTask") for s in observed[Run("healthy-spawn")]]
    # 100 started a second, living 50-500 ms: about 28 at a time. A leak would pass 1000.
    assert max(counts) > 0
    assert max(counts) < 100, counts


def test_cache_grows_to_a_plateau(observed):
    # 100 entries of 4-16 KiB are full after 5 s, before WARM_UP however late the first sample
    # came (a loaded machine); then each put evicts one entry.
    heap = [s.heap_alloc for s in observed[Run("healthy-cache")]]
    assert min(heap[WARM_UP:]) > 1 * MIB, heap  # about 1 MiB of values, beside the program's 150 KiB
    assert spread(heap[WARM_UP:]) < 256 * KIB, heap
    # 300 entries fill for 15 s: the heap grows through the rounds.
    filling = [s.heap_alloc for s in observed[Run("healthy-cache", n=300)]]
    assert filling[-1] - filling[0] > 512 * KIB, filling


def test_files_are_opened_and_closed_with_a_steady_count(observed):
    counts = [s.exe_files for s in observed[Run("healthy-files")]]
    steady = counts[WARM_UP:]  # the ring is full after 2 s
    # A new file is open for a moment before the oldest closes: never more than n + 1.
    # A reading can catch fewer: psutil lists the descriptors, then reads each, and one
    # closed in between is not counted (a loaded machine sees several close), so the
    # typical reading is what must sit at n.
    assert max(steady) <= DEFAULT_N + 1, counts
    assert min(steady) >= DEFAULT_N - 10, counts
    assert abs(statistics.median(steady) - DEFAULT_N) <= 1, counts


def test_connections_are_dialled_and_closed_with_a_steady_count(observed):
    samples = observed[Run("healthy-conns")]
    sockets = [len(s.tcp) for s in samples[WARM_UP:]]
    # Two ends per open connection, plus listeners and a few closing at any moment.
    # Never more; a reading can catch fewer (a loaded machine catches many between
    # close and the next dial), so the typical reading is what must sit at 2n.
    assert all(n <= 2 * DEFAULT_N + 10 for n in sockets), sockets
    assert abs(statistics.median(sockets) - 2 * DEFAULT_N) <= 10, sockets
    assert spread([s.goroutines("serveUntilClosed") for s in samples[WARM_UP:]]) <= 4


# --- bad -n -----------------------------------------------------------------------------------

def test_non_positive_n_stops_the_target_with_a_message(tmp_path):
    if not TOOLCHAINS["go"].available():
        pytest.skip("Go is not installed")
    with pytest.raises(RuntimeError, match="-n must be positive, got 0"):
        start_target("plain", args=["-workload", "leak-send", "-n", "0"], config_dir=tmp_path)


# --- Go 1.27: the runtime's own goroutine leak detection --------------------------------------

def goroutine_groups(target: RunningTarget, profile: str) -> tuple[Group, ...]:
    return parse_groups(http_get(target.http_addr, f"/debug/pprof/{profile}?debug=1").decode())


def count(groups: tuple[Group, ...], function: str) -> int:
    return sum(g.count for g in groups if f"{WORKLOAD}.{function}" in g.functions)


def test_goroutineleak_proves_channel_leaks_but_not_the_ticker_go127(go_target):
    leaky = go_target("agentpprof", toolchain="go1.27", args=["-workload", "leak-all"])
    pool = go_target("agentpprof", toolchain="go1.27", args=["-workload", "healthy-pool"])
    spawn = go_target("agentpprof", toolchain="go1.27", args=["-workload", "healthy-spawn"])
    deadline = time.monotonic() + 30  # a safety net: 20 leaks of each kind take 2 s
    while min(count(goroutine_groups(leaky, "goroutine"), f) for f in LEAKED_BY.values()) < 20:
        assert time.monotonic() < deadline, "leak-all did not leak"
        time.sleep(0.5)

    before = goroutine_groups(leaky, "goroutine")
    leaked = goroutine_groups(leaky, "goroutineleak")
    # Blocked on channels only they can reach: every one found (bar a few leak-send
    # goroutines still sleeping in their slow computation at the first look).
    for function in ["leakySendResult", "leakyAwaitReply", "leakySelectForever"]:
        assert count(leaked, function) >= count(before, function) - 5, (function, leaked)
    # The ticker's channel stays reachable from the runtime's timer: not provably leaked,
    # so gotop must rely on the growing group for this pattern.
    assert count(before, "leakyTickerLoop") >= 20
    assert count(leaked, "leakyTickerLoop") == 0

    # Waiting goroutines that are not leaked: a pool fed from a ticker loop, and tasks
    # whose reply a pending timer will deliver.
    assert count(goroutine_groups(pool, "goroutine"), "poolWorker") == DEFAULT_N
    assert goroutine_groups(pool, "goroutineleak") == ()
    assert count(goroutine_groups(spawn, "goroutine"), "shortLivedTask") > 0
    assert goroutine_groups(spawn, "goroutineleak") == ()

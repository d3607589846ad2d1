"""The memory source where nothing is made easy for it.

  - Programs nobody here wrote: Debian's etcd, prometheus and containerd (stripped,
    Go 1.19; tests/services.py runs them), read from their memory through the
    machine code of their runtime, against what their own /metrics says at the
    same moment.
  - `gotop check` on plain targets (no agent, no pprof): what it watches comes from
    their memory and /proc alone (three checks at once, for the default 30 s).
  - A program whose goroutines and heap change under the reader, and one that
    exits while it is read: a reading makes sense or is dropped cleanly.
  - Layouts whose offsets are wrong and binaries with damaged bytes: a clean error,
    never another exception or a hang.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import Counter, OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import MappingProxyType

import httpx
import pytest
from elftools.elf.elffile import ELFFile
from gotargets import RunningTarget, go_version, start_target, target_binary
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from leakcases import RETAINING_ENV, UNNAMED_HEAP, Case, findings_of, matches, run_check
from mutations import damaged_in
from waiting import first_result

from gotop.cli import main
from gotop.discovery.buildinfo import read_build_info
from gotop.discovery.processes import Scanner
from gotop.engine.target import Sample, Target
from gotop.model.golayout import FieldLayout, RuntimeLayout, go_minor, layout_table
from gotop.model.goruntime import (
    G_FIELDS,
    GC_CONTROLLER_FIELDS,
    MHEAP_FIELDS,
    MSTATS_FIELDS,
    P_FREE_FIELDS,
    SCHED_FIELDS,
    GoroutineCensus,
    ReadingRejected,
)
from gotop.model.prometheus import MetricsReading, parse_metrics
from gotop.sources import memory
from gotop.sources.gobinary import GoBinary
from gotop.sources.memory import MemoryReader, MemoryReading, MemoryUnavailable, memory_access
from gotop.sources.procmem import MemoryUnreadable, ProcessMemory

WORKLOAD = "gotop.test/targets/internal/workload"
STRIPPED = ("-ldflags=-s -w",)
SAFETY_TIMEOUT = 60.0  # a hung reader fails the test; never a timing assertion


# --- Debian's services against their own /metrics ------------------------------------------------

SERVICES = ["etcd_service", "prometheus_service", "containerd_service"]
METRICS_TEXT = "text/plain; version=0.0.4"  # the text format: see gotop/model/prometheus.py
# go_goroutines counts the goroutines that serve the /metrics request itself: its
# connection's background reader and client_golang's collector workers (4 or 5 in
# these services); the memory reading between two requests has only the idle
# connection's. The services' own goroutines may come and go meanwhile.
GOROUTINE_SLACK = 6
# Gather starts another worker whenever the ones it has are busy, up to one per collector:
# on a loaded machine a scrape counted 7 more than the reading between two (containerd: 13
# against 20, then 17), so a scrape may count this many more than the idle service.
SCRAPE_GOROUTINES = 2 * GOROUTINE_SLACK
# Go 1.19 has no running count of the heap in use: the memory reads heapLive, which
# counts the spans cached for allocation as full (as tests/test_memory_source.py allows).
HEAP_SLACK = 1 << 20
FLOAT_SECONDS_NS = 1000  # /metrics gives seconds as float64: nanoseconds of 1.8e9 s are lost


@pytest.fixture(params=SERVICES)
def service(request):
    return request.getfixturevalue(request.param)


def _metrics(client: httpx.Client, url: str) -> MetricsReading:
    response = client.get(url, headers={"Accept": METRICS_TEXT})
    assert response.status_code == 200, response.text[:200]
    return parse_metrics(response.content, response.headers["content-type"])


def test_a_debian_service_is_stripped_and_its_runtime_is_found_in_its_machine_code(service):
    exe = f"/proc/{service.pid}/exe"
    with open(exe, "rb") as f:
        sections = {section.name for section in ELFFile(f).iter_sections()}
    assert ".gopclntab" in sections and not sections & {".symtab", ".debug_info", ".zdebug_info"}, sections
    version = read_build_info(exe).go_version
    reader = MemoryReader(service.pid, version)
    assert reader.map.found_by == dict.fromkeys(reader.map.addresses, "machine code")
    assert reader.map.layout.origin.startswith(f"table go1.{go_minor(version)}.")
    assert reader.map.origin == f"{reader.map.layout.origin}, machine code"


async def test_a_debian_service_read_from_its_memory_agrees_with_its_own_metrics(service):
    proc = Scanner().inspect(service.pid)
    assert proc.memory, proc.memory_note
    target = Target.for_process(proc, only="memory")
    with httpx.Client(timeout=10.0) as client:
        async def between_two_scrapes() -> tuple[MetricsReading, Sample, MetricsReading] | None:
            """/metrics, memory, /metrics: the memory reading, if no GC ran meanwhile."""
            before = await asyncio.to_thread(_metrics, client, service.metrics_url)
            sample = await target.sample()
            after = await asyncio.to_thread(_metrics, client, service.metrics_url)
            return (before, sample, after) if before.memstats.num_gc == after.memstats.num_gc else None

        async with target:
            before, sample, after = await first_result(between_two_scrapes, failing="a GC ran between the scrapes")
    assert sample.sources["memstats"] == "memory" and sample.sources["stats"] == "memory"
    m, truth = sample.memstats, before.memstats
    figures = (f"memory {sample.stats.goroutines} goroutines, {m.num_gc} GCs, heap {m.heap_alloc}, goal {m.next_gc}"
               f"; /metrics {before.stats.goroutines}/{after.stats.goroutines} goroutines, {truth.num_gc} GCs,"
               f" heap {truth.heap_alloc}/{after.memstats.heap_alloc}, goal {truth.next_gc}")
    assert m.num_gc == truth.num_gc, figures  # go_gc_duration_seconds_count
    assert m.next_gc == truth.next_gc == after.memstats.next_gc, figures  # go_memstats_next_gc_bytes
    assert abs(m.pause_total_ns - truth.pause_total_ns) <= FLOAT_SECONDS_NS  # go_gc_duration_seconds_sum
    assert abs(m.last_gc - truth.last_gc) <= FLOAT_SECONDS_NS  # go_memstats_last_gc_time_seconds
    low, high = sorted((truth.heap_alloc, after.memstats.heap_alloc))  # go_memstats_heap_alloc_bytes
    assert low - HEAP_SLACK <= m.heap_alloc <= high + HEAP_SLACK, figures
    for scrape in (before, after):  # go_goroutines
        counted = scrape.stats.goroutines
        assert counted - SCRAPE_GOROUTINES <= sample.stats.goroutines <= counted + GOROUTINE_SLACK, figures
    assert sample.stats.gomaxprocs == int(os.environ.get("GOMAXPROCS", len(os.sched_getaffinity(service.pid))))


def test_gotop_snapshot_and_stack_through_the_memory_alone_on_a_debian_service(service, capsys):
    def run(*argv: str) -> dict:
        assert main(list(argv)) == 0
        return json.loads(capsys.readouterr().out)

    snapshot = run("snapshot", str(service.pid), "--source", "memory", "--json")
    assert snapshot["source"] == {"memstats": "memory", "stats": "memory", "process": "procfs"}
    assert snapshot["goroutines"] > 0 and snapshot["memstats"]["num_gc"] > 0 and snapshot["problems"] == []
    stack = run("stack", str(service.pid), "--groups", "--source", "memory", "--json")
    assert sum(g["count"] for g in stack["groups"]) == stack["total"] > 0
    assert all(g["label"] and g["frames"][0]["line"] > 0 for g in stack["groups"]), stack["groups"]
    by_label = {g["label"]: g for g in stack["groups"]}
    # What every one of them runs: the main goroutine, and os/signal's loop (they all catch signals).
    assert by_label["runtime.main"]["count"] == 1
    signals = by_label["os/signal.loop"]
    assert (signals["count"], signals["states"]) == (1, {"syscall": 1})
    assert signals["frames"][0]["file"].endswith("os/signal/signal_unix.go")


# --- gotop check on plain targets: memory and /proc only ------------------------------------------

# The healthy ones run at the leaking one's GOGC too: the heap detector judges each on as
# many GC cycles (healthy-pool at the default GOGC runs about 6 in 30 s, the fewest it judges).
PLAIN_CHECKS = {
    "goroutine leak": (Case("leak-send", binary="plain"),),
    "heap leak": (Case("retain-slice", binary="plain"),),
    "healthy": (Case("healthy-pool", binary="plain"), Case("healthy-churn", binary="plain")),
}


@dataclass
class PlainCheck:
    returncode: int
    report: dict
    pids: dict[Case, int]


@pytest.fixture(scope="module")
def plain_checks(tmp_path_factory) -> dict[str, PlainCheck]:
    """Every case started, then the three checks run at once for the default 30 s."""
    running: list[RunningTarget] = []
    try:
        pids: dict[str, dict[Case, int]] = {}
        for name, cases in PLAIN_CHECKS.items():
            for case in cases:
                running.append(start_target(case.binary, args=case.args(), env=RETAINING_ENV,
                                            config_dir=tmp_path_factory.mktemp("gops")))
            pids[name] = {case: target.pid for case, target in zip(cases, running[-len(cases):])}
        with ThreadPoolExecutor(len(PLAIN_CHECKS)) as pool:
            runs = {name: pool.submit(run_check, *map(str, p.values()), "--json") for name, p in pids.items()}
            results = {name: run.result() for name, run in runs.items()}
    finally:
        for target in running:
            target.kill()
    checks = {}
    for name, result in results.items():
        assert result.stdout.startswith("{"), result.stderr
        checks[name] = PlainCheck(result.returncode, json.loads(result.stdout), pids[name])
    return checks


def _target_report(check: PlainCheck, case: Case) -> dict:
    return next(t for t in check.report["targets"] if t["pid"] == check.pids[case])


@pytest.mark.go
def test_check_finds_a_goroutine_leak_at_its_place_in_a_plain_process(plain_checks):
    check = plain_checks["goroutine leak"]
    (case,) = check.pids
    findings = findings_of(check.report, check.pids[case])
    (expected,) = case.expected
    assert len(findings) == 1 and matches(expected, findings[0]), findings
    assert findings[0]["where"].endswith(")") and "(leak_goroutines.go:" in findings[0]["where"], findings
    target = _target_report(check, case)
    # No pprof: the groups it judged were read from the memory.
    assert target["watched"]["goroutines"]["watched"] and target["checked"]["goroutine_profiles"] >= 5, target
    assert (check.returncode, check.report["verdict"], target["verdict"]) == (1, "leak", "leak")


@pytest.mark.go
def test_check_finds_a_heap_leak_in_a_plain_process(plain_checks):
    check = plain_checks["heap leak"]
    (case,) = check.pids
    findings = findings_of(check.report, check.pids[case])
    # No heap profile names the site: the live heap after each GC, read from the memory, shows it.
    assert [(f["kind"], f["where"]) for f in findings] == [("heap", UNNAMED_HEAP)], findings
    assert findings[0]["rate_per_min"] > 0 and findings[0]["evidence"], findings
    target = _target_report(check, case)
    assert target["watched"]["heap"]["watched"] and target["checked"]["gc_cycles"] >= 6, target
    assert (check.returncode, check.report["verdict"], target["verdict"]) == (1, "leak", "leak")


@pytest.mark.go
def test_check_finds_nothing_in_healthy_busy_plain_processes(plain_checks):
    check = plain_checks["healthy"]
    # In full (a repr is cut short): a rare false finding under load is to be understood from it.
    assert check.report["findings"] == [], json.dumps({"pids": {str(c): p for c, p in check.pids.items()},
                                                       "findings": check.report["findings"]}, indent=1)
    assert (check.returncode, check.report["verdict"]) == (0, "ok"), check.report["targets"]
    for target in check.report["targets"]:  # every detector judged each of them
        assert target["verdict"] == "ok" and all(w["watched"] for w in target["watched"].values()), target


# --- torn reads ---------------------------------------------------------------------------------

SLOTS = 200  # churn-spawn's -n: at most this many goroutines hold a slot
RETURNING = 10  # and a few that gave theirs back may still be on their way out
READINGS = 300
MAX_READINGS = 20_000  # a safety net for a target that gets no CPU: its GC must run during the readings
CHURN_ONCE, SPAWNER = f"{WORKLOAD}.churnOnce", f"{WORKLOAD}.churnSpawn.func1"


def _makes_sense(reading: MemoryReading, census: GoroutineCensus, previous: MemoryReading | None) -> None:
    m, stats = reading.memstats, reading.stats
    groups = census.profile.groups
    assert census.user == sum(g.count for g in groups)
    # Counted as runtime.gcount() does, a moment apart from the census: the workload's and main.
    assert 2 <= stats.goroutines <= SLOTS + RETURNING + 2, stats
    started = Counter[str]()
    for group in groups:
        started[group.frames[0].function] += group.count
    # Only what the workload runs; a goroutine that gave its slot back may still be returning.
    assert started.keys() <= {CHURN_ONCE, SPAWNER, "runtime.main"}, started
    assert started[CHURN_ONCE] <= SLOTS + RETURNING and started[SPAWNER] <= 1 and started["runtime.main"] == 1, started
    assert stats.gomaxprocs == 1
    assert 0 < m.heap_alloc < 1 << 30 and m.next_gc > 0, m
    assert (m.heap_marked is None) == (m.num_gc == 0), m  # nothing marked before the first GC
    assert m.heap_marked is None or m.next_gc >= m.heap_marked, m
    if previous is not None:
        assert m.num_gc >= previous.memstats.num_gc and m.pause_total_ns >= previous.memstats.pause_total_ns


def test_readings_of_a_program_changing_under_the_reader_make_sense_or_are_dropped(go_target):
    target = go_target("plain", args=["-workload", "churn-spawn", "-n", str(SLOTS)], env={"GOMAXPROCS": "1"})
    reader = MemoryReader(target.pid, go_version("go"))
    readings: list[MemoryReading] = []
    dropped: list[str] = []

    def raced() -> bool:
        """Whether a GC ran while the memory was read (the heap churned under the reader)."""
        return bool(readings) and readings[-1].memstats.num_gc > readings[0].memstats.num_gc

    while len(readings) + len(dropped) < READINGS or not raced():
        assert len(readings) + len(dropped) < MAX_READINGS, "no GC ran while the memory was read"
        try:
            reading, census = reader.read(), reader.census()
        except (ReadingRejected, MemoryUnreadable) as error:  # anything else fails the test
            assert "\n" not in str(error)
            dropped.append(str(error))
            continue
        _makes_sense(reading, census, readings[-1] if readings else None)
        readings.append(reading)
    assert len(dropped) <= len(readings), Counter(dropped).most_common(3)


def test_a_reading_follows_gomaxprocs_as_the_program_changes_it(go_target):
    """A reading keeps where the Ps are from the last one. resize-procs sets GOMAXPROCS to 4 and
    1 in turn, each time with a burst of goroutines that end on every P, then 100 ms without:
    a reading that summed the free lists of an earlier allp's Ps would count the dead ones on
    the others (with the Ps of its first reading kept: 102 goroutines read as 176-248)."""
    parked, burst = 100, 2000
    target = go_target("plain", args=["-workload", "resize-procs", "-n", str(parked)])
    # procresize keeps the Ps it stops using: a reader that first found 4 finds the same later.
    # One that first found 1 is the one to test.
    reader = next(filter(None, (_reader_that_first_read_one_p(target.pid) for _ in range(MAX_READINGS))), None)
    assert reader is not None, f"no reader's first reading found GOMAXPROCS 1 in {MAX_READINGS}"
    quiet = parked + 2  # between bursts: the parked ones, main and resizeProcs' loop
    counts: dict[int, Counter[int]] = {1: Counter(), 4: Counter()}  # GOMAXPROCS -> goroutines counted
    while min(c.total() for c in counts.values()) < 500:
        assert sum(c.total() for c in counts.values()) < MAX_READINGS, counts
        try:
            stats = reader.read().stats
        except ReadingRejected:
            continue
        assert quiet <= stats.goroutines <= quiet + 2 * burst, stats  # a burst, and the last one's ending
        counts[stats.gomaxprocs][stats.goroutines] += 1
    # Most readings fall between bursts (a burst takes a few ms on a quiet machine).
    assert all(c[quiet] >= c.total() / 2 for c in counts.values()), {p: c.most_common(3) for p, c in counts.items()}


class CountsItsCalls(ProcessMemory):
    """Instrumentation, the memory read as it is: counts the reads of regions (each one system call)."""

    calls = Counter[int]()  # pid -> reads

    def read_spans(self, addresses, sizes):
        self.calls[self.pid] += 1
        return super().read_spans(addresses, sizes)


def test_a_reading_of_a_steady_program_is_one_system_call(go_target, monkeypatch):
    target = go_target("plain", args=["-workload", "park", "-n", "100"], env={"GOMAXPROCS": "2"})
    monkeypatch.setattr(memory, "ProcessMemory", CountsItsCalls)
    reader = MemoryReader(target.pid, go_version("go"))
    first = reader.read().stats.goroutines  # and where the Ps are
    calls = CountsItsCalls.calls[target.pid]
    assert [reader.read().stats.goroutines for _ in range(100)] == [first] * 100 and first >= 101
    assert CountsItsCalls.calls[target.pid] - calls == 100


def _reader_that_first_read_one_p(pid: int) -> MemoryReader | None:
    reader = MemoryReader(pid, go_version("go"))
    try:
        return reader if reader.read().stats.gomaxprocs == 1 else None
    except ReadingRejected:
        return None


def test_a_reading_now_is_a_reading_and_never_waits_for_a_census(go_target):
    """The engine reads on its event loop (Target: INLINE_READING_LIMIT): it must never wait there
    for a census (tens of ms for 10,000 goroutines) under way in a worker thread."""
    target = go_target("plain", args=["-workload", "park", "-n", "100"])
    reader = MemoryReader(target.pid, go_version("go"))
    now = reader.read_now()
    assert now is not None and now.stats.goroutines == reader.read().stats.goroutines >= 100
    with reader._lock:  # as a census in a worker thread holds it
        assert reader.read_now() is None


class ExitsAfterTheFirstCall(ProcessMemory):
    """Fault injection: the process is killed, and left unreaped, between a reading's first
    system call (the runtime's variables; allgs for a census) and the next (allp; the array
    of allgs), which read one region each."""

    def read(self, address, size):
        os.kill(self.pid, signal.SIGKILL)
        os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)  # exited: a zombie until the fixture reaps it
        return super().read(address, size)


def test_a_process_that_exits_mid_reading_is_unreadable_not_a_crash(go_target, monkeypatch):
    target = go_target("plain", args=["-workload", "park", "-n", "100"])
    monkeypatch.setattr(memory, "ProcessMemory", ExitsAfterTheFirstCall)
    reader = MemoryReader(target.pid, go_version("go"))
    for read in (reader.read, reader.census, reader.read):  # and every reading after
        with pytest.raises(MemoryUnreadable) as error:
            read()
        assert str(error.value) == f"pid {target.pid} has exited"
    why = memory_access(target.pid, go_version("go"))
    assert why is not None and why.startswith(f"pid {target.pid}: ") and "\n" not in why


def test_a_process_killed_while_it_is_read_gives_readings_then_unreadable(go_target):
    target = go_target("plain", args=["-workload", "churn-spawn", "-n", str(SLOTS)], env={"GOMAXPROCS": "1"})
    reader = MemoryReader(target.pid, go_version("go"))
    reader.read()
    os.kill(target.pid, signal.SIGKILL)
    for _ in range(MAX_READINGS):  # the readings race the kernel tearing the process down
        try:
            reader.read()
        except ReadingRejected:
            continue
        except MemoryUnreadable as error:
            assert str(error) == f"pid {target.pid} has exited"
            break
    else:
        raise AssertionError(f"pid {target.pid} was still read {MAX_READINGS} times after SIGKILL")


# --- wrong layouts, damaged binaries ------------------------------------------------------------

# The fields the memory reader reads, by runtime type.
READ_FIELDS = {"runtime.g": G_FIELDS, "runtime.mstats": MSTATS_FIELDS,
               "runtime.gcControllerState": GC_CONTROLLER_FIELDS, "runtime.mheap": MHEAP_FIELDS,
               "runtime.schedt": SCHED_FIELDS, "runtime.p": P_FREE_FIELDS, "runtime.moduledata": ("gofunc",)}


@pytest.fixture(scope="module")
def busy_stripped(tmp_path_factory):
    """A stripped plain target whose goroutines come and go, for the examples of a fuzz
    test: its runtime is found through machine code, its inline trees through the moduledata."""
    target = start_target("plain", binary=target_binary("plain", "go", flags=STRIPPED),
                          args=["-workload", "healthy-spawn"], config_dir=tmp_path_factory.mktemp("gops"))
    yield target
    target.kill()


def _with_offsets(layout: RuntimeLayout, offsets: dict[tuple[str, str], int]) -> RuntimeLayout:
    """`layout` with the fields (type, path) at other offsets."""
    fields = {type_name: dict(paths) for type_name, paths in layout.fields.items()}
    for (type_name, path), offset in offsets.items():
        fields[type_name][path] = replace(fields[type_name][path], offset=offset)
    return replace(layout, fields=MappingProxyType({t: MappingProxyType(p) for t, p in fields.items()}))


@contextmanager
def _in_use(layout: RuntimeLayout) -> Iterator[None]:
    """Readers made meanwhile use `layout` for the release's table (and map their binary anew)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory, "layout_table", lambda go, arch="amd64": layout)
        patch.setattr(memory, "_maps", OrderedDict())  # runtime maps are cached per binary
        yield


@st.composite
def moved_fields(draw, layout: RuntimeLayout) -> RuntimeLayout:
    """`layout` with one to four of the fields the reader reads at another offset inside
    their type (where a damaged DWARF may put them): near their own, or anywhere."""
    read = sorted((t, p) for t, paths in READ_FIELDS.items() for p in paths if layout.has(t, p))
    offsets = {}
    for type_name, path in draw(st.lists(st.sampled_from(read), min_size=1, max_size=4, unique=True)):
        old: FieldLayout = layout.field(type_name, path)
        room = layout.sizes[type_name] - old.size * old.count
        if draw(st.booleans()):
            offsets[type_name, path] = min(max(old.offset + draw(st.integers(-16, 16)), 0), room)
        else:
            offsets[type_name, path] = draw(st.integers(0, room))
    return _with_offsets(layout, offsets)


def _read_as_far_as_possible(pid: int, version: str) -> str:
    """Map the runtime, read it three times: what came of it, for hypothesis' statistics.
    MemoryUnavailable, MemoryUnreadable and ReadingRejected are clean; anything else fails."""
    try:
        reader = MemoryReader(pid, version)
    except MemoryUnavailable as error:
        assert "\n" not in str(error)
        return "unavailable"
    outcomes = []
    for _ in range(3):
        try:
            reader.read()
            reader.census()
            outcomes.append("reading")
        except (ReadingRejected, MemoryUnreadable) as error:
            assert "\n" not in str(error)
            outcomes.append(type(error).__name__)
    return ", ".join(sorted(set(outcomes)))


def _within_safety_timeout(work, *args):
    with ThreadPoolExecutor(1) as pool:
        try:
            return pool.submit(work, *args).result(timeout=SAFETY_TIMEOUT)
        except FutureTimeout:
            raise AssertionError(f"{work.__name__}{args} hung") from None


@pytest.mark.go
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_wrong_offsets_give_a_clean_error_or_a_reading(busy_stripped, data):
    version = go_version("go")
    with _in_use(data.draw(moved_fields(layout_table(version)))):
        event(_within_safety_timeout(_read_as_far_as_possible, busy_stripped.pid, version))


@pytest.mark.go
def test_a_layout_with_fields_on_top_of_each_other_is_refused_in_one_line(busy_stripped):
    version = go_version("go")
    layout = layout_table(version)
    status = layout.field("runtime.g", "atomicstatus").offset
    with _in_use(_with_offsets(layout, {("runtime.g", "waitsince"): status + 2})):
        why = memory_access(busy_stripped.pid, version)
    assert why == f"pid {busy_stripped.pid}: runtime.g: the layout ({layout.origin}) puts waitsince inside atomicstatus"


@pytest.mark.go
def test_inline_trees_looked_for_in_the_wrong_place_leave_the_reading_whole(busy_stripped):
    """go:func.* taken from the moduledata's first word (its pcHeader: read-only data, but
    no inline tree there): a `go f(x)` wrapper is shown as itself or as what the bytes
    there name, the reading keeps its figures."""
    version = go_version("go")
    with _in_use(_with_offsets(layout_table(version), {("runtime.moduledata", "gofunc"): 0})):
        reader = MemoryReader(busy_stripped.pid, version)
        census, reading = reader.census(), reader.read()
    started = Counter[str]()
    for group in census.profile.groups:
        started[group.frames[0].function] += group.count
    assert started["runtime.main"] == 1 and started[f"{WORKLOAD}.every.func1"] == 1, started
    assert census.user == sum(started.values()) > 2 and reading.stats.goroutines > 2
    assert reading.memstats.heap_alloc > 0


@pytest.fixture(scope="module")
def damageable() -> tuple[bytes, list[tuple[int, int]]]:
    """A stripped plain build (its runtime found through machine code), and where its
    .gopclntab and the runtime functions whose code says where the variables are lie in the file."""
    path = target_binary("plain", "go", flags=STRIPPED)
    binary = GoBinary.open(str(path))
    with open(path, "rb") as f:
        pclntab = ELFFile(f).get_section_by_name(".gopclntab")
        regions = [(pclntab["sh_offset"], pclntab["sh_size"])]
    functions = {ref.function for refs in layout_table(go_version("go")).signatures.values() for ref in refs}
    for name in sorted(functions):
        func = binary.pclntab.func_named(name)
        if func is None:
            continue
        segment = next(s for s in binary.segments if s.vaddr <= func.entry < s.vaddr + s.filesz)
        regions.append((segment.offset + func.entry - segment.vaddr, func.end - func.entry))
    return path.read_bytes(), regions


@pytest.mark.go
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_damaged_binary_started_as_the_target_is_a_one_line_reason_or_readable(damageable, data, tmp_path_factory):
    base, regions = damageable
    damaged = data.draw(damaged_in(base, regions, st.binary(min_size=1, max_size=8)))
    path = tmp_path_factory.mktemp("damaged") / "plain"
    path.write_bytes(damaged)
    path.chmod(0o755)
    version = go_version("go")
    try:
        target = start_target("plain", binary=path, args=["-workload", "healthy-spawn"])
    except (RuntimeError, TimeoutError):  # it died or hung on its way up: then read what is left of it
        event("did not start")
        return
    try:
        why = _within_safety_timeout(memory_access, target.pid, version)
        assert why is None or (why and "\n" not in why), why
        event(_read_as_far_as_possible(target.pid, version) if why is None else f"no access: {why[:50]}")
    finally:
        target.kill()

#!/usr/bin/env python3
"""What the live TUI costs: gotop in a real pseudo-terminal beside the gops CLI, in one run.

1. fleet    `gotop` watching a fleet of N real Go processes (--targets 20, or
            20,100 for both in one run) at the default 1 s interval for
            --seconds, per terminal size: CPU (percent of one core, after the
            first frame; start-up apart), peak RSS (VmHWM) and final RSS, bytes
            drawn per second, time to the first frame of the list (with --base
            the two trees run in turn, A B B A; ratios are of their means).
            Beside it, in the same run: the engine alone (bench/engine_cost.py), `gotop record`
            and `gotop export` with the same polling, the exporter scraped over
            HTTP every --scrape-every seconds as Prometheus would (their CPU after
            every target answered, start-up apart). Each of them watches a fleet
            started for it, so that each sees the same growth. Peer: a loop running
            `gops stats` + `gops memstats` once per second for every target that
            has an agent (gops can reach no other); CPU of those gops processes.
2. startup  launch to the first frame that shows the process list (the title
            with "N Go processes", N > 0, and a row starting with a target's
            PID), median of --launches per size (with --base, the two trees
            launch in turn). Peer: `gops` printing its listing.
3. impact   a CPU-bound target (agentpprof -workload spin, GOMAXPROCS=1) counts
            its operations in expvar spin_ops; its ops/s over equal windows alone
            (A) and with `gotop PID` watching it (B), alternated A B / B A for
            --pairs pairs, the counter read at window edges only.

The fleet is a host's mix (FLEET, repeated to N): a quarter with the gops agent
and net/http/pprof, a quarter with pprof only, half with nothing added; of each
kind some leak slowly (goroutine groups that grow by 1 or 10 a second, heaps
that grow by 32-50 KiB a second), some are healthy and busy (worker pools,
short-lived goroutines, bounded caches), some parked or idle.

Goals (issue 13): 20 processes at most 3 % of a core and 60 MB, 100 processes
at most 8 % and 100 MB, first frame under 1 s; under 1 % loss for (3). By
default the whole run happens in a private PID namespace (`unshare --pid
--mount-proc`, needs root) so gotop sees exactly the processes started here and
not whatever else runs on a shared machine; --no-isolate runs on the host as it is.

gotop runs from byte-compiled modules (a private PYTHONPYCACHEPREFIX, warmed by
one launch that is not counted), as an installed gotop would.

Usage: .venv/bin/python bench/tui_cost.py [--seconds 60] [--targets 20[,100]]
       [--sizes 120x40,80x24] [--launches 5] [--window 10] [--pairs 6]
       [--only fleet,startup,impact] [--watchers tui,engine,record,export,gops] [--scrape-every 15]
       [--nice -10] [--no-isolate]
       [--profile FILE] [--py-spy DIR] [--base DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import psutil  # noqa: E402
from gotargets import CACHE_DIR, GOPS_VERSION, RunningTarget, gops_cli, start_target  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from ptyapp import PtyApp, peak_rss  # noqa: E402


@dataclass(frozen=True)
class Member:
    """One process of the fleet: a target binary running a workload."""

    kind: str  # agentpprof | pprofonly | plain
    workload: str
    n: int
    env: tuple[tuple[str, str], ...] = ()


RETAINING = (("GOGC", "25"),)  # as tests/leakcases.py runs heap leaks: a retaining service's GC runs often enough
# 20 processes as a host has them; a fleet of N repeats it (N = 100: five of each).
FLEET = (
    Member("agentpprof", "leak-recv", 100),  # +10 goroutines a second
    Member("agentpprof", "retain-map", 200, RETAINING),  # heap +50 KiB/s
    Member("agentpprof", "healthy-pool", 100),
    Member("agentpprof", "healthy-spawn", 100),
    Member("agentpprof", "park", 200),
    Member("pprofonly", "leak-send", 100),
    Member("pprofonly", "leak-ticker", 1000),  # +1 goroutine a second
    Member("pprofonly", "retain-slice", 1000, RETAINING),  # heap +32 KiB/s
    Member("pprofonly", "healthy-pool", 100),
    Member("pprofonly", "healthy-cache", 100),
    Member("plain", "leak-select", 100),
    Member("plain", "leak-recv", 1000),
    Member("plain", "retain-map", 200, RETAINING),
    Member("plain", "healthy-pool", 100),
    Member("plain", "healthy-spawn", 100),
    Member("plain", "healthy-cache", 100),
    Member("plain", "healthy-pool", 300),
    Member("plain", "park", 200),
    Member("plain", "park", 1000),
    Member("plain", "idle", 100),
)
# The goals of issue 13 by fleet size: (CPU % of a core, peak RSS); a fleet gets those of the first size >= its own.
GOALS = ((20, 3.0, 60e6), (100, 8.0, 100e6))
WATCHERS = ("tui", "engine", "record", "export", "gops")
ISOLATED_ENV = "GOTOP_BENCH_ISOLATED"
SETTLE = 2.0  # seconds after gotop starts or stops before a measured window opens
FRAME_TIMEOUT = 30.0
TIMELINE_SLICES = 6
MB = 1e6


# -- running gotop ------------------------------------------------------------------


def gotop_env(tree: Path = ROOT) -> dict[str, str]:
    """The environment gotop runs in: its modules from `tree` (a checkout, or a copy of
    another revision's gotop/ to compare with), whatever the current directory."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return env | {"PYTHONPYCACHEPREFIX": str(CACHE_DIR / "bench-pycache"), "PYTHONPATH": str(tree)}


def gotop_argv(args: Sequence[str] = (), profile: Path | None = None) -> list[str]:
    """-P: no current directory in the module path, so that PYTHONPATH (gotop_env) says which gotop runs."""
    runner = ["-m", "cProfile", "-o", str(profile), "-m", "gotop"] if profile else ["-m", "gotop"]
    return [sys.executable, "-P", *runner, *args]


@contextmanager
def gotop(size: tuple[int, int], args: Sequence[str] = (), profile: Path | None = None,
          tree: Path = ROOT) -> Iterator[PtyApp]:
    app = PtyApp(gotop_argv(args, profile), *size, env=gotop_env(tree))
    niceness = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness:
        set_niceness(app.pid, niceness)  # inherited, but gotop's own session has an autogroup of its own
    try:
        yield app
    finally:
        app.quit()  # `q`, so that cProfile writes its file


def shows_process_list(pids: set[int]) -> Callable[[list[str]], bool]:
    """The overview is on screen: a title with N > 0 Go processes and a row of a known PID."""
    title = re.compile(r"\b([1-9]\d*) Go process")

    def predicate(lines: list[str]) -> bool:
        if not any(title.search(line) for line in lines):
            return False
        return any(row_pid(line) in pids for line in lines)

    return predicate


def row_pid(line: str) -> int | None:
    first = line.split(maxsplit=1)[0] if line.strip() else ""
    return int(first) if first.isdigit() else None


def shows_process(pid: int) -> Callable[[list[str]], bool]:
    needle = f"pid {pid}"
    return lambda lines: any(needle in line for line in lines)


# -- targets --------------------------------------------------------------------------


def start_fleet(n: int) -> list[RunningTarget]:
    targets = []
    try:
        for i in range(n):
            m = FLEET[i % len(FLEET)]
            targets.append(start_target(m.kind, args=["-workload", m.workload, "-n", str(m.n)], env=dict(m.env)))
    except BaseException:
        kill_all(targets)
        raise
    return targets


@contextmanager
def fleet(n: int) -> Iterator[list[RunningTarget]]:
    targets = start_fleet(n)
    try:
        yield targets
    finally:
        kill_all(targets)


def goal(n: int) -> tuple[float, float]:
    """(CPU % of a core, peak RSS in bytes) that a fleet of `n` processes should stay within."""
    return next(((cpu, rss) for size, cpu, rss in GOALS if n <= size), GOALS[-1][1:])


def kill_all(targets: Sequence[RunningTarget]) -> None:
    for t in targets:
        t.kill()


# -- 1. fleet ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FleetCost:
    label: str
    cpu_percent: float  # of one core, steady state
    startup_cpu: float  # seconds of CPU until every target was seen (gotop only)
    first_seconds: float  # launch to the first frame of the list, or to every target answered (gotop only)
    peak_rss: int
    final_rss: int
    polled: int  # processes polled each second
    note: str = ""
    peer: bool = False
    headless: bool = False  # no screen: the engine alone, gotop record, gotop export
    base: bool = False  # the gotop of --base, to compare with


def host_tcp_sockets() -> int:
    """Entries of this network namespace's TCP tables, TIME_WAIT included: each gops
    agent request is a connection of its own (the agent closes after each answer)."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, "rb") as f:
            total += f.read().count(b"\n") - 1
    return total


@contextmanager
def sampled(pid: int, name: str, into: Path | None) -> Iterator[None]:
    """py-spy sampling every thread of `pid` at 200 Hz while the block runs, raw
    (collapsed stacks with thread names) into INTO/NAME.txt; nothing without `into`."""
    if into is None:
        yield
        return
    into.mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--threads", "--nonblocking", "-r", "200",
                            "-f", "raw", "-o", str(into / f"{name}.txt")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file and exits
        spy.wait(60)


def tree_label(tree: Path) -> str:
    return "" if tree == ROOT else " [base]"


def measure_gotop_fleet(targets: Sequence[RunningTarget], size: tuple[int, int], seconds: float,
                        profile: Path | None, spy: Path | None, tree: Path = ROOT) -> FleetCost:
    pids = {t.pid for t in targets}
    sockets_before = host_tcp_sockets()
    with gotop(size, profile=profile, tree=tree) as app:
        first = app.wait_for(shows_process_list(pids), FRAME_TIMEOUT)
        if first is None:
            raise RuntimeError(f"gotop showed no process list in {FRAME_TIMEOUT:.0f} s:\n" + "\n".join(app.lines()))
        startup_cpu = app.cpu_seconds()
        cpu0, bytes0, t0 = startup_cpu, app.bytes_read, time.perf_counter()
        slices = []  # (CPU % of a core, RSS at its end) per sixth of the run: does either grow?
        slice_cpu, slice_t = cpu0, t0
        with sampled(app.pid, f"tui-{len(targets)}-{size[0]}x{size[1]}{tree_label(tree).strip(' []')}", spy):
            for k in range(1, TIMELINE_SLICES + 1):
                while (left := t0 + seconds * k / TIMELINE_SLICES - time.perf_counter()) > 0:
                    time.sleep(min(1.0, left))
                    if app.proc.poll() is not None:
                        raise RuntimeError(f"gotop exited early ({app.proc.returncode}):\n" + "\n".join(app.lines()))
                cpu, now = app.cpu_seconds(), time.perf_counter()
                slices.append((100 * (cpu - slice_cpu) / (now - slice_t), app.rss()))
                slice_cpu, slice_t = cpu, now
        cpu1, bytes1, t1 = slice_cpu, app.bytes_read, slice_t
        peak, final = app.peak_rss(), app.rss()
        lines = app.lines()
    shown = sum(row_pid(line) in pids for line in lines)
    title = next((m.group(0) for line in lines if (m := re.search(r"\d+ Go process\w*", line))), "no title")
    timeline = " ".join(f"{cpu:.1f}%/{rss / MB:.0f}MB" for cpu, rss in slices)
    note = (f"{title}, {shown} rows on screen, {(bytes1 - bytes0) / (t1 - t0) / 1e3:.1f} kB/s drawn, "
            f"host TCP sockets {sockets_before} -> {host_tcp_sockets()}\n"
            f"{'':38}CPU/RSS by sixth of the run: {timeline}")
    return FleetCost(f"gotop {size[0]}x{size[1]}{tree_label(tree)}", 100 * (cpu1 - cpu0) / (t1 - t0), startup_cpu,
                     first, peak, final, len(targets), note, base=tree != ROOT)


def measure_engine(targets: Sequence[RunningTarget], seconds: float, spy: Path | None, tree: Path = ROOT) -> FleetCost:
    """gotop's Fleet without the screen (bench/engine_cost.py), to split engine and UI cost."""
    script = Path(__file__).resolve().parent / "engine_cost.py"
    sockets_before = host_tcp_sockets()
    proc = subprocess.Popen([sys.executable, "-P", str(script), "--seconds", str(seconds), "--expect",
                             str(len(targets))],
                            env=gotop_env(tree), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stderr.readline()  # "measuring": its window opens
    with sampled(proc.pid, f"engine-{len(targets)}{tree_label(tree).strip(' []')}", spy):
        out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"bench/engine_cost.py failed with {proc.returncode}:\n{err}")
    r = json.loads(out)
    return FleetCost(f"gotop engine alone (no TUI){tree_label(tree)}", r["cpu_percent"], r["startup_cpu"],
                     r["first_seconds"], r["peak_rss"], r["final_rss"], r["watched"],
                     f"bench/engine_cost.py: Fleet + pollers; "
                     f"host TCP sockets {sockets_before} -> {host_tcp_sockets()}", headless=True, base=tree != ROOT)


def recorded_targets(path: Path) -> int:
    """Targets with at least one poll in a recording being written (WAL: readable meanwhile)."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return db.execute("SELECT count(*) FROM (SELECT target FROM polls UNION SELECT target FROM poll_chunks)"
                              ).fetchone()[0]
    except sqlite3.Error:  # not made yet, or its tables not yet
        return 0


def measure_recorder(targets: Sequence[RunningTarget], seconds: float, spy: Path | None,
                     tree: Path = ROOT) -> FleetCost:
    """`gotop record` of every Go process at the TUI's polling, CPU once every target has a poll recorded."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.gotop"
        launched = time.perf_counter()
        proc = psutil.Popen(gotop_argv(["record", "-o", str(path), "--for", f"{seconds + 2 * FRAME_TIMEOUT:.0f}s"]),
                            env=gotop_env(tree), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: proc.poll() is None and recorded_targets(path) >= len(targets),
                       f"gotop record did not record all {len(targets)} targets")
            first = time.perf_counter() - launched
            times = proc.cpu_times()
            startup_cpu = times.user + times.system
            cpu0, t0 = startup_cpu, time.perf_counter()
            with sampled(proc.pid, f"record-{len(targets)}{tree_label(tree).strip(' []')}", spy):
                time.sleep(seconds)
            times, t1 = proc.cpu_times(), time.perf_counter()
            cpu1 = times.user + times.system
            peak, final = peak_rss(proc.pid), proc.memory_info().rss
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except psutil.TimeoutExpired:
                proc.kill()
        size = sum(f.stat().st_size for f in Path(tmp).iterdir())
    note = f"recording {size / 1e6:.1f} MB after {seconds + first:.0f} s"
    return FleetCost(f"gotop record{tree_label(tree)}", 100 * (cpu1 - cpu0) / (t1 - t0), startup_cpu, first, peak,
                     final, len(targets), note, headless=True, base=tree != ROOT)


def measure_exporter(targets: Sequence[RunningTarget], seconds: float, spy: Path | None, scrape_every: float,
                     tree: Path = ROOT) -> FleetCost:
    """`gotop export` watching the fleet at the TUI's polling, scraped every `scrape_every` seconds."""
    pids = {str(t.pid) for t in targets}
    sockets_before = host_tcp_sockets()
    with tempfile.TemporaryFile() as log:
        launched = time.perf_counter()
        proc = psutil.Popen(gotop_argv(["export", "--listen", "127.0.0.1:0"]), env=gotop_env(tree),
                            stdout=subprocess.DEVNULL, stderr=log)
        try:
            url = f"http://{wait_until(lambda: serving_address(proc, log), 'gotop export served nothing')}/metrics"
            wait_until(lambda: pids <= up_pids(url), f"gotop export did not show all {len(pids)} targets up")
            first = time.perf_counter() - launched
            times = proc.cpu_times()
            startup_cpu = times.user + times.system
            cpu0, t0 = startup_cpu, time.perf_counter()
            scrapes, size, series = 0, 0, 0
            with sampled(proc.pid, f"export-{len(targets)}{tree_label(tree).strip(' []')}", spy):
                while (now := time.perf_counter()) < t0 + seconds:
                    if now >= t0 + scrapes * scrape_every:
                        with urllib.request.urlopen(url, timeout=30) as response:
                            body = response.read()
                        scrapes, size = scrapes + 1, len(body)
                        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
                    time.sleep(min(1.0, t0 + seconds - now, max(0.0, t0 + scrapes * scrape_every - now)))
            times, t1 = proc.cpu_times(), time.perf_counter()
            cpu1 = times.user + times.system
            peak, final = peak_rss(proc.pid), proc.memory_info().rss
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    note = (f"{scrapes} scrapes of {series} series ({size / 1e3:.0f} kB each); "
            f"host TCP sockets {sockets_before} -> {host_tcp_sockets()}")
    return FleetCost(f"gotop export, scraped every {scrape_every:g} s{tree_label(tree)}",
                     100 * (cpu1 - cpu0) / (t1 - t0), startup_cpu, first, peak, final, len(targets), note,
                     headless=True, base=tree != ROOT)


def serving_address(proc: psutil.Popen, log) -> str | None:
    """HOST:PORT from the exporter's first line on stderr."""
    if proc.poll() is not None:
        raise RuntimeError(f"gotop export exited with {proc.returncode}")
    log.seek(0)
    found = re.search(rb"serving http://(\S+)/metrics", log.read())
    return found.group(1).decode() if found else None


def up_pids(url: str) -> set[str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    return {s.labels["pid"] for family in text_string_to_metric_families(text) if family.name == "gotop_up"
            for s in family.samples if s.value == 1}


def wait_until(condition: Callable[[], object], failing: str) -> object:
    deadline = time.monotonic() + FRAME_TIMEOUT
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{failing} in {FRAME_TIMEOUT:.0f} s")
        time.sleep(0.1)
    return result


def run_child(argv: Sequence[str]) -> tuple[float, int, bytes]:
    """CPU seconds, peak RSS and stdout of one run of a short-lived command."""
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} {' '.join(argv[1:])} failed with {proc.returncode}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, out


def measure_gops_loop(targets: Sequence[RunningTarget], seconds: float) -> FleetCost:
    gops = str(gops_cli())
    agents = [t.ready["agent"] for t in targets if t.agent_port]
    cpu, peak, rounds, late = 0.0, 0, 0, 0
    start = time.perf_counter()
    while time.perf_counter() < start + seconds:
        next_round = start + rounds + 1
        for agent in agents:
            for command in ("stats", "memstats"):
                used, rss, _ = run_child([gops, command, agent])
                cpu, peak = cpu + used, max(peak, rss)
        rounds += 1
        if time.perf_counter() > next_round:
            late += 1
        time.sleep(max(0.0, next_round - time.perf_counter()))
    wall = time.perf_counter() - start
    note = f"{rounds} rounds, {late} overran 1 s; RSS is per gops process"
    return FleetCost(f"gops {GOPS_VERSION} stats+memstats loop", 100 * cpu / wall, 0.0, 0.0, peak, peak, len(agents),
                     note, peer=True)


def report_fleet(rows: Sequence[FleetCost], seconds: float) -> None:
    n = rows[0].polled
    cpu_goal, rss_goal = goal(n)
    print(f"\n== 1. fleet: {n} Go processes watched at 1 s for {seconds:.0f} s, load average {load_average()} ==")
    print(f"{'':36}{'polled':>7}{'CPU %core':>11}{'start CPU':>11}{'first':>8}{'peak RSS':>10}{'final RSS':>11}"
          "  verdict")
    for r in rows:
        verdict = "peer" if r.peer else (("OK" if r.cpu_percent <= cpu_goal and r.peak_rss <= rss_goal else "OVER")
                                         + f" (<={cpu_goal:g} %, <={rss_goal / MB:.0f} MB)")
        start, first = (f"{'-':>10}", f"{'-':>7}") if r.peer else (f"{r.startup_cpu:9.2f}s", f"{r.first_seconds:6.2f}s")
        print(f"{r.label:36}{r.polled:7d}{r.cpu_percent:10.2f}%{start:>11}{first:>8}{r.peak_rss / MB:8.1f}MB"
              f"{r.final_rss / MB:9.1f}MB  {verdict}")
        print(f"{'':38}{r.note}")
    for label in dict.fromkeys(r.label for r in rows if r.base):
        bases = [r for r in rows if r.label == label]
        news = [r for r in rows if r.label == label.removesuffix(" [base]")]
        if news:
            runs = f" (means of {len(news)} and {len(bases)} runs)" if len(news) + len(bases) > 2 else ""
            fields = (("CPU", attrgetter("cpu_percent")), ("peak RSS", attrgetter("peak_rss")),
                      ("first", attrgetter("first_seconds")))
            print(f"ratio {news[0].label} / its base{runs}: " + ", ".join(
                f"{name} {statistics.mean(map(field, news)) / statistics.mean(map(field, bases)):.2f}x"
                for name, field in fields))
    rows = [r for r in rows if not r.base]
    engine = next((r for r in rows if r.label.startswith("gotop engine")), None)
    peer = next((r for r in rows if r.peer), None)
    screens = [r for r in rows if not (r.peer or r.headless)]
    for r in screens:
        if engine is not None:
            ui = r.cpu_percent - engine.cpu_percent
            print(f"{r.label}: engine {engine.cpu_percent:.2f} % + screen {ui:.2f} % of a core "
                  f"(screen {ui / r.cpu_percent:.0%} of gotop's CPU)")
    for r in rows:
        if r.peer:
            continue
        if screens and r.headless and r is not engine:
            print(f"ratio {r.label} / {screens[0].label}: CPU {r.cpu_percent / screens[0].cpu_percent:.2f}x, "
                  f"peak RSS {r.peak_rss / screens[0].peak_rss:.2f}x")
        if peer is not None and peer.cpu_percent > 0:
            per_proc = (r.cpu_percent / r.polled) / (peer.cpu_percent / peer.polled)
            print(f"ratio {r.label} / gops loop: CPU {r.cpu_percent / peer.cpu_percent:.2f}x "
                  f"({r.polled} processes vs {peer.polled} agents; per polled process {per_proc:.2f}x)")


# -- 2. startup ------------------------------------------------------------------------


def measure_startup(targets: Sequence[RunningTarget], sizes: Sequence[tuple[int, int]], launches: int,
                    trees: Sequence[Path]) -> None:
    pids = {t.pid for t in targets}
    for tree in trees:
        with gotop(sizes[0], tree=tree) as warm:  # compiles and caches the modules, warms the page cache
            warm.wait_for(shows_process_list(pids), FRAME_TIMEOUT)
    print(f"\n== 2. startup: launch to the first frame with the process list ({len(targets)} targets, "
          f"median of {launches}) ==")
    gotop_medians = []
    for size in sizes:
        # The trees' launches alternate: the host's speed drifts within minutes (the targets settle).
        times: dict[Path, list[float]] = {tree: [] for tree in trees}
        cpus: dict[Path, list[float]] = {tree: [] for tree in trees}
        for _ in range(launches):
            for tree in trees:
                with gotop(size, tree=tree) as app:
                    elapsed = app.wait_for(shows_process_list(pids), FRAME_TIMEOUT)
                    if elapsed is None:
                        raise RuntimeError("gotop showed no process list:\n" + "\n".join(app.lines()))
                    times[tree].append(elapsed)
                    cpus[tree].append(app.cpu_seconds())
        for tree in trees:
            print_startup(size, tree, times[tree], cpus[tree])
            gotop_medians.append(statistics.median(times[tree]))
    gops = str(gops_cli())
    gops_times = []
    for _ in range(launches):
        start = time.perf_counter()
        _, _, out = run_child([gops])
        gops_times.append(time.perf_counter() - start)
    listed = sum(1 for line in out.decode(errors="replace").splitlines() if row_pid(line) in pids)
    gops_median = statistics.median(gops_times)
    print(f"gops {GOPS_VERSION} listing  median {gops_median:6.3f} s  (min {min(gops_times):.3f}, "
          f"max {max(gops_times):.3f}; it listed {listed} of the targets)")
    for (size, tree), median in zip(((size, tree) for size in sizes for tree in trees), gotop_medians):
        print(f"ratio gotop {size[0]}x{size[1]}{tree_label(tree)} first frame / gops listing: "
              f"{median / gops_median:.1f}x")


def print_startup(size: tuple[int, int], tree: Path, times: list[float], cpus: list[float]) -> None:
    median = statistics.median(times)
    print(f"gotop {size[0]}x{size[1]:<6}{tree_label(tree):7} median {median:6.3f} s  (min {min(times):.3f}, "
          f"max {max(times):.3f}; CPU until then {statistics.median(cpus):.2f} s)  "
          f"{'OK' if median < 1 else 'OVER'} (<1 s)")


# -- 3. impact -----------------------------------------------------------------------


def spin_ops(target: RunningTarget) -> int:
    with urllib.request.urlopen(f"http://{target.http_addr}/debug/vars", timeout=10) as response:
        return json.load(response)["spin_ops"]


def target_cpu(target: RunningTarget) -> float:
    with open(f"/proc/{target.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Window:
    watched: bool
    ops_per_s: float
    target_cpu: float  # share of one core
    gotop_cpu: float  # share of one core, 0 when not watched


def spin_window(target: RunningTarget, seconds: float, app: PtyApp | None) -> Window:
    time.sleep(SETTLE)
    gotop0 = app.cpu_seconds() if app else 0.0
    ops0, cpu0, t0 = spin_ops(target), target_cpu(target), time.perf_counter()
    time.sleep(seconds)
    ops1, cpu1, t1 = spin_ops(target), target_cpu(target), time.perf_counter()
    gotop1 = app.cpu_seconds() if app else 0.0
    wall = t1 - t0
    return Window(app is not None, (ops1 - ops0) / wall, (cpu1 - cpu0) / wall, (gotop1 - gotop0) / wall)


def measure_impact(seconds: float, pairs: int, size: tuple[int, int]) -> None:
    target = start_target("agentpprof", args=["-workload", "spin", "-n", "100"], env={"GOMAXPROCS": "1"})
    try:
        windows: list[tuple[Window, Window]] = []
        for i in range(pairs):
            order = (False, True) if i % 2 == 0 else (True, False)  # A B, B A, ...: drift cancels
            pair: dict[bool, Window] = {}
            for watched in order:
                if not watched:
                    pair[False] = spin_window(target, seconds, None)
                    continue
                with gotop(size, [str(target.pid)]) as app:
                    if app.wait_for(shows_process(target.pid), FRAME_TIMEOUT) is None:
                        raise RuntimeError("gotop PID showed no process screen:\n" + "\n".join(app.lines()))
                    pair[True] = spin_window(target, seconds, app)
            windows.append((pair[False], pair[True]))
    finally:
        target.kill()
    report_impact(windows, seconds)


def report_impact(windows: Sequence[tuple[Window, Window]], seconds: float) -> None:
    print(f"\n== 3. impact: spin target (agentpprof, GOMAXPROCS=1), {len(windows)} pairs of {seconds:.0f} s windows ==")
    print(f"{'pair':>4}{'alone ops/s':>13}{'watched ops/s':>15}{'loss':>8}{'target CPU A/B':>17}"
          f"{'ops/CPU-s loss':>16}{'gotop CPU':>11}")
    losses, cpu_losses = [], []
    for i, (a, b) in enumerate(windows, 1):
        loss = 100 * (1 - b.ops_per_s / a.ops_per_s)
        cpu_loss = 100 * (1 - (b.ops_per_s / b.target_cpu) / (a.ops_per_s / a.target_cpu))
        losses.append(loss)
        cpu_losses.append(cpu_loss)
        print(f"{i:4d}{a.ops_per_s:13.1f}{b.ops_per_s:15.1f}{loss:7.2f}%"
              f"{100 * a.target_cpu:8.1f}%/{100 * b.target_cpu:5.1f}%{cpu_loss:15.2f}%{100 * b.gotop_cpu:10.2f}%")
    alone = statistics.median(a.ops_per_s for a, _ in windows)
    watched = statistics.median(b.ops_per_s for _, b in windows)
    spread = statistics.stdev(losses) if len(losses) > 1 else 0.0
    median_loss = statistics.median(losses)
    print(f"loss: median {median_loss:.2f} % (mean {statistics.mean(losses):.2f} %, stdev {spread:.2f} %, "
          f"min {min(losses):.2f} %, max {max(losses):.2f} %); medians {alone:.1f} vs {watched:.1f} ops/s "
          f"-> ratio watched/alone {watched / alone:.4f}  {'OK' if median_loss < 1 else 'OVER'} (<1 %)")
    cpu_loss_stdev = statistics.stdev(cpu_losses) if len(cpu_losses) > 1 else 0
    print(f"per CPU-second of the target (insensitive to other load on the host): loss median "
          f"{statistics.median(cpu_losses):.2f} %, stdev {cpu_loss_stdev:.2f} %")


# -- main --------------------------------------------------------------------------------


def isolate() -> None:
    """Re-run this script as PID 1 of a private PID namespace with its own /proc."""
    unshare = shutil.which("unshare")
    if os.environ.get(ISOLATED_ENV) or unshare is None or os.geteuid() != 0:
        if not os.environ.get(ISOLATED_ENV):
            print("note: not isolated (needs root and unshare): gotop sees every Go process on the host")
        return
    argv = [unshare, "--pid", "--fork", "--mount-proc", "--kill-child", sys.executable, *sys.argv]
    sys.stdout.flush()
    os.execve(unshare, argv, os.environ | {ISOLATED_ENV: "1"})


def set_niceness(pid: int, niceness: int) -> int:
    """Run a process (and its future children) at `niceness` if allowed; returns the niceness in force.

    With autogroup scheduling, niceness only ranks tasks within one session, so
    the session's autogroup gets it too (gotop runs in a session of its own).
    """
    try:
        os.setpriority(os.PRIO_PROCESS, pid, niceness)
        Path(f"/proc/{pid}/autogroup").write_text(str(niceness))
    except OSError:
        pass
    return os.getpriority(os.PRIO_PROCESS, pid)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def gotop_revision() -> str:
    """The commit measured, and whether gotop/ had uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = git("status", "--porcelain", "--", "gotop")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes in gotop/" if dirty else "")


def profile_path(base: Path | None, n: int, size: tuple[int, int]) -> Path | None:
    return base.with_name(f"{base.stem}-{n}-{size[0]}x{size[1]}{base.suffix}") if base else None


def parse_size(text: str) -> tuple[int, int]:
    cols, _, rows = text.partition("x")
    return int(cols), int(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the fleet measurement per size")
    parser.add_argument("--targets", type=lambda text: [int(n) for n in text.split(",")], default=[20],
                        help="Go processes in the fleet; several sizes comma-separated (20,100)")
    parser.add_argument("--watchers", default=",".join(WATCHERS),
                        help=f"who watches the fleet in the fleet part, comma-separated (default {','.join(WATCHERS)})")
    parser.add_argument("--sizes", default="120x40,80x24", help="terminal sizes, COLSxROWS, comma-separated")
    parser.add_argument("--launches", type=int, default=5, help="launches per size for the start-up median")
    parser.add_argument("--window", type=float, default=10.0, help="seconds per impact window")
    parser.add_argument("--pairs", type=int, default=6, help="alone/watched window pairs")
    parser.add_argument("--only", default="fleet,startup,impact", help="which parts to run, comma-separated")
    parser.add_argument("--scrape-every", type=float, default=15.0,
                        help="seconds between scrapes of gotop export in the fleet part (default 15, as Prometheus "
                             "is often set)")
    parser.add_argument("--profile", type=Path, help="run gotop under cProfile in the fleet part; stats to FILE")
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="sample each watcher's measured window with py-spy (on PATH) into DIR/WATCHER-N.txt")
    parser.add_argument("--base", type=Path, metavar="DIR",
                        help="a directory holding another gotop/ (say `git archive REV gotop | tar -x -C DIR`): "
                             "each measurement runs with it too, on a fleet of its own, and ratios are printed")
    parser.add_argument("--no-isolate", action="store_true", help="run on the host, not in a PID namespace")
    parser.add_argument("--nice", type=int, default=-10,
                        help="niceness of this run and all it starts (default -10 when permitted), so that other "
                             "work on a shared host disturbs the measurements less; 0 leaves it alone")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    watchers = set(args.watchers.split(","))
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    if not args.no_isolate:
        isolate()
    niceness = set_niceness(os.getpid(), args.nice)
    # As PID 1 of a namespace, SIGTERM would be ignored: make it unwind the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    print(f"host: {os.cpu_count()} CPUs, load average {load_average()}; "
          f"isolated: {bool(os.environ.get(ISOLATED_ENV))}; "
          f"nice {niceness}; "
          f"python {sys.version.split()[0]}; gotop {gotop_revision()}" + (f"; base {args.base}" if args.base else ""))
    trees = [ROOT, *([args.base.resolve()] if args.base else [])]
    for n in args.targets:
        if "startup" in parts:
            with fleet(n) as targets:
                measure_startup(targets, sizes, args.launches, trees)
        if "fleet" in parts:
            rows = []
            if "tui" in watchers:
                # With --base the trees take turns, A B B A, and are compared by their means: one
                # tree's peak RSS moved from 58.7 to 60.3 MB between runs, its CPU from 2.2 to 3.2 %.
                order = [*trees, *reversed(trees)] if len(trees) > 1 else trees
                for size, tree in ((size, tree) for size in sizes for tree in order):
                    with fleet(n) as targets:
                        rows.append(measure_gotop_fleet(targets, size, args.seconds,
                                                        profile_path(args.profile, n, size), args.py_spy, tree))
            for watcher, measure in (("engine", measure_engine), ("record", measure_recorder),
                                     ("export", partial(measure_exporter, scrape_every=args.scrape_every))):
                for tree in trees if watcher in watchers else ():
                    if not (tree / "gotop" / "commands" / f"{watcher}.py").exists() and watcher != "engine":
                        print(f"(no gotop {watcher} in {tree}: not measured there)")
                        continue
                    with fleet(n) as targets:
                        rows.append(measure(targets, args.seconds, spy=args.py_spy, tree=tree))
            if "gops" in watchers:
                with fleet(n) as targets:
                    rows.append(measure_gops_loop(targets, args.seconds))
            report_fleet(rows, args.seconds)
    if "impact" in parts:
        measure_impact(args.window, args.pairs, sizes[0])
    print(f"\nload average at the end: {load_average()} (other work on the host makes the figures noisier)")


if __name__ == "__main__":
    main()

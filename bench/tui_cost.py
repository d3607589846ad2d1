#!/usr/bin/env python3
"""What the live TUI costs: gotop in a real pseudo-terminal beside the gops CLI, in one run.

1. fleet    `gotop` watching N real Go processes (agentpprof/pprofonly/plain x
            park/churn/retain/healthy-pool) at the default 1 s interval for
            --seconds, per terminal size: CPU (percent of one core, after the
            first frame; start-up apart), peak RSS (VmHWM) and final RSS, bytes
            drawn per second. Beside it, in the same run: the engine alone
            (bench/engine_cost.py), and `gotop export` with the same polling,
            scraped over HTTP every --scrape-every seconds as Prometheus would
            (CPU after every target answered, start-up apart). Peer: a loop running
            `gops stats` + `gops memstats` once per second for every target that
            has an agent (gops can reach no other); CPU of those gops processes.
2. startup  launch to the first frame that shows the process list (the title
            with "N Go processes", N > 0, and a row starting with a target's
            PID), median of --launches per size. Peer: `gops` printing its listing.
3. impact   a CPU-bound target (agentpprof -workload spin, GOMAXPROCS=1) counts
            its operations in expvar spin_ops; its ops/s over equal windows alone
            (A) and with `gotop PID` watching it (B), alternated A B / B A for
            --pairs pairs, the counter read at window edges only.

Targets: at most 5 % of a core and 80 MB for (1), under 1 s for (2), under 1 %
loss for (3). By default the whole run happens in a private PID namespace
(`unshare --pid --mount-proc`, needs root) so gotop sees exactly the processes
started here and not whatever else runs on a shared machine; --no-isolate
runs on the host as it is.

gotop runs from byte-compiled modules (a private PYTHONPYCACHEPREFIX, warmed by
one launch that is not counted), as an installed gotop would.

Usage: .venv/bin/python bench/tui_cost.py [--seconds 60] [--targets 20]
       [--sizes 120x40,80x24] [--launches 5] [--window 10] [--pairs 6]
       [--only fleet,startup,impact] [--no-gops-loop] [--scrape-every 15] [--nice -10] [--no-isolate]
       [--profile FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import psutil  # noqa: E402
from gotargets import CACHE_DIR, GOPS_VERSION, RunningTarget, gops_cli, start_target  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from ptyapp import PtyApp, peak_rss  # noqa: E402

KINDS = ("agentpprof", "pprofonly", "plain")
WORKLOADS = (("park", 200), ("churn", 20), ("retain", 100), ("healthy-pool", 100))
ISOLATED_ENV = "GOTOP_BENCH_ISOLATED"
SETTLE = 2.0  # seconds after gotop starts or stops before a measured window opens
FRAME_TIMEOUT = 30.0
TIMELINE_SLICES = 6
MB = 1e6


# -- running gotop ------------------------------------------------------------------


def gotop_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return env | {"PYTHONPYCACHEPREFIX": str(CACHE_DIR / "bench-pycache")}


def gotop_argv(args: Sequence[str] = (), profile: Path | None = None) -> list[str]:
    runner = ["-m", "cProfile", "-o", str(profile), "-m", "gotop"] if profile else ["-m", "gotop"]
    return [sys.executable, *runner, *args]


@contextmanager
def gotop(size: tuple[int, int], args: Sequence[str] = (), profile: Path | None = None) -> Iterator[PtyApp]:
    app = PtyApp(gotop_argv(args, profile), *size, env=gotop_env())
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
            workload, size = WORKLOADS[i % len(WORKLOADS)]
            targets.append(start_target(KINDS[i % len(KINDS)], args=["-workload", workload, "-n", str(size)]))
    except BaseException:
        kill_all(targets)
        raise
    return targets


def kill_all(targets: Sequence[RunningTarget]) -> None:
    for t in targets:
        t.kill()


# -- 1. fleet ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FleetCost:
    label: str
    cpu_percent: float  # of one core, steady state
    startup_cpu: float  # seconds of CPU until the first frame (gotop only)
    peak_rss: int
    final_rss: int
    polled: int  # processes polled each second
    note: str = ""
    peer: bool = False
    exporter: bool = False  # gotop export: no screen, an HTTP server


def host_tcp_sockets() -> int:
    """Entries of this network namespace's TCP tables, TIME_WAIT included: each gops
    agent request is a connection of its own (the agent closes after each answer)."""
    total = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, "rb") as f:
            total += f.read().count(b"\n") - 1
    return total


def measure_gotop_fleet(targets: Sequence[RunningTarget], size: tuple[int, int], seconds: float,
                        profile: Path | None) -> FleetCost:
    pids = {t.pid for t in targets}
    sockets_before = host_tcp_sockets()
    with gotop(size, profile=profile) as app:
        if app.wait_for(shows_process_list(pids), FRAME_TIMEOUT) is None:
            raise RuntimeError(f"gotop showed no process list in {FRAME_TIMEOUT:.0f} s:\n" + "\n".join(app.lines()))
        startup_cpu = app.cpu_seconds()
        cpu0, bytes0, t0 = startup_cpu, app.bytes_read, time.perf_counter()
        slices = []  # (CPU % of a core, RSS at its end) per sixth of the run: does either grow?
        slice_cpu, slice_t = cpu0, t0
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
    return FleetCost(f"gotop {size[0]}x{size[1]}", 100 * (cpu1 - cpu0) / (t1 - t0), startup_cpu,
                     peak, final, len(targets), note)


def measure_engine(targets: Sequence[RunningTarget], seconds: float) -> FleetCost:
    """gotop's Fleet without the screen (bench/engine_cost.py), to split engine and UI cost."""
    script = Path(__file__).resolve().parent / "engine_cost.py"
    sockets_before = host_tcp_sockets()
    out = subprocess.run([sys.executable, str(script), "--seconds", str(seconds), "--expect", str(len(targets))],
                         env=gotop_env(), capture_output=True, text=True, check=True).stdout
    r = json.loads(out)
    return FleetCost("gotop engine alone (no TUI)", r["cpu_percent"], r["startup_cpu"], r["peak_rss"],
                     r["final_rss"], r["watched"],
                     f"bench/engine_cost.py: Fleet + pollers; "
                     f"host TCP sockets {sockets_before} -> {host_tcp_sockets()}")


def measure_exporter(targets: Sequence[RunningTarget], seconds: float, scrape_every: float) -> FleetCost:
    """`gotop export` watching the fleet at the TUI's polling, scraped every `scrape_every` seconds."""
    pids = {str(t.pid) for t in targets}
    sockets_before = host_tcp_sockets()
    with tempfile.TemporaryFile() as log:
        proc = psutil.Popen(gotop_argv(["export", "--listen", "127.0.0.1:0"]), env=gotop_env(),
                            stdout=subprocess.DEVNULL, stderr=log)
        try:
            url = f"http://{wait_until(lambda: serving_address(proc, log), 'gotop export served nothing')}/metrics"
            wait_until(lambda: pids <= up_pids(url), f"gotop export did not show all {len(pids)} targets up")
            times = proc.cpu_times()
            startup_cpu = times.user + times.system
            cpu0, t0 = startup_cpu, time.perf_counter()
            scrapes, size, series = 0, 0, 0
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
    return FleetCost(f"gotop export, scraped every {scrape_every:g} s", 100 * (cpu1 - cpu0) / (t1 - t0), startup_cpu,
                     peak, final, len(targets), note, exporter=True)


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
    return FleetCost(f"gops {GOPS_VERSION} stats+memstats loop", 100 * cpu / wall, 0.0, peak, peak, len(agents), note,
                     peer=True)


def report_fleet(rows: Sequence[FleetCost], seconds: float) -> None:
    print(f"\n== 1. fleet: {rows[0].polled} Go processes watched at 1 s for {seconds:.0f} s ==")
    print(f"{'':36}{'polled':>7}{'CPU %core':>11}{'start CPU':>11}{'peak RSS':>10}{'final RSS':>11}  verdict")
    for r in rows:
        verdict = "peer" if r.peer else (
            ("OK" if r.cpu_percent <= 5 and r.peak_rss <= 80 * MB else "OVER") + " (<=5 %, <=80 MB)")
        start = f"{'-':>10}" if r.peer else f"{r.startup_cpu:9.2f}s"
        print(f"{r.label:36}{r.polled:7d}{r.cpu_percent:10.2f}%{start:>11}{r.peak_rss / MB:8.1f}MB"
              f"{r.final_rss / MB:9.1f}MB  {verdict}")
        print(f"{'':38}{r.note}")
    engine = next((r for r in rows if r.label.startswith("gotop engine")), None)
    exporter = next((r for r in rows if r.exporter), None)
    peer = next((r for r in rows if r.peer), None)
    for r in rows:
        if r.peer or r is engine or r is exporter:
            continue
        if exporter is not None:
            print(f"ratio {exporter.label} / {r.label}: CPU {exporter.cpu_percent / r.cpu_percent:.2f}x, "
                  f"peak RSS {exporter.peak_rss / r.peak_rss:.2f}x")
        if engine is not None:
            ui = r.cpu_percent - engine.cpu_percent
            print(f"{r.label}: engine {engine.cpu_percent:.2f} % + screen {ui:.2f} % of a core "
                  f"(screen {ui / r.cpu_percent:.0%} of gotop's CPU)")
        if peer is not None and peer.cpu_percent > 0:
            per_proc = (r.cpu_percent / r.polled) / (peer.cpu_percent / peer.polled)
            print(f"ratio {r.label} / gops loop: CPU {r.cpu_percent / peer.cpu_percent:.2f}x "
                  f"({r.polled} processes vs {peer.polled} agents; per polled process {per_proc:.2f}x)")
    if engine is not None and peer is not None and peer.cpu_percent > 0:
        per_proc = (engine.cpu_percent / engine.polled) / (peer.cpu_percent / peer.polled)
        print(f"ratio gotop engine / gops loop: CPU {engine.cpu_percent / peer.cpu_percent:.2f}x "
              f"(per polled process {per_proc:.2f}x)")


# -- 2. startup ------------------------------------------------------------------------


def measure_startup(targets: Sequence[RunningTarget], sizes: Sequence[tuple[int, int]], launches: int) -> None:
    pids = {t.pid for t in targets}
    with gotop(sizes[0]) as warm:  # compiles and caches the modules, warms the page cache
        warm.wait_for(shows_process_list(pids), FRAME_TIMEOUT)
    print(f"\n== 2. startup: launch to the first frame with the process list ({len(targets)} targets, "
          f"median of {launches}) ==")
    gotop_medians = []
    for size in sizes:
        times, cpus = [], []
        for _ in range(launches):
            with gotop(size) as app:
                elapsed = app.wait_for(shows_process_list(pids), FRAME_TIMEOUT)
                if elapsed is None:
                    raise RuntimeError("gotop showed no process list:\n" + "\n".join(app.lines()))
                times.append(elapsed)
                cpus.append(app.cpu_seconds())
        median = statistics.median(times)
        gotop_medians.append(median)
        print(f"gotop {size[0]}x{size[1]:<6}  median {median:6.3f} s  (min {min(times):.3f}, max {max(times):.3f}; "
              f"CPU until then {statistics.median(cpus):.2f} s)  {'OK' if median < 1 else 'OVER'} (<1 s)")
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
    for size, median in zip(sizes, gotop_medians):
        print(f"ratio gotop {size[0]}x{size[1]} first frame / gops listing: {median / gops_median:.1f}x")


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


def profile_path(base: Path | None, size: tuple[int, int]) -> Path | None:
    return base.with_name(f"{base.stem}-{size[0]}x{size[1]}{base.suffix}") if base else None


def parse_size(text: str) -> tuple[int, int]:
    cols, _, rows = text.partition("x")
    return int(cols), int(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the fleet measurement per size")
    parser.add_argument("--targets", type=int, default=20, help="Go processes in the fleet")
    parser.add_argument("--sizes", default="120x40,80x24", help="terminal sizes, COLSxROWS, comma-separated")
    parser.add_argument("--launches", type=int, default=5, help="launches per size for the start-up median")
    parser.add_argument("--window", type=float, default=10.0, help="seconds per impact window")
    parser.add_argument("--pairs", type=int, default=6, help="alone/watched window pairs")
    parser.add_argument("--only", default="fleet,startup,impact", help="which parts to run, comma-separated")
    parser.add_argument("--no-gops-loop", action="store_true", help="skip the gops peer of the fleet part")
    parser.add_argument("--scrape-every", type=float, default=15.0,
                        help="seconds between scrapes of gotop export in the fleet part (default 15, as Prometheus "
                             "is often set)")
    parser.add_argument("--profile", type=Path, help="run gotop under cProfile in the fleet part; stats to FILE")
    parser.add_argument("--no-isolate", action="store_true", help="run on the host, not in a PID namespace")
    parser.add_argument("--nice", type=int, default=-10,
                        help="niceness of this run and all it starts (default -10 when permitted), so that other "
                             "work on a shared host disturbs the measurements less; 0 leaves it alone")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    if not args.no_isolate:
        isolate()
    niceness = set_niceness(os.getpid(), args.nice)
    # As PID 1 of a namespace, SIGTERM would be ignored: make it unwind the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    print(f"host: {os.cpu_count()} CPUs, load average {load_average()}; "
          f"isolated: {bool(os.environ.get(ISOLATED_ENV))}; "
          f"nice {niceness}; "
          f"python {sys.version.split()[0]}; gotop {gotop_revision()}")
    if parts & {"fleet", "startup"}:
        targets = start_fleet(args.targets)
        try:
            if "startup" in parts:
                measure_startup(targets, sizes, args.launches)
            if "fleet" in parts:
                rows = [measure_gotop_fleet(targets, size, args.seconds, profile_path(args.profile, size))
                        for size in sizes]
                rows.append(measure_engine(targets, args.seconds))
                rows.append(measure_exporter(targets, args.seconds, args.scrape_every))
                if not args.no_gops_loop:
                    rows.append(measure_gops_loop(targets, args.seconds))
                report_fleet(rows, args.seconds)
        finally:
            kill_all(targets)
    if "impact" in parts:
        measure_impact(args.window, args.pairs, sizes[0])
    print(f"\nload average at the end: {load_average()} (other work on the host makes the figures noisier)")


if __name__ == "__main__":
    main()

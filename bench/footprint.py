#!/usr/bin/env python3
"""gotop's footprint in the processes it watches: what its requests cost them, in one run.

forms   What one request of each kind gotop can make costs the target, and what
        parsing the answer costs gotop: the goroutine profile as protobuf
        (debug=0: runtime/pprof's profile builder and a gzip writer) and as text
        (debug=1), /debug/vars, the pprof index, the heap profile. Target: the
        agentpprof test target with about 100, 1000 and 10,000 parked goroutines.
        The target's CPU (its threads' schedstat) and bytes allocated (its
        totalAlloc, read from its memory, which costs it nothing) are measured
        over a block of requests between two GCs (bench/memory_read.py's
        target_cost: less what it spends idle as long, "±" half the difference
        of the idle windows before and after); gotop's parse CPU over --parses
        parses of one answer.

watch   Real services, each watched three ways for --seconds each, in turn:
          unwatched   nothing asks it anything;
          check       `gotop check PID --for SECONDS` (a subprocess);
          engine      the TUI's engine: a Fleet polling the process as the TUI
                      does while its list shows it (in this process).
        Per phase: the target's GC cycles, bytes allocated and CPU per minute
        (GC count and totalAlloc read from its memory), the connections it
        accepted (new socket descriptors, sampled every 0.2 s), and at the end
        the share of its in-use heap profile (inuse_space) that is gotop's own
        requests (gotop.model.monitoring: stacks through the pprof, expvar,
        gops or promhttp handlers). Each phase starts with a GC run through
        heap?gc=1&debug=1, so it starts with no garbage and the heap profile is
        current; its own allocations fall before the counters start.
        Services: `small` (the pprofonly test target, idle: net/http/pprof and
        expvar; `small@go1.27` built with Go 1.27, whose goroutineleak profile
        gotop asks for, and each of those runs a GC cycle), `cache` (the same
        serving a bounded cache: about 1 MiB of live heap, 12 MB a minute
        allocated, GC at its own pace), and Debian's caddy
        (admin port: pprof, expvar, /metrics), etcd (--enable-pprof), prometheus
        (pprof and /metrics on its web port) and containerd (pprof and expvar on
        its debug socket; as root) where installed (tests/services.py runs them on
        loopback in a private directory).

The bench re-runs itself in a private network namespace (as root, with unshare;
--no-isolate not): other gotops on a shared machine watch every Go process they
can reach, and would be counted as this one's requests.

Goals (issue 13): gotop's own allocations at most 10 % of a small service's
in-use heap after a minute; an idle service's GC cycles per minute under the
TUI's engine and under `gotop check` within 1.3x of unwatched.

Usage: .venv/bin/python bench/footprint.py [--only forms|watch] [--seconds 60] [--rounds 1]
           [--services small,small@go1.27,cache,caddy,etcd,prometheus,containerd] [--sizes 100,1000,10000]
           [--requests 20] [--parses 50] [--no-isolate]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import services  # noqa: E402
from gotargets import go_version, start_target  # noqa: E402
from memory_read import Counters, isolate, target_cost, target_cpu  # noqa: E402
from tui_cost import gotop_revision, load_average  # noqa: E402

from gotop.discovery.processes import Scanner  # noqa: E402
from gotop.engine.fleet import Fleet  # noqa: E402
from gotop.engine.history import TargetState  # noqa: E402
from gotop.engine.poller import Tiers  # noqa: E402
from gotop.engine.target import Target  # noqa: E402
from gotop.model.goroutines import parse_goroutine_profile_text, profile_from_pprof  # noqa: E402
from gotop.model.monitoring import monitoring_share  # noqa: E402
from gotop.model.profile import parse_profile  # noqa: E402
from gotop.sources.gops import GopsClient  # noqa: E402
from gotop.sources.http import PprofClient  # noqa: E402

GC_PATH = "/debug/pprof/heap"  # ?gc=1&debug=1: a GC, then the text form (no gzip writer)
SAMPLE_SOCKETS_EVERY = 0.2
READY_TIMEOUT = 60.0
MB = 1e6


# --- forms -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Form:
    name: str
    path: str
    params: dict[str, str]
    parse: Callable[[bytes], object] | None  # gotop's parse of the answer, if it parses it


FORMS = (
    Form("goroutine debug=0", "/debug/pprof/goroutine", {},
         lambda body: profile_from_pprof(parse_profile(body))),
    Form("goroutine debug=1", "/debug/pprof/goroutine", {"debug": "1"}, parse_goroutine_profile_text),
    Form("expvar", "/debug/vars", {}, None),
    Form("pprof index", "/debug/pprof/", {}, None),
    Form("heap debug=0", "/debug/pprof/heap", {}, parse_profile),
)


def parse_cpu(parse: Callable[[bytes], object], body: bytes, parses: int) -> float:
    """gotop's CPU seconds per parse of one answer."""
    parse(body)
    started = time.process_time()
    for _ in range(parses):
        parse(body)
    return (time.process_time() - started) / parses


async def measure_forms(sizes: list[int], requests: int, parses: int) -> None:
    print(f"\n== forms: what one request costs the target (agentpprof, parked goroutines; {requests} requests "
          f"a block) and what its parse costs gotop ({parses} parses)")
    print(f"{'goroutines':>10}  {'request':<18} {'bytes':>9}  {'target allocates':>22}  {'target CPU':>18}  "
          f"{'gotop parse':>11}")
    for size in sizes:
        target = start_target("agentpprof", args=["-workload", "park", "-n", str(size)])
        try:
            counters = Counters(target.pid, go_version("go"))
            agent = GopsClient("127.0.0.1", target.agent_port)
            http = PprofClient(f"http://{target.http_addr}")
            while counters.goroutines() < size:
                await asyncio.sleep(0.1)
            for form in FORMS:
                async def fetch(form: Form = form, http: PprofClient = http) -> bytes:
                    return (await http.get(form.path, form.params, max_bytes=256 << 20)).body
                body = await fetch()
                cost = await target_cost(target.pid, counters, agent.gc, fetch, requests, expected=1.0)
                parse = f"{parse_cpu(form.parse, body, parses) * 1e3:8.2f} ms" if form.parse else ""
                print(f"{size:>10,}  {form.name:<18} {len(body):>9,}  "
                      f"{cost.allocated:>11,.0f} ±{cost.allocated_error:>8,.0f} B  "
                      f"{cost.cpu * 1e3:>7.3f} ±{cost.cpu_error * 1e3:.3f} ms  {parse:>11}", flush=True)
            await http.aclose()
        finally:
            target.kill()


# --- watch -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    name: str
    pid: int
    go_version: str


@dataclass
class Phase:
    name: str
    seconds: float
    gc_cycles: int
    allocated: int
    cpu: float  # the target's CPU seconds
    connections: int  # sockets the target opened (accepted connections)
    own_share: tuple[int, int] | None  # (gotop's own, total) inuse_space at the end

    def per_minute(self, value: float) -> float:
        return value * 60 / self.seconds


class SocketCounter:
    """New socket descriptors of a process, sampled from /proc/PID/fd in a thread
    (costs the process nothing): each accepted connection is a new socket."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.seen = self._sockets()
        self.new: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sockets(self) -> set[str]:
        found = set()
        fd_dir = Path(f"/proc/{self.pid}/fd")
        for fd in os.listdir(fd_dir):
            try:
                link = os.readlink(fd_dir / fd)
            except OSError:
                continue
            if link.startswith("socket:"):
                found.add(link)
        return found

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SOCKETS_EVERY):
            self.new |= self._sockets() - self.seen

    def __enter__(self) -> SocketCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


async def run_phase(name: str, service: Service, target: Target, counters: Counters,
                    watch: Callable[[], Awaitable[None]]) -> Phase:
    assert target.http is not None
    await target.http.get(GC_PATH, {"gc": "1", "debug": "1"}, max_bytes=64 << 20)
    before = counters.reading().memstats
    cpu, started = target_cpu(service.pid), time.monotonic()
    with SocketCounter(service.pid) as sockets:
        await watch()
    seconds = time.monotonic() - started
    after = counters.reading().memstats
    cpu = target_cpu(service.pid) - cpu
    assert before.num_gc is not None and after.num_gc is not None
    assert before.total_alloc is not None and after.total_alloc is not None
    heap = parse_profile(await target.heap_profile())
    share = monitoring_share(heap, heap.sample_index("inuse_space"))
    return Phase(name, seconds, after.num_gc - before.num_gc, after.total_alloc - before.total_alloc, cpu,
                 len(sockets.new), share)


async def unwatched(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def under_check(pid: int, seconds: float) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gotop", "check", str(pid), "--for", f"{seconds:g}", "--allow-partial",
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    _, err = await proc.communicate()
    if proc.returncode not in (0, 1, 3):
        raise RuntimeError(f"gotop check exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}")


async def under_engine(pid: int, seconds: float) -> None:
    fleet = Fleet(lambda _watched: None, Tiers.for_screens(), discover=False)
    watched = fleet.add(Target.for_process(Scanner().inspect(pid)))
    fleet.view("list", [watched])  # on the TUI's list: polled every second
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while watched.history.state is not TargetState.UP:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the engine got no answer from pid {pid}: {watched.history.error}")
            await asyncio.sleep(0.05)
        await asyncio.sleep(seconds)
    finally:
        await fleet.aclose()


async def watch_service(service: Service, seconds: float, rounds: int) -> list[Phase]:
    """The three phases, `rounds` times in turn, summed by phase: a GC's pace depends on the
    machine's load too (a starved mark starts the next cycle earlier), and the rounds share it."""
    target = Target.for_process(Scanner().inspect(service.pid))
    if target.http is None:
        raise RuntimeError(f"{service.name} serves no net/http/pprof that discovery found")
    counters = Counters(service.pid, service.go_version)
    watches = {"unwatched": lambda: unwatched(seconds), "check": lambda: under_check(service.pid, seconds),
               "engine": lambda: under_engine(service.pid, seconds)}
    phases: dict[str, Phase] = {}
    try:
        for _ in range(rounds):
            for name, watch in watches.items():
                p = await run_phase(name, service, target, counters, watch)
                if name in phases:
                    q = phases[name]
                    p = Phase(name, q.seconds + p.seconds, q.gc_cycles + p.gc_cycles, q.allocated + p.allocated,
                              q.cpu + p.cpu, q.connections + p.connections, p.own_share)
                phases[name] = p
        return list(phases.values())
    finally:
        await target.aclose()


def report_service(service: Service, phases: list[Phase]) -> None:
    print(f"\n{service.name} (pid {service.pid}, {service.go_version})")
    print(f"  {'phase':<10} {'seconds':>7}  {'GC/min':>7}  {'x unwatched':>11}  {'alloc/min':>11}  "
          f"{'CPU/min':>10}  {'conns':>5}  {'gotop in heap':>22}")
    base = phases[0]
    for p in phases:
        gcs = p.per_minute(p.gc_cycles)
        ratio = f"{gcs / base.per_minute(base.gc_cycles):.2f}x" if base.gc_cycles else \
            ("same (0)" if not p.gc_cycles else f"+{p.gc_cycles}")
        own, total = p.own_share or (0, 0)
        share = f"{own / total:6.1%} of {total / MB:6.2f} MB" if total else "empty profile"
        print(f"  {p.name:<10} {p.seconds:>7.1f}  {gcs:>7.2f}  {ratio:>11}  {p.per_minute(p.allocated) / MB:>8.2f} MB  "
              f"{p.per_minute(p.cpu) * 1e3:>7.1f} ms  {p.connections:>5}  {share:>22}")
    for p in phases[1:]:
        extra = p.per_minute(p.allocated) - base.per_minute(base.allocated)
        print(f"  {p.name}: gotop's requests allocate about {extra / MB:.2f} MB/min in the target "
              f"({max(0.0, extra) / max(p.per_minute(p.allocated), 1):.0%} of what it allocates meanwhile)")


SMALL_WORKLOADS = {"small": "idle", "cache": "healthy-cache"}


@contextmanager
def small_service(workload: str, toolchain: str) -> Iterator[Service]:
    target = start_target("pprofonly", toolchain=toolchain, args=["-workload", workload])
    try:
        yield Service(f"pprofonly -workload {workload} ({toolchain})", target.pid, go_version(toolchain))
    finally:
        target.kill()


def etcd_with_pprof(work: Path, ports: list[int]) -> services.Launch:
    launch = services.SERVICES["etcd"].launch(work, ports)
    return services.Launch([*launch.argv, "--enable-pprof"], launch.metrics_url, launch.ready)


@contextmanager
def debian_service(name: str) -> Iterator[Service | None]:
    why = services.unavailable(name)
    if why:
        print(f"\n{name}: skipped ({why})")
        yield None
        return
    with tempfile.TemporaryDirectory(prefix=f"footprint-{name}-") as work, \
            services.running_service(name, Path(work), etcd_with_pprof if name == "etcd" else None) as running:
        process = Scanner().inspect(running.pid)
        yield Service(name, running.pid, process.go_version)


def measure_watch(names: list[str], seconds: float, rounds: int) -> None:
    print(f"\n== watch: real services, {seconds:g} s unwatched, under `gotop check`, under the TUI's engine"
          + (f", {rounds} rounds of the three" if rounds > 1 else ""))
    for name in names:
        kind, _, toolchain = name.partition("@")
        with small_service(SMALL_WORKLOADS[kind], toolchain or "go") if kind in SMALL_WORKLOADS \
                else debian_service(name) as service:
            if service is None:
                continue
            phases = asyncio.run(watch_service(service, seconds, rounds))  # (a service starts a loop of its own)
            report_service(service, phases)
            sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("forms", "watch"))
    parser.add_argument("--seconds", type=float, default=60.0, help="of each watch phase")
    parser.add_argument("--rounds", type=int, default=1, help="of the three watch phases, in turn")
    parser.add_argument("--services", default="small,small@go1.27,cache,caddy,etcd,prometheus,containerd")
    parser.add_argument("--sizes", default="100,1000,10000", help="goroutines of the forms' targets")
    parser.add_argument("--requests", type=int, default=20, help="requests a measured block (forms)")
    parser.add_argument("--parses", type=int, default=50)
    parser.add_argument("--no-isolate", action="store_true", help="run in the host's network namespace")
    args = parser.parse_args()
    where = "host network namespace" if args.no_isolate else isolate()
    print(f"gotop {gotop_revision()}; {where}; load average {load_average()}")
    if args.only != "watch":
        asyncio.run(measure_forms([int(s) for s in args.sizes.split(",")], args.requests, args.parses))
    if args.only != "forms":
        measure_watch(args.services.split(","), args.seconds, args.rounds)
    print(f"\nload average {load_average()}")


if __name__ == "__main__":
    main()

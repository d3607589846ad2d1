"""`gotop export`: the Go processes of this host for Prometheus, against real Go
targets (a leaking and a healthy one), Debian's prometheus scraping it, and
promtool checking what it serves and the example rules (examples/prometheus/).

Each exporter is `gotop export` in a process of its own on a free loopback port
(--listen 127.0.0.1:0), polling every second with goroutine profiles every 2 s
as `gotop check` does, so that a leak is found in about 15 s. It watches every
Go process of the (shared) host; the tests look at their own targets' pids.
One exporter, with one leaking and one healthy target, serves the whole module
(the leak is found once); the tests that need other settings start their own.

Faults: a target stopped (SIGSTOP) while scrapes go on; 1000 real short-lived
Go processes starting and exiting while the exporter is scraped back to back
(its discovery churning): no failed scrape, no series left of any of them.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from gotargets import RunningTarget, _die_with_parent, start_target, target_binary
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from services import prometheus_scraping, running_service, unavailable
from waiting import eventually

from gotop.commands.fleetmetrics import MAX_WHERE, fleet_families, leak_rates
from gotop.engine.fleet import Fleet, Watched, apply_update
from gotop.engine.history import TargetHistory, TargetState, Update
from gotop.engine.leaks import MIN_GOROUTINE_GAIN, Basis, Confidence, Evidence, Finding, GroupRef, LeakKind
from gotop.engine.poller import Tiers
from gotop.engine.target import Target
from gotop.model.goroutines import Frame
from gotop.textsafe import plain

T = TypeVar("T")
pytestmark = pytest.mark.go  # the module's targets are started without the go_target fixture

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "prometheus"
FAST = ("--interval", "1s", "--slow-every", "2s")
LEAK_TIMEOUT = 120.0  # a safety net for a leak to be found on a busy machine, not a timing assertion
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
CHURN_PROCESSES = 1000
CHURN_AT_ONCE = 60
CHURN_LIFE = (0.1, 2.0)  # seconds a short-lived process lives: most are gone before a rescan sees them


# -- the exporter ---------------------------------------------------------------------------


Series = dict[str, list[Sample]]  # sample name -> its samples


def parse(text: str) -> Series:
    """The text exposition, parsed by prometheus_client; a label set twice in one family fails."""
    series: Series = {}
    for family in text_string_to_metric_families(text):
        seen = set()
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in seen, f"duplicate series {key}"
            seen.add(key)
            series.setdefault(sample.name, []).append(sample)
    return series


def of_pid(series: Series, name: str, pid: int) -> list[Sample]:
    return [s for s in series.get(name, []) if s.labels.get("pid") == str(pid)]


def value(series: Series, name: str, pid: int, **labels: str) -> float | None:
    found = [s.value for s in of_pid(series, name, pid) if labels.items() <= s.labels.items()]
    assert len(found) <= 1, found
    return found[0] if found else None


def sources(series: Series, pid: int) -> set[str]:
    return {s.labels["source"] for s in of_pid(series, "gotop_source_answered", pid)}


def pids(series: Series) -> set[int]:
    return {int(s.labels["pid"]) for samples in series.values() for s in samples if "pid" in s.labels}


@dataclass
class Exporter:
    proc: subprocess.Popen
    address: str  # HOST:PORT it serves
    log: Path  # its stderr

    def get(self, accept: str | None = None) -> httpx.Response:
        headers = {"Accept": accept} if accept else {}
        response = httpx.get(f"http://{self.address}/metrics", headers=headers, timeout=30.0)
        response.raise_for_status()
        return response

    def series(self) -> Series:
        return parse(self.get().text)


@contextmanager
def exporter(work: Path, *args: str) -> Iterator[Exporter]:
    """`gotop export --listen 127.0.0.1:0 ARGS` until the block ends; then SIGTERM: a clean exit, no traceback."""
    log = work / "export.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "gotop", "export", "--listen", "127.0.0.1:0", *args],
                                stdout=subprocess.DEVNULL, stderr=err, preexec_fn=_die_with_parent)
    try:
        address = wait_until(lambda: _serving(proc, log))
        yield Exporter(proc, address, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    text = log.read_text(errors="replace")
    assert proc.returncode == 0, text
    assert "Traceback" not in text, text


def _serving(proc: subprocess.Popen, log: Path) -> str | None:
    assert proc.poll() is None, f"gotop export exited with {proc.returncode}: {log.read_text()}"
    found = re.search(r"serving http://(\S+)/metrics", log.read_text(errors="replace"))
    return found.group(1) if found else None


def wait_until(condition: Callable[[], T], timeout: float = 60.0, pause: float = 0.1) -> T:
    """`waiting.eventually` from synchronous code: the tests here wait while threads
    scrape and Go processes churn, none of which needs an event loop of the test's."""
    return asyncio.run(eventually(condition, timeout=timeout, pause=lambda: asyncio.sleep(pause)))


@dataclass
class LeakWatch:
    """The module's exporter and its two targets, once the leak is found."""

    exporter: Exporter
    leaking: RunningTarget
    healthy: RunningTarget


@pytest.fixture(scope="module")
def watch(tmp_path_factory) -> Iterator[LeakWatch]:
    targets: list[RunningTarget] = []
    try:
        targets.append(start_target("agentpprof", args=["-workload", "leak-send"],
                                    config_dir=tmp_path_factory.mktemp("gops")))
        targets.append(start_target("agentpprof", args=["-workload", "healthy-pool"],
                                    config_dir=tmp_path_factory.mktemp("gops")))
        with exporter(tmp_path_factory.mktemp("export"), *FAST) as running:
            leaking, healthy = targets

            def leak_found() -> bool:
                return bool(of_pid(running.series(), "gotop_leak_rate_per_minute", leaking.pid))

            wait_until(leak_found, timeout=LEAK_TIMEOUT, pause=0.5)
            yield LeakWatch(running, leaking, healthy)
    finally:
        for target in targets:
            target.kill()


# -- what it serves -----------------------------------------------------------------------------


def test_the_leaking_target_has_its_leak_and_the_healthy_one_none(watch):
    series = watch.exporter.series()
    leaks = of_pid(series, "gotop_leak_rate_per_minute", watch.leaking.pid)
    assert [s.labels["kind"] for s in leaks] == ["goroutines"], leaks
    where = leaks[0].labels["where"]
    assert re.fullmatch(r"\S*leakySendResult \(leak_goroutines\.go:\d+\)", where), where
    assert leaks[0].value > 0
    assert value(series, "gotop_leak_findings_total", watch.leaking.pid, kind="goroutines") >= 1
    assert value(series, "gotop_goroutines", watch.leaking.pid) >= MIN_GOROUTINE_GAIN
    assert of_pid(series, "gotop_leak_rate_per_minute", watch.healthy.pid) == []
    raised = {s.labels["kind"]: s.value for s in of_pid(series, "gotop_leak_findings_total", watch.healthy.pid)}
    assert raised == {"goroutines": 0, "heap": 0, "fds": 0, "sockets": 0}


def test_every_figure_of_a_process_is_there_and_true(watch):
    pid = watch.healthy.pid
    series = watch.exporter.series()
    for name in ("gotop_up", "gotop_goroutines", "gotop_threads", "gotop_heap_inuse_bytes", "gotop_heap_goal_bytes",
                 "gotop_gc_cycles_total", "gotop_gc_pause_seconds_total", "gotop_resident_memory_bytes",
                 "gotop_cpu_seconds_total"):
        assert value(series, name, pid) is not None, name
    labels = of_pid(series, "gotop_up", pid)[0].labels
    assert labels == {"pid": str(pid), "name": "agentpprof", "exe": str(target_binary("agentpprof"))}
    assert value(series, "gotop_up", pid) == 1
    assert value(series, "gotop_heap_goal_bytes", pid) >= 4 << 20  # the runtime's least goal
    assert {s.labels["kind"] for s in of_pid(series, "gotop_open_fds", pid)} == {
        "file", "tcp", "udp", "unix", "pipe", "other"}
    assert value(series, "gotop_open_fds", pid, kind="tcp") >= 2  # the agent's and pprof's listeners
    answered = sources(series, pid)
    assert "procfs" in answered and answered & {"memory", "agent", "pprof", "expvar"}, answered
    if "memory" in answered:  # the live heap its last GC marked, read from its memory: the goal is twice it and more
        live = value(series, "gotop_heap_live_bytes", pid)
        assert 0 < live and 2 * live <= value(series, "gotop_heap_goal_bytes", pid), live
    else:
        assert os.geteuid() != 0, answered  # root reads the memory of any process

    # Each figure is what the process says of itself (the pool's goroutines and threads hold still).
    def agrees() -> bool:
        series = watch.exporter.series()
        threads = int(re.search(r"Threads:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))
        return (abs(value(series, "gotop_goroutines", pid) - pprof_goroutines(watch.healthy)) <= 2
                and value(series, "gotop_threads", pid) == threads
                and 0 < value(series, "gotop_cpu_seconds_total", pid) <= cpu_seconds(pid))

    wait_until(agrees, pause=0.5)


def pprof_goroutines(target: RunningTarget) -> int:
    """The total of the target's own goroutine profile (its handler's goroutine among them)."""
    text = httpx.get(f"http://{target.http_addr}/debug/pprof/goroutine?debug=1", timeout=10.0).text
    return int(re.match(r"goroutine profile: total (\d+)", text).group(1))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_the_exposition_passes_promtool(watch):
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian package prometheus, which tests/run installs as root)")
    text = watch.exporter.get().text
    assert of_pid(parse(text), "gotop_leak_rate_per_minute", watch.leaking.pid)  # every family has samples
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout == result.stderr == "", result.stdout + result.stderr


def test_openmetrics_when_the_scraper_asks(watch):
    response = watch.exporter.get(OPENMETRICS)
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    families = {f.name: f for f in openmetrics_parser.text_string_to_metric_families(response.text)}  # strict
    assert families["gotop_cpu_seconds"].type == "counter" and families["gotop_cpu_seconds"].unit == "seconds"
    assert families["gotop_heap_inuse_bytes"].unit == "bytes"
    assert any(s.labels.get("pid") == str(watch.leaking.pid) for s in families["gotop_leak_rate_per_minute"].samples)
    assert watch.exporter.get().headers["content-type"].startswith("text/plain")


def test_an_exited_process_leaves_the_exposition(watch, go_target):
    target = go_target("pprofonly", args=["-workload", "park"])
    wait_until(lambda: target.pid in pids(watch.exporter.series()))
    target.kill()
    wait_until(lambda: target.pid not in pids(watch.exporter.series()))


def test_a_name_is_plain_text_in_the_labels(watch, go_target, tmp_path):
    """A binary named with invalid UTF-8, a quote, a backslash, a newline and an escape sequence."""
    raw = b'\xff\xfe\x80bad"\\\n\x1b[31m'
    binary = tmp_path / os.fsdecode(raw)
    shutil.copy(target_binary("pprofonly"), binary)
    target = go_target("pprofonly", binary=binary)
    labels = wait_until(lambda: [s.labels for s in of_pid(watch.exporter.series(), "gotop_up", target.pid)])
    assert labels[0]["exe"] == plain(str(binary))
    assert labels[0]["exe"].endswith('/\\xff\\xfe\\x80bad"\\\\x0a\\x1b[31m')
    assert labels[0]["name"] == plain(os.fsdecode(raw))


# -- the collector, in process, on a fleet of its own ---------------------------------------------


def samples_by_pid(families: list[Metric]) -> dict[int, list[Sample]]:
    found: dict[int, list[Sample]] = {}
    for family in families:
        for sample in family.samples:
            found.setdefault(int(sample.labels["pid"]), []).append(sample)
    return found


async def test_an_exited_process_leaves_as_soon_as_the_engine_knows(go_target):
    """Before the fleet drops it (it keeps an exited target a while): the collector leaves it out
    once its poller has seen it exit. The same process watched twice is one set of series."""
    target = go_target("pprofonly", args=["-workload", "park"])
    fleet = Fleet(lambda _watched: None, Tiers(0.2, 1.0), discover=False)
    async with fleet.running():
        first = fleet.add(Target.open(str(target.pid)), key="first")
        fleet.add(Target.open(str(target.pid)), key="second")
        await eventually(lambda: all(w.history.state is TargetState.UP for w in fleet.watched.values()))
        series = samples_by_pid(fleet_families(fleet.watched.values()))[target.pid]
        assert len(series) == len({(s.name, tuple(sorted(s.labels.items()))) for s in series})
        assert ("gotop_up", 1.0) in [(s.name, s.value) for s in series]
        target.kill()
        await eventually(lambda: first.history.state is TargetState.EXITED)
        assert first in fleet.watched.values()
        assert samples_by_pid(fleet_families(fleet.watched.values())) == {}


def test_a_finding_is_raised_once_while_it_lasts():
    """Open files rise (a finding), go on rising (the same one), are all closed (none), rise
    again past where they were (a second one): gotop_leak_findings_total{kind="fds"} counts 2."""
    watched = Watched("x", Target("x"), TargetHistory(1.0, 600))
    counts = [*range(0, 200, 10), 0, *range(0, 300, 10)]
    raised = []
    for i, count in enumerate(counts):
        apply_update(watched, Update(1e9 + i, TargetState.UP, fds={"file": count}))
        raised.append(watched.raised[LeakKind.FDS])
    assert raised[4] == 0 and raised[19] == 1 and raised[20] == 1 and raised[-1] == 2
    assert raised == sorted(raised) and set(raised) == {0, 1, 2}


def test_findings_that_share_a_place_are_one_series():
    def finding(where: str, rate: float, stack: str) -> Finding:
        evidence = Evidence(Basis.GROWING_GROUP, "grew")
        return Finding(LeakKind.GOROUTINES, where, GroupRef((Frame(stack, "x.go", 1),)), rate, "goroutines", 0.0,
                       Confidence.HIGH, (evidence,))

    long = "pkg.F[" + "x" * 300 + "] (f.go:1)"
    rates = leak_rates([finding("main.wait (w.go:3)", 60.0, "a"), finding("main.wait (w.go:3)", 30.0, "b"),
                        finding("main.\x1bbad (b.go:1)", 6.0, "c"), finding(long, 1.0, "d")])
    assert rates[("goroutines", "main.wait (w.go:3)")] == 90.0
    assert rates[("goroutines", "main.\\x1bbad (b.go:1)")] == 6.0
    (truncated,) = [where for _, where in rates if where.startswith("pkg.F[")]
    assert len(truncated) == MAX_WHERE and truncated.endswith("…")


# -- Prometheus ---------------------------------------------------------------------------------


class PrometheusAPI:
    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str, **params: str) -> dict:
        body = httpx.get(f"{self.base}/api/v1/{path}", params=params, timeout=30.0).json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict]:
        return self.get("query", query=promql)["result"]


def test_prometheus_scrapes_the_leak_and_alerts_on_it(watch, tmp_path):
    if (why := unavailable("prometheus")) is not None:
        pytest.skip(why)
    leaking, healthy = watch.leaking.pid, watch.healthy.pid
    launch = prometheus_scraping([watch.exporter.address], [EXAMPLES / "gotop-alerts.yml"])
    with running_service("prometheus", tmp_path, launch) as prometheus:
        api = PrometheusAPI(prometheus.metrics_url.removesuffix("/metrics"))

        def leak_series() -> list[dict]:
            return api.query(f'gotop_leak_rate_per_minute{{pid="{leaking}"}}')

        series = wait_until(leak_series, timeout=LEAK_TIMEOUT, pause=0.5)
        assert [(s["metric"]["kind"], "leakySendResult" in s["metric"]["where"]) for s in series] == [
            ("goroutines", True)]
        assert series[0]["metric"]["job"] == "gotop" and float(series[0]["value"][1]) > 0
        goroutines = api.query(f'gotop_goroutines{{pid="{leaking}"}}')
        assert float(goroutines[0]["value"][1]) >= MIN_GOROUTINE_GAIN
        # The healthy target is there, with its figures and without a leak.
        assert api.query(f'gotop_goroutines{{pid="{healthy}"}}')
        assert api.query(f'count_over_time(gotop_leak_rate_per_minute{{pid="{healthy}"}}[1h])') == []
        assert api.query(f'gotop_leak_findings_total{{pid="{healthy}"}} > 0') == []

        # The example rules load, and the leak's alert waits out its 10 minutes. (Other processes
        # of the host, the suite's own leaking targets among them, may have alerts of their own.)
        ours = {str(leaking), str(healthy)}

        def leak_alerts() -> list[dict]:
            return [a for a in api.get("alerts")["alerts"]
                    if a["labels"]["alertname"] == "GotopGoroutineLeak" and a["labels"]["pid"] in ours]

        alerts = wait_until(leak_alerts, pause=0.5)
        assert {(a["labels"]["pid"], a["state"]) for a in alerts} == {(str(leaking), "pending")}
        assert alerts[0]["labels"]["where"] == series[0]["metric"]["where"]
        rules = [r for group in api.get("rules")["groups"] for r in group["rules"]]
        assert len(rules) == 5 and all(r["health"] == "ok" for r in rules), rules
        assert not [a for a in api.get("alerts")["alerts"] if a["labels"].get("pid") == str(healthy)]


# -- the example configuration ------------------------------------------------------------------


@pytest.mark.parametrize("check", [
    ["check", "rules", "gotop-alerts.yml"],
    ["check", "config", "prometheus.yml"],
    ["test", "rules", "gotop-alerts_test.yml"],
])
def test_the_examples_pass_promtool(check):
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian package prometheus, which tests/run installs as root)")
    result = subprocess.run(["promtool", *check], cwd=EXAMPLES, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# -- faults ---------------------------------------------------------------------------------------


@dataclass
class Scraper:
    """Scrapes an exporter back to back in a thread until stopped: the pids each scrape
    held, and every failure (an error answer, a malformed or duplicated series)."""

    exporter: Exporter
    scrapes: int = 0
    seen: set[int] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Scraper:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(60)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.seen |= pids(self.exporter.series())
                self.scrapes += 1
            except Exception as e:  # noqa: BLE001 - every failure is the finding
                self.failures.append(repr(e))


def test_a_stopped_target_stops_nothing_else(watch, go_target):
    """SIGSTOP a target: its polls of expvar time out, and expvar leaves the sources that
    answer (its memory still does: a stopped process can be read); scrapes go on answering
    all the while, and the other targets' figures keep moving (the leaking target's
    goroutines rise). Killed, it leaves the exposition."""
    stopped = go_target("agentpprof", args=["-workload", "park"])
    wait_until(lambda: value(watch.exporter.series(), "gotop_up", stopped.pid) == 1)
    os.kill(stopped.pid, signal.SIGSTOP)
    try:
        with Scraper(watch.exporter) as scraper:
            first = value(watch.exporter.series(), "gotop_goroutines", watch.leaking.pid)
            wait_until(lambda: value(watch.exporter.series(), "gotop_goroutines", watch.leaking.pid) > first)
            wait_until(lambda: sources(watch.exporter.series(), stopped.pid) == {"memory", "procfs"}, timeout=120.0)
        assert scraper.failures == []
    finally:
        stopped.kill()  # a stopped process still dies of SIGKILL
    wait_until(lambda: stopped.pid not in pids(watch.exporter.series()))
    assert watch.exporter.proc.poll() is None


def churn(count: int, at_once: int, config_dir: Path) -> set[int]:
    """Run `count` real Go processes (plain and agentpprof, idle), `at_once` alive at a time,
    each for a moment: discovery meets processes that are gone before it looks at them,
    between its scan and its probes, and between two polls. Returns their pids."""
    binaries = [str(target_binary("agentpprof")), *[str(target_binary("plain"))] * 3]
    rng = random.Random(14)
    env = {**os.environ, "GOPS_CONFIG_DIR": str(config_dir)}
    live: list[tuple[float, subprocess.Popen]] = []
    started: set[int] = set()
    try:
        while len(started) < count or live:
            now = time.monotonic()
            for ends, proc in [entry for entry in live if entry[0] <= now]:
                proc.kill()
                proc.wait()
                live.remove((ends, proc))
            while len(started) < count and len(live) < at_once:
                proc = subprocess.Popen([binaries[len(started) % len(binaries)], "-workload", "idle"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                        preexec_fn=_die_with_parent)
                started.add(proc.pid)
                live.append((time.monotonic() + rng.uniform(*CHURN_LIFE), proc))
            threading.Event().wait(0.01)  # the loop's pace, not a wait for something
    finally:
        for _, proc in live:
            proc.kill()
            proc.wait()
    return started


def test_many_short_lived_processes_leave_no_series(watch, tmp_path):
    with Scraper(watch.exporter) as scraper:
        churned = churn(CHURN_PROCESSES, CHURN_AT_ONCE, tmp_path)
    assert scraper.failures == []
    assert scraper.seen & churned  # the exporter did watch some of them
    wait_until(lambda: not pids(watch.exporter.series()) & churned)
    assert watch.exporter.proc.poll() is None
    assert value(watch.exporter.series(), "gotop_up", watch.healthy.pid) == 1


# -- reading, never polling; the command line ---------------------------------------------------------


def test_a_scrape_never_polls(go_target, tmp_path):
    """Polls an hour apart: after the first, a spinning target's CPU seconds stay what that
    poll read, scrape after scrape, while its real CPU time grows."""
    spinning = go_target("plain", args=["-workload", "spin"])
    with exporter(tmp_path, "--interval", "1h", "--slow-every", "1h") as hourly:
        read = wait_until(lambda: value(hourly.series(), "gotop_cpu_seconds_total", spinning.pid))
        wait_until(lambda: cpu_seconds(spinning.pid) > read + 0.5)
        for _ in range(20):
            assert value(hourly.series(), "gotop_cpu_seconds_total", spinning.pid) == read


def test_help_documents_the_command():
    overview = subprocess.run([sys.executable, "-m", "gotop", "--help"], capture_output=True, text=True, timeout=60)
    assert re.search(r"^\s+export\s+serve every Go process's figures", overview.stdout, re.MULTILINE), overview.stdout
    own = subprocess.run([sys.executable, "-m", "gotop", "export", "--help"], capture_output=True, text=True,
                         timeout=60).stdout
    for text in ("--listen HOST:PORT", "127.0.0.1:9149", "loopback only", "--interval", "OpenMetrics",
                 "never polls"):
        assert text in " ".join(own.split()), text


def test_non_tui_modules_do_not_import_textual():
    probe = ("import sys, gotop.commands.export, gotop.commands.fleetmetrics; "
             "print(any(m.split('.')[0] == 'textual' for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stdout + result.stderr


@pytest.mark.parametrize("listen, error", [
    ("9149", "gotop: --listen '9149': give HOST:PORT, e.g. 127.0.0.1:9149 or [::1]:9149"),
    ("127.0.0.1:99999", "gotop: --listen '127.0.0.1:99999': give HOST:PORT, e.g. 127.0.0.1:9149 or [::1]:9149"),
    ("no.such.host.invalid:9149", "gotop: cannot listen on no.such.host.invalid:9149: "),
])
def test_a_bad_address_is_one_line(listen, error):
    result = subprocess.run([sys.executable, "-m", "gotop", "export", "--listen", listen],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(error) and result.stderr.count("\n") == 1, result.stderr


def test_a_taken_port_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "gotop", "export", "--listen", f"127.0.0.1:{port}"],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == f"gotop: cannot listen on 127.0.0.1:{port}: Address already in use\n"

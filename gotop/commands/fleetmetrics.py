"""The Prometheus metric families of a Fleet's latest state (`gotop export`).

A scrape reads what the pollers last stored and never polls: each process's
latest sample, its descriptors by kind, its leak findings and the findings
raised. A process the engine knows to have exited leaves the exposition at
once. Figures are given only while the latest poll answered (`gotop_up` 1):
an unreachable process keeps `gotop_up` 0 and its leak findings, and its
figures go stale in Prometheus rather than repeat an old reading.

Labels are bounded: pid, name and exe of the process (names are untrusted:
made plain text), the descriptor kind, the source, and for a finding its kind
and where (a function and file:line, a descriptor kind, or "live heap").

prometheus_client serves scrapes from threads of its own; the fleet belongs to
the event loop. FleetCollector builds the families on the loop and hands them
over, so a scrape never sees the fleet half-changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gotop.engine.fleet import Fleet, Watched
from gotop.engine.history import TargetState
from gotop.engine.leaks import Finding, LeakKind
from gotop.engine.target import Sample
from gotop.sources.procfs import FD_KINDS
from gotop.textsafe import plain

PROCESS_LABELS = ("pid", "name", "exe")
MAX_WHERE = 160  # characters of a finding's place kept as a label (a generic function's name can be long)
SCRAPE_TIMEOUT = 10.0  # seconds a scrape waits for the event loop (busy only for moments)
ANSWERED = (TargetState.UP, TargetState.SLOW)
Family = GaugeMetricFamily | CounterMetricFamily
# The ways a sample names the pprof transport, as `--source` names it.
SOURCE_NAMES = {"heap?debug=1": "pprof", "pprof index": "pprof"}


@dataclass(frozen=True, slots=True)
class Figure:
    """One per-process series read from the latest sample."""

    name: str  # as exposed in the text format
    help: str
    read: Callable[[Sample], float | None]
    unit: str = ""
    counter: bool = False


def _memstat(field: str, scale: float = 1.0) -> Callable[[Sample], float | None]:
    def read(s: Sample) -> float | None:
        value = getattr(s.memstats, field, None) if s.memstats is not None else None
        return None if value is None else value * scale
    return read


def _os(field: str) -> Callable[[Sample], float | None]:
    return lambda s: getattr(s.os, field) if s.os is not None else None


FIGURES = (
    Figure("gotop_goroutines", "Goroutines that exist now.", lambda s: s.stats.goroutines),
    Figure("gotop_threads", "OS threads of the process (/proc).", _os("threads")),
    Figure("gotop_heap_inuse_bytes", "Bytes in in-use heap spans (HeapInuse).", _memstat("heap_inuse"), "bytes"),
    Figure("gotop_heap_live_bytes", "Heap the last GC marked live (read from the process's memory only).",
           _memstat("heap_marked"), "bytes"),
    Figure("gotop_heap_goal_bytes", "Heap size at which the next GC starts (NextGC).", _memstat("next_gc"), "bytes"),
    Figure("gotop_gc_cycles_total", "Completed GC cycles (NumGC).", _memstat("num_gc"), counter=True),
    Figure("gotop_gc_pause_seconds_total", "Stop-the-world GC pauses, summed (PauseTotalNs).",
           _memstat("pause_total_ns", 1e-9), "seconds", counter=True),
    Figure("gotop_resident_memory_bytes", "Resident set size (/proc).", _os("rss"), "bytes"),
    Figure("gotop_cpu_seconds_total", "User and system CPU time of the process (/proc).", _os("cpu_seconds"),
           "seconds", counter=True),
)


def fleet_families(watched: Iterable[Watched]) -> list[Metric]:
    """Every family, with a sample per live process (none for an empty fleet)."""
    figures = {f.name: _family(f.name, f.help, PROCESS_LABELS, f.unit, f.counter) for f in FIGURES}
    up = _family("gotop_up", "1 when the latest poll of the process answered, 0 when it is unreachable "
                 "or not yet polled.", PROCESS_LABELS)
    fds = _family("gotop_open_fds", "Open descriptors by kind: file, tcp, udp, unix, pipe, other.",
                  (*PROCESS_LABELS, "kind"))
    sources = _family("gotop_source_answered", "1 for each source that gave a figure of the latest poll: "
                      "memory, agent, pprof, expvar, metrics, procfs.", (*PROCESS_LABELS, "source"))
    leaks = _family("gotop_leak_rate_per_minute", "A leak finding of gotop's detectors: its growth in goroutines, "
                    "bytes or descriptors per minute.", (*PROCESS_LABELS, "kind", "where"))
    raised = _family("gotop_leak_findings_total", "Leak findings raised since gotop began watching the process.",
                     (*PROCESS_LABELS, "kind"), counter=True)
    for w in _live(watched):
        labels = process_labels(w)
        answered = w.history.state in ANSWERED and w.history.last_sample is not None
        up.add_metric(labels, 1.0 if answered else 0.0)
        for leak_kind in LeakKind:
            raised.add_metric([*labels, leak_kind.value], w.raised[leak_kind])
        for (kind, where), rate in leak_rates(w.findings).items():
            leaks.add_metric([*labels, kind, where], rate)
        sample = w.history.last_sample
        if not answered or sample is None:
            continue
        for f in FIGURES:
            if (value := f.read(sample)) is not None:
                figures[f.name].add_metric(labels, value)
        for fd_kind in FD_KINDS:
            if (count := w.history.series[f"fds_{fd_kind}"].last) is not None:
                fds.add_metric([*labels, fd_kind], count)
        for source in sorted({SOURCE_NAMES.get(way, way) for way in sample.sources.values()}):
            sources.add_metric([*labels, source], 1.0)
    return [up, *figures.values(), fds, sources, leaks, raised]


def process_labels(w: Watched) -> list[str]:
    p = w.process
    name, exe = (p.name, p.exe.removesuffix(" (deleted)")) if p is not None else (w.name, "")
    return [str(w.pid), plain(name), plain(exe)]


def leak_rates(findings: Iterable[Finding]) -> dict[tuple[str, str], float]:
    """Rate per minute by (kind, where): findings that share their place as a label
    (two stacks blocked at one line) are summed, so each label set is one series."""
    rates: dict[tuple[str, str], float] = {}
    for f in findings:
        where = plain(f.where)
        key = f.kind.value, where if len(where) <= MAX_WHERE else where[:MAX_WHERE - 1] + "…"
        rates[key] = rates.get(key, 0.0) + f.rate_per_min
    return rates


def _live(watched: Iterable[Watched]) -> list[Watched]:
    """Processes not known to have exited, one per pid (a reused pid: the newer process)."""
    by_pid: dict[int, Watched] = {}
    for w in watched:
        if w.pid is None or w.exited_at is not None or w.history.state is TargetState.EXITED:
            continue
        other = by_pid.get(w.pid)
        if other is None or _started(w) > _started(other):
            by_pid[w.pid] = w
    return list(by_pid.values())


def _started(w: Watched) -> float:
    return w.process.create_time if w.process is not None else 0.0


def _family(name: str, help: str, labels: Iterable[str], unit: str = "", counter: bool = False) -> Family:
    kind = CounterMetricFamily if counter else GaugeMetricFamily
    return kind(name, help, labels=list(labels), unit=unit)


class FleetCollector(Collector):
    """prometheus_client's view of a fleet: each scrape builds the families on the fleet's event loop."""

    def __init__(self, fleet: Fleet, loop: asyncio.AbstractEventLoop, timeout: float = SCRAPE_TIMEOUT) -> None:
        self.fleet = fleet
        self.loop = loop
        self.timeout = timeout

    def collect(self) -> Iterable[Metric]:
        return asyncio.run_coroutine_threadsafe(self._families(), self.loop).result(self.timeout)

    def describe(self) -> Iterable[Metric]:
        """The families without samples: registering asks for names, and must not wait on the loop."""
        return fleet_families(())

    async def _families(self) -> list[Metric]:
        return fleet_families(self.fleet.watched.values())

"""What gotop remembers of one target: its figures over the watch window.

The poller turns each poll into an `Update`; `TargetHistory.apply` folds it
into time series. Replaying recorded updates rebuilds the same history, so
the screens never know whether they watch a live process or a recording.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from gotop.engine.heapsites import HeapSites, heap_sites
from gotop.engine.series import Series
from gotop.engine.target import Sample
from gotop.model.goroutines import GoroutineProfile, StackKey
from gotop.model.memstats import GcPause
from gotop.model.profile import Profile
from gotop.sources.gctrace import GcReading
from gotop.sources.procfs import FD_KINDS

DEFAULT_WINDOW = 600.0  # seconds of history kept
MAX_HEAP_PROFILES = 32  # heap profiles whose summary by allocation site is kept


class TargetState(str, Enum):
    STARTING = "starting"  # no answer yet
    UP = "up"
    SLOW = "slow"  # answers, but late
    UNREACHABLE = "unreachable"  # polls fail; retried with back-off
    FAILED = "failed"  # gotop failed to poll it (a bug, or an answer it did not foresee); retried with back-off
    EXITED = "exited"


@dataclass(frozen=True)
class HeapSnapshot:
    """A heap profile as fetched (gzipped protobuf) and decoded."""

    time: float
    raw: bytes
    profile: Profile


@dataclass(frozen=True)
class Update:
    """One poll's outcome."""

    time: float  # unix seconds
    state: TargetState
    sample: Sample | None = None
    goroutines: GoroutineProfile | None = None  # slow tier only
    fds: dict[str, int] | None = None  # slow tier: open descriptors by kind
    leaks: GoroutineProfile | None = None  # leak tier: the runtime's goroutineleak profile
    heap: HeapSnapshot | None = None  # heap tier: while asked for
    gc_pauses: tuple[GcPause, ...] = ()  # every GC pause since the previous poll that is known
    lost_pauses: int = 0  # GCs since the previous poll whose pause is not known
    gc_readings: tuple[GcReading, ...] | None = None  # its GC trace's cycles since the previous poll; None: no trace
    error: str | None = None
    poll_seconds: float | None = None  # how long the poll took
    # Unix times the poll began and ended asking the target for protobuf profiles: a GC that ended
    # meanwhile marked gotop's own answer in flight (a gzipped profile holds about 1 MiB); None: it asked
    # for none (Target.big_answers).
    asked: tuple[float, float] | None = None


# The figures kept as series, and how each is read from a sample.
FIGURES = (
    "heap_alloc", "heap_inuse", "heap_sys", "next_gc", "heap_objects", "goroutines",
    "num_gc", "gc_cpu_fraction", "alloc_rate", "rss", "cpu", "threads", "fds",
    "heap_marked", "last_gc", "total_alloc",  # the last GC's live heap and end (unix s), bytes allocated ever
    *(f"fds_{kind}" for kind in FD_KINDS),
    "goroutine_groups",  # stack groups in each grouped goroutine profile (slow tier)
)


@dataclass
class GroupTrend:
    """The count of one goroutine stack group over time."""

    counts: Series


@dataclass
class TargetHistory:
    interval: float = 1.0
    window: float = DEFAULT_WINDOW
    series: dict[str, Series] = field(init=False)
    gc_pauses: Series = field(init=False)  # one point per GC: (pause end, pause ns)
    gc_trace: deque[GcReading] = field(init=False)  # every GC cycle of its GC trace, when gotop started it
    asked: deque[tuple[float, float]] = field(init=False)  # when polls asked the target for profiles
    traced: bool = False  # the target has a GC trace (gotop started it): its GC cycles come from there
    groups: dict[StackKey, GroupTrend] = field(default_factory=dict)
    goroutines: GoroutineProfile | None = None  # the latest grouped profile
    leaks: GoroutineProfile | None = None  # the latest goroutineleak profile
    heap: HeapSnapshot | None = None  # the latest heap profile
    heap_sites: deque[HeapSites] = field(init=False)  # each heap profile of this process by allocation site
    state: TargetState = TargetState.STARTING
    error: str | None = None
    last_sample: Sample | None = None
    last_update: float | None = None
    restarts: list[float] = field(default_factory=list)  # times a new process took over
    lost_pauses: int = 0  # GC pauses that fell out of the ring between polls

    def __post_init__(self) -> None:
        capacity = max(2, int(self.window / self.interval) + 1)
        self.series = {name: Series(capacity) for name in FIGURES}
        self.gc_pauses = Series(capacity * 4)
        self.gc_trace = deque(maxlen=capacity * 4)
        self.heap_sites = deque(maxlen=MAX_HEAP_PROFILES)
        self.asked = deque(maxlen=capacity)
        self._group_capacity = capacity

    def apply(self, update: Update) -> None:
        self.state = update.state
        self.error = update.error
        self.last_update = update.time
        if update.sample is not None:
            self._apply_sample(update.sample)
        self.lost_pauses += update.lost_pauses
        for pause in update.gc_pauses:
            self.gc_pauses.append(pause.end_ns / 1e9 if pause.end_ns else update.time, pause.pause_ns)
        if update.asked is not None:
            self.asked.append(update.asked)
        if update.gc_readings is not None:
            self.traced = True
            self.gc_trace.extend(update.gc_readings)
        if update.goroutines is not None:
            self._apply_goroutines(update.time, update.goroutines)
        if update.leaks is not None:
            self.leaks = update.leaks
        for kind, count in (update.fds or {}).items():
            self.series[f"fds_{kind}"].append(update.time, count)
        if update.heap is not None:
            self.heap = update.heap
            self.heap_sites.append(heap_sites(update.heap.time, update.heap.profile))

    def mark_restart(self, t: float) -> None:
        """A new process replaced the watched one (a rebuild or restart)."""
        self.restarts.append(t)
        self.last_sample = None
        self.heap_sites.clear()

    def _apply_sample(self, s: Sample) -> None:
        prev = self.last_sample
        t = s.time
        m = s.memstats
        values: dict[str, float | None] = {
            "goroutines": s.stats.goroutines,
        }
        if m is not None:
            values |= {
                "heap_alloc": m.heap_alloc, "heap_inuse": m.heap_inuse, "heap_sys": m.heap_sys,
                "next_gc": m.next_gc, "heap_objects": m.heap_objects, "num_gc": m.num_gc,
                "gc_cpu_fraction": m.gc_cpu_fraction, "heap_marked": m.heap_marked, "total_alloc": m.total_alloc,
                "last_gc": m.last_gc / 1e9 if m.last_gc else None,
            }
            prev_m = prev.memstats if prev else None
            if prev and prev_m and prev_m.total_alloc is not None and m.total_alloc is not None and t > prev.time:
                values["alloc_rate"] = max(0, m.total_alloc - prev_m.total_alloc) / (t - prev.time)
        if s.os is not None:
            values |= {"rss": s.os.rss, "cpu": s.os.cpu_percent, "threads": s.os.threads, "fds": s.os.open_fds}
        for name, value in values.items():
            if value is not None:
                self.series[name].append(t, float(value))
        self.last_sample = s

    def _apply_goroutines(self, t: float, profile: GoroutineProfile) -> None:
        self.goroutines = profile
        self.series["goroutine_groups"].append(t, len(profile.groups))
        seen = profile.by_key()
        for key, group in seen.items():
            if key not in self.groups:
                self.groups[key] = GroupTrend(Series(self._group_capacity))
            self.groups[key].counts.append(t, group.count)
        for key in list(self.groups.keys() - seen.keys()):
            trend = self.groups[key]
            if trend.counts.last == 0 and t - trend.counts.times[-1] > self.window:
                del self.groups[key]  # gone for a whole window: forget it
            elif trend.counts.last != 0:
                trend.counts.append(t, 0)

    # -- derived figures for the screens ---------------------------------------

    def gc_per_minute(self) -> float | None:
        """GC cycles in the last minute (or the rate over a shorter history)."""
        num_gc = self.series["num_gc"]
        if len(num_gc) < 2:
            return None
        recent = num_gc.since(num_gc.times[-1] - 60)
        (t0, v0), (t1, v1) = recent[0], recent[-1]
        if t1 <= t0 or v1 < v0:
            return None
        return (v1 - v0) / (t1 - t0) * 60

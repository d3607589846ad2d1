"""Leak detectors: what keeps growing in a target, and the evidence for it.

Pure functions over a TargetHistory and the current time (no I/O): the TUI can
run them after each poll, `gotop check` runs them while it watches; both show
the same findings.

  goroutines  a stack group whose count keeps rising (no real fall, and still
              rising lately), or that the runtime's goroutineleak profile
              proves leaked (Go >= 1.26 with the experiment, Go 1.27)
  heap        the live heap after GC keeps rising across GC cycles; named by
              the allocation sites that keep what they allocate between the
              first and the latest heap profile
  fds/sockets open descriptors of one kind (files, pipes, TCP, UDP, UNIX) that
              keep rising

`coverage` says, per detector, whether it had readings enough to judge a
trend at all (a target without net/http/pprof has no goroutine groups, one
whose GC does not run has no heap after GC): what `gotop check` could watch.

What is never a leak: churn the GC reclaims (the live heap does not rise),
goroutines or descriptors that come and go (their count falls back), and a
pool or cache that grows to a plateau (it stops rising in the recent part of
the window).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum

from gotop.engine.history import HeapSnapshot, TargetHistory
from gotop.engine.series import Series
from gotop.errors import GotopError
from gotop.model.goroutines import Frame, GoroutineGroup, GoroutineProfile, StackKey, stack_key
from gotop.model.profile import Profile
from gotop.units import fmt_bytes, fmt_count

# --- thresholds ---------------------------------------------------------------------------
# A trend is judged on enough readings over enough time: with fewer, a pool
# still filling up at start-up looks just like a leak.
MIN_POINTS = 5  # readings (goroutine profiles, descriptor counts)
MIN_SPAN = 8.0  # seconds they cover
# Growth worth a finding: below these, a busy program's normal wobble.
MIN_GOROUTINE_GAIN = 10  # goroutines in one stack group
MIN_DESCRIPTOR_GAIN = 10  # descriptors of one kind
MIN_LIVE_HEAP_GAIN = 1 << 20  # bytes of heap in use after GC (1 MiB)
MIN_HEAP_GOAL_GAIN = 1 << 20  # bytes of heap goal (next_gc): about 512 KiB of live heap at GOGC=100
# A leak only rises: the falls on the way may add up to this share of the
# rises (a few leaked-looking goroutines do finish, a connection closes).
# Goroutines or descriptors that come and go fall about as much as they rise.
MAX_FALL_SHARE = 0.1
# A leak is still rising at the end: over the last third of the rise, its pace
# must be at least this share of its overall pace. A pool or cache that filled
# up and then stayed flat fails this.
MIN_RECENT_PACE = 0.5
# The heap is judged once per GC cycle, on each third of the readings, and
# each third needs a few. What stands for a third depends on the noise: the
# heap in use after GC only gains (the garbage allocated since the GC ended),
# so its low readings are the ones to trust; the goal set at the GC's end errs
# both ways (garbage still floating, or a GC that found a busy program
# between two bursts of work), so its median.
MIN_GC_CYCLES_PER_THIRD = 2
HEAP_AFTER_GC_QUANTILE = 0.25
HEAP_GOAL_QUANTILE = 0.5
# Heap profiles sample about one allocation per 512 KiB (runtime.MemProfileRate),
# each weighted to stand for 512 KiB: a site must keep at least two samples'
# worth before it is named, and most of what it allocated since the first
# profile (a bounded cache keeps an ever smaller share of it, churn none).
MIN_SITE_GAIN = 1 << 20  # in-use bytes gained at one site
MIN_SITE_KEPT = 0.5  # share of the bytes allocated since the first profile still in use
MAX_SITES = 3  # allocation sites named per target
# Confidence: a growing group blocked in a wait state is a likely leak; one
# that has grown for a minute without a pause, very likely.
HIGH_CONFIDENCE_SPAN = 60.0

# Wait states a leaked goroutine sits in for ever (GoroutineGroup.state).
BLOCKED_STATES = ("chan receive", "chan send", "select", "sync.", "IO wait")

Point = tuple[float, float]  # (unix time, value)


class LeakKind(str, Enum):
    GOROUTINES = "goroutines"
    HEAP = "heap"
    FDS = "fds"
    SOCKETS = "sockets"


class Confidence(str, Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Basis(str, Enum):
    """What a piece of evidence rests on."""

    PROVEN = "proven leaked by the runtime's goroutineleak profile"
    GROWING_GROUP = "goroutine group keeps growing"
    LIVE_HEAP = "live heap after GC keeps rising"
    ALLOCATION_SITE = "allocation site keeps what it allocates"
    DESCRIPTORS = "open descriptors keep rising"


# What shows a finding's evidence, for the UI to open.


@dataclass(frozen=True, slots=True)
class GroupRef:
    """A goroutine stack group (the goroutine view)."""

    key: StackKey


@dataclass(frozen=True, slots=True)
class SiteRef:
    """An allocation site (the heap view); None: the live heap as a whole."""

    site: Frame | None


@dataclass(frozen=True, slots=True)
class DescriptorRef:
    """Descriptors of one kind (procfs.FD_KINDS), or "all" (the process view)."""

    kind: str


Ref = GroupRef | SiteRef | DescriptorRef


@dataclass(frozen=True, slots=True)
class Evidence:
    basis: Basis
    text: str  # one line for people
    series: tuple[Point, ...] = ()  # the readings the trend rests on, for a sparkline
    unit: str = ""  # of the series: "goroutines", "bytes", "descriptors"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: LeakKind
    where: str  # the group's label (GoroutineGroup.label), the allocation site, or the descriptor kind
    ref: Ref
    rate_per_min: float  # growth, in `unit` per minute
    unit: str
    since: float  # unix time the growth was first seen
    confidence: Confidence
    evidence: tuple[Evidence, ...]  # the first one is what the finding rests on

    @property
    def key(self) -> tuple[LeakKind, Ref]:
        """The same leak in successive runs of the detectors."""
        return self.kind, self.ref

    @property
    def basis(self) -> Basis:
        return self.evidence[0].basis

    def to_json(self) -> dict:
        return {
            "kind": self.kind.value, "where": self.where, "rate_per_min": round(self.rate_per_min, 3),
            "unit": self.unit, "since": self.since, "confidence": self.confidence.value,
            "basis": self.basis.value,
            "evidence": [{"basis": e.basis.value, "text": e.text} for e in self.evidence],
        }


# --- entry point ----------------------------------------------------------------------------


def find_leaks(history: TargetHistory, now: float, window: float | None = None) -> tuple[Finding, ...]:
    """Every finding over the last `window` seconds (default: the history's window).

    When goroutines or descriptors leak, they hold heap memory of their own:
    a live heap that rises with no site to blame, or with the runtime to
    blame (it allocates each goroutine's descriptor), is left to them.
    """
    goroutines = goroutine_leaks(history, now, window)
    descriptors = descriptor_leaks(history, now, window)
    heap = heap_leaks(history, now, window)
    if goroutines or descriptors:
        heap = tuple(f for f in heap if not _runtime_memory(f))
    return (*goroutines, *heap, *descriptors)


def _runtime_memory(finding: Finding) -> bool:
    """A heap finding with no site, or a site inside the runtime."""
    site = finding.ref.site if isinstance(finding.ref, SiteRef) else None
    return site is None or not stack_key((site,))


def window_start(history: TargetHistory, now: float, window: float | None = None) -> float:
    """Readings before this are not judged: older than the window, or of the
    process a restart replaced."""
    start = now - (history.window if window is None else window)
    return max([start, *history.restarts])


# --- trends -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rise:
    points: tuple[Point, ...]  # the readings from the start of the rise
    gained: float
    rate_per_min: float
    still_rising: bool = True  # in the recent part too

    @property
    def start(self) -> float:
        return self.points[0][0]

    @property
    def span(self) -> float:
        return self.points[-1][0] - self.points[0][0]


def steady_rise(points: Sequence[Point], min_gain: float) -> Rise | None:
    """The rise of a count that only grows, or None.

    The rise starts at the last lowest reading (older ups and downs are not
    part of it), covers MIN_POINTS readings over MIN_SPAN seconds, gains
    `min_gain`, falls back by at most MAX_FALL_SHARE of its rises on the way,
    and is still rising in its last third at MIN_RECENT_PACE of its pace.
    """
    if not points:
        return None
    low = min(v for _, v in points)
    start = max(i for i, (_, v) in enumerate(points) if v == low)
    rise = tuple(points[start:])
    if len(rise) < MIN_POINTS:
        return None
    (t0, v0), (t1, v1) = rise[0], rise[-1]
    span, gained = t1 - t0, v1 - v0
    if span < MIN_SPAN or gained < min_gain:
        return None
    steps = [b - a for (_, a), (_, b) in zip(rise, rise[1:])]
    if -sum(s for s in steps if s < 0) > MAX_FALL_SHARE * sum(s for s in steps if s > 0):
        return None
    tr, vr = _last_at_or_before(rise, t1 - span / 3)
    if (v1 - vr) / (t1 - tr) < MIN_RECENT_PACE * gained / span:
        return None
    return Rise(rise, gained, _slope_per_minute(rise))


def rising_level(points: Sequence[Point], min_gain: float, quantile: float) -> Rise | None:
    """The rise of a noisy figure read once per GC cycle, or None.

    Each third of the readings is represented by its reading at `quantile`
    (not its lowest: a lone low reading must not stand for a whole third). The
    level of the last third must be `min_gain` above that of the first; it is
    still rising if it is above that of the middle third by MIN_RECENT_PACE of
    half of it (a steady rise gains half of it there).
    """
    n = len(points)
    if n < 3 * MIN_GC_CYCLES_PER_THIRD or points[-1][0] - points[0][0] < MIN_SPAN:
        return None
    thirds = (points[:n // 3], points[n // 3:n - n // 3], points[n - n // 3:])
    first, middle, last = (sorted(third, key=lambda p: p[1])[int((len(third) - 1) * quantile)] for third in thirds)
    gained = last[1] - first[1]
    if gained < min_gain:
        return None
    return Rise(tuple(p for p in points if p[0] >= first[0]), gained, gained / (last[0] - first[0]) * 60,
                still_rising=last[1] - middle[1] >= MIN_RECENT_PACE * gained / 2)


def _last_at_or_before(points: Sequence[Point], t: float) -> Point:
    return next((p for p in reversed(points) if p[0] <= t), points[0])


def _slope_per_minute(points: Sequence[Point]) -> float:
    series = Series(len(points))
    for t, v in points:
        series.append(t, v)
    return series.slope_per_minute() or 0.0


# --- goroutines ---------------------------------------------------------------------------


def goroutine_leaks(history: TargetHistory, now: float, window: float | None = None) -> tuple[Finding, ...]:
    """Groups that keep growing, and groups the runtime proves leaked."""
    since = window_start(history, now, window)
    latest = history.goroutines.by_key() if history.goroutines else {}
    proven = {g.key: g for g in history.leaks.groups if g.leaked} if history.leaks else {}
    total = history.goroutines.total if history.goroutines else 0
    findings = []
    for key in [*history.groups, *(k for k in proven if k not in history.groups)]:
        trend, proof = history.groups.get(key), proven.get(key)
        if proof is None and (trend is None or (trend.counts.last or 0) < MIN_GOROUTINE_GAIN):
            continue  # too small to have gained enough: most groups of a big program
        points = trend.counts.since(since) if trend else []
        rise = steady_rise(points, MIN_GOROUTINE_GAIN)
        group = latest.get(key) or proof
        if (rise is None and proof is None) or group is None:
            continue
        findings.append(_goroutine_finding(group, points, rise, proof, history.leaks, total, since))
    return tuple(sorted(findings, key=_severity))


def _goroutine_finding(group: GoroutineGroup, points: list[Point], rise: Rise | None,
                       proof: GoroutineGroup | None, leak_profile: GoroutineProfile | None,
                       total: int, since: float) -> Finding:
    state = group.state
    blocked = state is not None and state.startswith(BLOCKED_STATES)
    waiting = f"blocked in {state}" if blocked else f"in {state}" if state else "state unknown"
    evidence = []
    if proof is not None:
        evidence.append(Evidence(
            Basis.PROVEN, f"{fmt_count(proof.leaked)} goroutines proven leaked, {waiting}",
            tuple(points), "goroutines"))
    if rise is not None:
        (_, first), (_, last) = rise.points[0], rise.points[-1]
        share = f", {last / total:.0%} of all goroutines" if total else ""
        evidence.append(Evidence(
            Basis.GROWING_GROUP,
            f"grew {fmt_count(first)} -> {fmt_count(last)} in {rise.span:.0f} s "
            f"({_signed(rise.rate_per_min)}/min) without falling back; {waiting}{share}"
            + ("; not proven leaked by the runtime's goroutineleak profile (something still reaches it)"
               if proof is None and leak_profile is not None else ""),
            rise.points, "goroutines"))
    if proof is not None:
        confidence = Confidence.HIGH
    elif not blocked:
        confidence = Confidence.LOW
    else:
        confidence = Confidence.HIGH if rise and rise.span >= HIGH_CONFIDENCE_SPAN else Confidence.MEDIUM
    if rise is not None:
        rate, start = rise.rate_per_min, rise.start
    else:
        rate, start = (_slope_per_minute(points), points[0][0]) if len(points) > 1 else (0.0, since)
    return Finding(LeakKind.GOROUTINES, _frame_name(group.label_frame or Frame(group.label, "", 0)),
                   GroupRef(group.key), rate, "goroutines", start, confidence, tuple(evidence))


# --- heap -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiteGrowth:
    """What one allocation site gained between two heap profiles."""

    site: Frame
    inuse: int  # in-use bytes gained
    allocated: int  # bytes allocated in between

    @property
    def kept(self) -> float:
        """The share of the bytes allocated in between still in use."""
        return self.inuse / self.allocated if self.allocated > 0 else 0.0


def heap_leaks(history: TargetHistory, now: float, window: float | None = None) -> tuple[Finding, ...]:
    """A live heap rising across GC cycles, named by the sites that keep their bytes."""
    cycles = gc_cycles(history, window_start(history, now, window))
    rise = rising_level([(t, heap) for t, heap, _ in cycles], MIN_LIVE_HEAP_GAIN, HEAP_AFTER_GC_QUANTILE)
    if rise is None:
        return ()
    # A second witness, so that a busy program's ups and downs are not taken
    # for a rise: the heap goal (it sits at its 4 MiB minimum while the live
    # heap is under 2 MiB), or an allocation site that keeps what it allocates.
    goal = rising_level([(t, goal) for t, _, goal in cycles], MIN_HEAP_GOAL_GAIN, HEAP_GOAL_QUANTILE)
    first, last = history.first_heap, history.heap
    sites = retaining_sites(first, last) if first and last and last.time > first.time else ()
    if goal is None and not sites:
        return ()
    # Both figures read the same live heap, each with noise of its own: either may show it still rising.
    if not (rise.still_rising or (goal and goal.still_rising)):
        return ()
    heap = "heap marked live by each GC (its GC trace)" if history.traced else "heap in use after GC"
    live = Evidence(
        Basis.LIVE_HEAP,
        f"{heap} rose by {fmt_bytes(rise.gained)} over {len(rise.points)} GC cycles "
        f"in {rise.span:.0f} s ({_signed_bytes(rise.rate_per_min)}/min)"
        + (f"; the heap goal set at each GC end rose by {fmt_bytes(goal.gained)}" if goal else ""),
        rise.points, "bytes")
    if not sites:
        if first is not None:
            live = replace(live, text=f"{live.text}; no allocation site stands out between the heap profiles")
        return (Finding(LeakKind.HEAP, "live heap", SiteRef(None), rise.rate_per_min, "bytes",
                        rise.start, Confidence.MEDIUM, (live,)),)
    assert first is not None and last is not None
    seconds = last.time - first.time
    return tuple(
        Finding(LeakKind.HEAP, _frame_name(s.site), SiteRef(s.site), s.inuse / seconds * 60, "bytes", first.time,
                Confidence.HIGH, (Evidence(
                    Basis.ALLOCATION_SITE,
                    f"keeps {s.kept:.0%} of the {fmt_bytes(s.allocated)} it allocated in {seconds:.0f} s "
                    f"between heap profiles ({_signed_bytes(s.inuse / seconds * 60)}/min in use)"), live))
        for s in sites[:MAX_SITES])


def gc_cycles(history: TargetHistory, since: float) -> list[tuple[float, float, float]]:
    """(time, heap after GC, heap goal) of each GC cycle.

    From the GC trace, when gotop started the program: every cycle's marked
    live heap, and the goal it ran under (set at the previous cycle's end).
    Otherwise from the polls: the heap in use and the heap goal (next_gc) at the
    first reading after each GC. The goal is set at the GC's end in proportion
    to the heap it found live (live x (1 + GOGC/100), at least 4 MiB); the heap
    in use adds what was allocated between the GC's end and the reading.
    """
    if history.traced:
        return [(r.time, r.cycle.heap_live, r.cycle.heap_goal) for r in history.gc_trace if r.time >= since]
    num_gc = dict(history.series["num_gc"].since(since))
    next_gc = dict(history.series["next_gc"].since(since))
    cycles, previous = [], None
    for t, heap_alloc in history.series["heap_alloc"].since(since):
        count, goal = num_gc.get(t), next_gc.get(t)
        if count is None or goal is None:
            continue
        if previous is not None and count > previous:
            cycles.append((t, heap_alloc, goal))
        previous = count
    return cycles


def retaining_sites(first: HeapSnapshot, last: HeapSnapshot) -> tuple[SiteGrowth, ...]:
    """Allocation sites that kept MIN_SITE_GAIN bytes and MIN_SITE_KEPT of what
    they allocated between two heap profiles, most kept first.

    Per site, the growth is what `go tool pprof -base FIRST LAST` shows; a
    site is the allocating code: the first frame of the stack outside the
    runtime (runtime.malg, mallocgc, map growth are charged to their caller).
    """
    before, after = _bytes_by_site(first), _bytes_by_site(last)
    growth = []
    for site, (inuse, allocated) in after.items():
        inuse0, allocated0 = before.get(site, (0, 0))
        g = SiteGrowth(site, inuse - inuse0, allocated - allocated0)
        if g.inuse >= MIN_SITE_GAIN and g.kept >= MIN_SITE_KEPT:
            growth.append(g)
    return tuple(sorted(growth, key=lambda g: (-g.inuse, g.site)))


# Per snapshot: {site: (inuse bytes, allocated bytes)}, computed once per heap profile.
_SITE_BYTES: weakref.WeakKeyDictionary[HeapSnapshot, dict[Frame, tuple[int, int]]] = weakref.WeakKeyDictionary()


def _bytes_by_site(snapshot: HeapSnapshot) -> dict[Frame, tuple[int, int]]:
    cached = _SITE_BYTES.get(snapshot)
    if cached is None:
        cached = _SITE_BYTES[snapshot] = _aggregate_sites(snapshot.profile)
    return cached


def _aggregate_sites(profile: Profile) -> dict[Frame, tuple[int, int]]:
    try:
        inuse_column = profile.samples.values[profile.sample_index("inuse_space")]
        alloc_column = profile.samples.values[profile.sample_index("alloc_space")]
    except GotopError:  # not a Go heap profile
        return {}
    table = profile.samples
    site_of: dict[str, Frame] = {}
    totals: dict[Frame, tuple[int, int]] = {}
    for stack, inuse, allocated in zip(table.stacks, inuse_column, alloc_column):
        site = site_of.get(stack)
        if site is None:
            site = site_of[stack] = _allocating_frame(profile, stack)
        inuse0, allocated0 = totals.get(site, (0, 0))
        totals[site] = (inuse0 + inuse, allocated0 + allocated)
    return totals


def _allocating_frame(profile: Profile, stack: str) -> Frame:
    frames = [Frame(line.function.name, line.function.filename, line.line)
              for code in stack for line in profile.locations[profile.samples.location_ids[code]].lines]
    key = stack_key(frames)
    return key[0] if key else frames[0] if frames else Frame("", "", 0)


# --- descriptors ------------------------------------------------------------------------------

# procfs.FD_KINDS -> (finding kind, what a user calls them)
DESCRIPTOR_KINDS = {
    "file": (LeakKind.FDS, "open files"),
    "pipe": (LeakKind.FDS, "pipes"),
    "other": (LeakKind.FDS, "other descriptors"),
    "tcp": (LeakKind.SOCKETS, "TCP sockets"),
    "udp": (LeakKind.SOCKETS, "UDP sockets"),
    "unix": (LeakKind.SOCKETS, "UNIX sockets"),
}


def descriptor_leaks(history: TargetHistory, now: float, window: float | None = None) -> tuple[Finding, ...]:
    """Descriptors of one kind that keep rising; the total when kinds are unknown."""
    since = window_start(history, now, window)
    by_kind = {kind: history.series[f"fds_{kind}"].since(since) for kind in DESCRIPTOR_KINDS}
    if not any(by_kind.values()):
        by_kind = {"all": history.series["fds"].since(since)}
    findings = []
    for kind, points in by_kind.items():
        rise = steady_rise(points, MIN_DESCRIPTOR_GAIN)
        if rise is None:
            continue
        leak_kind, name = DESCRIPTOR_KINDS.get(kind, (LeakKind.FDS, "open descriptors"))
        (_, first), (_, last) = rise.points[0], rise.points[-1]
        evidence = Evidence(
            Basis.DESCRIPTORS,
            f"{name} rose {fmt_count(first)} -> {fmt_count(last)} in {rise.span:.0f} s "
            f"({_signed(rise.rate_per_min)}/min) without closing", rise.points, "descriptors")
        confidence = Confidence.HIGH if rise.span >= HIGH_CONFIDENCE_SPAN else Confidence.MEDIUM
        findings.append(Finding(leak_kind, name, DescriptorRef(kind), rise.rate_per_min, "descriptors",
                                rise.start, confidence, (evidence,)))
    return tuple(sorted(findings, key=_severity))


# --- what the detectors could watch ------------------------------------------------------------


class Detector(str, Enum):
    GOROUTINES = "goroutines"  # goroutine groups, from grouped goroutine profiles
    HEAP = "heap"  # the live heap after GC, read once per GC cycle
    DESCRIPTORS = "descriptors"  # open descriptors, from /proc


@dataclass(frozen=True, slots=True)
class Coverage:
    """What one detector had to judge over the window: its readings, and how
    many a trend needs. With fewer, the detector cannot find a leak at all."""

    detector: Detector
    readings: int
    needed: int
    unit: str  # what a reading is: "goroutine profiles", "readings after a GC", "descriptor counts"

    @property
    def watched(self) -> bool:
        return self.readings >= self.needed


def coverage(history: TargetHistory, now: float, window: float | None = None) -> tuple[Coverage, ...]:
    """Per detector, the readings it judged (as the detectors above count them)."""
    since = window_start(history, now, window)
    by_kind = [len(history.series[f"fds_{kind}"].since(since)) for kind in DESCRIPTOR_KINDS]
    descriptors = max(by_kind) or len(history.series["fds"].since(since))
    return (
        Coverage(Detector.GOROUTINES, len(history.series["goroutine_groups"].since(since)), MIN_POINTS,
                 "goroutine profiles"),
        Coverage(Detector.HEAP, len(gc_cycles(history, since)), 3 * MIN_GC_CYCLES_PER_THIRD,
                 # one per poll that follows one GC cycle or more; one per cycle from a GC trace
                 "GC cycles in its GC trace" if history.traced else "readings after a GC"),
        Coverage(Detector.DESCRIPTORS, descriptors, MIN_POINTS, "descriptor counts"),
    )


# --- naming -----------------------------------------------------------------------------------


def _frame_name(frame: Frame) -> str:
    """'pkg.function (file.go:12)'."""
    if not frame.file:
        return frame.function or "?"
    return f"{frame.function} ({os.path.basename(frame.file)}:{frame.line})"


def _signed(rate: float) -> str:
    return f"{'+' if rate >= 0 else '-'}{fmt_count(abs(rate))}"


def _signed_bytes(rate: float) -> str:
    return f"{'+' if rate >= 0 else '-'}{fmt_bytes(abs(rate))}"


_CONFIDENCE_ORDER = {Confidence.HIGH: 0, Confidence.MEDIUM: 1, Confidence.LOW: 2}


def _severity(finding: Finding) -> tuple:
    return _CONFIDENCE_ORDER[finding.confidence], -finding.rate_per_min, finding.where

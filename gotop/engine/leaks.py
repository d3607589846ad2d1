"""Leak detectors: what keeps growing in a target, and the evidence for it.

Pure functions over a TargetHistory and the current time (no I/O): the TUI can
run them after each poll, `gotop check` runs them while it watches; both show
the same findings.

  goroutines  a stack group whose count keeps rising (no real fall, and still
              rising lately), or that the runtime's goroutineleak profile
              proves leaked (Go >= 1.26 with the experiment, Go 1.27)
  heap        the live heap keeps rising across GC cycles: the heap each GC
              marked live where it is known (the memory's heapMarked at each
              poll, or every cycle of a GC trace), else the heap in use after
              GC and the heap goal; named by the allocation sites whose bytes
              in use never fall across the heap profiles and that keep what
              they allocate. A cycle that ended while gotop fetched a profile
              marked gotop's answer too: such cycles are judged apart.
  fds/sockets open descriptors of one kind (files, pipes, TCP, UDP, UNIX) that
              keep rising

A rate is measured on the evidence that tracks it best: a count between its
first and last step (steady_rise), the live heap along the line under its
GC cycles' readings (trends.lower_line: what was in flight when a GC marked
only adds to them), shared among the allocation sites named in proportion to
what each gained in the heap profiles (sampled: about one allocation per 512
KiB).

Every finding is shown, with its confidence; only one that meets the gate's
bar fails `gotop check` (`Finding.fails_gate`; `short_of` says what a finding
below the bar lacks). The bar is what a healthy, busy service does not do in
steady state, however long it runs:

  goroutines  proven leaked by the runtime; or a group blocked in a wait
              (channel, select, lock, I/O) that gained MIN_GOROUTINE_GAIN
              and grows by GATE_PACE of its count a minute or faster
  heap        the live heap each GC marked (or, with only the heap after GC
              to go by, an allocation site named beside it) grows by
              GATE_PACE of itself a minute or faster, or the GC kept
              GATE_RETENTION of what was allocated meanwhile; with no site
              named, its rise must be GATE_NOISE times the noise on its readings
  fds/sockets a kind that gained MIN_DESCRIPTOR_GAIN and grows by GATE_PACE
              of its count a minute or faster

Below the bar, what a healthy service also does: a cache or a TSDB head that
fills slowly (etcd's live heap under steady writes rises about 15 % a minute
until it compacts), a pool growing by a few workers, clients keeping their
connections. A slow leak shows as a finding first (one goroutine every ten
seconds: 3 in 30 s) and fails the gate once it has grown enough.

`coverage` says, per detector, whether it had readings enough to judge a
trend at all (a target without net/http/pprof has no goroutine groups, one
whose GC does not run has no heap after GC): what `gotop check` could watch.

What is never a leak: churn the GC reclaims (the live heap does not rise),
goroutines or descriptors that come and go (their count falls back), and a
pool or cache that grows to a plateau (it stops rising in the recent part of
the window).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import Enum

from gotop.engine.heapsites import HeapSites
from gotop.engine.history import TargetHistory
from gotop.engine.series import Series
from gotop.engine.trends import (
    MAX_FALL_SHARE,
    MIN_POINTS,
    MIN_SPAN,
    Point,
    Rise,
    floor_rise,
    median_rise,
    rising_level,
    steady_rise,
)
from gotop.model.goroutines import Frame, GoroutineGroup, GoroutineProfile, StackKey
from gotop.units import fmt_bytes, fmt_count

# --- thresholds ---------------------------------------------------------------------------
# Growth worth a finding: below these, a busy program's normal wobble.
MIN_GOROUTINE_GAIN = 10  # goroutines in one stack group; the gate wants as many
MIN_PARKED_GAIN = 2  # goroutines parked on a channel, select or lock, in two steps or more: a slow leak
MIN_DESCRIPTOR_GAIN = 10  # descriptors of one kind
MIN_LIVE_HEAP_GAIN = 1 << 20  # bytes of live heap (1 MiB)
MIN_HEAP_GOAL_GAIN = 1 << 20  # bytes of heap goal (next_gc): about 512 KiB of live heap at GOGC=100
# The heap is judged once per GC cycle, on each third of the readings. The
# heap each GC marked live is exact: three cycles draw a line (a fast leak has
# few, each doubling the heap goal). The heap in use after GC adds the garbage
# allocated since the GC ended, so each third needs a few readings, and its
# low ones are the ones to trust; the goal set at the GC's end errs both ways
# (garbage still floating, or a GC that found a busy program between two
# bursts of work), so its median.
MIN_MARKED_CYCLES = 3
# A GC cycle that ended while gotop asked the target for a protobuf profile
# (heap, or goroutines when it learns the runtime frames; not the text form's
# 39 KB: Target.big_answers) marked gotop's own answer in flight (a gzipped
# profile holds about 1 MiB: in a small program, as much as the rest of its
# heap; and its allocation is what starts most of a small program's GC
# cycles; a 30 s check of a small leak once saw 5 of its 8 cycles marked asked
# by text profiles, too few left to judge): such cycles are judged among
# themselves, or with the others only in a rise of MIN_ASKED_RISE. Seconds
# before and after the request; a GC trace's line is read a little after its
# cycle ended.
ASKED_MARGIN = (0.05, 0.1)
MIN_ASKED_RISE = 16 << 20
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
# Heap memory a leaked goroutine or descriptor may hold (find_leaks): a goroutine's
# descriptor is about 400 bytes, a channel 96 and up, a timer about 100, a
# connection's buffers 4 KiB each way.
HELD_PER_LEAK = 4 << 10
# The gate's bar (see the module's docstring).
GATE_PACE = 0.5  # growth per minute, as a share of the level the rise started from
GATE_RETENTION = 0.5  # share of the bytes allocated during a heap rise that the GC kept
GATE_NOISE = 1.5  # a live heap rise with no site named must be this many times its noise (trends.floor_rise)

# Wait states a leaked goroutine sits in for ever (GoroutineGroup.state). Parked
# ones wait for another goroutine of the program; in I/O wait, for a peer.
PARKED_STATES = ("chan receive", "chan send", "select", "sync.")
BLOCKED_STATES = (*PARKED_STATES, "IO wait")


class LeakKind(str, Enum):
    GOROUTINES = "goroutines"
    HEAP = "heap"
    FDS = "fds"
    SOCKETS = "sockets"


class Confidence(str, Enum):
    LOW = "low"  # below the gate's bar, and weak: goroutines that are not blocked
    MEDIUM = "medium"  # below the gate's bar
    HIGH = "high"  # meets it: fails `gotop check`


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
    short_of: str | None = None  # what it lacks to fail the gate; None: it fails it

    @property
    def key(self) -> tuple[LeakKind, Ref]:
        """The same leak in successive runs of the detectors."""
        return self.kind, self.ref

    @property
    def basis(self) -> Basis:
        return self.evidence[0].basis

    @property
    def fails_gate(self) -> bool:
        """Whether it makes `gotop check` say `leak` (exit 1)."""
        return self.short_of is None

    def to_json(self) -> dict:
        return {
            "kind": self.kind.value, "where": self.where, "rate_per_min": round(self.rate_per_min, 3),
            "unit": self.unit, "since": self.since, "confidence": self.confidence.value,
            "fails_gate": self.fails_gate, "short_of": self.short_of, "basis": self.basis.value,
            "evidence": [{"basis": e.basis.value, "text": e.text} for e in self.evidence],
        }


def _confidence(short_of: str | None, strong: bool = True) -> Confidence:
    return Confidence.HIGH if short_of is None else Confidence.MEDIUM if strong else Confidence.LOW


def _below_pace(rise: Rise, what: str) -> str | None:
    """What a rise lacks of the gate's pace, if it does."""
    if rise.pace >= GATE_PACE:
        return None
    return f"grows by {_share(rise.pace, what)} a minute; the gate wants {GATE_PACE:.0%}"


def _share(fraction: float, of: str) -> str:
    """'35% of it', or '120 times it' when far past 100 %."""
    return f"{fraction:.0%} of {of}" if fraction < 10 else f"{fraction:.0f} times {of}"


# --- entry point ----------------------------------------------------------------------------


def find_leaks(history: TargetHistory, now: float, window: float | None = None) -> tuple[Finding, ...]:
    """Every finding over the last `window` seconds (default: the history's window).

    Leaked goroutines and descriptors hold heap memory of their own (a
    goroutine's descriptor, the channels, timers and buffers it keeps): a heap
    that rises no faster than the leaks beside it could hold, HELD_PER_LEAK
    each, is left to them, whatever site the heap profiles name.
    """
    goroutines = goroutine_leaks(history, now, window)
    descriptors = descriptor_leaks(history, now, window)
    held = HELD_PER_LEAK * sum(f.rate_per_min for f in (*goroutines, *descriptors))
    heap = tuple(f for f in heap_leaks(history, now, window) if f.rate_per_min > held)
    return (*goroutines, *heap, *descriptors)


def window_start(history: TargetHistory, now: float, window: float | None = None) -> float:
    """Readings before this are not judged: older than the window, or of the
    process a restart replaced."""
    start = now - (history.window if window is None else window)
    return max([start, *history.restarts])


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
        group = latest.get(key) or proof
        if group is None or (proof is None and (trend is None or (trend.counts.last or 0) < MIN_PARKED_GAIN)):
            continue  # gone, or too small to have gained enough: most groups of a big program
        points = trend.counts.since(since) if trend else []
        parked = _waits_in(group, PARKED_STATES)
        rise = steady_rise(points, MIN_PARKED_GAIN if parked else MIN_GOROUTINE_GAIN)
        if rise is None and proof is None:
            continue
        findings.append(_goroutine_finding(group, points, rise, proof, history.leaks, total, since))
    return tuple(sorted(findings, key=_severity))


def _waits_in(group: GoroutineGroup, states: tuple[str, ...]) -> bool:
    return group.state is not None and group.state.startswith(states)


def _goroutine_finding(group: GoroutineGroup, points: list[Point], rise: Rise | None,
                       proof: GoroutineGroup | None, leak_profile: GoroutineProfile | None,
                       total: int, since: float) -> Finding:
    state = group.state
    blocked = _waits_in(group, BLOCKED_STATES)
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
    short_of = None if proof is not None else _goroutine_short_of(rise, blocked)
    if rise is not None:
        rate, start = rise.rate_per_min, rise.start
    else:
        rate, start = (_slope_per_minute(points), points[0][0]) if len(points) > 1 else (0.0, since)
    return Finding(LeakKind.GOROUTINES, _frame_name(group.label_frame or Frame(group.label, "", 0)),
                   GroupRef(group.key), rate, "goroutines", start, _confidence(short_of, blocked),
                   tuple(evidence), short_of)


def _goroutine_short_of(rise: Rise | None, blocked: bool) -> str | None:
    assert rise is not None  # a finding not proven leaked rests on its rise
    if not blocked:
        return "its goroutines are not blocked in a wait: busy ones may yet finish"
    if rise.gained < MIN_GOROUTINE_GAIN:
        return f"gained {fmt_count(rise.gained)} goroutines; the gate wants {MIN_GOROUTINE_GAIN}"
    return _below_pace(rise, "its count")


# --- heap -----------------------------------------------------------------------------------


class LiveBasis(str, Enum):
    """What stands for the live heap at each GC cycle."""

    TRACE = "heap marked live by each GC (its GC trace)"  # every cycle, in whole MiB
    MARKED = "heap marked live by each GC"  # the runtime's heapMarked read from its memory at each poll: exact
    AFTER_GC = "heap in use after GC"  # the first reading after a GC: live heap plus the garbage since


@dataclass(frozen=True, slots=True)
class HeapAtGc:
    """The heap as one GC cycle left it."""

    time: float  # unix time the cycle ended
    live: float  # bytes (see LiveBasis)
    goal: float  # the heap goal
    allocated: float | None  # bytes allocated so far (a running count: only differences mean something)
    asked: bool = False  # it ended while gotop asked the target for a profile (ASKED_MARGIN)


@dataclass(frozen=True, slots=True)
class GcCycles:
    """The GC cycles of a window, from the best source the history has."""

    basis: LiveBasis
    cycles: tuple[HeapAtGc, ...]

    @property
    def exact(self) -> bool:
        """The heap each GC marked live, not the heap in use some time after it."""
        return self.basis is not LiveBasis.AFTER_GC

    @property
    def needed(self) -> int:
        """Cycles a trend needs."""
        return MIN_MARKED_CYCLES if self.exact else 3 * MIN_GC_CYCLES_PER_THIRD


@dataclass(frozen=True, slots=True)
class SiteGrowth:
    """What one allocation site gained across the heap profiles of a window."""

    site: Frame
    inuse: int  # in-use bytes gained
    allocated: int  # bytes allocated in between
    series: tuple[Point, ...]  # its bytes in use in each profile

    @property
    def kept(self) -> float:
        """The share of the bytes allocated in between still in use."""
        return self.inuse / self.allocated if self.allocated > 0 else 0.0

    @property
    def seconds(self) -> float:
        return self.series[-1][0] - self.series[0][0]


def heap_leaks(history: TargetHistory, now: float, window: float | None = None) -> tuple[Finding, ...]:
    """A live heap rising across GC cycles, named by the sites that keep their bytes."""
    since = window_start(history, now, window)
    gc = gc_cycles(history, since)
    rise, tracks = live_heap_rise(gc)
    if rise is None:
        return ()
    # A second witness when the rise does not track the live heap itself, so that a
    # busy program's ups and downs (or gotop's answers in flight) are not taken for a
    # rise: an allocation site that keeps what it allocates, or, beside the heap in
    # use after GC, the heap goal (it sits at its 4 MiB minimum while the live heap is
    # under 2 MiB).
    goal = None if gc.exact else rising_level([(c.time, c.goal) for c in gc.cycles], MIN_HEAP_GOAL_GAIN,
                                              HEAP_GOAL_QUANTILE, MIN_GC_CYCLES_PER_THIRD)
    sites = growing_sites(s for s in history.heap_sites if s.time >= since)
    if not (tracks or sites or goal):
        return ()
    # Both figures read the same live heap, each with noise of its own: either may show it still rising.
    if not (rise.still_rising or (goal and goal.still_rising)):
        return ()
    kept = _kept(gc, rise)
    short_of = _heap_short_of(rise, tracks, kept, sites)
    live = Evidence(Basis.LIVE_HEAP, _live_heap_text(gc, rise, kept, goal), rise.points, "bytes")
    if not sites:
        if history.heap_sites:
            live = replace(live, text=f"{live.text}; no allocation site stands out between the heap profiles")
        return (Finding(LeakKind.HEAP, "live heap", SiteRef(None), rise.rate_per_min, "bytes", rise.start,
                        _confidence(short_of), (live,), short_of),)
    named, gained = sites[:MAX_SITES], sum(s.inuse for s in sites)
    return tuple(
        Finding(LeakKind.HEAP, _frame_name(s.site), SiteRef(s.site),
                # The live heap measures the rate where it tracks it; the profiles' samples, each site's share.
                rise.rate_per_min * s.inuse / gained if tracks else s.inuse / s.seconds * 60,
                "bytes", s.series[0][0], _confidence(short_of), (_site_evidence(s, len(sites)), live), short_of)
        for s in named)


def live_heap_rise(gc: GcCycles) -> tuple[Rise | None, bool]:
    """The rise of the live heap across the cycles, or None; and whether it tracks
    the live heap itself. The line under the heap each GC marked does
    (trends.floor_rise), that of the cycles apart from gotop's polls; or else the
    median line of the cycles that marked gotop's answers too (trends.median_rise:
    in a small program polled for profiles, most of its cycles, each holding more
    or less of an answer); the two mixed, only in a rise far larger than those
    answers (a fast leak has few cycles: each one counts). Two cycles do where the GC kept most of what was
    allocated between them (a fast leak watched late: its heap goal doubles past
    the watch). The thirds' low readings of the heap in use after GC do not
    track it."""
    if not gc.exact:
        points = [(c.time, c.live) for c in gc.cycles]
        return rising_level(points, MIN_LIVE_HEAP_GAIN, HEAP_AFTER_GC_QUANTILE, MIN_GC_CYCLES_PER_THIRD), False
    if len(gc.cycles) == 2:
        return _kept_between(*gc.cycles), True
    rise = (floor_rise([(c.time, c.live) for c in gc.cycles if not c.asked], MIN_LIVE_HEAP_GAIN)
            or median_rise([(c.time, c.live) for c in gc.cycles if c.asked], MIN_LIVE_HEAP_GAIN)
            or floor_rise([(c.time, c.live) for c in gc.cycles], MIN_ASKED_RISE))
    return rise, True


def _kept_between(first: HeapAtGc, last: HeapAtGc) -> Rise | None:
    """The rise between two cycles, if the GC kept GATE_RETENTION of the MIN_ASKED_RISE or more
    allocated between them."""
    span, gained = last.time - first.time, last.live - first.live
    if first.allocated is None or last.allocated is None or span < MIN_SPAN or gained < MIN_ASKED_RISE:
        return None
    if gained < GATE_RETENTION * (last.allocated - first.allocated):
        return None
    return Rise(((first.time, first.live), (last.time, last.live)), gained, gained / span * 60, first.live)


def _kept(gc: GcCycles, rise: Rise) -> float | None:
    """The share of the bytes allocated during the rise that the GC kept, if known."""
    inside = [c for c in gc.cycles if c.time >= rise.start]
    first, last = inside[0], inside[-1]
    if first.allocated is None or last.allocated is None or last.allocated <= first.allocated:
        return None
    return min(1.0, rise.rate_per_min / 60 * (last.time - first.time) / (last.allocated - first.allocated))


def _heap_short_of(rise: Rise, tracks: bool, kept: float | None, sites: Sequence[SiteGrowth]) -> str | None:
    if not (tracks or sites):
        return ("only the heap in use some time after each GC rose (the heap each GC marked live is not "
                "known), and no allocation site stands out")
    if rise.gained < GATE_NOISE * rise.noise and not sites:
        return (f"its rise ({fmt_bytes(rise.gained)}) is less than {GATE_NOISE:g} times the noise on it "
                f"({fmt_bytes(rise.noise)}), and no allocation site stands out")
    if kept is not None and kept >= GATE_RETENTION:
        return None
    slow = _below_pace(rise, "itself")
    if slow is None:
        return None
    return slow + (f", or the GC to keep {GATE_RETENTION:.0%} of what is allocated ({kept:.0%} kept)"
                   if kept is not None else "")


def _live_heap_text(gc: GcCycles, rise: Rise, kept: float | None, goal: Rise | None) -> str:
    how = (f"the line under its readings, which stray up to {fmt_bytes(rise.noise)} above it" if gc.exact
           else "between the low readings of the first and the last third")
    return (f"{gc.basis.value} rose by {fmt_bytes(rise.gained)} over {len(rise.points)} GC cycles "
            f"in {rise.span:.0f} s ({_signed_bytes(rise.rate_per_min)}/min, {_share(rise.pace, 'it')} a minute; {how})"
            + (f"; the GC kept {kept:.0%} of what was allocated meanwhile" if kept is not None else "")
            + (f"; the heap goal set at each GC end rose by {fmt_bytes(goal.gained)}" if goal else ""))


def _site_evidence(s: SiteGrowth, growing: int) -> Evidence:
    share = "; the live heap's rise is shared among the sites that grow as they do" if growing > 1 else ""
    return Evidence(
        Basis.ALLOCATION_SITE,
        f"keeps {s.kept:.0%} of the {fmt_bytes(s.allocated)} it allocated in {s.seconds:.0f} s: its bytes in use "
        f"rose by {fmt_bytes(s.inuse)} across {len(s.series)} heap profiles, never falling{share}", s.series, "bytes")


def gc_cycles(history: TargetHistory, since: float) -> GcCycles:
    """The heap at the end of each GC cycle since `since`.

    From the GC trace, when gotop started the program: every cycle's marked
    live heap, and the goal it ran under (set at the previous cycle's end).
    Else, where the memory gave the runtime's heapMarked: the heap the last GC
    marked at each poll that follows one cycle or more, at the time that GC
    ended (the first poll's too, if it ended since). Else from the polls: the
    heap in use and the heap goal (next_gc) at the first reading after each
    GC. The goal is set at the GC's end in proportion to the heap it found
    live (live x (1 + GOGC/100), at least 4 MiB); the heap in use adds what
    was allocated between the GC's end and the reading.
    """
    if history.traced:
        return _marking_polls(history, LiveBasis.TRACE, _traced_cycles(history, since))
    num_gc = dict(history.series["num_gc"].since(since))
    next_gc = dict(history.series["next_gc"].since(since))
    allocated = dict(history.series["total_alloc"].since(since))
    marked = history.series["heap_marked"].since(since)
    cycles, previous = [], None
    if marked:
        ended = dict(history.series["last_gc"].since(since))
        for t, live in marked:
            count = num_gc.get(t)
            if count is None or count == previous:
                continue
            previous = count
            if ended.get(t, t) >= since:
                cycles.append(HeapAtGc(ended.get(t, t), live, next_gc.get(t, 0.0), allocated.get(t)))
        return _marking_polls(history, LiveBasis.MARKED, cycles)
    for t, heap_alloc in history.series["heap_alloc"].since(since):
        count, goal = num_gc.get(t), next_gc.get(t)
        if count is None or goal is None:
            continue
        if previous is not None and count > previous:
            cycles.append(HeapAtGc(t, heap_alloc, goal, allocated.get(t)))
        previous = count
    return GcCycles(LiveBasis.AFTER_GC, tuple(cycles))


def _marking_polls(history: TargetHistory, basis: LiveBasis, cycles: Iterable[HeapAtGc]) -> GcCycles:
    """The cycles, those that ended while a poll asked the target marked (ASKED_MARGIN)."""
    asked = sorted(history.asked)
    starts = [start for start, _ in asked]
    before, after = ASKED_MARGIN

    def while_asked(t: float) -> bool:
        i = bisect.bisect_right(starts, t + before) - 1
        return i >= 0 and t <= asked[i][1] + after

    return GcCycles(basis, tuple(replace(c, asked=while_asked(c.time)) for c in cycles))


def _traced_cycles(history: TargetHistory, since: float) -> Iterable[HeapAtGc]:
    """Each cycle of the GC trace; what was allocated between two is the heap at
    the start of the later one less what the earlier one left live."""
    allocated, previous = 0.0, None
    for r in history.gc_trace:
        c = r.cycle
        allocated += max(0, c.heap_start - previous) if previous is not None else 0
        previous = c.heap_live
        if r.time >= since:
            yield HeapAtGc(r.time, c.heap_live, c.heap_goal, allocated)


def growing_sites(profiles: Iterable[HeapSites]) -> tuple[SiteGrowth, ...]:
    """Allocation sites whose bytes in use rose by MIN_SITE_GAIN across the heap
    profiles, never falling back by more than MAX_FALL_SHARE of their rises,
    keeping MIN_SITE_KEPT of what they allocated in between; most gained first.

    Per site, the growth is what `go tool pprof -base FIRST LAST` shows.
    Profiles the runtime published from the same GC cycle count once.
    """
    states: list[HeapSites] = []
    for p in profiles:
        if not states or p.allocated != states[-1].allocated:
            states.append(p)
    if len(states) < 2:
        return ()
    first, last = states[0], states[-1]
    growth = []
    for site, (inuse, allocated) in last.bytes.items():
        inuse0, allocated0 = first.bytes.get(site, (0, 0))
        g = SiteGrowth(site, inuse - inuse0, allocated - allocated0,
                       tuple((s.time, float(s.bytes.get(site, (0, 0))[0])) for s in states))
        if g.inuse < MIN_SITE_GAIN or g.kept < MIN_SITE_KEPT:
            continue
        deltas = [b - a for (_, a), (_, b) in zip(g.series, g.series[1:])]
        if -sum(d for d in deltas if d < 0) <= MAX_FALL_SHARE * sum(d for d in deltas if d > 0):
            growth.append(g)
    return tuple(sorted(growth, key=lambda g: (-g.inuse, g.site)))


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
        short_of = _below_pace(rise, "their count")
        findings.append(Finding(leak_kind, name, DescriptorRef(kind), rise.rate_per_min, "descriptors",
                                rise.start, _confidence(short_of), (evidence,), short_of))
    return tuple(sorted(findings, key=_severity))


# --- what the detectors could watch ------------------------------------------------------------


class Detector(str, Enum):
    GOROUTINES = "goroutines"  # goroutine groups, from grouped goroutine profiles
    HEAP = "heap"  # the live heap, read once per GC cycle
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


HEAP_READINGS = {  # what one reading of the heap detector is, by what stands for the live heap
    LiveBasis.TRACE: "GC cycles in its GC trace",  # one per cycle
    LiveBasis.MARKED: "GC cycles with their live heap",  # one per poll that follows one cycle or more
    LiveBasis.AFTER_GC: "readings after a GC",  # the same, the heap in use for the live heap
}


def coverage(history: TargetHistory, now: float, window: float | None = None) -> tuple[Coverage, ...]:
    """Per detector, the readings it judged (as the detectors above count them)."""
    since = window_start(history, now, window)
    by_kind = [len(history.series[f"fds_{kind}"].since(since)) for kind in DESCRIPTOR_KINDS]
    descriptors = max(by_kind) or len(history.series["fds"].since(since))
    gc = gc_cycles(history, since)
    return (
        Coverage(Detector.GOROUTINES, len(history.series["goroutine_groups"].since(since)), MIN_POINTS,
                 "goroutine profiles"),
        Coverage(Detector.HEAP, len(gc.cycles), gc.needed, HEAP_READINGS[gc.basis]),
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

"""A Go runtime's own variables, read as bytes from outside, made into gotop's figures.

The memory source (gotop.sources.memory) reads the bytes; this module knows
what they mean, given the struct layouts of the target's Go release
(gotop.model.golayout) and its function table (gotop.model.pclntab). No I/O.

What is read, and what the runtime means by it (runtime/mstats.go, mgcpacer.go):
  - `memstats` (runtime.mstats): GC count, the 256-entry pause rings, total
    pause, last GC time; what `runtime.ReadMemStats` copies out as is;
  - `gcController` (runtime.gcControllerState): GOGC, the memory limit, the
    live heap the last GC marked, the heap goal, and (Go >= 1.20) the page
    heap's bytes in use, free and released; heap objects' bytes in use are
    `totalAlloc - totalFree` as ReadMemStats computes HeapAlloc (Go >= 1.20),
    else `heapLive`, which counts the spans cached for allocation as full;
  - `allgs` / every `g`: status, id, creation site (`gopc`), start function,
    wait reason and since when (`waitsince`: set when a GC finds it blocked).

The target runs on while its bytes are read: a value torn between two writes
is possible, so every figure is checked for sense (`ReadingRejected`) and a
reading with one nonsense figure is dropped whole rather than shown.
"""

from __future__ import annotations

import struct
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import repeat

from gotop.errors import GotopError
from gotop.model.golayout import FieldLayout, RuntimeLayout
from gotop.model.goroutines import (
    KIND_GOROUTINE,
    Frame,
    GoroutineGroup,
    GoroutineProfile,
    hidden_by_traceback,
    stack_key,
)
from gotop.model.memstats import PAUSE_RING_SIZE, MemStats, Stats
from gotop.model.pclntab import Func, Pclntab, PclntabError

MAX_GOROUTINES = 10_000_000  # allglen past this is a torn read, not a program
MAX_GOMAXPROCS = 1 << 20
PAGE_SIZE = 8192  # the runtime's heap page (_PageSize), the unit of mheap_.pagesInUse
NO_LIMIT = (1 << 63) - 1  # gcController.memoryLimit when GOMEMLIMIT is off (math.MaxInt64)

# g.atomicstatus: the runtime's _G* constants, from the layout (runtime/runtime2.go)
G_NOT_LIVE = ("_Gidle", "_Gdead", "_Gdeadextra")  # _Gdeadextra: a cgo callback's spare g (Go >= 1.26)

# The g fields a goroutine census reads (the first ones every release has); not goid:
# goroutines that differ in no field read are counted together (GoroutineCounter.census).
G_FIELDS = ("atomicstatus", "gopc", "startpc", "waitreason", "waitsince")

# Start functions in the runtime package that run user code: counted as user goroutines
# (runtime.isSystemGoroutine). runfinq and the cleanup goroutines count as system while idle.
USER_RUNTIME_STARTS = ("runtime.main", "runtime.corostart", "runtime.handleAsyncEvent")


class ReadingRejected(GotopError):
    """Bytes read from a running process that do not make sense (a torn read): the reading is dropped."""


@dataclass(frozen=True, slots=True)
class StructReader:
    """Reads named fields of one runtime type from bytes that start at `base` bytes into it."""

    type_name: str
    base: int  # offset in the type of the first byte given
    size: int  # bytes to read: from `base` to the end of the last field wanted
    fields: dict[str, tuple[int, str]]  # field -> (offset from base, struct format)

    @classmethod
    def over(cls, layout: RuntimeLayout, type_name: str, paths: Iterable[str]) -> StructReader:
        """A reader for the fields of `paths` that this release has (the others are left out)."""
        found = {p: layout.field(type_name, p) for p in paths if layout.has(type_name, p)}
        if not found:
            raise ReadingRejected(f"{type_name}: none of the fields wanted are in {layout.go}'s layout")
        # Go has no unions: fields that overlap are a damaged layout (a DWARF's), not bytes to read.
        by_offset = sorted(found.items(), key=lambda item: item[1].offset)
        for (previous, p), (path, f) in zip(by_offset, by_offset[1:]):
            if f.offset < p.offset + p.size * p.count:
                raise ReadingRejected(f"{type_name}: the layout ({layout.origin}) puts {path} inside {previous}")
        base = min(f.offset for f in found.values())
        end = max(f.offset + f.size * f.count for f in found.values())
        return cls(type_name, base, end - base,
                   {p: (f.offset - base, _format(f, f"{type_name}.{p}")) for p, f in found.items()})

    def has(self, path: str) -> bool:
        return path in self.fields

    def get(self, data: bytes, path: str, offset: int = 0) -> int:
        at, fmt = self.fields[path]
        return struct.unpack_from(fmt, data, offset + at)[0]

    def get_many(self, data: bytes, path: str) -> tuple[int, ...]:
        at, fmt = self.fields[path]
        return struct.unpack_from(fmt, data, at)


_CODES = {("uint", 1): "B", ("uint", 2): "H", ("uint", 4): "I", ("uint", 8): "Q", ("ptr", 4): "I", ("ptr", 8): "Q",
          ("int", 1): "b", ("int", 2): "h", ("int", 4): "i", ("int", 8): "q", ("bool", 1): "B",
          ("float", 4): "f", ("float", 8): "d"}


def _format(f: FieldLayout, name: str) -> str:
    """The struct format of a field: little-endian, its kind and size."""
    code = _CODES.get((f.kind, f.size))
    if code is None:
        raise ReadingRejected(f"{name}: a {f.size}-byte {f.kind} is not a value gotop reads")
    return f"<{f.count}{code}" if f.count > 1 else f"<{code}"


# --- runtime figures ------------------------------------------------------------------

MSTATS_FIELDS = ("numgc", "numforcedgc", "pause_total_ns", "pause_ns", "pause_end", "last_gc_unix",
                 "gc_cpu_fraction", "enablegc", "debuggc",
                 "heap_inuse", "heap_released", "heap_sys")  # the last three: Go 1.18 only
GC_CONTROLLER_FIELDS = ("gcPercent", "memoryLimit", "heapMarked", "heapLive", "heapGoal", "gcPercentHeapGoal",
                        "sweepDistMinTrigger", "triggered", "totalAlloc", "totalFree", "heapInUse", "heapFree",
                        "heapReleased", "heapMinimum")
MHEAP_FIELDS = ("pagesInUse",)
THREAD_FIELDS = ("mnext", "nmfreed")  # threads (Ms) made and freed: what the threadcreate profile counts
# runtime.gcount(): allglen less the dead goroutines on the free lists and the system goroutines.
# The scheduler's free list counts its goroutines in gFree.n up to go1.24, since go1.25 in one
# count per list (with and without a stack); each P's in gFree.n, gFree.size since go1.25.
SCHED_FREE_FIELDS = ("gFree.n", "gFree.stack.size", "gFree.noStack.size")
SCHED_FIELDS = (*THREAD_FIELDS, *SCHED_FREE_FIELDS, "ngsys")
P_FREE_FIELDS = ("gFree.n", "gFree.size")


@dataclass(frozen=True, slots=True)
class RuntimeReaders:
    """What to read of each runtime variable, for one Go release."""

    memstats: StructReader
    gc_controller: StructReader
    mheap: StructReader | None
    sched: StructReader  # threads made and freed, and what gcount() reads
    p: StructReader  # a P's count of free goroutines
    g: StructReader

    @classmethod
    def for_layout(cls, layout: RuntimeLayout) -> RuntimeReaders:
        """Readers of what `layout` has; a layout without what the goroutine count needs (or the
        threads: every table has them, and RuntimeLayout.missing names them) is ReadingRejected."""
        mheap_fields = [p for p in MHEAP_FIELDS if layout.has("runtime.mheap", p)]
        sched = StructReader.over(layout, "runtime.schedt", SCHED_FIELDS)
        p = StructReader.over(layout, "runtime.p", P_FREE_FIELDS)
        if lacking := [f for f in (*THREAD_FIELDS, "ngsys") if not sched.has(f)] + (
                [] if any(map(sched.has, SCHED_FREE_FIELDS)) else ["gFree"]):
            raise ReadingRejected(f"runtime.schedt: {layout.origin} lacks {', '.join(lacking)}")
        return cls(
            StructReader.over(layout, "runtime.mstats", MSTATS_FIELDS),
            StructReader.over(layout, "runtime.gcControllerState", GC_CONTROLLER_FIELDS),
            StructReader.over(layout, "runtime.mheap", mheap_fields) if mheap_fields else None,
            sched, p,
            StructReader.over(layout, "runtime.g", G_FIELDS),
        )


@dataclass(frozen=True, slots=True)
class GcFigures:
    """What the memory adds to MemStats: the GC controller's own view."""

    gc_percent: int | None  # GOGC; -1 = off
    memory_limit: int | None  # GOMEMLIMIT in bytes; None when off
    heap_marked: int | None  # the live heap the last GC marked


def memstats_from(readers: RuntimeReaders, mstats: bytes, controller: bytes, mheap: bytes | None) -> MemStats:
    """MemStats (as far as plain runtime fields give it) from the bytes of
    `memstats`, `gcController` and `mheap_`, each as its reader asked."""
    m, c = readers.memstats, readers.gc_controller

    def ctl(path: str) -> int | None:
        return c.get(controller, path) if c.has(path) else None

    num_gc = m.get(mstats, "numgc")
    pause_ns = m.get_many(mstats, "pause_ns") if m.has("pause_ns") else None
    pause_end = m.get_many(mstats, "pause_end") if m.has("pause_end") else None
    if pause_ns is not None and len(pause_ns) != PAUSE_RING_SIZE:
        raise ReadingRejected(f"the pause ring has {len(pause_ns)} entries, not {PAUSE_RING_SIZE}")
    total_alloc, total_free = ctl("totalAlloc"), ctl("totalFree")
    if total_alloc is not None and total_free is not None:
        heap_alloc: int | None = total_alloc - total_free
    else:
        heap_alloc = ctl("heapLive")
    heap_inuse, heap_free, heap_released = ctl("heapInUse"), ctl("heapFree"), ctl("heapReleased")
    heap_idle = heap_free + heap_released if heap_free is not None and heap_released is not None else None
    heap_sys = heap_inuse + heap_idle if heap_inuse is not None and heap_idle is not None else None
    if heap_inuse is None and m.has("heap_inuse"):  # Go 1.18 keeps them in memstats
        heap_inuse, heap_released, heap_sys = (m.get(mstats, f) for f in ("heap_inuse", "heap_released", "heap_sys"))
        heap_idle = heap_sys - heap_inuse
    if heap_inuse is None and mheap is not None and readers.mheap is not None:
        heap_inuse = readers.mheap.get(mheap, "pagesInUse") * PAGE_SIZE
    figures = gc_figures(readers, controller, num_gc)
    last_pause = pause_ns[(num_gc + PAUSE_RING_SIZE - 1) % PAUSE_RING_SIZE] if pause_ns and num_gc else None
    last_end = pause_end[(num_gc + PAUSE_RING_SIZE - 1) % PAUSE_RING_SIZE] if pause_end and num_gc else None
    memstats = MemStats(
        alloc=heap_alloc, total_alloc=total_alloc, heap_alloc=heap_alloc, heap_sys=heap_sys, heap_idle=heap_idle,
        heap_inuse=heap_inuse, heap_released=heap_released, next_gc=heap_goal(readers, controller),
        last_gc=m.get(mstats, "last_gc_unix") if m.has("last_gc_unix") else None,
        pause_total_ns=m.get(mstats, "pause_total_ns") if m.has("pause_total_ns") else None,
        pause_ns=pause_ns, pause_end=pause_end, num_gc=num_gc,
        num_forced_gc=m.get(mstats, "numforcedgc") if m.has("numforcedgc") else None,
        gc_cpu_fraction=m.get(mstats, "gc_cpu_fraction") if m.has("gc_cpu_fraction") else None,
        enable_gc=bool(m.get(mstats, "enablegc")) if m.has("enablegc") else None,
        last_pause_ns=last_pause, last_pause_end=last_end,
        gc_percent=figures.gc_percent, memory_limit=figures.memory_limit, heap_marked=figures.heap_marked,
    )
    _check_memstats(memstats)
    return memstats


def gc_figures(readers: RuntimeReaders, controller: bytes, num_gc: int) -> GcFigures:
    c = readers.gc_controller
    limit = c.get(controller, "memoryLimit") if c.has("memoryLimit") else None
    return GcFigures(
        gc_percent=c.get(controller, "gcPercent") if c.has("gcPercent") else None,
        memory_limit=None if limit is None or limit >= NO_LIMIT else limit,
        # Before the first GC nothing was marked: no live heap is known yet.
        heap_marked=c.get(controller, "heapMarked") if c.has("heapMarked") and num_gc else None,
    )


def heap_goal(readers: RuntimeReaders, controller: bytes) -> int | None:
    """gcController.heapGoal() as MemStats.NextGC reports it.

    Go 1.18 keeps the goal in a field. Since 1.19 it is computed: the GOGC goal,
    raised to the sweep distance trigger and to 64 KiB past the trigger point
    (runtime/mgcpacer.go heapGoalInternal). The memory limit's goal is left
    out: it needs the page heap's live accounting, and with a limit set the
    GOGC goal is shown (an upper bound of the real one).
    """
    c = readers.gc_controller
    if c.has("heapGoal"):
        return c.get(controller, "heapGoal")
    if not c.has("gcPercentHeapGoal"):
        return None
    goal = c.get(controller, "gcPercentHeapGoal")
    if c.has("sweepDistMinTrigger"):
        goal = max(goal, c.get(controller, "sweepDistMinTrigger"))
    if c.has("triggered"):
        triggered = c.get(controller, "triggered")
        min_runway = 64 << 10
        if triggered != (1 << 64) - 1 and goal < triggered + min_runway:
            goal = triggered + min_runway
    return goal


def _check_memstats(m: MemStats) -> None:
    """Drop a torn or misread reading: figures that cannot be at once."""
    if m.num_gc is None or m.num_gc > 1 << 31:
        raise ReadingRejected(f"GC count {m.num_gc} makes no sense")
    if m.heap_alloc is not None and not 0 <= m.heap_alloc < 1 << 48:
        raise ReadingRejected(f"heap in use {m.heap_alloc} makes no sense")
    if m.gc_percent is not None and m.gc_percent < -1:
        raise ReadingRejected(f"GOGC {m.gc_percent} makes no sense")


def stats_from(readers: RuntimeReaders, goroutines: int, gomaxprocs: int, ncpu: int | None,
               sched: bytes) -> Stats:
    """The counts gops' stats give; threads as the threadcreate profile counts them (Ms made, less those freed)."""
    if not 0 < gomaxprocs <= MAX_GOMAXPROCS:
        raise ReadingRejected(f"GOMAXPROCS {gomaxprocs} makes no sense")
    threads = readers.sched.get(sched, "mnext") - readers.sched.get(sched, "nmfreed")
    if not 0 < threads <= MAX_GOROUTINES:
        raise ReadingRejected(f"{threads} OS threads make no sense")
    return Stats(goroutines=goroutines, os_threads=threads, gomaxprocs=gomaxprocs, num_cpu=ncpu)


def sched_uncounted(readers: RuntimeReaders, sched: bytes) -> int:
    """The goroutines of allglen that the scheduler's own counts leave out of gcount(): the dead
    ones on its free lists, the system goroutines and, since go1.26, those of the Ms kept for
    threads that cgo calls back from (sched.ngsys counts both)."""
    s = readers.sched
    return sum(s.get(sched, f) for f in SCHED_FREE_FIELDS if s.has(f)) + s.get(sched, "ngsys")


def goroutine_count(readers: RuntimeReaders, allglen: int, sched: bytes, p_free: Iterable[bytes]) -> int:
    """What runtime.NumGoroutine returns, as runtime.gcount() computes it (proc.go): every
    goroutine ever made (allglen) less the dead ones on the scheduler's free lists and each
    P's (`p_free`: the bytes of each P of allp, as readers.p asks), less the system goroutines
    (sched.ngsys). O(GOMAXPROCS), where counting the `g` structs is O(goroutines).

    The runtime reads these without a lock too, and allows that the sum may be off while
    goroutines start and end; a sum no program can have is a torn read."""
    p = readers.p
    free_path = next(f for f in P_FREE_FIELDS if p.has(f))
    count = allglen - sched_uncounted(readers, sched) - sum(p.get(b, free_path) for b in p_free)
    if not 0 < count <= allglen:
        raise ReadingRejected(f"{count} goroutines of {allglen} made makes no sense")
    return count


# --- goroutines -----------------------------------------------------------------------


@dataclass(slots=True)
class _Tally:
    count: int = 0
    states: Counter[str] = field(default_factory=Counter)
    oldest_wait: int | None = None  # the smallest waitsince (monotonic ns) of its waiting members


@dataclass(frozen=True, slots=True)
class GoroutineCensus:
    """Every live goroutine of a process, counted by creation site and start function."""

    user: int  # what runtime.NumGoroutine counts: live goroutines that are not the runtime's own
    system: int
    profile: GoroutineProfile  # user goroutines grouped by (start function, creation site)


class GoroutineCounter:
    """Turns the `g` structs of `allgs` into a GoroutineCensus, naming PCs through the
    pclntab; names are cached per PC, so a steady program costs a dict lookup each."""

    def __init__(self, readers: RuntimeReaders, layout: RuntimeLayout, pclntab: Pclntab,
                 wrapped: Callable[[Func], tuple[str, int] | None]) -> None:
        """`wrapped`: the function a compiler-made wrapper calls, and a pc for its line."""
        self._g = readers.g
        self._wrapper_id = layout.wrapper_func_id
        self._wrapped = wrapped
        self._wait_reasons = layout.wait_reasons
        statuses = {value: name.removeprefix("runtime._G") for name, value in layout.constants.items()
                    if name.startswith("runtime._G") and not name.startswith("runtime._Gscan")}
        self._status_names = {value: name.removesuffix("_unused") for value, name in statuses.items()}
        self._not_live = {layout.constants[f"runtime.{name}"] for name in G_NOT_LIVE
                          if f"runtime.{name}" in layout.constants}
        self._scan = layout.constants.get("runtime._Gscan", 0x1000)
        self._waiting = layout.constants.get("runtime._Gwaiting", 4)
        self._syscall = layout.constants.get("runtime._Gsyscall", 3)
        self._pclntab = pclntab
        self._frames: dict[int, Frame] = {}
        self._system: dict[int, bool] = {}
        fields = readers.g.fields
        self._fields = _order(fields)  # as unpacked
        self._unpack = struct.Struct(f"<{readers.g.base}x" + "".join(_packed(fields, name)
                                                                    for name in self._fields)).unpack_from

    def census(self, data: bytes | memoryview, offsets: Iterable[int], text_bias: int,
               now_ns: Callable[[], int] = time.monotonic_ns) -> GoroutineCensus:
        """`data` holds each `g` at `offsets`, from its start to the end of the last
        field read (the g reader's base + size); PCs in the process are the binary's
        plus `text_bias` (a PIE's load bias)."""
        # Goroutines alike in every field read are counted as one record, in C: they
        # differ in few (waitsince is the start of the GC that first found one blocked),
        # so the loop below runs per record, not per goroutine: 10,000 parked goroutines
        # cost 2.1 ms, not 7.9 ms (1000: 0.23 ms, not 0.69 ms).
        records = Counter(map(self._unpack, repeat(data), offsets))
        tallies: dict[tuple[int, int], _Tally] = {}
        user = system = 0
        for values, count in records.items():
            g = dict(zip(self._fields, values))
            status = g["atomicstatus"] & ~self._scan
            if status in self._not_live:
                continue
            if status not in self._status_names:
                raise ReadingRejected(f"a goroutine status {g['atomicstatus']:#x} makes no sense")
            gopc, startpc = g["gopc"] - text_bias, g["startpc"] - text_bias
            if self._is_system(startpc):
                system += count
                continue
            user += count
            tally = tallies.get((gopc, startpc))
            if tally is None:
                tally = tallies[(gopc, startpc)] = _Tally()
            tally.count += count
            tally.states[self._state(status, g.get("waitreason"))] += count
            since = g.get("waitsince", 0)
            if status in (self._waiting, self._syscall) and since > 0:
                tally.oldest_wait = since if tally.oldest_wait is None else min(tally.oldest_wait, since)
        now = now_ns()
        groups = [self._group(gopc, startpc, tally, now) for (gopc, startpc), tally in tallies.items()]
        groups.sort(key=lambda g: (-g.count, g.key))
        return GoroutineCensus(user, system, GoroutineProfile(KIND_GOROUTINE, user, tuple(groups), has_states=True))

    def _state(self, status: int, reason: int | None) -> str:
        """The wait reason of a waiting goroutine (as a traceback prints it), else its status."""
        if status == self._waiting and reason is not None and 0 < reason < len(self._wait_reasons):
            return self._wait_reasons[reason]
        return self._status_names[status]

    def _group(self, gopc: int, startpc: int, tally: _Tally, now: int) -> GoroutineGroup:
        """A group is shown as its start function, called from its `go` statement; a
        creator a traceback does not print (the runtime's, for the main goroutine) is left out."""
        start, creator = self._frame(startpc, call_site=False), self._frame(gopc, call_site=True)
        shown_creator = creator.function and not hidden_by_traceback(creator.function)
        frames = (start, creator) if shown_creator else (start,)
        wait = None if tally.oldest_wait is None else max(0, (now - tally.oldest_wait) // 60_000_000_000)
        return GoroutineGroup(stack_key(frames), tally.count, frames, tally.states,
                              max_wait_minutes=wait, created_by=creator.function if shown_creator else None)

    def _frame(self, pc: int, *, call_site: bool) -> Frame:
        """The function and line of `pc`; for a `go` statement's return address
        (gopc), the line of the call (the runtime backs up one byte too). A start
        function that is a wrapper of the compiler (`go f(x)` starts one that calls f)
        is shown as the function it calls, as tracebacks show it."""
        key = -pc if call_site else pc
        frame = self._frames.get(key)
        if frame is None:
            frame = self._frames[key] = self._name(pc - 1 if call_site and pc else pc, call_site)
        return frame

    def _name(self, where: int, call_site: bool) -> Frame:
        """Where the pclntab is damaged (a binary's bytes), what it can say: a name
        without a line, or nothing, as for a pc outside every function; the reading
        keeps its counts."""
        func = self._func_at(where)
        if func is None:
            return Frame("", "", 0)
        name = func.name
        if not call_site and func.func_id == self._wrapper_id and (wrapped := self._wrapped(func)) is not None:
            name, where = wrapped
        try:
            line = self._pclntab.line_of(where)
        except PclntabError:
            line = None
        return Frame(name, *(line or ("", 0)))

    def _func_at(self, pc: int) -> Func | None:
        try:
            return self._pclntab.func_at(pc)
        except PclntabError:
            return None

    def _is_system(self, startpc: int) -> bool:
        system = self._system.get(startpc)
        if system is None:
            func = self._func_at(startpc)
            name = func.name if func else ""
            system = self._system[startpc] = name.startswith("runtime.") and name not in USER_RUNTIME_STARTS
        return system


def _order(fields: dict[str, tuple[int, str]]) -> list[str]:
    return sorted(fields, key=lambda name: fields[name][0])


def _packed(fields: dict[str, tuple[int, str]], name: str) -> str:
    """`name`'s format code, after the padding that brings it to its offset."""
    order = _order(fields)
    at, fmt = fields[name]
    i = order.index(name)
    if i == 0:
        pad = at
    else:
        prev_at, prev_fmt = fields[order[i - 1]]
        pad = at - (prev_at + struct.calcsize(prev_fmt))
    return f"{pad}x{fmt[1:]}" if pad else fmt[1:]


def words(data: bytes, count: int, ptr_size: int, offset: int = 0) -> tuple[int, ...]:
    """`count` pointer-sized words at `offset` in `data`: a slice's header, an array of pointers."""
    return struct.unpack_from(f"<{count}{'Q' if ptr_size == 8 else 'I'}", data, offset)


def non_nil_pointers(data: bytes, count: int, ptr_size: int) -> list[int]:
    """The non-nil pointers of the first `count` entries of an array (allgs', allp's)."""
    return list(filter(None, words(data, count, ptr_size)))

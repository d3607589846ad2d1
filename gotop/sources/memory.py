"""The memory source: a Go process's runtime, read from its memory, with nothing added to it.

Like py-spy for Python: the target is not attached to, not stopped, not
written, and allocates nothing for us. What it takes:

  - the binary (/proc/PID/exe): function names and lines from its pclntab;
    the runtime's variables from its symbol table, or, stripped, from the
    machine code of the runtime functions that load them (gotop.model.machinecode);
    struct layouts from its DWARF, or, without DWARF, from the table of its
    Go release (gotop.model.golayout);
  - the process: where a PIE was loaded (/proc/PID/maps), then its memory,
    read in one system call per reading of the counts, three per census of the
    goroutines (gotop.sources.procmem).

The binary's analysis is done once per binary (by device, inode, size and
mtime) and shared by every process running it.
"""

from __future__ import annotations

import os
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from itertools import repeat

from gotop.errors import GotopError
from gotop.model.golayout import LayoutUnavailable, RuntimeLayout, layout_from_dwarf, layout_table
from gotop.model.goruntime import (
    MAX_GOMAXPROCS,
    MAX_GOROUTINES,
    GoroutineCensus,
    GoroutineCounter,
    ReadingRejected,
    RuntimeReaders,
    goroutine_count,
    memstats_from,
    non_nil_pointers,
    sched_uncounted,
    stats_from,
    words,
)
from gotop.model.memstats import MemStats, Stats
from gotop.model.pclntab import Func, PclntabError
from gotop.sources.gobinary import BinaryError, GoBinary
from gotop.sources.procmem import MemoryUnreadable, ProcessMemory, load_bias

# The runtime variables read; the optional ones only add figures.
REQUIRED = ("runtime.allgs", "runtime.allglen", "runtime.allp", "runtime.memstats", "runtime.gcController",
            "runtime.gomaxprocs", "runtime.sched")
# ncpu is numCPUStartup since Go 1.25.
OPTIONAL = ("runtime.mheap_", "runtime.ncpu", "runtime.numCPUStartup")


class MemoryUnavailable(GotopError):
    """This process's runtime cannot be read from its memory; the message says why in one line."""


@dataclass(frozen=True)
class RuntimeMap:
    """Where a binary's runtime keeps what gotop reads, and how it is laid out."""

    binary: GoBinary  # without its symbol table (found_by says whether it had one)
    layout: RuntimeLayout
    readers: RuntimeReaders
    addresses: dict[str, int]  # variable -> link-time address
    found_by: dict[str, str]  # variable -> "symbol table" | "machine code"

    @property
    def origin(self) -> str:
        """How the map was made, for people: "DWARF, symbol table" or "table go1.19.13, machine code"."""
        ways = sorted(set(self.found_by.values()))
        return f"{self.layout.origin}, {' and '.join(ways)}"


# The binaries mapped last. Each holds its pclntab's mapping and a descriptor (Python's mmap
# keeps one); a host's rebuilt binaries (a dev loop, `go run`) come and go, so the oldest are
# dropped past this many (the readers of their processes keep theirs).
MAX_BINARIES = 128
_maps: OrderedDict[tuple[int, int, int, int], RuntimeMap | MemoryUnavailable] = OrderedDict()
_maps_lock = threading.Lock()


def runtime_map(pid: int, go_version: str) -> RuntimeMap:
    """The runtime map of the binary `pid` runs (cached per binary), or MemoryUnavailable."""
    exe = f"/proc/{pid}/exe"
    try:
        st = os.stat(exe)
    except OSError as e:
        raise MemoryUnavailable(f"pid {pid}: cannot open its executable: {e.strerror}") from None
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with _maps_lock:
        found = _maps.get(key)
        if found is None:
            try:
                found = _map_binary(exe, go_version)
            except MemoryUnavailable as e:
                found = e
            except BinaryError as e:  # its file went while it was read (the process exited): not kept for the binary
                raise MemoryUnavailable(f"pid {pid}: {e}") from None
            _maps[key] = found
            if len(_maps) > MAX_BINARIES:
                _maps.popitem(last=False)
        _maps.move_to_end(key)
    if isinstance(found, MemoryUnavailable):
        raise MemoryUnavailable(f"pid {pid}: {found}")
    # The same binary, read through this process's /proc entry: the one it was first
    # read through goes with its process (the file is checked to be the same at each read).
    return replace(found, binary=replace(found.binary, path=exe))


def _map_binary(path: str, go_version: str) -> RuntimeMap:
    try:
        binary = GoBinary.open(path)
    except (BinaryError, PclntabError) as e:
        raise MemoryUnavailable(str(e)) from None
    if binary.arch != "amd64" and not binary.symbols:
        raise MemoryUnavailable(f"a stripped {binary.arch} binary: its runtime is found from amd64 machine code only")
    try:
        layout = _layout(binary, go_version)
        readers = RuntimeReaders.for_layout(layout)
    except (LayoutUnavailable, ReadingRejected, BinaryError) as e:
        raise MemoryUnavailable(str(e)) from None
    addresses, found_by, missing = {}, {}, []
    for name in (*REQUIRED, *OPTIONAL):
        found = binary.global_address(name, layout.signatures.get(name, ()))
        if found is None:
            missing.append(name)
            continue
        addresses[name], found_by[name] = found
    if lacking := [name for name in missing if name in REQUIRED]:
        how = "its symbol table" if binary.symbols else "the machine code of the runtime (no symbol table)"
        raise MemoryUnavailable(f"{', '.join(lacking)} not found in {how}")
    # The symbol table has said where the runtime's variables are: kept, it would cost half a MB
    # per binary (14k symbols of a test target), up to MAX_BINARIES of them.
    return RuntimeMap(replace(binary, symbols={}), layout, readers, addresses, found_by)


def _layout(binary: GoBinary, go_version: str) -> RuntimeLayout:
    """The table of the binary's Go release, else its DWARF. Both say the same (the
    tables are checked against DWARF by the tests); a table costs a JSON load,
    the DWARF 1.5 s of CPU (pyelftools parsing the runtime's 40,000 entries)."""
    try:
        layout = layout_table(go_version, binary.arch)
    except LayoutUnavailable:
        dwarf = binary.dwarf
        if dwarf is None:
            raise
        found = layout_from_dwarf(dwarf, read=_reader_of(binary))
        if found is None:
            raise LayoutUnavailable("its DWARF describes no Go runtime") from None
        layout = found
    if missing := layout.missing():
        raise LayoutUnavailable(f"the runtime layout ({layout.origin}) lacks {', '.join(missing[:3])}")
    return layout


def _reader_of(binary: GoBinary) -> Callable[[int, int], bytes | None]:
    def read(address: int, size: int) -> bytes | None:
        try:
            return binary.read(address, size)
        except BinaryError:
            return None
    return read


def _wrapped_function_of(binary: GoBinary, gofunc: int) -> Callable[[Func], tuple[str, int] | None]:
    """binary.wrapped_function; None where the binary's bytes are damaged (the wrapper is shown as itself)."""
    def wrapped(wrapper: Func) -> tuple[str, int] | None:
        try:
            return binary.wrapped_function(wrapper, gofunc)
        except (BinaryError, PclntabError):
            return None
    return wrapped


# A reading during which the scheduler's free lists changed is made again, up to this many times
# in all: in one system call of a few microseconds, a second such change in a row is rare.
READING_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class _ReadingPlan:
    """What a reading asks in its one system call, for the Ps that allp held when it was made:
    the runtime's variables, allp's array, each P, then allglen and sched again."""

    allp: bytes  # allp's slice header (array, length) when the plan was made
    allp_array: bytes  # the array it pointed to: the Ps' addresses
    addresses: array
    sizes: array
    array_at: int  # where allp's array is in the bytes read
    ps_at: int  # where the Ps are (one after another, readers.p.size bytes each)
    ps_end: int  # where allglen is, and after it sched


@dataclass(frozen=True, slots=True)
class MemoryReading:
    memstats: MemStats
    stats: Stats


class MemoryReader:
    """Reads one process's runtime figures from its memory. Blocking (a few system
    calls and some decoding): the engine calls it from a worker thread.

    A reading (`read`: memstats and counts) costs the same whatever the number of
    goroutines: it counts them as runtime.gcount() does. The census (`census`:
    every goroutine's `g`, grouped) grows with them: the engine asks for it on
    its slow tier only."""

    def __init__(self, pid: int, go_version: str) -> None:
        self.pid = pid
        self.map = runtime_map(pid, go_version)
        self._memory = ProcessMemory(pid)
        segment = self.map.binary.segments[0]
        try:
            self._bias = load_bias(pid, segment.vaddr, segment.offset) if self.map.binary.pie else 0
        except MemoryUnreadable as e:
            raise MemoryUnavailable(str(e)) from None
        binary = self.map.binary
        try:  # read from the binary through /proc/PID/exe, gone with a process that exits meanwhile
            gofunc = binary.gofunc_at(self.map.layout.field("runtime.moduledata", "gofunc").offset)
        except BinaryError as e:
            raise MemoryUnavailable(str(e)) from None
        self._counter = GoroutineCounter(self.map.readers, self.map.layout, binary.pclntab,
                                         _wrapped_function_of(binary, gofunc))
        self._lock = threading.Lock()  # one reading at a time: the counter's caches are not shared
        self._plan: _ReadingPlan | None = None  # made at the first reading, again when allp changes

    def _address(self, name: str) -> int:
        return self.map.addresses[name] + self._bias

    @cached_property
    def _globals(self) -> tuple[array, array, list[str]]:
        """What each reading asks first: (addresses, sizes, names) of the runtime's variables."""
        r, ptr = self.map.readers, self.map.binary.ptr_size
        wanted = [("runtime.allp", 0, 2 * ptr), ("runtime.gomaxprocs", 0, 4),
                  ("runtime.memstats", r.memstats.base, r.memstats.size),
                  ("runtime.gcController", r.gc_controller.base, r.gc_controller.size),
                  ("runtime.sched", r.sched.base, r.sched.size)]
        if r.mheap is not None and "runtime.mheap_" in self.map.addresses:
            wanted.append(("runtime.mheap_", r.mheap.base, r.mheap.size))
        wanted += [(name, 0, 4) for name in ("runtime.ncpu", "runtime.numCPUStartup") if name in self.map.addresses]
        return (array("Q", (self._address(name) + base for name, base, _ in wanted)),
                array("Q", (size for _, _, size in wanted)), [name for name, _, _ in wanted])

    def _split_globals(self, blob: bytes) -> dict[str, bytes]:
        """The bytes of each runtime variable in a blob that starts with what _globals asks."""
        parts, at = {}, 0
        for name, size in zip(self._globals[2], self._globals[1]):
            parts[name], at = blob[at:at + size], at + size
        return parts

    def probe(self) -> None:
        """Read one word (GOMAXPROCS): MemoryUnreadable when this process may not read it."""
        self._memory.read(self._address("runtime.gomaxprocs"), 4)

    def read(self) -> MemoryReading:
        """One reading of memstats and counts, in one system call (two more at the first
        reading, and after GOMAXPROCS changed); MemoryUnreadable when the memory
        cannot be read, ReadingRejected when what was read makes no sense (torn by
        the running program)."""
        with self._lock:
            return self._read()

    def read_now(self) -> MemoryReading | None:
        """`read`, or None at once while a census holds the reader (the caller then
        reads in a worker thread rather than wait for it)."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._read()
        finally:
            self._lock.release()

    def census(self) -> GoroutineCensus:
        """Every live goroutine, counted by creation site and start function, in three
        system calls (allgs, its array, every `g`); errors as `read`'s."""
        with self._lock:
            return self._census()

    def _plan_reading(self) -> _ReadingPlan:
        """Where allp's Ps are now, in two system calls (the runtime's variables, allp's array)."""
        ptr = self.map.binary.ptr_size
        allp = self._split_globals(self._memory.read_spans(*self._globals[:2]))["runtime.allp"]
        allp_ptr, allp_len = words(allp, 2, ptr)
        if not 0 < allp_len <= MAX_GOMAXPROCS or not allp_ptr:
            raise ReadingRejected(f"len(allp) {allp_len} makes no sense")
        allp_array = self._memory.read(allp_ptr, allp_len * ptr)
        ps = non_nil_pointers(allp_array, allp_len, ptr)
        if len(ps) != allp_len:  # procresize fills allp[:gomaxprocs] before it sets its length
            raise ReadingRejected(f"allp has nil entries among its {allp_len}")
        r = self.map.readers
        addresses, sizes, _ = self._globals
        array_at = sum(sizes)
        ps_at = array_at + len(allp_array)
        return _ReadingPlan(
            allp, allp_array,
            addresses + array("Q", (allp_ptr, *(p + r.p.base for p in ps), self._address("runtime.allglen"),
                                    self._address("runtime.sched") + r.sched.base)),
            sizes + array("Q", (len(allp_array), *repeat(r.p.size, len(ps)), ptr, r.sched.size)),
            array_at, ps_at, ps_at + len(ps) * r.p.size)

    def _read(self) -> MemoryReading:
        """Reads the runtime's variables, allp's array, each P, then allglen and sched
        again, in one system call (for up to procmem.IOV_MAX regions: about 1000 Ps).

        The goroutine count is allglen less the dead goroutines on the free lists of
        the scheduler and of each P, less the system ones (goroutine_count). Read
        after the Ps, allglen holds every goroutine their lists can hold. When dead
        goroutines moved between the scheduler's list and a P's while they were read
        (in batches of 32), the sum is off by as many, and the reading is made again.
        The runtime's own count (runtime.NumGoroutine) is as far off when it falls
        where a GC of go1.25 on has taken the scheduler's list of dead goroutines
        with stacks to free them and not yet put them back: no reading can tell."""
        r, ptr = self.map.readers, self.map.binary.ptr_size
        for _ in range(READING_ATTEMPTS):
            if self._plan is None:
                self._plan = self._plan_reading()
            plan = self._plan
            blob = self._memory.read_spans(plan.addresses, plan.sizes)
            parts = self._split_globals(blob)
            if parts["runtime.allp"] != plan.allp or blob[plan.array_at:plan.ps_at] != plan.allp_array:
                self._plan = None  # GOMAXPROCS changed: allp holds other Ps
                continue
            sched_after = blob[plan.ps_end + ptr:]
            if sched_uncounted(r, parts["runtime.sched"]) == sched_uncounted(r, sched_after):
                break
        else:
            raise ReadingRejected(f"the runtime's free lists or Ps changed while each of {READING_ATTEMPTS} "
                                  "readings was made")
        (allglen,) = words(blob, 1, ptr, plan.ps_end)
        if not 0 < allglen <= MAX_GOROUTINES:
            raise ReadingRejected(f"allglen {allglen} makes no sense")
        memstats = memstats_from(r, parts["runtime.memstats"], parts["runtime.gcController"],
                                 parts.get("runtime.mheap_"))
        goroutines = goroutine_count(r, allglen, sched_after,
                                     (blob[i:i + r.p.size] for i in range(plan.ps_at, plan.ps_end, r.p.size)))
        ncpu_bytes = parts.get("runtime.ncpu") or parts.get("runtime.numCPUStartup")
        ncpu = int.from_bytes(ncpu_bytes, "little", signed=True) if ncpu_bytes else None
        gomaxprocs = int.from_bytes(parts["runtime.gomaxprocs"], "little", signed=True)
        stats = stats_from(r, goroutines, gomaxprocs, ncpu, sched_after)
        return MemoryReading(memstats, stats)

    def _census(self) -> GoroutineCensus:
        ptr = self.map.binary.ptr_size
        header = self._memory.read_spans(array("Q", (self._address("runtime.allgs"), self._address("runtime.allglen"))),
                                         array("Q", (2 * ptr, ptr)))
        allgs_ptr, allgs_len, allglen = words(header, 3, ptr)
        if not 0 < allglen <= MAX_GOROUTINES or allglen > allgs_len or not allgs_ptr:
            raise ReadingRejected(f"allglen {allglen} with len(allgs) {allgs_len} makes no sense")
        g_reader = self.map.readers.g
        pointers = non_nil_pointers(self._memory.read(allgs_ptr, allglen * ptr), allglen, ptr)
        _, data, offsets = self._memory.read_gathered(pointers, g_reader.base + g_reader.size)
        return self._counter.census(data, offsets, self._bias)


def memory_access(pid: int, go_version: str) -> str | None:
    """None when `pid`'s runtime can be read from its memory, else why not, in one line."""
    if not go_version:
        return "no Go version in its build info"
    try:
        MemoryReader(pid, go_version).probe()
    except (MemoryUnavailable, MemoryUnreadable) as e:
        return str(e)
    return None

"""The runtime's GC trace (`GODEBUG=gctrace=1`): one line on stderr per GC cycle.

    gc 12 @3.201s 2%: 0.011+1.2+0.003 ms clock, 0.022+0.30/1.1/0.2+0.006 ms cpu,
       4->4->2 MB, 5 MB goal, 0 MB stacks, 0 MB globals, 4 P (forced)

(one line as printed). `gc N` is the cycle's number; `@` the seconds since the
program started; `P%` the GC's share of CPU since then, truncated to a whole
percent. The clock times are the wall time of the three phases: stop-the-world
sweep termination, concurrent mark, stop-the-world mark termination (the pause
is the first and the last). The CPU times are sweep termination, mark assist,
background mark, idle mark and mark termination. The heap figures are the heap
at the GC's start, at its end and the heap it marked live, then the heap goal
the cycle ran under; with the stack and global scan sizes (Go >= 1.18), each
in MiB, truncated (runtime/mgc.go: `>>20`). GOMAXPROCS follows (`4 P`), and
`(forced)` when runtime.GC() or debug.FreeOSMemory() ran the cycle.

Versions: Go 1.19 to 1.27 print the same line; Go 1.26 (with the goroutine
leak experiment) and 1.27 put ` (checking for goroutine leaks)` after the
percentage on the cycles that look for leaked goroutines; Go <= 1.17 had no
stacks and globals. The runtime also prints `GC forced` before a cycle that
sysmon starts because none ran for two minutes, and with gctrace=2 `scan:`
lines after each cycle (Go >= 1.26): trace lines too, not the program's.

Pure: text in, dataclasses out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIB = 1 << 20

_MS = r"(\d+(?:\.\d+)?)"  # runtime fmtNSAsMS: "0", "0.011", "1.2", "12"
_GC_LINE = re.compile(
    r"gc (\d+) @(\d+\.\d+)s (\d+)%( \(checking for goroutine leaks\))?: "
    rf"{_MS}\+{_MS}\+{_MS} ms clock, "
    rf"{_MS}\+{_MS}/{_MS}/{_MS}\+{_MS} ms cpu, "
    r"(\d+)->(\d+)->(\d+) MB, (\d+) MB goal, (?:(\d+) MB stacks, (\d+) MB globals, )?"
    r"(\d+) P( \(forced\))?"
)
# Other lines the GC trace prints: sysmon's periodic cycle, and gctrace=2's scan statistics.
_OTHER_TRACE = re.compile(
    r"GC forced"
    r"|scan: (?:total|class (?:L|\d+B)) \d+(?:\+\d+\+\d+=\d+)? objs(?:, \d+\+\d+=\d+ spans)?"
)
TRACE_PREFIXES = ("gc ", "GC forced", "scan: ")  # every trace line starts so: a cheap test before the expressions


@dataclass(frozen=True, slots=True)
class GcCycle:
    """One line of the GC trace. Heap figures are bytes, but known to the MiB
    below (the runtime prints whole MiB, truncated); times are nanoseconds."""

    num: int  # the cycle's number, 1 for the first
    since_start: float  # seconds from the program's start to the cycle's start
    cpu_percent: int  # the GC's share of the CPU since the program started, truncated
    sweep_term_ns: int  # wall time of the stop-the-world sweep termination
    mark_ns: int  # wall time of the concurrent mark
    mark_term_ns: int  # wall time of the stop-the-world mark termination
    sweep_term_cpu_ns: int
    assist_cpu_ns: int  # mark assists (allocating goroutines made to help)
    background_cpu_ns: int  # the dedicated and fractional mark workers
    idle_cpu_ns: int  # mark work on otherwise idle Ps
    mark_term_cpu_ns: int
    heap_start: int  # the heap when the cycle started
    heap_end: int  # the heap when it ended
    heap_live: int  # the heap it marked live: the heap after GC
    heap_goal: int  # the goal this cycle ran under (set at the previous cycle's end)
    stacks: int | None  # scannable stacks (Go >= 1.18)
    globals: int | None  # scannable globals (Go >= 1.18)
    gomaxprocs: int
    forced: bool  # runtime.GC() or debug.FreeOSMemory()
    leak_check: bool  # a cycle that looked for leaked goroutines (Go >= 1.26)

    @property
    def pause_ns(self) -> int:
        """The world stopped: sweep termination and mark termination."""
        return self.sweep_term_ns + self.mark_term_ns

    @property
    def cpu_ns(self) -> int:
        """CPU time the cycle cost, all phases and workers."""
        return (self.sweep_term_cpu_ns + self.assist_cpu_ns + self.background_cpu_ns + self.idle_cpu_ns
                + self.mark_term_cpu_ns)

    def to_json(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__} | {
            "pause_ns": self.pause_ns, "cpu_ns": self.cpu_ns}


def parse_gc_line(line: str) -> GcCycle | None:
    """The cycle of a `gc N @...` line (a trailing newline or CR allowed); None for any other text."""
    if not line.startswith("gc "):
        return None
    m = _GC_LINE.fullmatch(line.rstrip("\r\n"))
    if m is None:
        return None
    (num, since, percent, leak_check, *times, start, end, live, goal, stacks, globals_, procs, forced) = m.groups()
    sweep, mark, mark_term, sweep_cpu, assist, background, idle, mark_term_cpu = map(_ms_to_ns, times)
    return GcCycle(
        int(num), float(since), int(percent), sweep, mark, mark_term, sweep_cpu, assist, background, idle,
        mark_term_cpu, int(start) * MIB, int(end) * MIB, int(live) * MIB, int(goal) * MIB,
        int(stacks) * MIB if stacks is not None else None, int(globals_) * MIB if globals_ is not None else None,
        int(procs), forced is not None, leak_check is not None,
    )


def is_trace_line(line: str) -> bool:
    """Whether the runtime's GC trace printed this line (a cycle, `GC forced`, or gctrace=2's `scan:`)."""
    if not line.startswith(TRACE_PREFIXES):
        return False
    text = line.rstrip("\r\n")
    return parse_gc_line(text) is not None or _OTHER_TRACE.fullmatch(text) is not None


def _ms_to_ns(text: str) -> int:
    """The runtime's milliseconds (at most 3 decimals: whole nanoseconds would need 6) as nanoseconds."""
    whole, _, fraction = text.partition(".")
    return int(whole) * 1_000_000 + int((fraction + "000000")[:6])

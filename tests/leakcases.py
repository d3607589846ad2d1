"""The leaking and healthy workloads of the Go test targets, and the findings
`gotop check` must report for each (with their rates, for the leaks of known
rate). Shared by tests/test_leaks.py, tests/test_leak_rates.py and
bench/leak_accuracy.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from gotargets import RunningTarget, _die_with_parent
from targetio import http_get

# Workload -> the findings it must get: (kind, text the finding's `where` contains).
GOROUTINE_LEAKS = {"leak-send": "leakySendResult", "leak-recv": "leakyAwaitReply",
                   "leak-ticker": "leakyTickerLoop", "leak-select": "leakySelectForever"}
EXPECTED: dict[str, frozenset[tuple[str, str]]] = {
    **{w: frozenset({("goroutines", f)}) for w, f in GOROUTINE_LEAKS.items()},
    "leak-all": frozenset(("goroutines", f) for f in GOROUTINE_LEAKS.values()),
    "retain-slice": frozenset({("heap", "retainAppend")}),
    "retain-map": frozenset({("heap", "cachePutNoEvict")}),
    "leak-heap": frozenset({("heap", "leakHeapBlock")}),
    "leak-fds": frozenset({("fds", "open files")}),
    "leak-sockets": frozenset({("sockets", "TCP sockets")}),
}
# leak-heap's default -n (100 bytes a second) is no leak to find: it runs with a rate (RATES).
LEAKS_AT_DEFAULT = tuple(w for w in EXPECTED if w != "leak-heap")
HEALTHY = ("healthy-churn", "healthy-pool", "healthy-ramp", "healthy-spawn", "healthy-cache", "healthy-files",
           "healthy-conns")
# Heap profiles sample about one allocation per 512 KiB: retain-map at its
# default pace (100 KiB/s) gets about 5 samples in 30 s, now and then too few
# to name its site; so does leak-heap below SPARSE_HEAP_RATE. Their live heap
# still shows the leak ("live heap").
SPARSELY_SAMPLED = frozenset({"retain-map"})
SPARSE_HEAP_RATE = 256 << 10  # bytes a second
UNNAMED_HEAP = "live heap"
# A heap that only grows by what it retains doubles rarely at GOGC=100: a 30 s
# check saw 7 GC cycles of retain-slice, and under load fewer than the 6 the
# heap detector needs. Retaining services commonly run a lower GOGC; at 25 the
# GC runs four times as often, whoever watches. (leak-heap runs at the default:
# a fast leak doubles the heap goal at each of its few cycles.)
RETAINING = frozenset({"retain-slice", "retain-map"})
RETAINING_ENV = {"GOGC": "25"}

# Leaks of known rate: their rate per minute, in the unit of their finding, from -n.
RATES: dict[str, Callable[[int], float]] = {
    "leak-heap": lambda n: 60.0 * n,  # bytes: -n bytes a second
    "leak-recv": lambda n: 60_000 / n,  # goroutines: one every -n ms
    "leak-fds": lambda n: 60_000 / n,  # open files: one every -n ms
    "leak-sockets": lambda n: 120_000 / n,  # TCP sockets: both ends of a connection every -n ms
}
RATE_TOLERANCE = 0.25  # how far from the true rate a finding's may be


@dataclass(frozen=True, slots=True)
class Case:
    """A workload run by one target binary built with one toolchain."""

    workload: str
    binary: str = "agentpprof"
    toolchain: str = "go"
    n: int | None = None  # -n, when not the workload's default

    @property
    def expected(self) -> frozenset[tuple[str, str]]:
        """The findings a check must report; empty for a healthy workload."""
        return EXPECTED.get(self.workload, frozenset())

    @property
    def site_may_be_unnamed(self) -> bool:
        if self.workload == "leak-heap":
            return (self.n or 0) < SPARSE_HEAP_RATE
        return self.workload in SPARSELY_SAMPLED and self.n is None

    @property
    def rate_per_min(self) -> float | None:
        """The true rate of a leak of known rate; None for the others."""
        rate = RATES.get(self.workload)
        return rate(100 if self.n is None else self.n) if rate else None

    def args(self) -> list[str]:
        return ["-workload", self.workload, *(["-n", str(self.n)] if self.n is not None else [])]

    def env(self) -> dict[str, str]:
        return RETAINING_ENV if self.workload in RETAINING else {}

    def __str__(self) -> str:
        parts = (self.workload, self.binary, self.toolchain, f"n{self.n}" if self.n is not None else "go")
        return "-".join(p for p in parts if p not in ("agentpprof", "go"))


def matches(expected: tuple[str, str], finding: dict) -> bool:
    """Whether a finding of `gotop check --json` is the expected one, in the expected place."""
    kind, where = expected
    return finding["kind"] == kind and where in finding["where"]


def of_kind(expected: tuple[str, str], finding: dict) -> bool:
    """Whether a finding is of the expected kind, wherever it places it."""
    return finding["kind"] == expected[0]


def findings_of(report: dict, pid: int) -> list[dict]:
    """The findings of one target in a `gotop check --json` report."""
    typed = next(t["target"] for t in report["targets"] if t["pid"] == pid)
    return [f for f in report["findings"] if f["target"] == typed]


def run_check(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`gotop check ARGS` in a process of its own (a safety timeout, not a timing assertion)."""
    return subprocess.run([sys.executable, "-m", "gotop", "check", *args],
                          capture_output=True, text=True, timeout=timeout)


def found_in_place(case: Case, findings: list[dict]) -> list[dict]:
    """The findings of a case's expected kinds in their expected places (or as the live heap,
    where the heap profiles may have too few samples to name the site)."""
    return [f for f in findings for expected in case.expected
            if matches(expected, f) or (case.site_may_be_unnamed and of_kind(expected, f)
                                        and f["where"] == UNNAMED_HEAP)]


def await_first_leak(target: RunningTarget, case: Case) -> bool:
    """Whether a goroutine leak's target has leaked its first goroutine (its net/http/pprof says
    so): a leak of one every 10 s shows its first step 10 s after the start."""
    assert target.http_addr is not None
    dump = http_get(target.http_addr, "/debug/pprof/goroutine?debug=1").decode()
    return all(where in dump for _, where in case.expected)


@contextmanager
def cpu_burner() -> Iterator[subprocess.Popen]:
    """Another program keeping one CPU busy (sha256sum of /dev/zero) while the block runs."""
    proc = subprocess.Popen(["sha256sum", "/dev/zero"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()

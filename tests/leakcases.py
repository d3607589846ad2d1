"""The leaking and healthy workloads of the Go test targets, and the findings
`gotop check` must report for each. Shared by tests/test_leaks.py and
bench/leak_accuracy.py.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

# Workload -> the findings it must get: (kind, text the finding's `where` contains).
GOROUTINE_LEAKS = {"leak-send": "leakySendResult", "leak-recv": "leakyAwaitReply",
                   "leak-ticker": "leakyTickerLoop", "leak-select": "leakySelectForever"}
EXPECTED: dict[str, frozenset[tuple[str, str]]] = {
    **{w: frozenset({("goroutines", f)}) for w, f in GOROUTINE_LEAKS.items()},
    "leak-all": frozenset(("goroutines", f) for f in GOROUTINE_LEAKS.values()),
    "retain-slice": frozenset({("heap", "retainAppend")}),
    "retain-map": frozenset({("heap", "cachePutNoEvict")}),
    "leak-fds": frozenset({("fds", "open files")}),
    "leak-sockets": frozenset({("sockets", "TCP sockets")}),
}
HEALTHY = ("healthy-churn", "healthy-pool", "healthy-spawn", "healthy-cache", "healthy-files", "healthy-conns")
# Heap profiles sample about one allocation per 512 KiB: retain-map at its
# default pace (100 KiB/s) gets about 5 samples in 30 s, now and then too few
# to name its site. Its live heap still shows the leak ("live heap").
SPARSELY_SAMPLED = frozenset({"retain-map"})
UNNAMED_HEAP = "live heap"
# A heap that only grows by what it retains doubles rarely at GOGC=100: a 30 s
# check saw 7 GC cycles of retain-slice, and under load fewer than the 6 the
# heap detector needs. Retaining services commonly run a lower GOGC; at 25 the
# GC runs four times as often, whoever watches.
RETAINING_ENV = {"GOGC": "25"}


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
        return self.workload in SPARSELY_SAMPLED and self.n is None

    def args(self) -> list[str]:
        return ["-workload", self.workload, *(["-n", str(self.n)] if self.n is not None else [])]

    def env(self) -> dict[str, str]:
        return RETAINING_ENV if any(kind == "heap" for kind, _ in self.expected) else {}

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

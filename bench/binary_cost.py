#!/usr/bin/env python3
"""What reading a Go binary costs: opening it, finding the runtime's variables from its
machine code (a stripped binary), and the pclntab look-ups the memory source makes.

Derives the signatures from a build that has a symbol table (--signatures-from, by
default the plain target built with Debian's Go 1.19), then on --binary (by default
Debian's own stripped go command, Go 1.19.8) times, median of --reps runs:
  - GoBinary.open (headers, symbols, pclntab);
  - global_address of every wanted variable (all of them, one after the other);
  - func_at and line_of of pcs spread over the text.
Prints those, what the opened binary keeps in memory (tracemalloc) beside its file size,
and, as a check of the addresses found, the wait reason runtime.waitReasonStrings[1] reads.

Usage: .venv/bin/python bench/binary_cost.py [--binary PATH] [--signatures-from PATH] [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import struct
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from gotargets import target_binary  # noqa: E402

from gotop.errors import GotopError  # noqa: E402
from gotop.sources.gobinary import GoBinary  # noqa: E402

WANTED = ("runtime.allgs", "runtime.allglen", "runtime.memstats", "runtime.gcController", "runtime.mheap_",
          "runtime.gomaxprocs", "runtime.ncpu", "runtime.sched", "runtime.allp", "runtime.work",
          "runtime.buildVersion", "runtime.waitReasonStrings")
LOOKUPS = 2000


def median_seconds(action, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="/usr/lib/go-1.19/bin/go")
    parser.add_argument("--signatures-from", help="a build with a symbol table (default: plain, built with Go 1.19)")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    source = GoBinary.open(args.signatures_from or str(target_binary("plain", "go1.19")))
    start = time.perf_counter()
    signatures = source.derive_signatures(WANTED)
    derive = time.perf_counter() - start

    tracemalloc.start()
    binary = GoBinary.open(args.binary)
    kept = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    open_time = median_seconds(lambda: GoBinary.open(args.binary), args.reps)
    found: dict[str, tuple[int, str] | None] = {}

    def resolve_all() -> None:
        for name, signs in signatures.items():
            found[name] = binary.global_address(name, signs)

    resolve_time = median_seconds(resolve_all, args.reps)
    funcs = list(binary.pclntab.funcs())
    rng = random.Random(1)
    pcs = [rng.randrange(func.entry, func.end) for func in rng.choices(funcs, k=LOOKUPS)]
    func_at = median_seconds(lambda: [binary.pclntab.func_at(pc) for pc in pcs], args.reps) / LOOKUPS
    line_of = median_seconds(lambda: [binary.pclntab.line_of(pc) for pc in pcs], args.reps) / LOOKUPS

    print(f"{args.binary}: {os.path.getsize(args.binary) / 2**20:.0f} MiB, {len(funcs)} functions, "
          f"{'symbols' if binary.symbols else 'stripped'}")
    print(f"signatures of {len(signatures)} variables derived from {source.path} in {derive:.2f} s")
    print(f"open: {open_time * 1000:.0f} ms; keeps {kept / 2**20:.1f} MiB (the pclntab)")
    hows = {v[1] for v in found.values() if v}
    print(f"global_address of all {len(signatures)}: {resolve_time * 1000:.0f} ms; "
          f"found {sum(v is not None for v in found.values())} (by {' and '.join(sorted(hows))}): "
          + ", ".join(f"{name.removeprefix('runtime.')} {v[0]:#x}" for name, v in found.items() if v))
    print(f"func_at: {func_at * 1e6:.1f} us, line_of: {line_of * 1e6:.1f} us (median of {LOOKUPS} pcs)")
    if found.get("runtime.waitReasonStrings"):
        try:
            pointer, length = struct.unpack("<QQ", binary.read(found["runtime.waitReasonStrings"][0] + 16, 16))
            print(f"runtime.waitReasonStrings[1] reads {binary.read(pointer, length)!r}")
        except GotopError as error:
            print(f"runtime.waitReasonStrings: {error}")


if __name__ == "__main__":
    main()

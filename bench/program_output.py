#!/usr/bin/env python3
"""What reading a started program's stderr costs gotop (`gotop run`, `gotop check -- CMD`),
beside `tee`, which a user would otherwise put behind the program to keep its output.

A writer process prints --lines lines of log-like output on stderr, one in a hundred a
real GC trace line, as fast as it can. The same stream goes once through gotop's
ProgramOutput (sources/gctrace.py: lines split, trace lines parsed into readings, the
rest into a log file and the tail) and once through `tee FILE`. Prints each reader's CPU
seconds (median of --reps runs) and per line.

Usage: .venv/bin/python bench/program_output.py [--lines 1000000] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gotop.sources.gctrace import ProgramOutput

GC_LINE = ("gc 12 @3.201s 2%: 0.011+1.2+0.003 ms clock, 0.022+0.30/1.1/0.2+0.006 ms cpu, "
           "4->4->2 MB, 5 MB goal, 0 MB stacks, 0 MB globals, 4 P")
LOG_LINE = "2026/01/01 12:00:00 handled GET /api/items?page=3 in 1.2ms status=200"


def writer(lines: int) -> list[str]:
    """A process writing `lines` lines on its stderr, 99 of the program's own to one trace line."""
    code = (f"import os\nchunk = ({LOG_LINE!r} + '\\n') * 99 + {GC_LINE!r} + '\\n'\nchunk = chunk.encode()\n"
            f"for _ in range({lines} // 100):\n    os.write(2, chunk)\n")
    return [sys.executable, "-c", code]


def through_gotop(lines: int, directory: Path) -> float:
    """CPU seconds of gotop's reader over the whole stream."""
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    program = subprocess.Popen(writer(lines), stdout=out_write, stderr=err_write)
    os.close(out_write)
    os.close(err_write)
    output = ProgramOutput(out_read, err_read, directory / "gotop.log")
    started = time.process_time()
    output.start()
    output.wait_closed(600)
    cpu = time.process_time() - started
    program.wait()
    readings = len(output.take_readings())
    assert readings == lines // 100 and output.lines == lines - readings, (readings, output.lines)
    return cpu


def through_tee(lines: int, directory: Path) -> float:
    """CPU seconds of `tee FILE` over the same stream (its own rusage, from wait4)."""
    program = subprocess.Popen(writer(lines), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert program.stderr is not None
    tee = subprocess.Popen(["tee", str(directory / "tee.log")], stdin=program.stderr, stdout=subprocess.DEVNULL)
    program.stderr.close()
    program.wait()
    _, _, usage = os.wait4(tee.pid, 0)
    tee.returncode = 0  # reaped above
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    gotop, tee = [], []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for _ in range(args.reps):
            gotop.append(through_gotop(args.lines, directory))
            tee.append(through_tee(args.lines, directory))
    g, t = statistics.median(gotop), statistics.median(tee)
    print(f"{args.lines:,} lines ({args.lines // 100:,} GC trace lines), median of {args.reps}:")
    print(f"  gotop (split, trace parsed, log + tail): {g:.2f} s CPU, {g / args.lines * 1e6:.2f} us a line")
    print(f"  tee FILE:                                {t:.2f} s CPU, {t / args.lines * 1e6:.2f} us a line")
    print(f"  ratio gotop / tee: {g / t:.1f}x" if t > 0 else "  tee: too fast to measure")


if __name__ == "__main__":
    main()

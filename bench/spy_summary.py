#!/usr/bin/env python3
"""Where a py-spy profile's time went: the raw output of `py-spy record -f raw`
(as bench/tui_cost.py --py-spy writes it) summed by function.

For each function, the share of the busy samples whose stack holds it
(inclusive: a function counted once per stack) and the share where it is the
innermost frame (self); by thread too. py-spy leaves idle samples out unless
asked (--idle), so the shares are of gotop's busy time. --match keeps the
functions whose "name (file)" contains one of the words given.

Usage: .venv/bin/python bench/spy_summary.py FILE... [--top 40] [--match WORD,...]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
FRAME_LINE = re.compile(r":\d+\)$")  # "f (file.py:12)": the line number apart, a function is one entry


def summarize(path: Path, top: int, match: list[str]) -> None:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        found = LINE.match(line)
        if not found:
            continue
        count = int(found["count"])
        thread, *frames = found["stack"].split(";")
        functions = [FRAME_LINE.sub(")", f) for f in frames]
        total += count
        threads[re.sub(r"^thread \(\d+\): ", "", thread)] += count
        for function in set(functions):
            inclusive[function] += count
        if functions:
            own[functions[-1]] += count
    print(f"== {path}: {total} busy samples ==")
    print("by thread: " + ", ".join(f"{name} {100 * n / total:.0f} %" for name, n in threads.most_common()))
    shown = [(f, n) for f, n in inclusive.most_common() if not match or any(w in f for w in match)]
    print(f"{'incl':>6} {'self':>6}  function")
    for function, n in shown[:top]:
        print(f"{100 * n / total:5.1f}% {100 * own[function] / total:5.1f}%  {function}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match", default="", help="comma-separated words; keep functions containing one")
    args = parser.parse_args()
    for path in args.files:
        summarize(path, args.top, [w for w in args.match.split(",") if w])


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""/metrics parsing cost: gotop's parse_metrics on real services' expositions.

Starts Debian's etcd, prometheus, containerd and caddy as tests/services.py does
(loopback, private directories; skipped where not installed), scrapes each /metrics
once, then times, median of --reps runs each:
  - parse_metrics (prometheus_client's text parser plus gotop's mapping);
  - prometheus_client's text parser alone (every family listed);
  - a floor: the text split into lines and each line into fields (no parsing at all);
and, under the line cap, the parser's worst line found (64 KiB of escaped quotes).
Prints ms per exposition and seconds per MiB, and each service's start time.

Usage: .venv/bin/python bench/metrics_parse.py [--reps 9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from services import SERVICES, running_service, unavailable  # noqa: E402

from gotop.model.prometheus import MAX_LINE_CHARS, parse_metrics  # noqa: E402

MIB = 1024 * 1024


def median_seconds(reps: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(label: str, text: str, reps: int) -> None:
    size = len(text.encode())
    gotop = median_seconds(reps, lambda: parse_metrics(text))
    library = median_seconds(reps, lambda: list(text_string_to_metric_families(text)))
    floor = median_seconds(reps, lambda: [line.split() for line in text.split("\n")])
    print(f"{label:<28} {size / 1024:7.0f} KiB  parse_metrics {gotop * 1e3:7.1f} ms ({gotop / (size / MIB):5.2f} s/MiB)"
          f"  library {library * 1e3:7.1f} ms  split floor {floor * 1e3:5.1f} ms (x{gotop / floor:.0f})")


def worst_line_text() -> str:
    line = 'a{b="' + '\\"' * (MAX_LINE_CHARS // 2 - 10) + '"} 1\n'
    return line * (MIB // len(line))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="gotop-bench-") as tmp:
        for name in SERVICES:
            if (why := unavailable(name)) is not None:
                print(f"{name}: skipped: {why}")
                continue
            work = Path(tmp) / name
            work.mkdir()
            service = stack.enter_context(running_service(name, work))
            text = httpx.get(service.metrics_url, timeout=10).text
            print(f"{name}: started in {service.start_seconds:.2f} s (exec to ready)")
            report(f"{name} /metrics", text, args.reps)
        report("worst lines under the cap", worst_line_text(), max(3, args.reps // 3))


if __name__ == "__main__":
    main()

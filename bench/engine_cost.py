#!/usr/bin/env python3
"""gotop's engine alone: the Fleet (discovery + one poller per Go process), no TUI.

Watches every Go process on the host, as `gotop` does, waits until at least
--expect of them have answered a poll, then measures this process's CPU
(all threads) for --seconds. Says "measuring" on stderr when that window
opens; prints one JSON object: cpu_percent (of one core), peak_rss and
final_rss (bytes), watched, startup_cpu (seconds of CPU until then),
first_seconds (from the start until then).
bench/tui_cost.py runs it beside the TUI to split gotop's cost into engine
and screen.

Usage: .venv/bin/python bench/engine_cost.py [--seconds 60] [--expect 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import psutil

from gotop.engine.fleet import Fleet
from gotop.engine.history import TargetState

READY_TIMEOUT = 30.0


async def measure(seconds: float, expect: int) -> dict:
    started = time.perf_counter()
    fleet = Fleet(lambda _watched: None)
    discovery = asyncio.create_task(fleet.run())
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while sum(w.history.state is TargetState.UP for w in fleet.watched.values()) < expect:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {expect} targets answered in {READY_TIMEOUT:.0f} s")
            await asyncio.sleep(0.05)
        me = psutil.Process()
        startup_cpu = time.process_time()
        cpu0, t0 = startup_cpu, time.perf_counter()
        print("measuring", file=sys.stderr, flush=True)
        await asyncio.sleep(seconds)
        cpu1, t1 = time.process_time(), time.perf_counter()
        with open("/proc/self/status") as f:
            peak = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
        return {
            "cpu_percent": 100 * (cpu1 - cpu0) / (t1 - t0), "startup_cpu": startup_cpu,
            "peak_rss": peak, "final_rss": me.memory_info().rss, "watched": len(fleet.watched),
            "first_seconds": t0 - started,
        }
    finally:
        discovery.cancel()
        await fleet.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--expect", type=int, default=1, help="wait until this many targets answered")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.seconds, args.expect))))


if __name__ == "__main__":
    main()

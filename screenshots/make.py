#!/usr/bin/env python3
"""Take the README's screenshots from real Go processes.

Starts real targets (a goroutine leak on Go 1.27 with the gops agent, a cache
that retains heap behind pprof, a busy worker pool, a plain process, and a
stripped Go 1.19 process with nothing added that leaks goroutines), runs the
TUI headless on this host for a while, visits every screen and saves SVGs here.
    .venv/bin/python screenshots/make.py [--watch 40]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from gotargets import start_target, target_binary  # noqa: E402

from gotop.ui.app import GotopApp  # noqa: E402

SIZE = (110, 32)


async def shoot(watch: float, pids: dict[str, int]) -> None:
    app = GotopApp()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(watch)
        app.save_screenshot("overview.svg", str(HERE))
        for name, keys, file in (
            ("leaky", [], "process.svg"),
            ("leaky", ["g"], "goroutines.svg"),
            ("cache", ["h"], "heap.svg"),
            ("cache", ["h", "enter"], "heap-drill.svg"),
            ("stripped", [], "memory.svg"),
            ("stripped", ["g"], "memory-goroutines.svg"),
        ):
            overview = app.screen
            key = next(str(k) for k, w in app.fleet.watched.items() if w.pid == pids[name])
            overview.table.select(key)
            await pilot.press("enter")
            for k in keys:
                await pilot.pause(3)
                await pilot.press(k)
            await pilot.pause(4)
            app.save_screenshot(file, str(HERE))
            while len(app.screen_stack) > 2:
                app.pop_screen()
            await pilot.press("escape")
            await pilot.pause(0.5)
        await pilot.press("question_mark")
        await pilot.pause(0.5)
        app.save_screenshot("help.svg", str(HERE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watch", type=float, default=40.0, help="seconds of history before the first picture")
    args = parser.parse_args()
    targets = {
        "leaky": start_target("agentpprof", toolchain="go1.27", args=["-workload", "leak-all", "-n", "300"]),
        "cache": start_target("pprofonly", args=["-workload", "retain-map", "-n", "50"]),
        "pool": start_target("agentpprof", args=["-workload", "healthy-pool", "-n", "16"]),
        "plain": start_target("plain", toolchain="go1.19"),
        "stripped": start_target("plain", toolchain="go1.19", args=["-workload", "leak-send"],
                                 binary=target_binary("plain", "go1.19", flags=("-ldflags=-s -w",))),
    }
    try:
        asyncio.run(shoot(args.watch, {name: t.pid for name, t in targets.items()}))
    finally:
        for t in targets.values():
            t.kill()
    print("saved:", ", ".join(sorted(p.name for p in HERE.glob("*.svg"))))


if __name__ == "__main__":
    main()

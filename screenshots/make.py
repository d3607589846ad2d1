#!/usr/bin/env python3
"""Take the README's screenshots from real Go processes.

Starts real targets (a goroutine leak on Go 1.27 with the gops agent, a cache
that retains heap behind pprof, a busy worker pool, a plain process, and a
stripped Go 1.19 process with nothing added that leaks goroutines), runs the
TUI headless on this host for a while, visits every screen and saves SVGs here.
Then `gotop run` twice: a stripped program without section headers that leaks
heap (nothing to read but its GC trace and /proc), and one that writes to stderr
(its output screen).
    .venv/bin/python screenshots/make.py [--watch 40] [--run-only]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from elfbytes import without_section_headers  # noqa: E402
from gotargets import start_target, target_binary  # noqa: E402

from gotop.engine.program import Program  # noqa: E402
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


async def shoot_run(watch: float, tmp: Path) -> None:
    """`gotop run` of a stripped program leaking heap (run.svg) and the output of a chatty one (run-output.svg)."""
    sstripped = tmp / "server"
    sstripped.write_bytes(without_section_headers(target_binary("plain").read_bytes()))
    sstripped.chmod(0o755)
    for argv, keys, file, env in (
        ([str(sstripped), "-workload", "retain-slice", "-n", "40"], [], "run.svg", {"GOGC": "25"}),
        ([str(target_binary("plain")), "-workload", "chatty", "-n", "300"], ["o"], "run-output.svg", {}),
    ):
        program = Program(argv, tmp / f"{file}.log", environ={**os.environ, **env})
        program.start()
        app = GotopApp(program=program)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(watch)
            for k in keys:
                await pilot.press(k)
                await pilot.pause(1)
            app.save_screenshot(file, str(HERE))
        program.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--watch", type=float, default=40.0, help="seconds of history before the first picture")
    parser.add_argument("--run-only", action="store_true", help="only the pictures of gotop run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(shoot_run(args.watch, Path(tmp)))
    if args.run_only:
        return
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

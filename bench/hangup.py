#!/usr/bin/env python3
"""How fast gotop leaves when its terminal is lost, beside `top` in the same run.

gotop watches a busy fleet (leaking, churning, spinning real Go processes) in a
pseudo-terminal; after a random delay (0-3 s: some during start-up, most while
it polls) its terminal is lost in one of four ways: hang-up with SIGHUP (it is
the terminal's controlling process: a dropped SSH session, a killed tmux), hang-up
without SIGHUP, SIGHUP alone, and `q` with the terminal closing during the
shutdown. The time from the loss to the process being gone is measured, and
processes still there after 20 s are counted as survivors. The peer, procps
`top`, loses its terminal the same ways (`q` is its quit key too).

Usage: .venv/bin/python bench/hangup.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from gotargets import start_target  # noqa: E402
from terminal import Terminal  # noqa: E402
from test_terminal_loss import BUSY_TARGETS, lose_terminal  # noqa: E402
from tui_cost import load_average  # noqa: E402

WAYS = ("hang-up", "hang-up-without-sighup", "sighup", "quit-then-hang-up")
SURVIVOR_AFTER = 20.0


def exit_latency(argv: list[str], way: str, rng: random.Random) -> float | None:
    """Seconds from the loss of the terminal to the exit; None for a survivor."""
    term = Terminal(argv, size=(120, 40), controlling=way != "hang-up-without-sighup")
    try:
        time.sleep(rng.uniform(0.0, 3.0))
        lost_at = time.monotonic()
        lose_terminal(term, way, rng)
        while term.proc.poll() is None and time.monotonic() - lost_at < SURVIVOR_AFTER:
            time.sleep(0.005)
        return time.monotonic() - lost_at if term.proc.poll() is not None else None
    finally:
        term.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="losses per way and program")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    programs = {"gotop": [sys.executable, "-m", "gotop"]}
    if shutil.which("top"):
        programs["top"] = ["top", "-d", "1"]
    print(f"load average {load_average()}; {args.rounds} losses per way")
    targets = [start_target(name, args=args_) for name, args_ in BUSY_TARGETS]
    try:
        print(f"{'way':<24} {'program':<6} {'median':>8} {'max':>8} survivors")
        for way in WAYS:
            for name, argv in programs.items():
                times = [exit_latency(argv, way, rng) for _ in range(args.rounds)]
                done = [t for t in times if t is not None]
                print(f"{way:<24} {name:<6} {statistics.median(done):8.3f} {max(done):8.3f} "
                      f"{len(times) - len(done)}" if done else f"{way:<24} {name:<6} all survived")
    finally:
        for t in targets:
            t.kill()
    print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    main()

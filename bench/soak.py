#!/usr/bin/env python3
"""Soak: gotop over a long run on a host whose Go processes come and go.

N real Go processes (agentpprof, pprofonly and plain; some leaking goroutines
or heap slowly, some healthy and busy, some idle) each live a random time
(--min-life..--max-life seconds) and are replaced by a new one as they exit, for
--minutes. Two gotops watch the whole time, at once: the TUI in a real
pseudo-terminal (the process list, 120x40) and `gotop record` of every Go
process. Every 10 s each one's RSS and open descriptors are read from /proc.

Reported per gotop: alive at the end (no crash), RSS after the warm-up (the
median of the first two minutes' samples after --warmup) beside RSS over the
last two minutes (the median), the growth between them, and its descriptors
the same way (a watched process holds one or two connections, so the count
follows the fleet; it must not creep). Goals: no crash, RSS growth at most 10 %,
descriptors flat. The recording is then opened to check it replays and names
every process that lived.

No peer: no other tool watches a churning fleet continuously.

Usage: .venv/bin/python bench/soak.py [--minutes 10] [--processes 100]
       [--min-life 10] [--max-life 120] [--warmup 60] [--no-isolate]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

import psutil  # noqa: E402
from gotargets import RunningTarget, start_target  # noqa: E402
from ptyapp import PtyApp  # noqa: E402
from tui_cost import ISOLATED_ENV, gotop_argv, gotop_env, gotop_revision, isolate, load_average  # noqa: E402

KINDS = ("agentpprof", "pprofonly", "plain")
WORKLOADS = (  # (workload, -n): a realistic mix, leaking ones included
    ("leak-send", 2000),  # a goroutine every 2 s that never exits
    ("retain", 200),
    ("healthy-pool", 50),
    ("healthy-spawn", 100),
    ("churn", 20),
    ("park", 200),
    ("idle", 0),
)
SAMPLE_EVERY = 10.0
MB = 1e6


@dataclass
class Watch:
    """RSS and descriptor samples of one gotop."""

    label: str
    process: psutil.Process
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (t, rss, fds)

    def sample(self, t: float) -> None:
        try:
            self.samples.append((t, self.process.memory_info().rss, self.process.num_fds()))
        except psutil.Error:
            pass

    def alive(self) -> bool:
        return self.process.is_running() and self.process.status() != psutil.STATUS_ZOMBIE


class ChurningFleet:
    """Keeps N Go processes alive, each for a random lifetime, replacing those that end."""

    def __init__(self, n: int, min_life: float, max_life: float, rng: random.Random) -> None:
        self.n, self.min_life, self.max_life, self.rng = n, min_life, max_life, rng
        self.live: list[tuple[float, RunningTarget]] = []  # (dies at, target)
        self.started = 0

    def _start_one(self) -> None:
        kind = self.rng.choice(KINDS)
        workload, size = self.rng.choice(WORKLOADS)
        target = start_target(kind, args=["-workload", workload, "-n", str(size)])
        self.live.append((time.monotonic() + self.rng.uniform(self.min_life, self.max_life), target))
        self.started += 1

    def fill(self) -> None:
        while len(self.live) < self.n:
            self._start_one()

    def turn_over(self) -> None:
        """End the processes whose time is up and start their successors."""
        now = time.monotonic()
        for dies_at, target in [entry for entry in self.live if entry[0] <= now]:
            target.kill()
            self.live.remove((dies_at, target))
        self.fill()

    def stop(self) -> None:
        for _, target in self.live:
            target.kill()


def report(watch: Watch, warmup: float, alive: bool) -> None:
    """RSS and descriptors over the first and the last two minutes after the warm-up (medians)."""
    steady = [s for s in watch.samples if s[0] >= warmup]
    if len(steady) < 4:
        print(f"{watch.label}: too few samples ({len(steady)})")
        return
    window = 120.0
    first = [s for s in steady if s[0] < warmup + window] or steady[:1]
    last = [s for s in steady if s[0] > steady[-1][0] - window]
    start_rss, end_rss = (statistics.median(s[1] for s in part) for part in (first, last))
    start_fds, end_fds = (statistics.median(s[2] for s in part) for part in (first, last))
    growth = (end_rss - start_rss) / start_rss * 100
    fds = [s[2] for s in steady]
    print(f"{watch.label:<8} alive at the end: {'yes' if alive else 'NO'}; RSS {start_rss / MB:.1f} MB after the "
          f"warm-up, {end_rss / MB:.1f} MB at the end: {growth:+.1f} % (peak {max(s[1] for s in steady) / MB:.1f} MB); "
          f"descriptors {start_fds:.0f} -> {end_fds:.0f} (range {min(fds)}..{max(fds)})")


def check_recording(path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from gotop.engine.recording import Recording

    recording = Recording(str(path))
    print(f"recording: {path.stat().st_size / MB:.1f} MB, {len(recording.targets)} targets, "
          f"{recording.end - recording.start:.0f} s; it opens for replay")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=100)
    parser.add_argument("--min-life", type=float, default=10.0, help="shortest lifetime of a Go process (s)")
    parser.add_argument("--max-life", type=float, default=120.0, help="longest lifetime of a Go process (s)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the RSS baseline is taken")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-isolate", action="store_true", help="run on the host, not in a PID namespace")
    args = parser.parse_args()
    if not args.no_isolate:
        isolate()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"host: {os.cpu_count()} CPUs, load average {load_average()}; "
          f"isolated: {bool(os.environ.get(ISOLATED_ENV))}; "
          f"gotop {gotop_revision()}; {args.processes} processes living {args.min_life:g}-{args.max_life:g} s, "
          f"{args.minutes:g} min")

    fleet = ChurningFleet(args.processes, args.min_life, args.max_life, random.Random(args.seed))
    out = Path(tempfile.mkdtemp(prefix="gotop-soak-"))
    recording = out / "soak.gotop"
    seconds = args.minutes * 60
    tui = recorder = None
    try:
        fleet.fill()
        tui = PtyApp(gotop_argv(), 120, 40, env=gotop_env())
        recorder = psutil.Popen(gotop_argv(["record", "-o", str(recording), "--for", f"{seconds + 60:.0f}s"]),
                                env=gotop_env(), stdout=open(out / "record.log", "wb"), stderr=-2)
        watches = [Watch("TUI", psutil.Process(tui.pid)), Watch("record", recorder)]
        started = time.monotonic()
        next_sample = started
        while (now := time.monotonic()) - started < seconds:
            fleet.turn_over()
            if now >= next_sample:
                for w in watches:
                    w.sample(now - started)
                next_sample += SAMPLE_EVERY
            threading.Event().wait(0.2)
        alive = [w.alive() for w in watches]
        print(f"{fleet.started} Go processes started in {args.minutes:g} min "
              f"({(fleet.started - args.processes) / seconds * 60:.0f} exits a minute)")
        for w, ok in zip(watches, alive):
            report(w, args.warmup, ok)
    finally:
        if tui is not None:
            tui.quit()
        if recorder is not None:
            recorder.send_signal(signal.SIGINT)
            try:
                recorder.wait(30)
            except psutil.TimeoutExpired:
                recorder.kill()
        fleet.stop()
    check_recording(recording)
    print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    main()

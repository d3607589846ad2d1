"""A lost terminal ends gotop, every time, whatever gotop is doing at that moment.

gotop watches busy, leaking targets; its terminal is then closed at a varying
moment (during start-up, during the first frames, while it polls, while it
quits), in every way a user loses one: the terminal hung up with SIGHUP (a
dropped SSH session, a killed tmux), hung up without SIGHUP (gotop is not its
controlling process), SIGHUP alone, and `q` with the terminal closing during
the shutdown. Survivors are counted: there must be none. How long each took is
printed (bench/hangup.py measures it); the safety timeout is not a timing claim.
A failure names its seed: GOTOP_TERMINAL_SEED=SEED runs the same moments and sizes again.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time

import pytest
from gotargets import start_target
from terminal import Terminal

from gotop.demo import bundled_recording

pytestmark = pytest.mark.go  # every test runs Go targets (gotargets.start_target)
GOTOP = [sys.executable, "-m", "gotop"]
ROUNDS = 6  # per way of losing the terminal
# Seconds a process may take to exit before it counts as a survivor. A run of the whole suite beside
# two CPU burners saw exits after 12.7 s, and at 20 s processes with every thread runnable (starved,
# not stuck): a stuck one never exits, however long it is given.
SAFETY_TIMEOUT = 60.0

BUSY_TARGETS = [
    ("agentpprof", ["-workload", "leak-send", "-n", "20"]),
    ("agentpprof", ["-workload", "churn", "-n", "2000"]),
    ("pprofonly", ["-workload", "healthy-spawn"]),
    ("pprofonly", ["-workload", "retain", "-n", "2000"]),
    ("plain", ["-workload", "spin"]),
]


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    targets = [start_target(name, args=args, config_dir=tmp_path_factory.mktemp("gops"))
               for name, args in BUSY_TARGETS]
    yield targets
    for target in targets:
        target.kill()


def lose_terminal(term: Terminal, way: str, rng: random.Random) -> None:
    if way == "sighup":  # `kill -HUP`, the terminal itself stays
        term.proc.send_signal(signal.SIGHUP)
    elif way == "quit-then-hang-up":
        term.send("q")
        time.sleep(rng.uniform(0, 0.3))
        term.hang_up()
    else:
        term.hang_up()


@pytest.mark.parametrize("way", ["hang-up", "hang-up-without-sighup", "sighup", "quit-then-hang-up"])
def test_no_gotop_outlives_its_terminal(busy, way):
    # The moments and sizes of a failed run come back with its seed (named in the failure).
    seed = os.environ.get("GOTOP_TERMINAL_SEED") or f"{way}-{time.time_ns()}"
    rng = random.Random(seed)
    views = [[], [str(busy[0].pid)], [str(busy[3].pid)], ["replay", str(bundled_recording())]]
    survivors, exits = [], []
    for round_ in range(ROUNDS):
        argv = [*GOTOP, *views[round_ % len(views)]]
        term = Terminal(argv, size=(rng.choice([80, 120]), rng.choice([24, 40])),
                        controlling=way != "hang-up-without-sighup")
        try:
            delay = rng.uniform(0.0, 3.0)  # some before the first frame, some while it polls
            time.sleep(delay)
            lost_at = time.monotonic()
            lose_terminal(term, way, rng)
            deadline = lost_at + SAFETY_TIMEOUT
            while term.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if term.proc.poll() is None:
                survivors.append(f"{' '.join(argv[3:]) or 'overview'} lost after {delay:.2f} s; "
                                 f"its session:\n{term.describe_session()}")
            else:
                exits.append(time.monotonic() - lost_at)
        finally:
            term.kill()
    print(f"{way}: exited in {', '.join(f'{s:.2f}' for s in exits)} s")
    # The survivors in full (a repr is cut short): what their threads were doing, who held the terminal.
    assert survivors == [], f"replay with GOTOP_TERMINAL_SEED={seed} -k {way!r}\n" + "\n".join(survivors)


def test_a_gotop_that_cannot_run_still_ends_with_its_terminal(busy):
    """gotop stopped (SIGSTOP: none of its threads runs, as when a call holds the GIL for
    seconds or the interpreter is finalizing) when its terminal goes without SIGHUP (a
    controlling terminal's hang-up would send SIGCONT too): its watchdog process kills it."""
    term = Terminal([*GOTOP, str(busy[0].pid)], size=(80, 24), controlling=False)
    try:
        term.expect("GC")  # the process screen is up
        os.kill(term.proc.pid, signal.SIGSTOP)
        term.hang_up()
        deadline = time.monotonic() + SAFETY_TIMEOUT
        while term.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert term.proc.returncode == -signal.SIGKILL
    finally:
        term.kill()

"""`gotop demo`: its programs run, the TUI shows them, and none outlives gotop."""

from __future__ import annotations

import os
import signal
import sys

import psutil
import pytest
from terminal import Terminal

from gotop.demo import PROGRAMS, bundled_recording

GOTOP = [sys.executable, "-m", "gotop"]


def demo_children(gotop_pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(gotop_pid).children(recursive=True) if p.name() in PROGRAMS]
    except psutil.NoSuchProcess:
        return []


def wait_for_programs(term: Terminal) -> list[int]:
    term.expect("demo: 4 example programs")
    for name in PROGRAMS:
        term.expect(name)  # each shows in the process list
    children = demo_children(term.proc.pid)
    assert sorted(p.name() for p in children) == sorted(PROGRAMS)
    return [p.pid for p in children]


def assert_all_gone(pids: list[int]) -> None:
    for pid in pids:
        try:
            psutil.Process(pid).wait(timeout=10)
        except psutil.NoSuchProcess:
            pass
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid


@pytest.mark.go  # gotop demo builds the examples with Go
@pytest.mark.parametrize("leave", ["quit", "hang-up", "sigkill"])
def test_demo_shows_its_programs_and_none_outlives_gotop(leave):
    term = Terminal([*GOTOP, "demo"], size=(120, 40))
    try:
        pids = wait_for_programs(term)
        if leave == "quit":
            term.send("q")
            assert term.wait() == 0
        elif leave == "hang-up":  # the SSH session drops
            term.hang_up()
            term.wait()
        else:  # gotop itself is killed: nothing can run its clean-up
            os.kill(term.proc.pid, signal.SIGKILL)
            term.wait()
    finally:
        term.kill()
    assert_all_gone(pids)


def test_demo_without_go_says_so_in_one_line():
    no_go = ":".join(p for p in os.environ["PATH"].split(":") if not os.path.exists(os.path.join(p, "go")))
    term = Terminal([*GOTOP, "demo"], env={"PATH": no_go}, size=(400, 30))
    try:
        assert term.wait() == 2
    finally:
        term.kill()
    assert bytes(term.output).decode().strip().splitlines() == [
        f"gotop: gotop demo builds its examples with Go, and `go` is not on PATH; "
        f"watch a recording of them instead: gotop replay {bundled_recording()}"
    ]


def test_the_bundled_recording_replays():
    term = Terminal([*GOTOP, "demo", "--replay"], size=(120, 40))
    try:
        term.expect("replay of")
        for name in PROGRAMS:
            term.expect(name)
        term.send("q")
        assert term.wait() == 0
    finally:
        term.kill()

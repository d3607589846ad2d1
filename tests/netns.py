"""A private network namespace for tests that count the requests a target gets.

On a shared machine, every other gotop run (other test runs, a TUI) probes the
listeners of every Go process in its own network namespace. A target started
in a namespace of the test's own is probed only by the gotop the test starts
there, so its request log counts that gotop's requests alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest


@pytest.fixture
def private_netns() -> Iterator[tuple[str, ...]]:
    """A new network namespace with loopback up; yields the command prefix
    (`nsenter --net=...`) that runs a program inside it."""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None or shutil.which("ip") is None:
        pytest.skip("unshare, nsenter and ip are needed for a private network namespace")
    holder = subprocess.Popen(
        ["unshare", "--net", "sh", "-c", "ip link set lo up && echo up && exec sleep infinity"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "up\n", "no private network namespace"
        yield ("nsenter", f"--net=/proc/{holder.pid}/ns/net")
    finally:
        holder.kill()
        holder.wait()


def gotop_in(netns: tuple[str, ...], *args: str, env: dict[str, str] | None = None,
             timeout: float = 90, text: bool = True) -> subprocess.CompletedProcess:
    """Run gotop inside the namespace (`()`: gotop's own); `text=False` keeps the output's bytes."""
    return subprocess.run(
        [*netns, sys.executable, "-m", "gotop", *args], capture_output=True, text=text, timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def requests_in(log) -> list[str]:
    """The lines of a target's -log file: "connect", "GET /path", ..."""
    return log.read_text().splitlines() if log.exists() else []

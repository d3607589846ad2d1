"""Running gotop inside a test's private network namespace (the `private_netns`
fixture of conftest.py), and reading a target's request log (pprofonly -log)."""

from __future__ import annotations

import os
import subprocess
import sys


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


def private_cache(tmp_path) -> dict[str, str]:
    """gotop's environment with a probe cache of the test's own."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    return {"XDG_RUNTIME_DIR": str(runtime)}

"""Profiles and traces saved to files, for the CLI and the TUI alike.

Files open with `go tool pprof FILE` (profiles) or `go tool trace FILE`
(traces) and are created with mode 0600: a profile shows a program's insides.
"""

from __future__ import annotations

import os
import time

from gotop.engine.target import Target
from gotop.engine.targetspec import TargetError
from gotop.sources.progress import ProgressCallback

KINDS = ("heap", "cpu", "trace", "goroutine")
DEFAULT_SECONDS = {"cpu": 30, "trace": 5}


async def capture(target: Target, kind: str, seconds: float | None = None,
                  progress: ProgressCallback | None = None) -> bytes:
    """The bytes of one profile or trace, in the format Go writes."""
    seconds = seconds if seconds is not None else DEFAULT_SECONDS.get(kind)
    if seconds is not None and seconds <= 0:
        raise TargetError(f"a capture lasts a positive number of seconds, not {seconds:g}")
    if kind == "heap":
        return await target.heap_profile()
    if kind == "goroutine":
        return await target.goroutine_profile_proto()
    if kind == "cpu":
        if seconds != int(seconds):
            raise TargetError("a CPU profile lasts a whole number of seconds")
        return await target.cpu_profile(int(seconds), progress)
    if kind == "trace":
        return await target.trace(seconds, progress)
    raise TargetError(f"unknown capture {kind!r}: choose one of {', '.join(KINDS)}")


def opener(kind: str) -> str:
    return "go tool trace" if kind == "trace" else "go tool pprof"


def default_name(kind: str, target: str) -> str:
    """e.g. 'cpu-1234-20261125-180102.pb.gz' (the target as the user named it, made safe)."""
    safe = "".join(c if c.isalnum() or c in "-." else "_" for c in target.removeprefix("http://"))
    suffix = "trace" if kind == "trace" else "pb.gz"
    return f"{kind}-{safe}-{time.strftime('%Y%m%d-%H%M%S')}.{suffix}"


def save_private(path: str, data: bytes) -> None:
    """Write `data` to `path`, readable by its owner only (even if the file existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
    finally:
        os.close(fd)

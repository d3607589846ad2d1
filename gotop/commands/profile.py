"""`gotop profile heap|cpu|trace|goroutine TARGET`: save a profile in its standard format.

Files open with `go tool pprof FILE` (profiles) or `go tool trace FILE` (trace)
and are created with mode 0600: a profile shows the program's internals.
"""

from __future__ import annotations

import os
import time
from argparse import Namespace

from gotop.commands.common import progress_bar, with_target
from gotop.engine.target import Target, TargetError
from gotop.units import fmt_bytes

KINDS = ("heap", "cpu", "trace", "goroutine")
DEFAULT_SECONDS = {"cpu": 30, "trace": 5}


def run(args: Namespace) -> int:
    seconds = args.seconds if args.seconds is not None else DEFAULT_SECONDS.get(args.kind)
    if seconds is not None and seconds <= 0:
        raise TargetError(f"--seconds must be positive, not {seconds:g}")
    if args.kind == "cpu" and seconds is not None:
        if seconds != int(seconds):
            raise TargetError("a CPU profile lasts a whole number of seconds")
        seconds = int(seconds)

    async def capture(target: Target) -> tuple[str, bytes]:
        if args.kind == "heap":
            data = await target.heap_profile()
        elif args.kind == "goroutine":
            if not target.http:
                raise TargetError(f"{target.label}: the goroutine profile needs net/http/pprof")
            data = await target.http.profile("goroutine")
        elif args.kind == "cpu":
            data = await target.cpu_profile(seconds, progress_bar(f"CPU profile of {target.label}"))
        else:
            data = await target.trace(seconds, progress_bar(f"trace of {target.label}"))
        return target.label, data

    label, data = with_target(args.target, capture)
    path = args.output or default_name(args.kind, args.target)
    save_private(path, data)
    opener = "go tool trace" if args.kind == "trace" else "go tool pprof"
    print(f"{label}: {args.kind} saved to {path} ({fmt_bytes(len(data))}); open it with: {opener} {path}")
    return 0


def default_name(kind: str, target: str) -> str:
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

#!/usr/bin/env python3
"""Record tests/data/session.gotop: the frozen data of the snapshot tests.

Real Go targets (a goroutine leak with the gops agent and pprof on Go 1.27, a
cache that retains heap behind pprof, a process with neither) watched by
`gotop record` for a minute. Re-run after a change of the recording format:
    .venv/bin/python tests/data/make_session.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from gotargets import start_target  # noqa: E402

OUT = HERE / "session.gotop"


def main() -> None:
    targets = [
        start_target("agentpprof", toolchain="go1.27", args=["-workload", "leak-all", "-n", "400"]),
        start_target("pprofonly", args=["-workload", "retain-map", "-n", "100"]),
        start_target("plain", toolchain="go1.19"),
    ]
    try:
        OUT.unlink(missing_ok=True)
        subprocess.run(
            [sys.executable, "-m", "gotop", "record", *(str(t.pid) for t in targets),
             "-o", str(OUT), "--for", "60s", "--heap-every", "15s"],
            check=True,
        )
    finally:
        for t in targets:
            t.kill()
    print(f"{OUT}: {os.path.getsize(OUT):,} bytes")


if __name__ == "__main__":
    main()

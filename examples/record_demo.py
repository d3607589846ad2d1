#!/usr/bin/env python3
"""Record examples/demo.gotop: a minute of the demo programs, as `gotop demo` shows them.

`gotop replay` of it works with nothing else installed (it ships with gotop),
and the snapshot tests replay it as their frozen data. Made with Go 1.27, whose
goroutineleak profile proves the leakyservice goroutines leaked:
    GOTOOLCHAIN=go1.27.3 .venv/bin/python examples/record_demo.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gotop import demo

OUT = Path(__file__).resolve().parent / demo.RECORDING


def main() -> None:
    running = demo.start(demo.build())
    try:
        OUT.unlink(missing_ok=True)
        subprocess.run(
            [sys.executable, "-m", "gotop", "record", *map(str, running.pids),
             "-o", str(OUT), "--for", "60s", "--heap-every", "15s"],
            check=True,
        )
    finally:
        running.stop()
    print(f"{OUT}: {os.path.getsize(OUT):,} bytes")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""`gotop top` against `go tool pprof -top` on big real heap profiles, in one run.

Profiles: bench/gen_profile (a Go program, MemProfileRate=1) allocates under N
distinct call stacks and writes its heap profile; N = --stacks (default 100k
and 400k). The stacks are those of a recursive walker (a little recursion,
then one of 8 step functions per base-8 digit of the allocation's number,
about 24 frames deep, with inlined frames). Each profile is made once and kept
in bench/out/.

Measured, per profile, --runs times each, the two commands alternated:
  gotop   `python -m gotop top FILE`;
  pprof   `go tool pprof -top FILE`.
Wall time, and peak RSS as ru_maxrss of the whole process tree (wait4: the
command and every child it waited for). Medians are compared; before timing, the
two outputs are compared line by line (they must be identical).

gotop runs from byte-compiled modules (a private PYTHONPYCACHEPREFIX, warmed
by one run that is not counted), as an installed gotop would.

Target (issue 13), on the 400k profile: gotop at least 10x faster and at most
1/4 of pprof's peak memory (it was 5x and 1/3).

Usage: .venv/bin/python bench/profile_top.py [--stacks 100000,400000] [--runs 5]
       [--sample-index NAME]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "bench" / "gen_profile"
OUT = ROOT / "bench" / "out"
CACHE = Path(os.environ.get("GOTOP_TEST_CACHE", Path.home() / ".cache" / "gotop-tests"))
SPEED_TARGET = 10.0
MEMORY_TARGET = 1 / 4


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss: int  # bytes
    output: bytes


def gotop_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return env | {"PYTHONPYCACHEPREFIX": str(CACHE / "bench-pycache")}


def generator_binary() -> Path:
    source = b"".join(p.read_bytes() for p in sorted(GENERATOR.glob("*.go")) + [GENERATOR / "go.mod"])
    binary = CACHE / f"bench-gen-profile-{hashlib.sha256(source).hexdigest()[:12]}"
    if not binary.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(["go", "build", "-o", str(binary), "."], cwd=GENERATOR, check=True)
    return binary


def heap_profile(stacks: int) -> Path:
    binary = generator_binary()
    path = OUT / f"heap-{stacks}-{binary.name.rsplit('-', 1)[1]}.pb.gz"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        subprocess.run([str(binary), "-n", str(stacks), "-o", str(path)], check=True)
        print(f"generated {path.relative_to(ROOT)} ({path.stat().st_size / 1e6:.1f} MB) "
              f"in {time.perf_counter() - started:.1f} s", flush=True)
    return path


def run(argv: list[str], env: dict[str, str] | None = None) -> Run:
    """Run to completion; wall time and the tree's peak RSS from wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        pid = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=ROOT).pid
        _, status, usage = os.wait4(pid, 0)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{err.read().decode(errors='replace')}")
        return Run(seconds, usage.ru_maxrss * 1024, out.read())


def compare(path: Path, runs: int, sample_index: str | None) -> tuple[float, float]:
    gotop = [sys.executable, "-m", "gotop", "top", str(path)]
    pprof = ["go", "tool", "pprof", "-top", str(path)]
    if sample_index:
        gotop += ["--sample-index", sample_index]
        pprof.insert(-1, f"-sample_index={sample_index}")
    first_gotop, first_pprof = run(gotop, gotop_env()), run(pprof)  # warm-up, not counted
    same = first_gotop.output == first_pprof.output
    print(f"\n{path.name}: {path.stat().st_size / 1e6:.1f} MB; outputs identical: {'yes' if same else 'NO'}")
    if not same:
        print(first_gotop.output.decode()[:2000], "\n--- pprof:\n", first_pprof.output.decode()[:2000])
    results: dict[str, list[Run]] = {"gotop": [], "pprof": []}
    for _ in range(runs):
        results["gotop"].append(run(gotop, gotop_env()))
        results["pprof"].append(run(pprof))
    medians = {}
    for name, measured in results.items():
        seconds = statistics.median(r.seconds for r in measured)
        rss = statistics.median(r.peak_rss for r in measured)
        medians[name] = (seconds, rss)
        spread = ", ".join(f"{r.seconds:.2f}" for r in measured)
        print(f"  {name:5s}  wall {seconds:6.2f} s (runs: {spread})   peak RSS {rss / 2**20:7.1f} MiB")
    speed = medians["pprof"][0] / medians["gotop"][0]
    memory = medians["gotop"][1] / medians["pprof"][1]
    print(f"  gotop is {speed:.1f}x faster and uses {memory:.2f} of pprof's peak memory "
          f"(targets: >= {SPEED_TARGET:g}x, <= {MEMORY_TARGET:.2f})")
    return speed, memory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", default="100000,400000", help="distinct stacks per profile, comma-separated")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sample-index", default=None, help="pprof -sample_index (default: the profile's)")
    args = parser.parse_args()
    if shutil.which("go") is None:
        raise SystemExit("needs the go command (go tool pprof is the peer)")
    sizes = [int(s) for s in args.stacks.split(",")]
    verdicts = []
    for size in sizes:
        speed, memory = compare(heap_profile(size), args.runs, args.sample_index)
        verdicts.append((size, speed >= SPEED_TARGET and memory <= MEMORY_TARGET))
    size, met = verdicts[-1]
    print(f"\ntarget on the {size // 1000}k profile: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())

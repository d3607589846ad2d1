"""`gotop demo`: build the example Go programs, run them, and stop them all after.

The examples (examples/ in the repository, installed as gotop.examples) are
built once per source hash and Go version into ~/.cache/gotop/demo. Each
started program is tied to gotop: it gets SIGKILL when the thread that
started it ends (PR_SET_PDEATHSIG), so none outlives gotop, even one killed
with SIGKILL; `stop` ends them on a normal exit.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from gotop.errors import GotopError

PROGRAMS = ("leakyservice", "cache", "fdleak", "workerpool")
RECORDING = "demo.gotop"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gotop" / "demo"


class NoGoToolchain(GotopError):
    pass


def examples_dir() -> Path:
    return Path(str(resources.files("gotop.examples")))


def bundled_recording() -> Path:
    return examples_dir() / RECORDING


def _source_hash(src: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(src.rglob("*")):
        if path.suffix in (".go", ".mod", ".sum"):
            digest.update(str(path.relative_to(src)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def build(progress=print) -> Path:
    """The directory of built example binaries (built now if needed)."""
    go = shutil.which("go")
    if go is None:
        raise NoGoToolchain(
            f"gotop demo builds its examples with Go, and `go` is not on PATH; "
            f"watch a recording of them instead: gotop replay {bundled_recording()}")
    version = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True).stdout.strip()
    src = examples_dir()
    out = CACHE / f"{version}-{_source_hash(src)}"
    if all((out / name).exists() for name in PROGRAMS):
        return out
    progress(f"gotop demo: building {len(PROGRAMS)} example programs with {version} (once)...")
    started = time.monotonic()
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        work = Path(tmp) / "src"
        shutil.copytree(src, work, ignore=shutil.ignore_patterns("*.gotop", "__pycache__", "*.py"))
        result = subprocess.run(
            [go, "build", "-o", str(Path(tmp) / "bin") + "/", *(f"./{name}" for name in PROGRAMS)],
            cwd=work, capture_output=True, text=True,
            env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"},
        )
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
            raise GotopError(f"gotop demo: building the examples failed: {last}")
        shutil.rmtree(out, ignore_errors=True)
        (Path(tmp) / "bin").rename(out)
    progress(f"gotop demo: built in {time.monotonic() - started:.1f} s")
    return out


_PR_SET_PDEATHSIG = 1


def _die_with_gotop() -> None:
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


READY_TIMEOUT = 15.0


@dataclass
class Demo:
    processes: list[subprocess.Popen]
    logs: list[Path]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def wait_ready(self) -> None:
        """Until every program logged that its agent and pprof listen."""
        deadline = time.monotonic() + READY_TIMEOUT
        pending = list(zip(self.processes, self.logs))
        while pending and time.monotonic() < deadline:
            pending = [(p, log) for p, log in pending
                       if p.poll() is None and b"pprof at http" not in log.read_bytes()]
            time.sleep(0.05)
        failed = [log.stem for p, log in zip(self.processes, self.logs) if p.poll() is not None]
        if failed:
            self.stop()
            raise GotopError(f"gotop demo: {', '.join(failed)} exited at start (see {self.logs[0].parent})")

    def stop(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                p.kill()
        for p in self.processes:
            p.wait()


def start(binaries: Path) -> Demo:
    """Start every example and wait until it is ready; output goes to log files."""
    log_dir = binaries / "logs"
    log_dir.mkdir(exist_ok=True)
    demo = Demo([], [])
    try:
        for name in PROGRAMS:
            log_path = log_dir / f"{name}.log"
            with open(log_path, "wb") as log:
                demo.processes.append(subprocess.Popen(
                    [str(binaries / name)], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    preexec_fn=_die_with_gotop,
                ))
            demo.logs.append(log_path)
    except OSError as e:
        demo.stop()
        raise GotopError(f"gotop demo: cannot start the examples: {e}") from None
    demo.wait_ready()
    return demo

"""Build and run the real Go programs in tests/targets/.

The targets are built once per toolchain into a cache keyed by the hash of their
sources, so a test run only pays for `go build` when a target changed. Most share
one module (tests/targets/go.mod); a target in a directory with a go.mod of its
own (e.g. promold, promnew: client_golang at two versions) is a module of its own,
built alone when first asked for (it may need a newer Go than the others). Each
started target gets a private GOPS_CONFIG_DIR, announces itself with a READY line
on stdout, and dies with the process that started it (PR_SET_PDEATHSIG), so no
target outlives a crashed test run.

Used by tests/conftest.py and by the scripts in bench/.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

TARGETS_DIR = Path(__file__).resolve().parent / "targets"
CACHE_DIR = Path(os.environ.get("GOTOP_TEST_CACHE", Path.home() / ".cache" / "gotop-tests"))
READY_TIMEOUT = 30.0


@dataclass(frozen=True)
class Toolchain:
    """A Go toolchain the targets can be built with."""

    name: str
    go: str  # the go command
    env: tuple[tuple[str, str], ...] = ()

    def available(self) -> bool:
        return shutil.which(self.go) is not None

    def run_env(self) -> dict[str, str]:
        return {**os.environ, **dict(self.env)}


TOOLCHAINS = {
    # The machine's own Go.
    "go": Toolchain("go", "go"),
    # Fetched through the module proxy on first use (about 76 MB).
    "go1.27": Toolchain("go1.27", "go", (("GOTOOLCHAIN", "go1.27.3"),)),
    # Debian's golang-1.19: an old runtime (pre-rename memstats, no goroutineleak).
    "go1.19": Toolchain("go1.19", "/usr/lib/go-1.19/bin/go", (("GOTOOLCHAIN", "local"),)),
}


def _source_hash() -> str:
    """Of the sources and of where they are: binaries name their source files, and
    tests read those files (a cache shared by two checkouts must not mix them)."""
    digest = hashlib.sha256(str(TARGETS_DIR).encode())
    for path in sorted(TARGETS_DIR.rglob("*")):
        if path.is_file() and path.suffix in {".go", ".mod", ".sum"}:
            digest.update(str(path.relative_to(TARGETS_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@cache
def go_version(toolchain: str) -> str:
    """`go env GOVERSION` of a toolchain, e.g. 'go1.26.8'."""
    tc = TOOLCHAINS[toolchain]
    out = subprocess.run(
        [tc.go, "env", "GOVERSION"], env=tc.run_env(), cwd=TARGETS_DIR,
        capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


def own_module(name: str) -> str | None:
    """The target's directory when it is a module of its own (it has a go.mod), else None."""
    return name if (TARGETS_DIR / name / "go.mod").is_file() else None


@cache
def build_targets(toolchain: str = "go", trimpath: bool = False, flags: tuple[str, ...] = (),
                  module: str | None = None) -> Path:
    """Build every target of a module (the shared one, or the `module` directory
    of a target of its own) with one toolchain (with -trimpath: files named by
    module path, as release builds often are; with more `go build` flags, e.g.
    ("-ldflags=-s -w",)); return the directory of binaries."""
    tc = TOOLCHAINS[toolchain]
    if not tc.available():
        raise RuntimeError(f"Go toolchain {toolchain!r} not found ({tc.go})")
    flags_key = f"-{hashlib.sha256(repr(flags).encode()).hexdigest()[:8]}" if flags else ""
    module_key = f"-{module}" if module else ""
    out = (CACHE_DIR / f"{toolchain}-{go_version(toolchain)}-{_source_hash()}{module_key}"
           f"{'-trimpath' * trimpath}{flags_key}")
    if out.is_dir():
        return out
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=CACHE_DIR))
    env = tc.run_env() | {"CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false"}
    result = subprocess.run(
        [tc.go, "build", *["-trimpath"] * trimpath, *flags, "-o", str(tmp) + "/", "./..."],
        cwd=TARGETS_DIR / (module or ""), env=env, capture_output=True, text=True,
    )
    if result.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        where = f" in {module}/" if module else ""
        raise RuntimeError(f"building targets{where} with {toolchain} failed:\n{result.stderr}")
    try:
        tmp.rename(out)  # atomic: a concurrent builder may have won the race
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def target_binary(name: str, toolchain: str = "go", trimpath: bool = False, flags: tuple[str, ...] = ()) -> Path:
    return build_targets(toolchain, trimpath, flags, own_module(name)) / name


GOPS_VERSION = "v0.3.28"


@cache
def gops_cli() -> Path:
    """The gops CLI (the peer gotop is compared with), built once into the cache."""
    bin_dir = CACHE_DIR / f"gops-{GOPS_VERSION}"
    gops = bin_dir / "gops"
    if not gops.exists():
        subprocess.run(
            ["go", "install", f"github.com/google/gops@{GOPS_VERSION}"],
            env={**os.environ, "GOBIN": str(bin_dir), "CGO_ENABLED": "0"}, check=True,
            capture_output=True,
        )
    return gops


_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class RunningTarget:
    """A started Go target and what it announced."""

    name: str
    toolchain: str
    proc: subprocess.Popen
    config_dir: Path
    ready: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def agent_port(self) -> int | None:
        addr = self.ready.get("agent")
        return int(addr.rsplit(":", 1)[1]) if addr else None

    @property
    def http_addr(self) -> str | None:
        return self.ready.get("http")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def start_target(
    name: str,
    *,
    toolchain: str = "go",
    args: list[str] | tuple[str, ...] = (),
    config_dir: Path | None = None,
    env: dict[str, str] | None = None,
    wrapper: list[str] | tuple[str, ...] = (),
    binary: Path | None = None,
) -> RunningTarget:
    """Start a target and wait for its READY line.

    `config_dir` is the target's private GOPS_CONFIG_DIR (a fresh temp dir by
    default). `wrapper` prefixes the command, e.g. `unshare ...` or `setpriv ...`.
    `binary` runs a copy of the target from elsewhere (renamed, to be deleted, ...).
    """
    binary = binary or target_binary(name, toolchain)
    config_dir = config_dir or Path(tempfile.mkdtemp(prefix="gops-config-"))
    full_env = {**os.environ, "GOPS_CONFIG_DIR": str(config_dir), **(env or {})}
    stderr = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [*wrapper, str(binary), *args],
        stdout=subprocess.PIPE, stderr=stderr, env=full_env,
        preexec_fn=_die_with_parent,
    )
    target = RunningTarget(name, toolchain, proc, config_dir)
    try:
        target.ready = _wait_ready(proc, stderr)
    except BaseException:
        target.kill()
        raise
    return target


def _wait_ready(proc: subprocess.Popen, stderr) -> dict:
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + READY_TIMEOUT
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not selector.select(remaining):
            raise TimeoutError(f"target pid {proc.pid} did not announce READY in {READY_TIMEOUT}s")
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            stderr.seek(0)
            raise RuntimeError(f"target exited before READY: {stderr.read().decode(errors='replace')}")
        line += chunk
    selector.close()
    tag, _, payload = line.decode().strip().partition(" ")
    if tag != "READY":
        raise RuntimeError(f"unexpected first line from target: {line!r}")
    return json.loads(payload)

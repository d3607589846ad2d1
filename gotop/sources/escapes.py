"""The compiler's escape analysis of a Go module directory, cached.

`go build -gcflags=-m=2 -o /dev/null ./...` runs in the directory with the
user's own environment, so the go command picks the toolchain the module asks
for (its go.mod's `go` and `toolchain` lines, GOTOOLCHAIN) and its build
settings (GOFLAGS, GOOS, build tags, vendoring). Its output goes to a temporary
directory, removed after; the binaries nowhere (-o /dev/null, which also takes
a module of libraries alone). Nothing is written into the user's tree: VCS
stamping is off (-buildvcs=false), and a GOFLAGS of -mod=mod, which may rewrite
go.mod and go.sum, is overridden by -mod=readonly.

The parsed allocations (model/escapes.py) are kept in gotop's private
directory (safefiles.gotop_directory), keyed by a hash of what the build
depends on: the Go files, assembly and cgo sources of the module (not its
tests, nor testdata, hidden or nested modules), its go.mod and go.sum, the
go.work, the directory built, and the toolchain's version and target settings
(`go env`). Sources outside the module (a go.work's other modules, a local
`replace`) are not in the hash. A hit runs `go env` alone; a miss, the build.
Builds run in a process group of their own, killed when gotop stops waiting
(Ctrl-C, a time-out, gotop's exit).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass

from gotop.errors import GotopError
from gotop.model.escapes import FORMAT_VERSION, Allocation, Resolve, parse_escapes
from gotop.safefiles import gotop_directory, open_private_dir, read_private, write_private

FORMAT = "gotop-escapes"
ENV_TIMEOUT = 300.0  # seconds: `go env` may first fetch the toolchain the module asks for
BUILD_TIMEOUT = 1800.0
ERROR_LINES = 20  # the compiler's lines a failed build reports
CACHE_ENTRIES = 16  # analyses kept; the oldest go first
MAX_CACHE_BYTES = 256 << 20
_ENV_KEYS = ("GOVERSION", "GOMOD", "GOWORK", "GOOS", "GOARCH", "GOFLAGS", "GOEXPERIMENT", "CGO_ENABLED",
             "GOAMD64", "GOARM", "GOARM64", "GO386")
_SOURCE_SUFFIXES = (".go", ".s", ".c", ".h", ".cc", ".cpp", ".cxx", ".hh", ".hpp", ".m", ".f", ".syso")
_MODULE_FILES = ("go.mod", "go.sum")


class EscapeError(GotopError):
    """The escape analysis cannot be had (no go command, not a module, ...)."""


class BuildFailed(EscapeError):
    """The build failed; `compiler_lines` holds the first lines the compiler wrote."""

    def __init__(self, directory: str, status: str, compiler_lines: list[str]) -> None:
        errors = [line for line in compiler_lines if not line.startswith("# ")]  # not the "# package" headers
        first = (errors or compiler_lines or ["no message"])[0]
        super().__init__(f"{directory}: go build failed ({status}): {first}")
        self.compiler_lines = compiler_lines


@dataclass(frozen=True)
class EscapeAnalysis:
    directory: str  # what was built (./... under it), a real path
    module: str  # the module's directory (its go.mod's)
    go_version: str  # the toolchain that built it, e.g. "go1.26.8"
    allocations: tuple[Allocation, ...]
    cached: bool  # read from gotop's cache: no build ran

    def to_json(self) -> dict:
        return {"directory": self.directory, "module": self.module, "go_version": self.go_version,
                "cached": self.cached, "allocations": [a.to_json() for a in self.allocations]}


def analyse(directory: str) -> EscapeAnalysis:
    """The escape analysis of the packages under `directory` (from gotop's cache
    when the sources are unchanged). Blocks for the build: call it off the event
    loop. EscapeError (BuildFailed) when it cannot be had."""
    real = os.path.realpath(directory)
    if not os.path.isdir(real):
        raise EscapeError(f"{directory}: not a directory")
    env = _go_env(directory, real)
    module = os.path.dirname(env["GOMOD"])
    files = _module_files(module)
    cache_directory = gotop_directory()
    key = _key(real, module, env, files)
    name = f"escapes-{key[:40]}.json"
    cached = _read_cached(cache_directory, name, key)
    if cached is not None:
        return EscapeAnalysis(real, module, env["GOVERSION"], cached, cached=True)
    allocations = _build(directory, real, env, _resolver(real, module, _module_path(directory, real, module), files))
    if cache_directory is not None:
        _save(cache_directory, name, key, env["GOVERSION"], allocations)
    return EscapeAnalysis(real, module, env["GOVERSION"], allocations, cached=False)


# -- the go command --------------------------------------------------------------------------------


def _go_env(shown: str, directory: str) -> dict[str, str]:
    """`go env` as the build will see it; EscapeError when there is no module."""
    out = _run_go(["env", "-json", *_ENV_KEYS], directory, ENV_TIMEOUT, shown)
    try:
        env = json.loads(out.stdout)
    except ValueError:
        env = None
    if out.returncode != 0 or not isinstance(env, dict) or not all(isinstance(env.get(k), str) for k in _ENV_KEYS):
        lines = _lines(out.stderr)
        raise EscapeError(f"{shown}: go env failed: {lines[0] if lines else f'exit status {out.returncode}'}")
    if env["GOMOD"] in ("", os.devnull):
        raise EscapeError(f"{shown}: not in a Go module (no go.mod here or above): escape analysis builds a module")
    return env


def _build(shown: str, directory: str, env: dict[str, str], resolve: Resolve) -> tuple[Allocation, ...]:
    with tempfile.TemporaryDirectory(prefix="gotop-escapes-") as scratch:
        output = os.path.join(scratch, "compiler.txt")
        flags = _build_flags(env)
        status = _run_to_file(["build", "-gcflags=-m=2", *flags, "-o", os.devnull, "./..."], directory, output, shown)
        if status != 0:  # the errors again without -m=2's thousands of lines around them
            errors = os.path.join(scratch, "errors.txt")
            _run_to_file(["build", *flags, "-o", os.devnull, "./..."], directory, errors, shown)
            raise BuildFailed(shown, f"exit status {status}", _first_lines(errors) or _first_lines(output))
        with open(output, encoding="utf-8", errors="replace") as lines:
            return parse_escapes(lines, resolve)


def _resolver(directory: str, module: str, module_path: str, files: list[str]) -> Resolve:
    """Where a file the compiler names relatively is. The go command prints names
    relative to where it runs, but replays a cached compile's output as it printed
    it then, relative to where that build ran: so a name is taken for its trailing
    path. The compiled package's own file (its directory from its import path) is
    it; else the one file of the module with that trailing path; else it is
    relative to `directory`."""
    by_name: dict[str, list[str]] = {}
    for path in files:
        by_name.setdefault(os.path.basename(path), []).append(path)

    def resolve(package: str, printed: str) -> str:
        tail = "/".join(part for part in os.path.normpath(printed).split("/") if part not in (".", ".."))
        candidates = [p for p in by_name.get(os.path.basename(tail), ()) if p.endswith("/" + tail)]
        if module_path and (package == module_path or package.startswith(module_path + "/")):
            own = os.path.join(module, package[len(module_path):].lstrip("/"), os.path.basename(tail))
            if own in candidates:
                return own
        return candidates[0] if len(candidates) == 1 else os.path.normpath(os.path.join(directory, printed))

    return resolve


def _module_path(shown: str, directory: str, module: str) -> str:
    """The module's path (`go list -m`; in a workspace, the one at `module`); "" if it does not say."""
    out = _run_go(["list", "-m", "-f", "{{.Dir}}\t{{.Path}}"], directory, ENV_TIMEOUT, shown)
    paths = dict(line.split("\t", 1) for line in out.stdout.splitlines() if "\t" in line)
    return paths.get(module, "") if out.returncode == 0 else ""


def _build_flags(env: dict[str, str]) -> list[str]:
    flags = []
    if _minor(env["GOVERSION"]) >= 18:
        flags.append("-buildvcs=false")
    if re.search(r"(?:^|\s)--?mod=mod(?:\s|$)", env["GOFLAGS"]):
        flags.append("-mod=readonly")  # -mod=mod may write go.mod and go.sum
    return flags


def _minor(version: str) -> int:
    """19 of "go1.19.8" (a devel version counts as new)."""
    match = re.search(r"go1\.(\d+)", version)
    return int(match[1]) if match else 1 << 30


def _run_go(args: list[str], directory: str, timeout: float, shown: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([_go(), *args], cwd=directory, capture_output=True, text=True, errors="replace",
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EscapeError(f"{shown}: go {args[0]} did not finish in {timeout:g} s") from None
    except OSError as e:
        raise EscapeError(f"{shown}: cannot run go: {e.strerror}") from None


_running: set[int] = set()  # process groups of builds under way, killed at gotop's exit
_running_lock = threading.Lock()


def _run_to_file(args: list[str], directory: str, output: str, shown: str) -> int:
    """Run the go command with stdout and stderr into `output`, in a process group
    of its own that is killed if it is still there when this returns or raises."""
    with open(output, "wb") as out:
        try:
            process = subprocess.Popen([_go(), *args], cwd=directory, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            raise EscapeError(f"{shown}: cannot run go: {e.strerror}") from None
        with _running_lock:
            _running.add(process.pid)
        try:
            return process.wait(BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise EscapeError(f"{shown}: go build did not finish in {BUILD_TIMEOUT:g} s") from None
        finally:
            _kill_group(process.pid)
            process.wait()
            with _running_lock:
                _running.discard(process.pid)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@atexit.register
def _kill_running() -> None:
    with _running_lock:
        for pid in _running:
            _kill_group(pid)


def _go() -> str:
    return shutil.which("go") or "go"


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _first_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = []
        for line in f:
            if line.strip():
                lines.append(line.rstrip("\n"))
            if len(lines) == ERROR_LINES:
                break
    return lines


# -- the cache -------------------------------------------------------------------------------------


def _key(directory: str, module: str, env: dict[str, str], files: list[str]) -> str:
    """The hash of what the build depends on (see the module doc)."""
    digest = hashlib.sha256(json.dumps([FORMAT, FORMAT_VERSION, directory, env], sort_keys=True).encode())
    if env["GOWORK"] and env["GOWORK"] != "off":
        _hash_file(digest, env["GOWORK"], env["GOWORK"])
    for path in files:
        _hash_file(digest, os.path.relpath(path, module), path)
    return digest.hexdigest()


def _hash_file(digest, name: str, path: str) -> None:
    digest.update(name.encode("utf-8", "surrogateescape") + b"\0")
    try:
        with open(path, "rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    except OSError as e:
        digest.update(f"unreadable: {e.errno}".encode())


def _module_files(module: str) -> list[str]:
    """The files of the module a build reads (see the module doc), sorted."""
    found = [os.path.join(module, name) for name in _MODULE_FILES if os.path.isfile(os.path.join(module, name))]
    for root, dirs, files in os.walk(module):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_")) and d != "testdata"
                   and not os.path.isfile(os.path.join(root, d, "go.mod"))]
        found += [os.path.join(root, f) for f in files
                  if f.endswith(_SOURCE_SUFFIXES) and not f.endswith("_test.go") and not f.startswith((".", "_"))]
    return sorted(found)


def _read_cached(directory: str | None, name: str, key: str) -> tuple[Allocation, ...] | None:
    data = read_private(directory, name, MAX_CACHE_BYTES)
    if data is None:
        return None
    try:
        doc = json.loads(data)
        if not (isinstance(doc, dict) and doc.get("format") == FORMAT and doc.get("version") == FORMAT_VERSION
                and doc.get("key") == key and isinstance(doc.get("allocations"), list)):
            return None
        return tuple(Allocation.from_json(a) for a in doc["allocations"])
    except (ValueError, KeyError, TypeError, RecursionError):  # not ours, or damaged: built again
        return None


def _save(directory: str, name: str, key: str, go_version: str, allocations: tuple[Allocation, ...]) -> None:
    doc = {"format": FORMAT, "version": FORMAT_VERSION, "key": key, "go_version": go_version,
           "allocations": [a.to_json() for a in allocations]}
    write_private(directory, name, json.dumps(doc, separators=(",", ":")).encode())
    _prune(directory)


def _prune(directory: str) -> None:
    """Only the newest CACHE_ENTRIES analyses stay."""
    dir_fd = open_private_dir(directory, create=False)
    if dir_fd is None:
        return
    try:
        entries = [(e.stat(follow_symlinks=False).st_mtime_ns, e.name) for e in os.scandir(dir_fd)
                   if e.name.startswith("escapes-") and e.name.endswith(".json")]
        for _, name in sorted(entries)[:-CACHE_ENTRIES]:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)

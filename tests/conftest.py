"""Shared fixtures: real Go targets, started per test and always killed."""

from __future__ import annotations

import dis
import inspect
import shutil
import subprocess
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gotargets import TOOLCHAINS, RunningTarget, _die_with_parent, start_target

TESTS = Path(__file__).resolve().parent
SAMPLES = TESTS / "samples"

# What needs a Go toolchain: the go_target fixture, gotargets' builders, and a
# test module's own `go` (a helper that runs the go command).
GO_NAMES = frozenset({"go_target", "start_target", "build_targets", "target_binary", "go_version", "gops_cli",
                      "TOOLCHAINS", "go"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `go` every test that reaches a Go name: through its fixtures, its body,
    or a function of tests/ it calls (so `-m "not go"` runs the others without Go)."""
    for item in items:
        if isinstance(item, pytest.Function) and _needs_go(item):
            item.add_marker(pytest.mark.go)


def _needs_go(item: pytest.Function) -> bool:
    if GO_NAMES & set(item.fixturenames):
        return True
    fixtures = [defs[-1].func for defs in item._fixtureinfo.name2fixturedefs.values()]
    seen: set = set()
    return any(_reaches_go(f, seen) for f in (item.obj, *fixtures))


def _reaches_go(function: object, seen: set) -> bool:
    """Whether a function of tests/, or one of tests/ it calls, uses a Go name."""
    function = inspect.unwrap(function) if callable(function) else function
    if not isinstance(function, types.FunctionType) or function in seen \
            or not function.__code__.co_filename.startswith(str(TESTS)):
        return False
    seen.add(function)
    names = _globals_used(function.__code__)
    return bool(names & GO_NAMES) or any(_reaches_go(function.__globals__.get(n), seen) for n in names)


def _globals_used(code: types.CodeType) -> set[str]:
    """The global names a code object and the functions nested in it load."""
    names = {i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _globals_used(const)
    return names


@pytest.fixture(autouse=True, scope="session")
def private_runtime_dir(tmp_path_factory) -> Iterator[Path]:
    """$XDG_RUNTIME_DIR, where gotop keeps its probe cache (gotop/probes.json),
    is a directory of the test run's own, for gotop in-process and in the
    subprocesses tests start (they inherit os.environ): the developer's own
    cache is never written. A test that sets its own (env=..., monkeypatch) wins."""
    runtime = tmp_path_factory.mktemp("xdg-runtime")
    runtime.chmod(0o700)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_RUNTIME_DIR", str(runtime))
        yield runtime


@pytest.fixture
def go_target(tmp_path_factory) -> Callable[..., RunningTarget]:
    """Start a Go target: `go_target("agentpprof", toolchain="go", args=[...])`.

    Each target gets its own GOPS_CONFIG_DIR; all are killed at teardown.
    """
    started: list[RunningTarget] = []

    def start(name: str, *, toolchain: str = "go", **kwargs) -> RunningTarget:
        if not TOOLCHAINS[toolchain].available():
            pytest.skip(f"Go toolchain {toolchain} is not installed (tests/run installs it)")
        kwargs.setdefault("config_dir", tmp_path_factory.mktemp("gops"))
        target = start_target(name, toolchain=toolchain, **kwargs)
        started.append(target)
        return target

    yield start
    for target in started:
        target.kill()


@pytest.fixture
def private_netns() -> Iterator[tuple[str, ...]]:
    """A new network namespace with loopback up; yields the command prefix
    (`nsenter --net=...`) that runs a program inside it.

    On a shared machine every other gotop run (other test runs, a TUI) probes
    the listeners of every Go process in its own network namespace: a target
    started in this one is probed only by the gotop a test starts here, so its
    request log (pprofonly -log) counts that gotop's requests alone."""
    if shutil.which("unshare") is None or shutil.which("nsenter") is None or shutil.which("ip") is None:
        pytest.skip("unshare, nsenter and ip are needed for a private network namespace")
    holder = subprocess.Popen(
        ["unshare", "--net", "sh", "-c", "ip link set lo up && echo up && exec sleep infinity"],
        stdout=subprocess.PIPE, text=True, preexec_fn=_die_with_parent,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "up\n", "no private network namespace"
        yield ("nsenter", f"--net=/proc/{holder.pid}/ns/net")
    finally:
        holder.kill()
        holder.wait()

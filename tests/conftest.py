"""Shared fixtures: real Go targets, started per test and always killed; real Go
services from Debian's packages, started once per session and always stopped."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gotargets import TOOLCHAINS, RunningTarget, _die_with_parent, start_target, target_binary
from services import RunningService, running_service, unavailable


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `go` every test that uses the go_target fixture, directly or through
    its fixtures (so `-m "not go"` runs the others without Go). A test module
    that uses tests/gotargets.py or the go command itself marks its tests."""
    for item in items:
        if {"go_target", "go_build"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.go)


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


@pytest.fixture(scope="session")
def go_build() -> Callable[..., Path]:
    """Build a target (cached across runs): `go_build("plain", toolchain="go1.19",
    flags=("-ldflags=-s -w",))` -> the binary. Skips when the toolchain is missing."""

    def build(name: str, *, toolchain: str = "go", flags: tuple[str, ...] = ()) -> Path:
        if not TOOLCHAINS[toolchain].available():
            pytest.skip(f"Go toolchain {toolchain} is not installed (tests/run installs it)")
        return target_binary(name, toolchain, flags=flags)

    return build


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


def _service_fixture(name: str):
    """A session fixture running one service of tests/services.py (skipped where it is not installed)."""

    @pytest.fixture(scope="session")
    def service(tmp_path_factory) -> Iterator[RunningService]:
        if (why := unavailable(name)) is not None:
            pytest.skip(why)
        with running_service(name, tmp_path_factory.mktemp(name)) as running:
            yield running

    return service


etcd_service = _service_fixture("etcd")
prometheus_service = _service_fixture("prometheus")
containerd_service = _service_fixture("containerd")
caddy_service = _service_fixture("caddy")


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A directory any user may enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="gotop-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)

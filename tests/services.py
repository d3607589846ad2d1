"""Real Go services from Debian's packages, started for the tests on loopback.

etcd, prometheus, containerd and caddy are programs nobody here wrote, built by
Debian (stripped, Go 1.19), serving what production services serve: Prometheus
/metrics, and for containerd net/http/pprof and expvar on a UNIX debug socket,
for caddy on its admin port. tests/run installs the packages where apt is there.

Each service runs as a child of the test run (never under systemd): free loopback
ports, its data, config and log in a directory of the test's own, readiness
waited for by asking its endpoints, and at the end it is stopped and reaped. Like
the Go targets it dies with the process that started it (PR_SET_PDEATHSIG).

Used by the session fixtures of tests/conftest.py (`etcd_service`, ...).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
from gotargets import _die_with_parent
from waiting import eventually

READY_TIMEOUT = 60.0  # a safety net on a busy machine, not a timing assertion
STOP_TIMEOUT = 20.0
PORT_ATTEMPTS = 3  # another process may take a free port between our look and the service's bind


@dataclass(frozen=True)
class RunningService:
    """A started service and where it answers."""

    name: str  # its command: "etcd", "prometheus", "containerd", "caddy"
    pid: int
    metrics_url: str  # its Prometheus /metrics (containerd's is /v1/metrics)
    debug_socket: Path | None = None  # containerd's [debug] UNIX socket: pprof and expvar over HTTP
    start_seconds: float = 0.0  # from exec to ready (a figure for reports; never asserted)
    api_url: str | None = None  # where it serves its own HTTP API: etcd's clients, Prometheus's web, caddy's admin


@dataclass(frozen=True)
class Endpoint:
    """An HTTP URL the service answers with 200 once it is ready (over a UNIX socket if given)."""

    url: str
    uds: Path | None = None


@dataclass(frozen=True)
class Launch:
    """How to run one service in a work directory on given ports."""

    argv: list[str]
    metrics_url: str
    ready: tuple[Endpoint, ...]
    debug_socket: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    api_url: str | None = None


@dataclass(frozen=True)
class ServiceKind:
    command: str
    package: str  # the Debian package that ships it
    ports: int  # loopback TCP ports it needs
    needs_root: bool
    launch: Callable[[Path, list[int]], Launch]


def _etcd(work: Path, ports: list[int]) -> Launch:
    client, peer, metrics = (f"http://127.0.0.1:{port}" for port in ports)
    return Launch(
        argv=["etcd", "--name", "gotop-test", "--data-dir", str(work / "data"), "--logger", "zap",
              "--listen-client-urls", client, "--advertise-client-urls", client,
              "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
              "--initial-cluster", f"gotop-test={peer}", "--listen-metrics-urls", metrics],
        metrics_url=f"{metrics}/metrics",
        ready=(Endpoint(f"{client}/health"), Endpoint(f"{metrics}/metrics")),
        api_url=client,
    )


def _prometheus(work: Path, ports: list[int], scrape: Sequence[str] = (), rules: Sequence[Path] = (),
                every: str = "15s") -> Launch:
    web = f"127.0.0.1:{ports[0]}"
    config = work / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": every, "evaluation_interval": every},
        "rule_files": [str(path) for path in rules],
        "scrape_configs": [{"job_name": "gotop", "static_configs": [{"targets": list(scrape)}]}] if scrape else [],
    }))
    return Launch(
        argv=["prometheus", "--config.file", str(config), "--storage.tsdb.path", str(work / "data"),
              "--web.listen-address", web],
        metrics_url=f"http://{web}/metrics",
        ready=(Endpoint(f"http://{web}/-/ready"),),
        api_url=f"http://{web}",
    )


def _containerd(work: Path, ports: list[int]) -> Launch:
    metrics = f"127.0.0.1:{ports[0]}"
    debug = work / "debug.sock"
    config = work / "config.toml"
    # CRI off (it would look for CNI and image services); the opt plugin's directory
    # (default /opt/containerd) under the work directory like everything else.
    config.write_text(f"""\
version = 2
root = "{work / 'root'}"
state = "{work / 'state'}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{work / 'containerd.sock'}"
[ttrpc]
  address = "{work / 'containerd.sock.ttrpc'}"
[debug]
  address = "{debug}"
[metrics]
  address = "{metrics}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{work / 'opt'}"
""")
    return Launch(
        argv=["containerd", "--config", str(config)],
        metrics_url=f"http://{metrics}/v1/metrics",
        ready=(Endpoint(f"http://{metrics}/v1/metrics"), Endpoint("http://containerd/debug/vars", debug)),
        debug_socket=debug,
    )


def _caddy(work: Path, ports: list[int]) -> Launch:
    admin = f"127.0.0.1:{ports[0]}"
    config = work / "caddy.json"
    config.write_text(f'{{"admin": {{"listen": "{admin}"}}, '
                      f'"storage": {{"module": "file_system", "root": "{work / "data"}"}}}}\n')
    return Launch(
        argv=["caddy", "run", "--config", str(config)],
        metrics_url=f"http://{admin}/metrics",
        ready=(Endpoint(f"http://{admin}/config/"), Endpoint(f"http://{admin}/metrics")),
        # Caddy saves its config under the user's config directory: keep it in ours.
        env={"HOME": str(work), "XDG_CONFIG_HOME": str(work / "config"), "XDG_DATA_HOME": str(work / "data")},
        api_url=f"http://{admin}",
    )


def prometheus_scraping(targets: Sequence[str], rules: Sequence[Path] = (),
                        every: str = "1s") -> Callable[[Path, list[int]], Launch]:
    """A prometheus launch that scrapes `targets` (HOST:PORT, job "gotop") and evaluates
    `rules` every `every`: for `running_service("prometheus", work, prometheus_scraping(...))`."""
    return partial(_prometheus, scrape=targets, rules=rules, every=every)


SERVICES = {
    "etcd": ServiceKind("etcd", "etcd-server", 3, False, _etcd),
    "prometheus": ServiceKind("prometheus", "prometheus", 1, False, _prometheus),
    "containerd": ServiceKind("containerd", "containerd", 1, True, _containerd),
    "caddy": ServiceKind("caddy", "caddy", 1, False, _caddy),
}


def unavailable(name: str) -> str | None:
    """Why the service cannot run here (a skip message), or None."""
    kind = SERVICES[name]
    if shutil.which(kind.command) is None:
        return f"{kind.command} is not installed (Debian package {kind.package}, which tests/run installs as root)"
    if kind.needs_root and os.geteuid() != 0:
        return f"{kind.command} needs root (its state, snapshotters and sockets)"
    return None


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all held open at once, then released)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _answers(endpoint: Endpoint) -> bool:
    transport = httpx.HTTPTransport(uds=str(endpoint.uds)) if endpoint.uds else None
    try:
        with httpx.Client(transport=transport, timeout=5.0) as client:
            return client.get(endpoint.url).status_code == 200
    except httpx.HTTPError:
        return False


class ServiceExited(RuntimeError):
    """The service ended before it was ready; `log` is its output."""

    def __init__(self, name: str, returncode: int, log: str) -> None:
        super().__init__(f"{name} exited with {returncode} before it was ready:\n{log[-4000:]}")
        self.log = log


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (a clean shutdown), SIGKILL if it does not end in time; always reaped."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


def _ready_condition(name: str, proc: subprocess.Popen, launch: Launch, log: Path) -> Callable[[], bool]:
    def ready() -> bool:
        if proc.poll() is not None:
            raise ServiceExited(name, proc.returncode, log.read_text(errors="replace"))
        return all(_answers(endpoint) for endpoint in launch.ready)
    return ready


def _start(name: str, work: Path, how: Callable[[Path, list[int]], Launch]) -> tuple[subprocess.Popen, RunningService]:
    launch = how(work, _free_ports(SERVICES[name].ports))
    log = work / "log"
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(launch.argv, cwd=work, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                env={**os.environ, **launch.env}, preexec_fn=_die_with_parent)
    try:
        asyncio.run(eventually(_ready_condition(name, proc, launch, log), timeout=READY_TIMEOUT))
    except BaseException:
        _stop(proc)
        raise
    service = RunningService(name, proc.pid, launch.metrics_url, launch.debug_socket,
                             start_seconds=time.monotonic() - started, api_url=launch.api_url)
    return proc, service


@contextmanager
def running_service(name: str, work: Path,
                    launch: Callable[[Path, list[int]], Launch] | None = None) -> Iterator[RunningService]:
    """Run one service in `work` until the block ends, as SERVICES launches it or as
    `launch` does; see `unavailable` first."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        attempt_dir = work / f"run{attempt}"
        attempt_dir.mkdir()
        try:
            proc, service = _start(name, attempt_dir, launch or SERVICES[name].launch)
            break
        except ServiceExited as exc:
            if "address already in use" not in exc.log or attempt == PORT_ATTEMPTS:
                raise
    try:
        yield service
    finally:
        _stop(proc)

"""Endpoints on UNIX sockets, against real Go targets (pprofonly -unix) and
Debian's containerd (net/http/pprof on its debug socket): found by discovery,
named as the process sees them, used by every command, probed with the
discipline TCP sockets get."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from gotargets import target_binary
from netns import gotop_in, requests_in

from gotop.model.profile import parse_profile

PROBE = ["connect", "GET /debug/pprof/cmdline", "connect", "GET /debug/vars", "connect", "GET /metrics"]


def gotop(*args: str, wrapper: tuple[str, ...] = (), timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*wrapper, sys.executable, "-m", "gotop", *args],
                          capture_output=True, text=True, timeout=timeout)


def ok(*args: str) -> str:
    result = gotop(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def listed(*args: str, wrapper: tuple[str, ...] = ()) -> dict[int, dict]:
    result = gotop("list", "--json", *args, wrapper=wrapper)
    assert result.returncode == 0, result.stderr
    return {p["pid"]: p for p in json.loads(result.stdout)["processes"]}


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A directory any user may enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="gotop-unix-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_socket_s_endpoints_are_found_and_named_by_its_path(go_target, tmp_path):
    # A path with a space and a terminal escape in it: shown as plain text, used as it is.
    sock = tmp_path / "debug \x1b[2J.sock"
    target = go_target("pprofonly", args=["-unix", str(sock), "-workload", "park", "-n", "40"])
    proc = listed()[target.pid]
    assert (proc["pprof"], proc["expvar"], proc["metrics"]) == (f"unix:{sock}", f"unix:{sock}", None)
    assert proc["unix_sockets"] == [str(sock)] and proc["listening"] == []

    info = ok("info", str(target.pid))
    assert "\x1b" not in info
    shown = str(sock).replace("\x1b", "\\x1b")
    assert f"listening   {shown} (pprof, expvar)" in info
    assert f"pprof       unix:{shown}" in info


@pytest.mark.parametrize("name", ["PID", "unix:PATH"])
def test_every_command_reads_through_a_unix_socket(go_target, tmp_path, name):
    sock = tmp_path / "debug.sock"
    target = go_target("pprofonly", args=["-unix", str(sock), "-workload", "retain", "-n", "200"])
    spec = str(target.pid) if name == "PID" else f"unix:{sock}"
    through_pprof = ("--source", "pprof") if name == "PID" else ()

    snapshot = json.loads(ok("snapshot", spec, "--json", *through_pprof))
    assert snapshot["pid"] == target.pid and snapshot["goroutines"] >= 3
    assert snapshot["source"]["stats"] == "pprof index"

    groups = json.loads(ok("stack", spec, "--groups", "--json", *through_pprof))
    assert any(g["label"] == "net/http.(*Server).Serve" for g in groups["groups"])

    ok("gc", spec)
    ok("gc", spec)  # the heap profile shows allocations once two GC cycles published them
    heap = tmp_path / "heap.pb.gz"
    ok("profile", "heap", spec, "-o", str(heap))
    assert "workload.retainHere" in ok("top", str(heap), "-n", "3")
    assert parse_profile(heap.read_bytes()).sample_types[0].type == "alloc_objects"

    top = json.loads(ok("top", spec, "--json", "-n", "1"))
    assert top["rows"][0]["function"] == "gotop.test/targets/internal/workload.retainHere"

    trace = tmp_path / "trace.out"
    ok("profile", "trace", spec, "--seconds", "1", "-o", str(trace))
    assert trace.read_bytes().startswith(b"go 1.")


def test_a_socket_in_another_mount_namespace_is_dialled_where_the_process_sees_it(go_target, tmp_path):
    # A container's socket: on a tmpfs only its mount namespace has, at a path long
    # enough that /proc/PID/root/... passes what a socket address holds (107 bytes).
    mount_point = tmp_path / "ctr"
    mount_point.mkdir()
    inside = mount_point / ("d" * (100 - len(str(mount_point)) - len("/debug.sock")))
    sock = inside / "debug.sock"
    assert 90 < len(str(sock)) <= 107 < len(f"/proc/{2**22}/root{sock}")
    script = 'mount -t tmpfs tmpfs "$0" && mkdir "$1" && shift && exec "$@"'
    target = go_target("pprofonly", args=["-unix", str(sock), "-workload", "park", "-n", "30"],
                       wrapper=["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                                str(mount_point), str(inside)])
    assert not sock.exists()  # not in gotop's mount namespace

    proc = listed()[target.pid]
    assert proc["pprof"] == f"unix:{sock}" and proc["unix_sockets"] == [str(sock)]
    snapshot = json.loads(ok("snapshot", str(target.pid), "--json", "--source", "pprof"))
    assert snapshot["goroutines"] >= 30


def private_cache(tmp_path) -> dict[str, str]:
    """gotop's environment with a probe cache of the test's own."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    return {"XDG_RUNTIME_DIR": str(runtime)}


def listed_in(netns: tuple[str, ...], pid: int, env: dict[str, str]) -> dict:
    result = gotop_in(netns, "list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return next(p for p in json.loads(result.stdout)["processes"] if p["pid"] == pid)


def test_a_chrooted_process_s_socket_is_named_as_it_sees_it(go_target, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(target_binary("pprofonly"), root / "pprofonly")
    target = go_target("pprofonly", binary=Path("/pprofonly"), args=["-unix", "/debug.sock"],
                       wrapper=["chroot", str(root)])
    proc = listed()[target.pid]
    assert (proc["pprof"], proc["unix_sockets"]) == ("unix:/debug.sock", ["/debug.sock"])
    assert json.loads(ok("snapshot", str(target.pid), "--json", "--source", "pprof"))["goroutines"] >= 3


def test_an_abstract_socket_is_probed_once_in_its_process_life(go_target, private_netns, tmp_path):
    # Abstract names belong to a network namespace: this one's are asked by the gotop it runs alone.
    env = private_cache(tmp_path)
    log = tmp_path / "requests.log"
    name = f"@gotop-test-{os.getpid()}"
    target = go_target("pprofonly", args=["-unix", name, "-log", str(log)], wrapper=private_netns)
    first = listed_in(private_netns, target.pid, env)
    assert (first["pprof"], first["unix_sockets"]) == (f"unix:{name}", [name])
    assert listed_in(private_netns, target.pid, env)["pprof"] == first["pprof"]
    assert requests_in(log) == PROBE  # the second run asked nothing

    # Seen from gotop's own network namespace, the name is another namespace's: not dialled.
    outside = listed()[target.pid]
    assert outside["pprof"] is None
    assert f"abstract UNIX sockets {name} in another network namespace: not probed" in outside["notes"]
    assert requests_in(log) == PROBE


def test_a_socket_that_reads_and_never_answers_is_asked_once(go_target, private_netns, tmp_path):
    # A protocol that waits for more (containerd's ttrpc keeps a goroutine for each request it is sent).
    env = private_cache(tmp_path)
    log = tmp_path / "requests.log"
    good, silent = f"@gotop-good-{os.getpid()}", f"@gotop-silent-{os.getpid()}"
    target = go_target("pprofonly", args=["-unix", good, "-silent-unix", silent, "-log", str(log)],
                       wrapper=private_netns)
    for _ in range(2):
        proc = listed_in(private_netns, target.pid, env)
        assert proc["pprof"] == f"unix:{good}"
        assert sorted(proc["unix_sockets"]) == sorted([good, silent])
    assert requests_in(log).count("silent connect") == 1
    assert requests_in(log).count("GET /debug/pprof/cmdline") == 1

    result = gotop_in(private_netns, "snapshot", f"unix:{silent}", "--json")
    assert result.returncode == 2
    assert result.stderr.startswith(f"gotop: unix:{silent}") and "\n" not in result.stderr.strip()


def test_a_socket_not_ours_to_connect_to_is_named_not_probed(go_target, world_dir):
    # Another user's socket, mode 0600, and gotop as root without the capability that
    # overrides write permissions (it keeps those that read the process's descriptors).
    binary = world_dir / "pprofonly"
    shutil.copy(target_binary("pprofonly"), binary)
    home = world_dir / "nobody"
    home.mkdir()
    os.chown(home, 65534, 65534)
    sock = home / "private.sock"
    other = go_target("pprofonly", binary=binary, args=["-unix", str(sock), "-unix-mode", "0600"],
                      wrapper=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
    without_dac = ("setpriv", "--inh-caps=-dac_override", "--bounding-set=-dac_override")
    proc = listed(wrapper=without_dac)[other.pid]
    assert proc["pprof"] is None and proc["unix_sockets"] == [str(sock)]
    assert f"UNIX socket {sock}: permission denied: not probed" in proc["notes"]

    result = gotop("snapshot", f"unix:{sock}", "--json", wrapper=without_dac)
    assert result.returncode == 2 and "Permission denied" in result.stderr


# -- containerd: net/http/pprof on its debug socket ---------------------------------------------------


def test_containerd_s_debug_socket_is_found_among_its_grpc_ones(containerd_service):
    proc = listed()[containerd_service.pid]
    socket = f"unix:{containerd_service.debug_socket}"
    assert (proc["pprof"], proc["expvar"]) == (socket, socket)
    assert str(containerd_service.debug_socket) in proc["unix_sockets"]
    assert len(proc["unix_sockets"]) >= 3  # its gRPC and ttrpc sockets, which do not speak HTTP/1


def ttrpc_connections(service) -> int:
    groups = json.loads(ok("stack", f"unix:{service.debug_socket}", "--groups", "--json"))["groups"]
    return sum(g["count"] for g in groups if g["label"] == "github.com/containerd/ttrpc.(*serverConn).run")


def test_containerd_s_ttrpc_socket_is_asked_once_in_its_life(containerd_service, tmp_path):
    # Its ttrpc server keeps a goroutine for each connection that sent it an HTTP request.
    env = private_cache(tmp_path)
    before = ttrpc_connections(containerd_service)
    assert listed_in((), containerd_service.pid, env)["pprof"] is not None
    once = ttrpc_connections(containerd_service)
    assert once - before <= 1  # none when another gotop of this user asked before
    listed_in((), containerd_service.pid, env)
    listed_in((), containerd_service.pid, env)
    assert ttrpc_connections(containerd_service) == once


def test_containerd_s_heap_top_over_its_socket_is_go_tool_pprof_s(containerd_service, tmp_path):
    path = tmp_path / "heap.pb.gz"
    ok("profile", "heap", f"unix:{containerd_service.debug_socket}", "-o", str(path))
    expected = subprocess.run(["go", "tool", "pprof", "-top", str(path)],
                              capture_output=True, text=True, check=True, timeout=120).stdout
    assert ok("top", str(path)) == expected
    assert "containerd" in expected


def test_containerd_s_goroutine_groups_over_its_socket(containerd_service):
    socket = f"unix:{containerd_service.debug_socket}"
    pid = str(containerd_service.pid)

    def groups_between_two_equal_counts() -> dict | None:
        """The groups, when the memory's goroutine count read before and after agree (nothing moved)."""
        before = json.loads(ok("snapshot", pid, "--json", "--source", "memory"))["goroutines"]
        groups = json.loads(ok("stack", socket, "--groups", "--json"))
        after = json.loads(ok("snapshot", pid, "--json", "--source", "memory"))["goroutines"]
        # + 2: the connection asking for the profile (net/http serves it on one goroutine, and watches
        # for the client's hang-up on another), which the readings around it do not see
        return groups if before == after and groups["total"] == before + 2 else None

    groups = next(filter(None, (groups_between_two_equal_counts() for _ in range(10))), None)
    assert groups is not None, "containerd's goroutines never held still across one profile, 10 times"
    assert groups["pid"] == containerd_service.pid
    assert any("containerd" in frame["function"] for g in groups["groups"] for frame in g["frames"])


def test_idle_etcd_and_containerd_watched_a_minute_give_no_leak(etcd_service, containerd_service):
    checks = {name: subprocess.Popen([sys.executable, "-m", "gotop", "check", str(service.pid), "--for", "60s",
                                      "--json", "--allow-partial"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
              for name, service in (("etcd", etcd_service), ("containerd", containerd_service))}
    for name, check in checks.items():
        out, err = check.communicate(timeout=240)
        assert check.returncode == 0, f"{name}: {out} {err}"
        report = json.loads(out)
        # etcd without --enable-pprof is "partial": no heap profiles to name a site with
        assert report["verdict"] in ("ok", "partial") and report["findings"] == [], f"{name}: {out}"
        assert report["targets"][0]["watched"]["goroutines"]["watched"], f"{name}: {out}"

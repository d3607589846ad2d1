"""Discovery against real Go processes: `gotop list` and `gotop info`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time

import psutil
import pytest
from gotargets import go_version, target_binary

from gotop.discovery.processes import Scanner
from gotop.discovery.sockets import netlink_listening_table, proc_listening_table

TOOLCHAINS = ["go", "go1.27", "go1.19"]


def gotop(*args: str, wrapper: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*wrapper, sys.executable, "-m", "gotop", *args],
        capture_output=True, text=True, timeout=60,
    )


def listed(*args: str, wrapper: tuple[str, ...] = ()) -> dict[int, dict]:
    result = gotop("list", "--json", *args, wrapper=wrapper)
    assert result.returncode == 0, result.stderr
    return {p["pid"]: p for p in json.loads(result.stdout)["processes"]}


def pprof_url(target) -> str:
    return f"http://{target.http_addr}/debug/pprof/"


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_list_marks_every_target_exactly(go_target, toolchain):
    both = go_target("agentpprof", toolchain=toolchain)
    pprof_only = go_target("pprofonly", toolchain=toolchain)
    plain = go_target("plain", toolchain=toolchain)

    procs = listed()

    for t in (both, pprof_only, plain):
        assert procs[t.pid]["go_version"] == go_version(toolchain)
        assert procs[t.pid]["build"]["path"] == f"gotop.test/targets/{t.name}"
    assert procs[both.pid]["agent"]["port"] == both.agent_port
    assert procs[both.pid]["agent"]["reachable"] is True
    assert procs[both.pid]["pprof"] == pprof_url(both)
    assert procs[both.pid]["expvar"] == f"http://{both.http_addr}/debug/vars"
    assert procs[pprof_only.pid]["agent"] is None
    assert procs[pprof_only.pid]["pprof"] == pprof_url(pprof_only)
    assert procs[plain.pid]["agent"] is None
    assert procs[plain.pid]["pprof"] is None
    assert procs[plain.pid]["expvar"] is None


# Go listens on "0.0.0.0" with a dual-stack IPv6 socket: the kernel shows "::".
@pytest.mark.parametrize("bind, bound, dialled", [
    ("0.0.0.0:0", "::", "[::1]"), ("[::]:0", "::", "[::1]"), ("[::1]:0", "::1", "[::1]"),
    ("127.0.0.2:0", "127.0.0.2", "127.0.0.2"),
])
def test_endpoints_found_on_every_kind_of_listen_address(go_target, bind, bound, dialled):
    target = go_target("pprofonly", args=["-http", bind])
    port = int(target.http_addr.rsplit(":", 1)[1])
    proc = listed()[target.pid]
    assert proc["listening"] == [{"host": bound, "port": port}]
    assert proc["pprof"] == f"http://{dialled}:{port}/debug/pprof/"


def test_own_namespace_listeners_from_netlink_are_the_proc_tables(go_target):
    targets = [go_target("agentpprof"), go_target("pprofonly", args=["-http", "[::]:0"])]
    ports = {t.agent_port for t in targets if t.agent_port} | {int(t.http_addr.rsplit(":", 1)[1]) for t in targets}
    for _ in range(50):  # other processes may open or close a listener between the two reads
        netlink, proc = netlink_listening_table(), proc_listening_table("self")
        if netlink == proc:
            break
    assert netlink == proc
    assert ports <= {s.port for s in netlink.values()}


def test_list_table_like_gops(go_target):
    both = go_target("agentpprof")
    plain = go_target("plain")
    result = gotop("list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PID", "PPID", "NAME", "VIA", "GO", "PATH"]
    rows = {int(line.split()[0]): line.split() for line in lines[1:] if line[:1].isdigit()}
    assert rows[both.pid][2:7] == ["agentpprof", "M", "A", "P", "E"]
    assert rows[both.pid][7:] == [go_version("go"), str(target_binary("agentpprof"))]
    assert rows[plain.pid][2:5] == ["plain", "M", go_version("go")]  # its runtime read from its memory


def test_non_go_processes_are_not_listed(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])
    python = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        procs = listed()
        assert sleeper.pid not in procs
        assert python.pid not in procs
        assert os.getpid() not in procs
    finally:
        for p in (sleeper, python):
            p.kill()
            p.wait()


def test_stale_port_file_of_killed_agent_on_reused_pid_gives_no_mark(go_target, tmp_path):
    agent = go_target("agentpprof", config_dir=tmp_path)
    stale = tmp_path / str(agent.pid)
    assert stale.exists()
    agent.kill()  # SIGKILL: the agent leaves its port file behind
    # The pid is reused by a Go process without an agent: the old file now names it.
    plain = go_target("plain", config_dir=tmp_path)
    stale.rename(tmp_path / str(plain.pid))

    proc = listed()[plain.pid]
    assert proc["agent"] is None
    assert any("stale gops port file" in note for note in proc["notes"])


def test_old_port_file_naming_a_port_the_pid_listens_on_gives_no_mark(go_target, tmp_path):
    # Even when the stale file's port is one the new process listens on (its
    # pprof server), a file older than the process is not its agent's.
    target = go_target("pprofonly", config_dir=tmp_path)
    port_file = tmp_path / str(target.pid)
    port_file.write_text(target.http_addr.rsplit(":", 1)[1])
    long_ago = time.time() - 3600
    os.utime(port_file, (long_ago, long_ago))

    proc = listed()[target.pid]
    assert proc["agent"] is None
    assert proc["pprof"] == pprof_url(target)


def test_fresh_port_file_for_a_port_nobody_listens_on_gives_no_mark(go_target, tmp_path):
    target = go_target("plain", config_dir=tmp_path)
    (tmp_path / str(target.pid)).write_text("1")
    proc = listed()[target.pid]
    assert proc["agent"] is None
    assert any("nothing listens on port 1" in note for note in proc["notes"])


@pytest.mark.parametrize(
    "content",
    [b"garbage", b"99999", b"0", b"-5", b"12 34", b"\x00\xff", b"1" * 4096, "４５".encode()],
    ids=["text", "too-big", "zero", "negative", "two-numbers", "binary", "huge-file", "unicode-digits"],
)
def test_garbage_port_file_is_ignored(go_target, tmp_path, content):
    target = go_target("pprofonly", config_dir=tmp_path)
    (tmp_path / str(target.pid)).write_bytes(content)
    proc = listed()[target.pid]
    assert proc["agent"] is None
    assert proc["pprof"] == pprof_url(target)  # the rest of the entry is intact
    assert any("ignored gops port file" in note for note in proc["notes"])


def test_symlinked_port_file_is_refused(go_target, tmp_path):
    agent = go_target("agentpprof", config_dir=tmp_path)
    # A real agent's port file, but reached through a symlink named like a target's.
    plain = go_target("plain", config_dir=tmp_path)
    (tmp_path / str(plain.pid)).symlink_to(tmp_path / str(agent.pid))
    proc = listed()[plain.pid]
    assert proc["agent"] is None
    assert any("ignored gops port file" in note for note in proc["notes"])


def test_agent_found_from_the_targets_home_directory(go_target, tmp_path):
    # No GOPS_CONFIG_DIR: the agent uses $HOME/.config/gops of *its* environment,
    # which differs from gotop's.
    home = tmp_path / "home"
    home.mkdir()
    target = go_target("agentpprof", config_dir=None, env={"GOPS_CONFIG_DIR": "", "HOME": str(home)})
    assert (home / ".config" / "gops" / str(target.pid)).exists()
    proc = listed()[target.pid]
    assert proc["agent"]["port"] == target.agent_port
    assert proc["agent"]["port_file"] == str(home / ".config" / "gops" / str(target.pid))


def test_agent_found_from_xdg_config_home(go_target, tmp_path):
    xdg = tmp_path / "xdg"
    target = go_target("agentpprof", env={"GOPS_CONFIG_DIR": "", "XDG_CONFIG_HOME": str(xdg)})
    proc = listed()[target.pid]
    assert proc["agent"]["port"] == target.agent_port
    assert proc["agent"]["port_file"] == str(xdg / "gops" / str(target.pid))


def test_deleted_binary_is_still_listed(go_target, tmp_path):
    copy = tmp_path / "vanishing"
    shutil.copy(target_binary("agentpprof"), copy)
    target = go_target("agentpprof", binary=copy)
    copy.unlink()
    entry = listed()[target.pid]
    assert entry["go_version"] == go_version("go")
    assert entry["exe"] == f"{copy} (deleted)"
    assert entry["agent"]["port"] == target.agent_port


def test_target_in_another_network_and_pid_namespace(go_target, tmp_path):
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not installed")
    wrapper = ["unshare", "--net", "--pid", "--fork", "--kill-child"]
    target = go_target("agentpprof", config_dir=tmp_path, wrapper=wrapper)
    go_pid = psutil.Process(target.pid).children()[0].pid  # target.pid is unshare's
    ns_pid = target.ready["pid"]  # the pid as the target sees itself
    assert ns_pid != go_pid

    entry = listed()[go_pid]
    assert entry["netns"] == "other"
    assert entry["agent"]["port"] == target.agent_port
    assert entry["agent"]["port_file"] == str(tmp_path / str(ns_pid))
    assert entry["agent"]["reachable"] is False
    assert entry["pprof"] is None
    assert any("another network namespace: not probed" in note for note in entry["notes"])


def test_processes_gotop_may_not_inspect_are_named_with_the_reason(go_target, world_dir):
    # A target owned by another user, and gotop as root without the capabilities
    # root needs to read other users' /proc entries: "run as root" would not help.
    binary = world_dir / "plain"
    shutil.copy(target_binary("plain"), binary)
    other = go_target(
        "plain", binary=binary,
        wrapper=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
    )
    without_capabilities = ("setpriv", "--bounding-set=-all")
    result = gotop("list", wrapper=without_capabilities)
    assert result.returncode == 0, result.stderr
    assert str(other.pid) not in [line.split()[0] for line in result.stdout.splitlines() if line]
    assert "refused even to root: gotop runs without CAP_SYS_PTRACE here" in result.stdout
    assert "as root" not in result.stdout
    assert re.search(r"^  permission denied reading /proc/PID/exe: pid \d+ \(", result.stdout, re.MULTILINE)
    assert "kthreadd" not in result.stdout  # kernel threads have no binary to be refused

    listing = json.loads(gotop("list", "--json", wrapper=without_capabilities).stdout)
    assert {"pid": other.pid, "name": "plain", "reason": "permission denied reading /proc/PID/exe"} \
        in listing["skipped"]
    assert other.pid not in [p["pid"] for p in listing["processes"]]


def test_info_shows_build_and_process_facts(go_target):
    target = go_target("agentpprof", args=["-workload", "retain", "-n", "100"])
    result = gotop("info", str(target.pid), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["pid"] == target.pid
    assert info["go_version"] == go_version("go")
    assert info["build"]["settings"]["GOOS"] == "linux"
    assert any(d["path"] == "github.com/google/gops" for d in info["build"]["deps"])
    assert info["rss"] > 100 * 64 * 1024  # the retained 6.4 MiB are resident
    assert info["threads"] >= 2
    assert info["open_fds"] >= 3
    assert info["cmdline"][1:] == ["-workload", "retain", "-n", "100"]
    ports = {s["port"] for s in info["listening"]}
    assert target.agent_port in ports and int(target.http_addr.rsplit(":", 1)[1]) in ports

    text = gotop("info", str(target.pid))
    assert text.returncode == 0
    assert f"127.0.0.1:{target.agent_port} (gops agent)" in text.stdout
    assert "github.com/google/gops v0.3.28" in text.stdout


def test_info_errors_are_one_line(tmp_path):
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        not_go = gotop("info", str(sleeper.pid))
    finally:
        sleeper.kill()
        sleeper.wait()
    gone = gotop("info", str(sleeper.pid))
    for result, message in ((not_go, "is not a Go process"), (gone, "no process with pid")):
        assert result.returncode == 2
        assert message in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_hostile_process_name_is_printed_as_plain_text(go_target, tmp_path):
    hostile = tmp_path / "evil\x1b[31mred\x07"
    shutil.copy(target_binary("plain"), hostile)
    target = go_target("plain", binary=hostile)
    result = gotop("list")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    line = next(line for line in result.stdout.splitlines() if line.startswith(f"{target.pid} "))
    assert "evil\\x1b[31mred" in line


def test_rescan_reuses_cached_identities(go_target):
    target = go_target("agentpprof")
    scanner = Scanner()
    first = {p.pid: p for p in scanner.scan().processes}
    second = {p.pid: p for p in scanner.scan().processes}
    assert first[target.pid].build is second[target.pid].build  # not parsed again
    assert second[target.pid].agent == first[target.pid].agent
    target.kill()
    assert target.pid not in {p.pid for p in scanner.scan().processes}

"""The one-shot commands that talk to targets, against real Go processes."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from faultservers import CannedAnswerServer, InjectingProxy, http_response
from gotargets import gops_cli, target_binary
from hostileprofiles import profile_naming

WAIT_DURATION_PARK = 37


def gotop(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gotop", *args], capture_output=True, text=True, timeout=timeout)


def ok(*args: str) -> str:
    result = gotop(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def snapshot(target: str, *options: str) -> dict:
    return json.loads(ok("snapshot", target, "--json", *options))


def gops(*args: str) -> str:
    return subprocess.run([str(gops_cli()), *args], capture_output=True, text=True, check=True, timeout=30).stdout


def gops_memstats(agent: str) -> dict[str, int]:
    """Byte and count fields of `gops memstats`, by gops key."""
    values = {}
    for line in gops("memstats", agent).splitlines():
        key, _, value = line.partition(": ")
        m = re.search(r"\((\d+) bytes\)$|^(?:when heap-alloc >= )?(\d+)(?: bytes)?$", value)
        if m:
            values[key] = int(m[1] or m[2])
    return values


@pytest.mark.parametrize("toolchain", ["go", "go1.19"])
def test_snapshot_agrees_with_gops_cli_and_expvar(go_target, toolchain):
    t = go_target("agentpprof", toolchain=toolchain, args=["-workload", "retain", "-n", "40"])
    # The gops CLI finds port files in its own config dir: name the agent's address.
    before = gops_memstats(t.ready["agent"])
    by_agent = snapshot(t.ready["agent"])  # host:port: the agent alone
    by_http = snapshot(f"http://{t.http_addr}")  # expvar and pprof alone
    by_pid = snapshot(str(t.pid))  # both
    after = gops_memstats(t.ready["agent"])
    gops_stats = dict(line.split(": ") for line in gops("stats", t.ready["agent"]).splitlines())

    assert by_agent["source"]["memstats"] == "agent"
    assert by_http["source"]["memstats"] == "expvar"
    assert by_pid["source"] == {"memstats": "expvar", "stats": "memory", "process": "procfs"}
    for snap in (by_agent, by_http, by_pid):
        m = snap["memstats"]
        # Counters read between two gops readings lie between them.
        for ours, theirs in (("total_alloc", "total-alloc"), ("mallocs", "mallocs"), ("num_gc", "num-gc")):
            assert before[theirs] <= m[ours] <= after[theirs], ours
        if before["num-gc"] == after["num-gc"]:  # no GC in between: the heap goal is fixed
            assert m["next_gc"] == before["next-gc"]
        assert m["heap_alloc"] >= 40 * 64 << 10  # the retained blocks
    assert by_pid["gomaxprocs"] == int(gops_stats["GOMAXPROCS"])
    assert by_pid["num_cpu"] == int(gops_stats["num CPU"])
    assert abs(by_pid["goroutines"] - int(gops_stats["goroutines"])) <= 2
    assert by_pid["process"]["rss"] > 40 * 64 << 10
    assert by_pid["process"]["threads"] >= 2
    assert by_agent["process"] is not None  # the loopback agent was mapped to its pid


def test_snapshot_text(go_target):
    t = go_target("agentpprof")
    out = ok("snapshot", str(t.pid))
    assert out.startswith(f"pid {t.pid} (agentpprof)")
    assert re.search(r"^goroutines\s+\d+\s+OS threads created \d+\s+GOMAXPROCS \d+", out, re.M)
    assert re.search(r"^process\s+RSS [\d.]+ MiB\s+CPU [\d.]+%", out, re.M)


def test_gc_runs_and_num_gc_rises(go_target):
    for t in (go_target("agentpprof"), go_target("pprofonly")):
        before = snapshot(str(t.pid))["memstats"]["num_gc"]
        out = ok("gc", str(t.pid))
        assert f"GC cycles {before} -> {before + 1}" in out
        assert snapshot(str(t.pid))["memstats"]["num_forced_gc"] >= 1


def test_setgc_round_trips(go_target):
    t = go_target("agentpprof")
    assert ok("setgc", str(t.pid), "50").strip().endswith("GC percent set to 50 (was 100)")
    assert ok("setgc", str(t.pid), "off").strip().endswith("GC percent set to off (was 50)")
    assert ok("setgc", t.ready["agent"], "100").strip().endswith("GC percent set to 100 (was off)")
    # The gops CLI sees the same agent state.
    assert gops("setgc", t.ready["agent"], "100").strip() == "New GC percent set to 100. Previous value was 100."


def test_setgc_needs_the_agent_and_a_number(go_target):
    t = go_target("pprofonly")
    result = gotop("setgc", str(t.pid), "50")
    assert result.returncode == 2
    assert result.stderr.strip() == f"gotop: pid {t.pid} (pprofonly): setting the GC percent needs the gops agent"
    result = gotop("setgc", str(t.pid), "lots")
    assert result.returncode == 2 and "is not a GC percent" in result.stderr


@pytest.mark.parametrize("via", ["pid", "agent", "http"])
def test_goroutine_groups_count_what_the_target_spawned(go_target, via):
    t = go_target("agentpprof", args=["-workload", "park", "-n", str(WAIT_DURATION_PARK)])
    target = {"pid": str(t.pid), "agent": t.ready["agent"], "http": f"http://{t.http_addr}"}[via]
    out = ok("stack", target, "--groups")
    first_group = out.split("\n\n")[1]
    assert re.match(rf"\s*{WAIT_DURATION_PARK}\s+gotop.test/targets/internal/workload.parkedHere", first_group)
    if via == "agent":  # from the full dump: states are known
        assert "[chan receive]" in first_group


async def test_stack_groups_errors_name_the_target(go_target):
    """A goroutine profile (HTTP; a real target behind a lying proxy) or a dump
    (a lying agent) that does not parse: the one-line error names the target."""
    t = go_target("pprofonly")
    garbage = http_response("200 OK", gzip.compress(b"\x08\x01garbage"), content_type="application/octet-stream")
    async with InjectingProxy(t.http_addr, {"/debug/pprof/goroutine": garbage}) as proxy:
        result = await asyncio.to_thread(gotop, "stack", "--groups", proxy.url)
    assert_one_line_error(result, f"{proxy.url}: goroutine profile: not a pprof profile")
    async with CannedAnswerServer(b"goroutine 1 x\n") as agent:
        result = await asyncio.to_thread(gotop, "stack", "--groups", f"127.0.0.1:{agent.port}")
    assert_one_line_error(result, f"127.0.0.1:{agent.port}: goroutine dump: not a goroutine dump")


def test_stack_groups_are_labelled_by_the_code_that_waits(go_target):
    t = go_target("pprofonly", args=["-workload", "net-readers", "-n", "2"])
    out = ok("stack", f"http://{t.http_addr}", "--groups")
    labels = {head.split()[1] for head in re.findall(r"^ {0,6}\d+  \S+", out, re.MULTILINE)}
    workload = "gotop.test/targets/internal/workload"
    assert {f"{workload}.{f}" for f in ("readLines", "readFrames", "readRaw", "acceptForever")} <= labels, out
    assert not any(label.startswith("internal/poll.") for label in labels), labels
    groups = json.loads(ok("stack", f"http://{t.http_addr}", "--groups", "--json"))["groups"]
    assert sum(g["count"] for g in groups if g["label"] == f"{workload}.readRaw") == 2, groups


def test_stack_dump_is_the_full_text(go_target):
    t = go_target("agentpprof", args=["-workload", "park", "-n", "5"])
    out = ok("stack", t.ready["agent"])
    assert out.count("gotop.test/targets/internal/workload.parkedHere(") == 5
    assert "\t/" in out  # file lines keep their tab


@pytest.mark.parametrize("kind", ["heap", "goroutine", "cpu", "trace"])
def test_profile_is_saved_private_in_standard_format(go_target, tmp_path, kind):
    t = go_target("agentpprof", args=["-workload", "churn", "-n", "50"])
    path = tmp_path / f"{kind}.out"
    path.write_text("old content, world-readable")
    path.chmod(0o644)
    args = ["profile", kind, str(t.pid), "-o", str(path)]
    if kind in ("cpu", "trace"):
        args += ["--seconds", "1s" if kind == "cpu" else "500ms"]  # a CPU profile lasts whole seconds
    out = ok(*args)
    assert str(path) in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = path.read_bytes()
    if kind == "trace":
        assert data.startswith(b"go 1.") and b" trace\x00" in data[:16]
    else:
        assert data[:2] == b"\x1f\x8b"
        # `go tool pprof` reads it.
        top = subprocess.run(["go", "tool", "pprof", "-top", str(path)], capture_output=True, text=True, timeout=60)
        assert top.returncode == 0, top.stderr
        assert "Showing nodes" in top.stdout or "Type:" in top.stdout


def test_profile_to_a_planted_symlink_is_refused(go_target, tmp_path):
    """`-o` naming a symlink (another user's, in a shared directory): one line,
    and the file it points at keeps its content and mode."""
    t = go_target("agentpprof")
    precious = tmp_path / "precious"
    precious.write_text("root's file")
    precious.chmod(0o644)
    link = tmp_path / "heap.pb.gz"
    link.symlink_to(precious)
    assert_one_line_error(gotop("profile", "heap", str(t.pid), "-o", str(link)), f"{link}: is a symbolic link")
    assert precious.read_text() == "root's file" and stat.S_IMODE(precious.stat().st_mode) == 0o644


def test_profile_default_file_name(go_target, tmp_path):
    t = go_target("agentpprof")
    out = subprocess.run([sys.executable, "-m", "gotop", "profile", "heap", str(t.pid)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    [saved] = list(tmp_path.iterdir())
    assert saved.name.startswith(f"heap-{t.pid}-") and saved.name.endswith(".pb.gz")
    assert gzip.decompress(saved.read_bytes())


# -- bad input: one line naming the target, exit 2, never a traceback or a hang --


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def test_dead_target(go_target):
    t = go_target("agentpprof")
    agent = t.ready["agent"]
    t.kill()
    assert_one_line_error(gotop("snapshot", str(t.pid)), f"no process with pid {t.pid}")
    assert_one_line_error(gotop("snapshot", agent), agent, "refused")
    assert_one_line_error(gotop("stack", f"http://{t.http_addr}"), t.http_addr)


def test_a_pprof_port_named_as_an_agent_is_not_a_gops_agent(go_target):
    t = go_target("pprofonly")
    for command in ("snapshot", "stack", "gc"):
        result = gotop(command, t.http_addr)
        assert_one_line_error(result, t.http_addr, "not a gops agent")
        assert "not supported" not in result.stderr


def test_not_a_go_process():
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        assert_one_line_error(gotop("snapshot", str(sleeper.pid)), "is not a Go process")
    finally:
        sleeper.kill()
        sleeper.wait()


class HungAgentServer:
    """Stand-in fault server: accepts connections and never answers (a hung gops agent)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def test_hung_agent_times_out():
    server = HungAgentServer()
    try:
        result = gotop("snapshot", f"127.0.0.1:{server.port}")
    finally:
        server.close()
    assert_one_line_error(result, f"127.0.0.1:{server.port}", "no answer within")


def test_wrong_protocol_on_the_port(go_target):
    t = go_target("pprofonly")
    # An HTTP server named as a gops agent, and a gops agent named as HTTP.
    assert_one_line_error(gotop("snapshot", t.http_addr), t.http_addr)
    a = go_target("agentpprof")
    assert_one_line_error(gotop("stack", f"http://{a.ready['agent']}"), a.ready["agent"])


def test_unknown_profile_kind_and_missing_transport(go_target):
    t = go_target("plain")
    assert_one_line_error(gotop("profile", "heap", str(t.pid)), "needs the gops agent or net/http/pprof")
    a = go_target("agentpprof")
    assert_one_line_error(gotop("profile", "goroutine", a.ready["agent"]), "needs net/http/pprof")


def test_snapshot_of_a_go_process_with_nothing_added_reads_its_memory(go_target):
    t = go_target("plain", args=["-workload", "park", "-n", "30"])
    snap = snapshot(str(t.pid))
    assert snap["source"] == {"memstats": "memory", "stats": "memory", "process": "procfs"}
    assert snap["goroutines"] == 31 and snap["gomaxprocs"] >= 1 and snap["os_threads"] >= 2
    assert snap["memstats"]["num_gc"] >= 0 and snap["memstats"]["next_gc"] > 0
    assert snap["process"]["rss"] > 0 and snap["problems"] == []


def test_snapshot_through_one_source_alone(go_target):
    t = go_target("agentpprof")
    assert snapshot(str(t.pid), "--source", "agent")["source"] == {
        "memstats": "agent", "stats": "agent", "process": "procfs"}
    assert snapshot(str(t.pid), "--source", "memory")["source"] == {
        "memstats": "memory", "stats": "memory", "process": "procfs"}
    by_expvar = snapshot(str(t.pid), "--source", "expvar")
    assert by_expvar["source"] == {"memstats": "expvar", "process": "procfs"} and by_expvar["goroutines"] is None
    assert "the expvar source does not give it" in by_expvar["problems"][0]


# retain-generic allocates in a generic function named with a func shape, which
# pprof shows shortened: retainGeneric[go.shape.func(int)] as retainGeneric[go.shape.func].
@pytest.mark.parametrize("workload, extra, site", [
    ("retain", [], "workload.retainHere"),
    ("retain", ["--cum"], "workload.retainHere"),
    ("retain", ["--sample-index", "alloc_space"], "workload.retainHere"),
    ("retain", ["--sample-index", "inuse_objects"], None),  # few big objects may fall under the 0.5 % node cut
    ("retain-generic", [], "workload.retainGeneric[go.shape.func] "),
])
def test_top_equals_go_tool_pprof(go_target, tmp_path, workload, extra, site):
    t = go_target("agentpprof", args=["-workload", workload, "-n", "400"])
    for _ in range(2):  # the heap profile shows allocations once two GC cycles published them
        ok("gc", str(t.pid))
    path = tmp_path / "heap.pb.gz"
    ok("profile", "heap", str(t.pid), "-o", str(path))
    pprof_flags = ["-" + f.lstrip("-").replace("-", "_") if f.startswith("-") else f for f in extra]
    pprof_flags = [f"{a}={b}" for a, b in zip(pprof_flags[::2], pprof_flags[1::2])] if "--sample-index" in extra \
        else pprof_flags
    expected = subprocess.run(["go", "tool", "pprof", "-top", *pprof_flags, str(path)],
                              capture_output=True, text=True, check=True, timeout=60).stdout
    assert ok("top", str(path), *extra) == expected
    if site:
        assert site in expected


def test_top_of_a_live_target_as_json(go_target):
    t = go_target("agentpprof", args=["-workload", "retain", "-n", "400"])
    for _ in range(2):  # the heap profile shows allocations once two GC cycles published them
        ok("gc", str(t.pid))
    report = json.loads(ok("top", str(t.pid), "--json", "-n", "3"))
    assert report["sample_type"] == "inuse_space" and report["unit"] == "bytes"
    first = report["rows"][0]
    assert first["function"] == "gotop.test/targets/internal/workload.retainHere"
    # Heap profiles sample one allocation per 512 KiB on average: about 47 of the
    # 400 blocks are seen, so the estimate is within a few standard deviations.
    assert first["flat"] == pytest.approx(400 * 64 << 10, rel=0.5)
    assert len(report["rows"]) == 3
    assert report["rows"][-1]["sum_pct"] <= 100.0


def test_top_of_garbage_is_one_line(tmp_path):
    junk = tmp_path / "junk.pb.gz"
    junk.write_bytes(b"\x1f\x8b" + b"\x00" * 100)
    assert_one_line_error(gotop("top", str(junk)), str(junk))


def list_errors(profile: Path, *extra: str) -> list[str]:
    """`top --list` of main.retain: its error lines (a FIFO must not hang it)."""
    result = gotop("top", str(profile), "--list", "main\\.retain", *extra, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line.startswith(" Error: ")]


@pytest.mark.parametrize("source, why", [
    ("/etc/shadow", "outside the program's source directories: not read"),
    ("/dev/tty", "outside the program's source directories: not read"),
    ("/proc/self/environ", "outside the program's source directories: not read"),
])
def test_list_reads_no_file_outside_the_programs_source(tmp_path, source, why):
    """A profile (from a remote target, or handed over) naming a secret or a
    device: nothing read, one line saying why."""
    assert list_errors(profile_naming(tmp_path, source)) == [f" Error: {source}: {why}"]


def test_list_of_a_file_name_with_a_nul_is_one_line(tmp_path):
    assert list_errors(profile_naming(tmp_path, "/tmp/a\0b/main.go")) == [
        " Error: '/tmp/a\\x00b/main.go': not a file name"]


def test_list_reads_no_fifo_and_no_symlink_out_even_in_a_module(tmp_path):
    """In a real module directory (go.mod): a FIFO named main.go proves nothing
    and is refused without opening it (it would block for ever), even in a
    directory the user names; a symlink out is refused too."""
    module = tmp_path / "leaky"
    module.mkdir()
    (module / "go.mod").write_text("module gotoplab/leaky\n\ngo 1.22\n")
    os.mkfifo(module / "main.go")
    (module / "evil.go").symlink_to("/etc/shadow")
    fifo = profile_naming(tmp_path, str(module / "main.go"))
    assert list_errors(fifo) == [f" Error: {module / 'main.go'}: outside the program's source directories: not read"]
    assert list_errors(fifo, "--source-dir", str(module)) == [
        f" Error: {module / 'main.go'}: not a regular file: not read"]
    assert list_errors(profile_naming(tmp_path, str(module / "evil.go")), "--source-dir", str(module)) == [
        f" Error: {module / 'evil.go'}: outside the program's source directories: not read"]


SECRET = "AWS_SECRET_ACCESS_KEY=not-for-profiles"


def project_with_secrets(tmp_path: Path) -> Path:
    """A module with a library package at its root, a main package below, and a .env."""
    module = tmp_path / "proj"
    (module / "cmd" / "leaky").mkdir(parents=True)
    (module / "go.mod").write_text("module gotoplab/proj\n")
    (module / ".env").write_text(f"{SECRET}\n" * 40)  # on every line main.retain may have
    (module / "config.go").write_text("package config\n" + f"// {SECRET}\n" * 40)
    (module / "cmd" / "leaky" / "main.go").write_text(
        "// Copyright the authors.\n\n/* The leaky\n   service. */\n//go:build linux\n\npackage main\n"
        + "".join(f"// line {n}\n" for n in range(8, 40)))
    return module


def test_list_reads_no_secret_a_profile_names_in_a_module(tmp_path):
    """A profile naming main.retain in a project's .env, or in a file of another
    package: nothing proves the module, nothing is read; a directory the user
    names shows its Go source only."""
    module = project_with_secrets(tmp_path)
    for name in (".env", "config.go"):
        profile = profile_naming(tmp_path, str(module / name))
        result = gotop("top", str(profile), "--list", "main\\.retain", "--json", timeout=60)
        assert result.returncode == 0, result.stderr
        assert "not-for-profiles" not in result.stdout
        assert list_errors(profile) == [
            f" Error: {module / name}: outside the program's source directories: not read"]
    assert list_errors(profile_naming(tmp_path, str(module / ".env")), "--source-dir", str(module)) == [
        f" Error: {module / '.env'}: not Go source: not read"]


def test_list_reads_a_source_file_of_the_module(tmp_path):
    """The same profile naming a main package's file in its module: the source is
    shown (the module is proven by its go.mod and the package clause; no --source-dir needed)."""
    module = project_with_secrets(tmp_path)
    out = ok("top", str(profile_naming(tmp_path, str(module / "cmd" / "leaky" / "main.go"))),
             "--list", "main\\.retain")
    assert "Error" not in out and ":// line " in out
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "main.go").write_text("package main\n")
    profile = profile_naming(tmp_path, str(elsewhere / "main.go"))  # no go.mod: only with --source-dir
    assert list_errors(profile) == [
        f" Error: {elsewhere / 'main.go'}: outside the program's source directories: not read"]
    assert list_errors(profile, "--source-dir", str(elsewhere)) == []


def test_list_of_a_trimpath_binary_says_the_files_are_not_here(go_target):
    t = go_target("agentpprof", binary=target_binary("agentpprof", trimpath=True), args=["-workload", "retain"])
    for _ in range(2):
        ok("gc", str(t.pid))
    out = ok("top", str(t.pid), "--list", "workload\\.retainHere")
    assert "Errno" not in out
    assert (" Error: gotop.test/targets/internal/workload/basic.go: not on this host "
            "(a -trimpath build names files by module path)") in out.splitlines()


@pytest.mark.parametrize("mode, regex, shown", [
    ("--peek", "workload\\.retain", "retainHere"),
    ("--list", "workload\\.retain", "retainHere"),
    ("--list", "main\\.", "workload.Start()"),  # main.main's source, in the main package's directory
])
def test_top_peek_and_list_equal_go_tool_pprof(go_target, tmp_path, mode, regex, shown):
    t = go_target("agentpprof", args=["-workload", "retain", "-n", "400"])
    for _ in range(2):
        ok("gc", str(t.pid))
    path = tmp_path / "heap.pb.gz"
    ok("profile", "heap", str(t.pid), "-o", str(path))
    expected = subprocess.run(["go", "tool", "pprof", f"-{mode[2:]}", regex, str(path)],
                              capture_output=True, text=True, check=True, timeout=60).stdout
    assert ok("top", str(path), mode, regex) == expected
    assert shown in expected

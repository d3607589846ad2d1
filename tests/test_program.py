"""Programs gotop starts itself (`gotop check -- CMD`, and under `gotop run`): the GC
trace turned into readings and kept apart from the program's own output, `go run .`
followed to its Go child, GODEBUG merged, the process group stopped (also when
gotop is killed), and `gotop check -- CMD` on stripped programs that leak, are
healthy, or end early."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from elfbytes import without_section_headers
from gotargets import TARGETS_DIR, TOOLCHAINS, target_binary
from waiting import eventually

from gotop.engine.program import Program, ProgramError, prepare, with_gctrace
from gotop.model.gctrace import is_trace_line
from gotop.sources.gctrace import GcReading

STRIPPED = ("-ldflags=-s -w",)
RETAINING = {"GOGC": "25"}  # leakcases.RETAINING_ENV: GC cycles often enough for a 20 s check
LEAK = ["-workload", "retain-slice", "-n", "25"]  # 32 KiB every 25 ms: 1.3 MB/s kept for ever
OTHER_TOOLCHAINS = ("go1.19", "go1.27")  # beside the installed Go: the GC trace of an old and of the newest runtime


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# --- GODEBUG -----------------------------------------------------------------------------------

@pytest.mark.parametrize("godebug, merged", [
    (None, "gctrace=1"), ("", "gctrace=1"), ("madvdontneed=1", "madvdontneed=1,gctrace=1"),
    ("gctrace=0,http2client=0", "http2client=0,gctrace=1"),  # gotop needs it on
    ("gctrace=2", "gctrace=2"), ("a=1,gctrace=1,b=2", "a=1,gctrace=1,b=2"),  # a level of its own is kept
    ("gctrace=2,gctrace=0", "gctrace=1"),  # the last one is what the runtime takes
])
def test_the_programs_godebug_gets_gctrace(godebug, merged):
    assert with_gctrace(godebug) == merged
    argv, env = prepare(["./server", "-v"], {"GODEBUG": godebug} if godebug is not None else {})
    assert (argv, env["GODEBUG"]) == (["./server", "-v"], merged)


def test_go_run_gives_gctrace_to_the_program_alone():
    """The go command and the compiler are Go programs: with gctrace they would print GC traces of their own."""
    argv, env = prepare(["go", "run", ".", "-n", "5"], {"GODEBUG": "gctrace=1,madvdontneed=1", "HOME": "/h"})
    assert argv == ["go", "run", "-exec=env GODEBUG=gctrace=1,madvdontneed=1", ".", "-n", "5"]  # its own kept
    assert env == {"GODEBUG": "madvdontneed=1", "HOME": "/h"}
    argv, env = prepare(["/usr/bin/go", "-C", "cmd/server", "run", "."], {"GODEBUG": "gctrace=1"})
    assert argv == ["/usr/bin/go", "-C", "cmd/server", "run", "-exec=env GODEBUG=gctrace=1", "."]
    assert "GODEBUG" not in env
    argv, _ = prepare(["go", "run", "."], {"GODEBUG": "panicnil=1,x='a b'"})
    assert argv[2] == """-exec=env "GODEBUG=panicnil=1,x='a b',gctrace=1\""""  # one field of go's quoted list
    assert prepare(["go", "build", "."], {})[0] == ["go", "build", "."]  # not go run: as given


def test_go_run_with_an_exec_of_its_own_is_refused_in_one_line():
    with pytest.raises(ProgramError, match="`go run -exec` cannot be used with gotop") as info:
        Program(["go", "run", "-exec=wine", "."])
    assert "\n" not in str(info.value)
    with pytest.raises(ProgramError, match="no command to run"):
        Program([])


def test_help_says_how_to_start_a_program():
    top = run_gotop("--help")
    assert "gotop run -- CMD" in top.stdout
    run = run_gotop("run", "--help").stdout
    assert "usage: gotop run [OPTIONS] -- CMD [ARGS...]" in run
    for word in ("GODEBUG=gctrace=1", "go run .", "--log", "restarts", "process group"):
        assert word in " ".join(run.split()), word
    check = run_gotop("check", "--help").stdout
    assert "(TARGET... | -- CMD [ARGS...])" in check and "last lines of stderr" in " ".join(check.split())


@pytest.mark.parametrize("args, error", [
    (["run"], "gotop: gotop run: give the program to start after --, e.g. gotop run -- ./server -flag"),
    (["run", "--", "/bin/true"], "gotop: the TUI needs a terminal on stdin and stdout "
     "(for a reading in a script: gotop snapshot, gotop list --json, gotop record)"),
    (["check"], "gotop: nothing to check: give TARGET... or -- CMD [ARGS...]"),
    (["check", "1", "--", "/bin/true"], "gotop: check targets, or start a program after --, not both"),
])
def test_starting_a_program_wrongly_is_one_line(args, error):
    result = run_gotop(*args)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [error]


def run_gotop(*args: str) -> subprocess.CompletedProcess:
    """gotop without a terminal (its stdin from /dev/null, its output captured)."""
    return subprocess.run([sys.executable, "-m", "gotop", *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)


# --- the GC trace and the program's output ---------------------------------------------------------

@pytest.mark.go
async def test_the_gc_trace_becomes_readings_and_the_programs_output_is_kept_whole(tmp_path):
    """A program that writes a numbered line to stderr every 2 ms while its GC runs: every line is in
    the log, in order; the trace lines are in readings (and their own file), never in the log."""
    program = Program([str(target_binary("plain")), "-workload", "chatty", "-n", "2"], tmp_path / "out.log",
                      environ={**os.environ, "GODEBUG": "madvdontneed=1"})
    program.start()
    assert _godebug(program.pid) == "madvdontneed=1,gctrace=1"  # merged into the GODEBUG it had
    readings: list[GcReading] = []

    def enough() -> bool:
        readings.extend(program.output.take_readings())
        return program.output.lines >= 301 and len(readings) >= 10  # READY and 300 numbered lines

    try:
        await eventually(enough)
    finally:
        program.stop()
    log = (tmp_path / "out.log").read_text().splitlines()
    assert 'READY {"pid":' + str(program.pid) + "}" in log
    numbers = [int(m[1]) for line in log if (m := re.search(r"chatty line (\d+)", line))]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 300
    # A line the runtime wrote in pieces and the program's own may mix: then that line is the program's.
    assert not any(is_trace_line(line) for line in log)
    trace = (tmp_path / "out.log.gctrace").read_text().splitlines()
    assert all(map(is_trace_line, trace)) and len(trace) >= len(readings)
    nums = [r.cycle.num for r in readings]
    assert nums == sorted(set(nums)) and nums[0] == 1
    assert all(r.cycle.gomaxprocs >= 1 and r.cycle.heap_goal >= 4 << 20 for r in readings)
    tail = program.output.last_stderr(3)
    assert all(line.startswith("chatty line ") for line in tail)
    assert oct(os.stat(tmp_path / "out.log").st_mode & 0o777) == "0o600"


@pytest.mark.go
async def test_go_run_is_followed_to_its_go_child_with_gctrace_merged(tmp_path, monkeypatch):
    monkeypatch.chdir(TARGETS_DIR / "plain")
    env = {**os.environ, "GOFLAGS": "-mod=mod -buildvcs=false", "GODEBUG": "madvdontneed=1"}
    program = Program(["go", "run", ".", "-workload", "churn"], tmp_path / "run.log", environ=env)
    program.start()
    try:
        process = await eventually(lambda: _found(program), timeout=300)  # go run builds first
        assert process.pid != program.pid and process.build.path == "gotop.test/targets/plain"
        assert program.pid in [p.pid for p in psutil.Process(process.pid).parents()]
        assert _godebug(process.pid) == "madvdontneed=1,gctrace=1"
        assert _godebug(program.pid) == "madvdontneed=1"  # the go command's own: no GC trace from it
        readings = await eventually(lambda: program.output.take_readings())
        assert readings[0].cycle.num == 1  # the program's first cycle: nothing of the go command or the compiler
    finally:
        program.stop()
    assert gone(process.pid) and gone(program.pid)
    assert not any(line.startswith(("gc ", "# ")) for line in (tmp_path / "run.log").read_text().splitlines())


def _found(program: Program):
    """The Go program, once the command has started it (a thread would do the same in gotop)."""
    try:
        return program.find_go_process(timeout=0)
    except ProgramError:
        return None


def _godebug(pid: int) -> str | None:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return next((e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"GODEBUG=")), None)


@pytest.mark.go
async def test_stopping_ends_the_whole_process_group():
    """A command that leaves a child of its own behind: the group goes, the child with it."""
    binary = target_binary("plain")
    program = Program(["sh", "-c", '"$0" -workload park & exec "$0" -workload churn', str(binary)])
    program.start()
    try:
        # Both run: sh has started the child and become the program (until then, the child
        # is the first Go program and the one gotop would watch).
        child = await eventually(lambda: psutil.Process(program.pid).children())
        await eventually(lambda: Path(psutil.Process(program.pid).exe()) == binary.resolve())
    finally:
        program.stop()
    assert gone(program.pid)
    await eventually(lambda: gone(child[0].pid))


# --- gotop check -- CMD ------------------------------------------------------------------------------

CHECK_FOR = "20s"


def run_check(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`gotop check ARGS` in a process of its own (a safety timeout, not a timing assertion)."""
    return subprocess.run([sys.executable, "-m", "gotop", "check", *args], capture_output=True, text=True,
                          timeout=180, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Every check at once, each starting its program: a stripped (-s -w) one that leaks heap (built
    with the installed Go, Go 1.19 and Go 1.27), the same without section headers (its memory cannot
    be read: nothing but its GC trace and /proc), a stripped healthy one, one that ends mid-check, one
    that cannot start its work, and one with the gops agent and net/http/pprof."""
    stripped = target_binary("plain", flags=STRIPPED)
    sstripped = tmp_path_factory.mktemp("sstrip") / "plain"
    sstripped.write_bytes(without_section_headers(target_binary("plain").read_bytes()))
    sstripped.chmod(0o755)
    runs = {
        "leak": (("--for", CHECK_FOR, "--json", "--", str(stripped), *LEAK), RETAINING),
        **{f"leak {tc}": (("--for", CHECK_FOR, "--json", "--", str(target_binary("plain", tc, flags=STRIPPED)), *LEAK),
                          RETAINING) for tc in OTHER_TOOLCHAINS if TOOLCHAINS[tc].available()},
        "trace alone": (("--for", CHECK_FOR, "--json", "--", str(sstripped), *LEAK), RETAINING),
        "healthy": (("--for", CHECK_FOR, "--", str(stripped), "-workload", "healthy-churn"), None),
        "crash": (("--for", CHECK_FOR, "--", str(stripped), "-workload", "crash", "-n", "4000"), None),
        "nope": (("--for", CHECK_FOR, "--json", "--", str(stripped), "-workload", "nope"), None),
        "agent and pprof": (("--for", CHECK_FOR, "--json", "--", str(target_binary("agentpprof")),
                             "-workload", "leak-send"), None),
        "late pprof": (("--for", CHECK_FOR, "--json", "--", str(target_binary("pprofonly")), "-listen-after", "3s",
                        "-workload", "leak-send"), None),
        "goroutines of a plain one": (("--for", CHECK_FOR, "--json", "--", str(target_binary("plain")),
                                       "-workload", "leak-send"), None),
    }
    with ThreadPoolExecutor(len(runs)) as pool:
        futures = {name: pool.submit(run_check, *args, env=env) for name, (args, env) in runs.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.go
@pytest.mark.parametrize("run", ["leak", "trace alone", *(f"leak {tc}" for tc in OTHER_TOOLCHAINS)])
def test_check_finds_the_heap_leak_of_a_stripped_program_in_its_gc_trace(checked, run):
    if run not in checked:
        pytest.skip(f"{run.split()[-1]} is not installed (tests/run installs it)")
    result = checked[run]
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "leak"
    [finding] = report["findings"]
    assert finding["kind"] == "heap" and finding["rate_per_min"] > 0
    assert "heap marked live by each GC (its GC trace) rose by" in finding["evidence"][-1]["text"]
    [target] = report["targets"]
    assert target["watched"]["heap"]["unit"] == "GC cycles in its GC trace"
    assert target["watched"]["heap"]["readings"] >= target["watched"]["heap"]["needed"]
    assert target["watched"]["goroutines"]["watched"] is (run != "trace alone")  # groups from its memory, if readable
    program = report["program"]
    assert program["exited"] is False and program["command"][1:] == LEAK
    assert gone(target["pid"])  # stopped at the end


@pytest.mark.go
def test_check_finds_the_goroutine_leak_of_a_plain_program_in_its_memory(checked):
    """Nothing added to it: its goroutine groups come from its memory, beside its GC trace."""
    result = checked["goroutines of a plain one"]
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert [(f["kind"], f["where"].split(" ")[0].rsplit(".", 1)[1]) for f in report["findings"]] == [
        ("goroutines", "leakySendResult")]
    assert gone(report["targets"][0]["pid"])


@pytest.mark.go
def test_what_the_started_program_serves_adds_to_its_gc_trace(checked):
    """The agent and net/http/pprof of a started program are found as for any process: stack groups
    and heap profiles beside the GC trace."""
    result = checked["agent and pprof"]
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert [(f["kind"], f["where"].split(" ")[0].rsplit(".", 1)[1]) for f in report["findings"]] == [
        ("goroutines", "leakySendResult")]
    [target] = report["targets"]
    assert target["checked"]["heap_profiles"] >= 1, target  # from pprof or the agent: the memory has none
    assert target["watched"]["heap"]["unit"] == "GC cycles in its GC trace"
    # (whether 6 GC cycles ran in 20 s depends on how much the profiles it serves allocate)
    assert target["watched"]["goroutines"]["watched"] and target["watched"]["descriptors"]["watched"], target


@pytest.mark.go
def test_endpoints_the_started_program_opens_late_are_taken(checked):
    """A program that serves net/http/pprof only 3 s after it starts (a service that loads its
    data first): gotop's first look finds no endpoint; its heap profiles come once it listens."""
    result = checked["late pprof"]
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    [target] = report["targets"]
    assert target["checked"]["heap_profiles"] >= 1, target  # net/http/pprof alone serves them here
    assert [(f["kind"], f["where"].split(" ")[0].rsplit(".", 1)[1]) for f in report["findings"]] == [
        ("goroutines", "leakySendResult")]


@pytest.mark.go
def test_check_of_a_healthy_stripped_program_exits_0(checked):
    result = checked["healthy"]
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "verdict: ok"
    assert any(re.fullmatch(r"  watched: heap after GC \(\d+ GC cycles in its GC trace\)", line) for line in lines)
    assert any(line.startswith("program: ") and ": stopped by gotop at the end; its output: " in line
               for line in lines)


@pytest.mark.go
def test_a_program_that_ends_mid_check_is_an_error_with_its_status_and_stderr(checked):
    result = checked["crash"]
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    status = next(line for line in lines if line.startswith("program: "))
    assert re.search(r" exited with status 3 after \d+\.\d s, before the end of the check$", status)
    assert "  crash: giving up after 4000 ms" in lines
    assert re.fullmatch(r"verdict: error \(the program exited with status 3 after \d+\.\d s\)", lines[-1])
    assert "Traceback" not in result.stderr


@pytest.mark.go
def test_a_program_that_ends_before_it_can_be_watched_is_an_error_with_its_stderr(checked):
    result = checked["nope"]
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert (report["verdict"], report["program"]["exit_status"]) == ("error", 2)
    assert report["program"]["stderr_tail"][0].startswith('unknown workload "nope"')
    if re.search(r"gotop check: watching pid \d+ \(plain\)", result.stderr):
        # Caught alive in its first milliseconds (2 of some 1100 runs beside two burners): the watch saw it end.
        assert [re.fullmatch(r"exited after \d+ s", t["problem"]) is not None for t in report["targets"]] == [True]
        return
    assert re.search(r"gotop check: `\S+plain -workload nope` exited with status 2 after \d+\.\d s, "
                     "before gotop could watch it\n", result.stderr)
    assert '  unknown workload "nope"' in result.stderr


@pytest.mark.go
def test_check_of_a_command_that_is_not_there_is_one_line():
    result = run_check("--for", "5s", "--", "/nonexistent/server")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "gotop: cannot start `/nonexistent/server`: No such file or directory")


@pytest.mark.go
async def test_a_killed_check_leaves_no_program_behind():
    """SIGKILL gives gotop no chance to clean up: the reaper ends the program's group."""
    gotop = subprocess.Popen([sys.executable, "-m", "gotop", "check", "--for", "2m", "--",
                              str(target_binary("plain")), "-workload", "park"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert gotop.stderr is not None
        watching = ""
        while not watching.startswith("gotop check: watching"):
            watching = gotop.stderr.readline()
            assert watching, "gotop check ended before it watched"
        pid = int(re.search(r"watching pid (\d+)", watching)[1])
        assert not gone(pid)
        gotop.send_signal(signal.SIGKILL)
        gotop.wait()
        await eventually(lambda: gone(pid))
    finally:
        if gotop.poll() is None:
            gotop.kill()
            gotop.wait()

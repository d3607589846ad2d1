"""`gotop escapes`: the compiler's escape analysis of tests/targets/escapes, built
now with Go 1.19, the installed Go and Go 1.27.3, and joined to the heap profile
of the running target. The target has one allocation of each cause on a line
marked `// escape: CAUSE`; `-hot CAUSE` makes that site the busiest."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from gotargets import TARGETS_DIR, TOOLCHAINS, go_version
from targetio import http_get
from test_cli import IMPORT_PROBE
from test_escapes_model import marked_lines
from waiting import eventually

from gotop.discovery.processes import Scanner
from gotop.engine.escapes import find_source
from gotop.model.escapes import Cause
from gotop.model.profile import parse_profile

pytestmark = pytest.mark.go

TARGET = TARGETS_DIR / "escapes"
MAIN = str(TARGET / "main.go")
LINE_OF = {cause: line for line, cause in marked_lines().items()}


def gotop(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gotop", *args], capture_output=True, text=True, timeout=600,
                          env=env)


def toolchain_env(name: str) -> dict[str, str]:
    """The environment that makes `go` the toolchain `name` (tests/gotargets.py)."""
    toolchain = TOOLCHAINS[name]
    if not toolchain.available():
        pytest.skip(f"Go toolchain {name} is not installed ({toolchain.go}; tests/run installs it)")
    env = toolchain.run_env()
    if os.path.isabs(toolchain.go):
        env["PATH"] = f"{os.path.dirname(toolchain.go)}{os.pathsep}{env['PATH']}"
    return env


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}


@pytest.mark.parametrize("toolchain", ["go1.19", "go", "go1.27"])
def test_each_cause_is_named_at_its_line(toolchain):
    env = toolchain_env(toolchain)
    before = tree_state(TARGETS_DIR)
    out = gotop("escapes", str(TARGET), "--json", env=env)
    assert out.returncode == 0, out.stderr
    analysis = json.loads(out.stdout)
    assert analysis["go_version"] == go_version(toolchain)
    found = {(a["line"], a["cause"]) for a in analysis["allocations"] if a["file"] == MAIN}
    assert {(line, cause.value) for line, cause in marked_lines().items()} <= found
    text = gotop("escapes", str(TARGET), env=env)
    assert text.returncode == 0, text.stderr
    for line, why in [(LINE_OF[Cause.RETURNED], "returned to the caller (return &r)"),
                      (LINE_OF[Cause.CAPTURED], "captured by a closure"),
                      (LINE_OF[Cause.INTERFACE], "converted to an interface, then passed to a call that keeps it"),
                      (LINE_OF[Cause.NON_CONSTANT_SIZE], "size not constant"),
                      (LINE_OF[Cause.TOO_LARGE], "too large for the stack"),
                      (LINE_OF[Cause.STORED], "stored in a global or a heap object (global = r)")]:
        assert any(row.startswith(f"main.go:{line}:") and why in row for row in text.stdout.splitlines()), (line, why)
    assert tree_state(TARGETS_DIR) == before  # nothing written into the tree built


def test_the_flow_is_shown_on_request():
    out = gotop("escapes", str(TARGET), "--flow")
    assert out.returncode == 0, out.stderr
    rows = out.stdout.splitlines()
    at = next(i for i, row in enumerate(rows) if row.startswith(f"main.go:{LINE_OF[Cause.RETURNED]}:"))
    assert rows[at + 1].strip().startswith("flow: ~r0 ") and "(return)" in rows[at + 2] + rows[at + 3]


def test_the_command_is_documented_and_imports_no_textual():
    out = gotop("escapes", "--help")
    assert out.returncode == 0
    for words in ("DIR|TARGET", "--source DIR", "--for DURATION", "--rate", "--flow", "--json",
                  "go build -gcflags=-m=2", "live heap"):
        assert words in " ".join(out.stdout.split()), words
    assert "escapes" in gotop("--help").stdout
    probe = subprocess.run([sys.executable, "-c", IMPORT_PROBE, "escapes", str(TARGET)], capture_output=True,
                           text=True, timeout=600)
    assert probe.stdout.strip().endswith("NO-TEXTUAL"), probe.stdout + probe.stderr


@pytest.fixture
def module_copy(tmp_path) -> Path:
    """tests/targets/escapes in a module of its own, to edit."""
    module = tmp_path / "module"
    shutil.copytree(TARGET, module / "escapes")
    shutil.copytree(TARGETS_DIR / "internal" / "ready", module / "internal" / "ready")
    for name in ("go.mod", "go.sum"):
        shutil.copy(TARGETS_DIR / name, module / name)
    return module


@pytest.fixture
def logged_go(tmp_path) -> tuple[dict[str, str], Path]:
    """The real go command behind a script that logs each of its command lines: the
    environment that puts it first on PATH, and the log."""
    real, log, shim = shutil.which("go"), tmp_path / "go.log", tmp_path / "bin" / "go"
    assert real is not None
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    shim.chmod(0o755)
    return {**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"}, log


def test_the_cache_is_hit_until_a_source_changes(module_copy, logged_go, tmp_path):
    env, log = logged_go
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "runtime")
    (tmp_path / "runtime").mkdir(mode=0o700)
    first = gotop("escapes", str(module_copy), "--json", env=env)
    assert first.returncode == 0, first.stderr
    [cache_file] = (tmp_path / "runtime" / "gotop").glob("escapes-*.json")
    assert stat.S_IMODE(cache_file.stat().st_mode) == 0o600
    written = cache_file.stat().st_mtime_ns
    assert not json.loads(first.stdout)["cached"] and "build" in log.read_text()

    log.unlink()
    second = gotop("escapes", str(module_copy), "--json", env=env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["cached"] and json.loads(second.stdout)["allocations"] == \
        json.loads(first.stdout)["allocations"]
    assert "build" not in log.read_text()  # the go command was asked its env, nothing else
    assert cache_file.stat().st_mtime_ns == written

    main = module_copy / "escapes" / "main.go"
    main.write_text(main.read_text() + "\nfunc added() *record { return &record{} }\n")
    added_line = len(main.read_text().splitlines())
    third = gotop("escapes", str(module_copy), "--json", env=env)
    assert third.returncode == 0, third.stderr
    allocations = json.loads(third.stdout)["allocations"]
    assert not json.loads(third.stdout)["cached"] and "build" in log.read_text()
    assert [a["cause"] for a in allocations if a["line"] == added_line] == ["returned"]


def test_a_broken_build_exits_2_with_the_compilers_message(tmp_path):
    (tmp_path / "go.mod").write_text("module example.com/broken\n\ngo 1.18\n")
    (tmp_path / "main.go").write_text("package main\n\nfunc main() {\n\t_ = missingThing()\n}\n")
    before = tree_state(tmp_path)
    out = gotop("escapes", str(tmp_path))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith(f"gotop: {tmp_path}: go build failed (exit status 1): ./main.go:4:6: undefined: ")
    assert "missingThing" in out.stderr.splitlines()[0] and "    # example.com/broken" in out.stderr
    assert tree_state(tmp_path) == before


def test_a_module_of_libraries_alone(tmp_path):
    """No main package: nothing to link, the packages are analysed all the same."""
    (tmp_path / "go.mod").write_text("module example.com/lib\n\ngo 1.18\n")
    (tmp_path / "lib.go").write_text("package lib\n\ntype T struct{ a [4]int }\n\nfunc New() *T { return &T{} }\n")
    out = gotop("escapes", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].startswith(f"{tmp_path}: 1 heap allocation (go1.")
    assert out.stdout.splitlines()[2].split() == ["lib.go:5:24", "&T{}", "escapes", "to", "heap", "returned", "to",
                                                  "the", "caller", "(return", "&T{})"]


def test_a_directory_out_of_any_module_is_one_line(tmp_path):
    out = gotop("escapes", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr == f"gotop: {tmp_path}: not in a Go module (no go.mod here or above): escape analysis " \
                         "builds a module\n"


# --- a running program --------------------------------------------------------------------------


@pytest.mark.parametrize("hot", [Cause.CAPTURED, Cause.STORED])
async def test_the_busiest_site_leads_the_live_heap_with_its_reason(go_target, hot):
    t = go_target("escapes", args=["-hot", hot.value])

    def leader() -> dict | None:
        out = gotop("escapes", str(t.pid), "--json")
        assert out.returncode == 0, out.stderr
        first = json.loads(out.stdout)["sites"][0]
        return first if (first["file"], first["line"]) == (MAIN, LINE_OF[hot]) else None

    first = await eventually(leader, timeout=120)
    assert [a["cause"] for a in first["escapes"]] == [hot.value]
    assert first["inuse_bytes"] > 0 and first["rate"] > 0
    out = gotop("escapes", str(t.pid))
    assert out.returncode == 0, out.stderr
    header, window, columns, row = out.stdout.splitlines()[:4]
    assert f"pid {t.pid}" in header and f"source {TARGETS_DIR} (found by the heap profile's file names)" in header
    assert window.startswith("live heap by allocation site; allocation rate since the process started ")
    assert columns.split() == ["LIVE", "RATE", "SITE", "WHY", "ON", "THE", "HEAP"]
    assert f"escapes/main.go:{LINE_OF[hot]}  " in row and first["escapes"][0]["why"] in row


async def test_the_busiest_site_by_rate_between_two_profiles(go_target):
    """A buffer of variable size dies young: by live heap it is nothing, by rate it leads."""
    t = go_target("escapes", args=["-hot", Cause.NON_CONSTANT_SIZE.value])

    def leader() -> dict | None:
        out = gotop("escapes", str(t.pid), "--for", "1s", "--rate", "--json")
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        first = report["sites"][0]
        return report if (first["file"], first["line"]) == (MAIN, LINE_OF[Cause.NON_CONSTANT_SIZE]) else None

    report = await eventually(leader, timeout=120)
    first = report["sites"][0]
    assert [a["cause"] for a in first["escapes"]] == ["non_constant_size"]
    assert not report["rate_since_start"] and report["rate_seconds"] >= 1
    assert 0 <= first["inuse_bytes"] < first["alloc_bytes"]  # most of what it allocated is garbage already
    assert first["hint"].startswith("sync.Pool candidate: its objects live about ")


async def test_the_source_is_found_from_the_working_directory_of_a_trimpath_build(go_target, go_build, tmp_path):
    """A -trimpath binary names its files by module path: not on this host; it runs
    in its module's directory, as `go run .` does."""
    binary = go_build("escapes", flags=("-trimpath",))
    t = go_target("escapes", args=["-hot", "returned"], binary=binary, wrapper=["env", "-C", str(TARGETS_DIR)])

    def leader() -> dict | None:
        out = gotop("escapes", str(t.pid), "--json")
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        first = report["sites"][0]
        return report if first["line"] == LINE_OF[Cause.RETURNED] else None

    report = await eventually(leader, timeout=120)
    assert (report["source"], report["found_by"]) == (str(TARGETS_DIR), "the working directory")
    assert report["sites"][0]["file"] == "gotop.test/targets/escapes/main.go"
    assert [a["cause"] for a in report["sites"][0]["escapes"]] == ["returned"]


async def test_the_source_is_found_from_the_binarys_main_main(go_target):
    """When the profile names no main package file, the binary's pclntab does."""
    t = go_target("escapes")
    profile = parse_profile(http_get(t.http_addr, "/debug/pprof/heap"))
    without_files = dataclasses.replace(profile, functions={})
    assert find_source(without_files, Scanner().inspect(t.pid)) == (str(TARGETS_DIR), "the binary's main.main")


async def test_a_program_without_a_heap_profile_is_told_so(go_target):
    t = go_target("plain")
    out = gotop("escapes", str(t.pid))
    assert out.returncode == 2
    assert out.stderr == f"gotop: pid {t.pid} (plain): no heap profile: needs the gops agent or net/http/pprof\n"


async def test_a_source_that_is_not_there_is_told_so(go_target, tmp_path):
    t = go_target("escapes")
    out = gotop("escapes", str(t.pid), "--source", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.startswith(f"gotop: {tmp_path}: not in a Go module")


# --- the TUI's heap view and function screen -----------------------------------------------------


async def test_the_heap_view_marks_each_allocating_function_with_its_cause(go_target):
    """`e` in the heap view: after each function of the program that allocates, the
    causes the compiler gives at its lines; again, the marks go."""
    from test_tui import FAST, open_heap, until

    from gotop.ui.app import GotopApp

    t = go_target("escapes", args=["-hot", "returned"])
    wanted = {"main.returned": "returned", "main.captured": "captured", "main.sized": "non constant size",
              "main.stored": "stored"}
    app = GotopApp(tiers=FAST)
    async with app.run_test(size=(160, 40)) as pilot:
        _, heap = await open_heap(app, pilot, t.pid)
        await until(pilot, lambda: heap.watched.history.heap)
        await pilot.press("i", "i")  # alloc_space: every site that allocated, live or not
        # The cold sites allocate a few hundred bytes a round: sampled every 512 KiB, they may take a while to show.
        await until(pilot, lambda: set(wanted) <= set(heap.table.rows), timeout=300)
        assert not any("←" in heap.table.get_row(name)[-1].plain for name in wanted)
        await pilot.press("e")

        def marked() -> dict[str, str]:
            rows = {name: heap.table.get_row(name)[-1].plain for name in wanted if name in heap.table.rows}
            return rows if all("←" in text for text in rows.values()) and len(rows) == len(wanted) else {}

        functions = await until(pilot, marked, timeout=300)
        for name, cause in wanted.items():
            assert cause in functions[name].split(" ← ")[1].split(", "), functions  # the closure itself: returned
        await pilot.press("e")
        await until(pilot, lambda: not any("←" in heap.table.get_row(name)[-1].plain for name in heap.table.rows))


async def test_the_function_screen_says_why_its_lines_allocate(go_target, tmp_path):
    """The Source tab shows, under each line the compiler allocates on, what and why;
    of a program whose source is not on this host, it says so in one line."""
    from hostileprofiles import profile_naming
    from test_tui import FAST, until

    from gotop.ui.app import GotopApp
    from gotop.ui.function import FunctionScreen

    t = go_target("escapes", args=["-hot", "returned"])
    profile = await eventually(lambda: (p := parse_profile(http_get(t.http_addr, "/debug/pprof/heap")))
                               and any(f.name == "main.returned" for f in p.functions.values()) and p, timeout=60)
    app = GotopApp(tiers=FAST)
    async with app.run_test(size=(160, 40)) as pilot:
        for shown, function, wanted in (
                (profile, "main.returned", "↳ moved to heap: r: returned to the caller (return &r)"),
                (parse_profile(profile_naming(tmp_path, "/nowhere/main.go").read_bytes()), "main.retain",
                 "why on the heap: the program's source is not on this host (the heap profile names no file of "
                 "package main on this host)")):
            screen = FunctionScreen(shown, function, None)
            app.push_screen(screen)
            text = await until(pilot, lambda s=screen: app.screen is s and next(iter(s.query("#source_text")), None))
            lines = await until(pilot, lambda t=text, w=wanted: w in t.text and t.text.splitlines(), timeout=300)
            if shown is profile:
                at = next(i for i, line in enumerate(lines) if line.endswith("// escape: returned"))
                assert f" {LINE_OF[Cause.RETURNED]}: " in lines[at] and lines[at + 1].strip() == wanted
            else:
                assert lines[0] == wanted
            await pilot.press("escape")

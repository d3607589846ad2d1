"""`--json` of every one-shot command, against real Go processes: each output names its target."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest
from netns import gotop_in

from gotop.cli import build_parser

ONE_SHOTS = ("list", "info", "snapshot", "stack", "gc", "setgc", "profile", "top", "check", "record")


def gotop(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gotop", *args], capture_output=True, text=True, timeout=90)


def as_json(*args: str):
    result = gotop(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def names(typed: str, pid: int) -> dict:
    return {"target": typed, "pid": pid}


def test_every_one_shot_command_has_json():
    parser = build_parser()
    for command in ONE_SHOTS:
        assert "--json" in parser.commands[command].format_help(), command


@pytest.mark.parametrize("via", ["pid", "agent", "http"])
def test_snapshot(go_target, via):
    t = go_target("agentpprof", args=["-workload", "park", "-n", "20"])
    typed = {"pid": str(t.pid), "agent": t.ready["agent"], "http": f"http://{t.http_addr}"}[via]
    report = as_json("snapshot", typed)
    assert report.items() >= names(typed, t.pid).items()
    assert report["goroutines"] >= 20
    assert report["memstats"]["heap_alloc"] > 0


def test_list_and_info_name_the_pid(go_target):
    t = go_target("pprofonly")
    assert t.pid in [p["pid"] for p in as_json("list")["processes"]]
    info = as_json("info", str(t.pid))
    assert info["pid"] == t.pid and info["name"] == "pprofonly"


@pytest.mark.parametrize("name, via", [("agentpprof", "agent"), ("pprofonly", "pprof heap?gc=1")])
def test_gc(go_target, name, via):
    t = go_target(name)
    report = as_json("gc", str(t.pid))
    assert report.items() >= (names(str(t.pid), t.pid) | {"via": via}).items()
    assert report["memstats_after"]["num_gc"] > report["memstats_before"]["num_gc"]
    assert report["memstats_after"]["num_forced_gc"] >= 1


def test_setgc(go_target):
    t = go_target("agentpprof")
    assert as_json("setgc", str(t.pid), "50") == names(str(t.pid), t.pid) | {"gc_percent": 50, "previous": 100}
    assert as_json("setgc", t.ready["agent"], "off") == names(t.ready["agent"], t.pid) | {
        "gc_percent": -1, "previous": 50}


def test_stack_dump_and_groups(go_target):
    t = go_target("agentpprof", args=["-workload", "park", "-n", "7"])
    dump = as_json("stack", t.ready["agent"])
    assert dump.items() >= (names(t.ready["agent"], t.pid) | {"truncated": False}).items()
    parked = [g for g in dump["goroutines"]
              if any(f["function"].endswith("workload.parkedHere") for f in g["frames"])]
    assert len(parked) == 7
    assert all(g["state"] == "chan receive" and g["id"] > 0 for g in parked)
    assert all(g["created_by"]["function"].endswith("workload.park") for g in parked)

    groups = as_json("stack", str(t.pid), "--groups")  # through pprof: by stack
    assert groups.items() >= names(str(t.pid), t.pid).items()
    assert groups["total"] == sum(g["count"] for g in groups["groups"]) >= 7
    [group] = [g for g in groups["groups"] if g["top_function"].endswith("workload.parkedHere")]
    assert group["count"] == 7
    assert group["frames"][0]["function"] == "runtime.gopark" and group["frames"][0]["line"] > 0

    by_site = as_json("stack", str(t.pid), "--groups", "--source", "memory")  # by start function and creation site
    [group] = [g for g in by_site["groups"] if g["top_function"].endswith("workload.parkedHere")]
    assert group["count"] == 7 and group["states"] == {"chan receive": 7}
    assert group["created_by"].endswith("workload.park") and group["frames"][0]["line"] > 0


def test_profile(go_target, tmp_path):
    t = go_target("pprofonly")
    path = tmp_path / "heap.pb.gz"
    typed = f"http://{t.http_addr}"
    report = as_json("profile", "heap", typed, "-o", str(path))
    assert report == names(typed, t.pid) | {"kind": "heap", "path": str(path), "bytes": path.stat().st_size,
                                            "open_with": "go tool pprof"}
    assert path.read_bytes()[:2] == b"\x1f\x8b"


@pytest.fixture
def retained_heap(go_target, tmp_path):
    """A target retaining 400 blocks in workload.retainHere, and its heap profile saved in a file."""
    t = go_target("agentpprof", args=["-workload", "retain", "-n", "400"])
    for _ in range(2):  # the heap profile shows allocations once two GC cycles published them
        assert gotop("gc", str(t.pid)).returncode == 0
    path = tmp_path / "heap.pb.gz"
    assert gotop("profile", "heap", str(t.pid), "-o", str(path)).returncode == 0
    return t, path


SITE = "gotop.test/targets/internal/workload.retainHere"


def test_top_peek_and_list_of_a_target_and_of_a_file(retained_heap):
    t, path = retained_heap
    live = as_json("top", str(t.pid))
    assert live.items() >= names(str(t.pid), t.pid).items()
    assert live["rows"][0]["function"] == SITE

    top = as_json("top", str(path))
    assert top["file"] == str(path) and "pid" not in top
    [row] = [r for r in top["rows"] if r["function"] == SITE]

    peek = as_json("top", str(path), "--peek", "workload\\.retainHere$")
    assert peek.items() >= {"file": str(path), "sample_type": "inuse_space", "total": top["total"]}.items()
    [entry] = peek["functions"]
    assert (entry["function"], entry["flat"], entry["cum"]) == (SITE, row["flat"], row["cum"])
    assert [c["function"] for c in entry["callers"]] == ["gotop.test/targets/internal/workload.retain"]
    assert entry["callers"][0]["value"] == row["cum"]

    listing = as_json("top", str(path), "--list", "workload\\.retainHere$")
    [routine] = listing["functions"]
    assert (routine["function"], routine["flat"], routine["cum"]) == (SITE, row["flat"], row["cum"])
    assert routine["file"].endswith("/targets/internal/workload/basic.go")
    assert routine["error"] is None
    assert sum(line["flat"] for line in routine["lines"]) == row["flat"]
    assert any("func retainHere(" in line["text"] for line in routine["lines"])
    with open(routine["file"]) as source:
        text = source.read().splitlines()
    assert all(text[line["line"] - 1] == line["text"] for line in routine["lines"])


def test_list_of_a_function_whose_source_is_missing_says_why(retained_heap, tmp_path):
    _, path = retained_heap
    # The same profile naming a file that does not exist (same length: the protobuf stays valid).
    data = gzip.decompress(path.read_bytes())
    assert data.count(b"/workload/basic.go") == 1
    moved = tmp_path / "moved.pb.gz"
    moved.write_bytes(gzip.compress(data.replace(b"/workload/basic.go", b"/workload/gone!.go")))
    [routine] = as_json("top", str(moved), "--list", "workload\\.retainHere$")["functions"]
    assert routine["file"].endswith("/workload/gone!.go") and routine["lines"] is None
    assert routine["error"] == f"{routine['file']}: not on this host"
    text = gotop("top", str(moved), "--list", "workload\\.retainHere$").stdout
    assert f" Error: {routine['error']}" in text  # the same error as the text listing


def test_check_names_its_targets(go_target):
    t = go_target("pprofonly")
    result = gotop("check", str(t.pid), "--for", "2s", "--json")
    assert result.returncode == 2, result.stderr  # 2 s is too short for any trend: blind
    report = json.loads(result.stdout)
    [watched] = report["targets"]
    assert watched.items() >= (names(str(t.pid), t.pid) | {"label": f"pid {t.pid} (pprofonly)"}).items()
    assert report["verdict"] == watched["verdict"] == "blind"


def test_record_names_what_it_recorded(go_target, tmp_path):
    t = go_target("agentpprof")
    path = tmp_path / "r.gotop"
    report = as_json("record", t.ready["agent"], "-o", str(path), "--for", "1s", "--interval", "200ms")
    assert report == {"output": str(path), "duration": 1.0,
                      "targets": [names(t.ready["agent"], t.pid) | {"label": t.ready["agent"]}]}
    assert os.listdir(tmp_path) == ["r.gotop"]


def test_record_names_the_targets_it_discovered_by_pid(go_target, private_netns, tmp_path):
    """A target gotop record found itself is named as a user would name it: its pid."""
    t = go_target("pprofonly", wrapper=private_netns)
    path = tmp_path / "all.gotop"
    result = gotop_in(private_netns, "record", "-o", str(path), "--for", "2s", "--interval", "0.5", "--json")
    assert result.returncode == 0, result.stderr
    recorded = json.loads(result.stdout)["targets"]
    assert names(str(t.pid), t.pid) | {"label": f"pid {t.pid} (pprofonly)"} in recorded
    assert all(r["target"] == str(r["pid"]) for r in recorded)  # every Go process of this host, all discovered

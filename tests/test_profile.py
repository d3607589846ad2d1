"""gotop.model.profile*: pprof profiles decoded and reported exactly as `go tool
pprof` does, checked against it on real profiles of real Go targets (heap,
goroutine, CPU with recursion and inlining; Go 1.26, 1.27 and 1.19), the
captured samples, crafted malformed profiles and fuzzed ones."""

from __future__ import annotations

import gzip
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import pytest
from faultservers import gzip_bomb
from gotargets import TOOLCHAINS, start_target
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mutations import mutated
from targetio import agent_request, http_get

from gotop.errors import GotopError
from gotop.model import profile_graph, profile_pb, profile_samples
from gotop.model.profile import DEFAULT_MAX_SIZE, Profile, ProfileError, parse_profile
from gotop.model.profile_diff import diff
from gotop.model.profile_graph import compiled_sums, node_costs, node_index
from gotop.model.profile_names import pprof_function_name
from gotop.model.profile_report import list_routines, paths_to, peek, source_lines, top
from gotop.model.profile_samples import LocationCodes, decode_samples, dense_code
from gotop.model.profile_text import format_list, format_peek, format_top
from gotop.model.profile_units import percentage, scaled_label

SAMPLES = Path(__file__).resolve().parent / "samples"
SAMPLE_FILES = sorted(SAMPLES.glob("*.pb.gz"))
GOPS_HEAP_PROFILE = b"\x05"

needs_go = pytest.mark.skipif(shutil.which("go") is None, reason="go tool pprof is the reference")


def pprof(*args: str | Path) -> list[str]:
    """`go tool pprof ARGS`'s output lines."""
    out = subprocess.run(["go", "tool", "pprof", *map(str, args)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.rstrip("\n").split("\n")


@dataclass(frozen=True)
class Capture:
    name: str
    path: Path
    profile: Profile


def capture(directory: Path, name: str, data: bytes) -> Capture:
    path = directory / f"{name}.pb.gz"
    path.write_bytes(data)
    return Capture(name, path, parse_profile(data))


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> dict[str, Capture]:
    """Profiles of real targets: heap (net/http/pprof and the gops agent, three
    toolchains), a smaller heap of the same binary (a diff base), goroutines with
    and without pprof labels, and a CPU profile of recursive and inlined code."""
    directory = tmp_path_factory.mktemp("profiles")
    captures: dict[str, Capture] = {}
    started = []

    def run(name: str, workload: str, n: int, toolchain: str = "go"):
        target = start_target("agentpprof", toolchain=toolchain, args=["-workload", workload, "-n", str(n)],
                              config_dir=tmp_path_factory.mktemp("gops"))
        started.append(target)
        return target

    try:
        # Heap profiles sample about one 64 KiB block in 8.5: 400 and 40 blocks give
        # sampled counts that differ, so the retaining site survives the diff.
        retain = run("heap", "retain", 400)
        captures["heap"] = capture(directory, "heap", http_get(retain.http_addr, "/debug/pprof/heap?gc=1"))
        captures["gops-heap"] = capture(directory, "gops-heap", agent_request(retain.agent_port, GOPS_HEAP_PROFILE))
        smaller = run("heap-base", "retain", 40)
        captures["heap-base"] = capture(directory, "heap-base", http_get(smaller.http_addr, "/debug/pprof/heap?gc=1"))
        for toolchain in ("go1.27", "go1.19"):
            if TOOLCHAINS[toolchain].available():
                target = run(f"heap-{toolchain}", "retain", 50, toolchain)
                captures[f"heap-{toolchain}"] = capture(
                    directory, f"heap-{toolchain}", http_get(target.http_addr, "/debug/pprof/heap?gc=1"))
        park = run("goroutine", "park", 50)
        captures["goroutine"] = capture(directory, "goroutine", http_get(park.http_addr, "/debug/pprof/goroutine"))
        labelled = run("labelled", "labelled", 30)
        captures["labelled"] = capture(directory, "labelled", http_get(labelled.http_addr, "/debug/pprof/goroutine"))
        recurse = run("cpu", "recurse", 20)
        captures["cpu"] = capture(directory, "cpu", http_get(recurse.http_addr, "/debug/pprof/profile?seconds=2"))
    finally:
        for target in started:
            target.kill()
    return captures


def all_captures(live: dict[str, Capture]) -> list[Capture]:
    return list(live.values()) + [Capture(p.name, p, parse_profile(p.read_bytes())) for p in SAMPLE_FILES]


# --- top, peek, list, diff against go tool pprof --------------------------------------------


@pytest.mark.go
@needs_go
def test_top_is_pprofs_for_every_sample_type_and_order(live):
    compared = 0
    for c in all_captures(live):
        for index, sample_type in enumerate(c.profile.sample_types):
            for name in (sample_type.type, str(index)):
                for cum in (False, True):
                    flags = [f"-sample_index={name}"] + (["-cum"] if cum else [])
                    assert format_top(c.profile, top(c.profile, name, cum=cum)) == pprof("-top", *flags, c.path), \
                        (c.name, flags)
                    compared += 1
        # The default sample type (heap: the last, inuse_space).
        assert format_top(c.profile, top(c.profile)) == pprof("-top", c.path), c.name
    assert compared >= 40


@pytest.mark.go
@needs_go
@pytest.mark.parametrize("flags, options", [
    (["-nodefraction=0", "-edgefraction=0"], dict(node_fraction=0, edge_fraction=0)),
    (["-nodefraction=0.05"], dict(node_fraction=0.05)),
    (["-nodecount=3"], dict(node_limit=3)),
    (["-lines"], dict(granularity="lines")),
    (["-lines", "-cum"], dict(granularity="lines", cum=True)),
])
def test_top_options_are_pprofs(live, flags, options):
    for c in all_captures(live):
        assert format_top(c.profile, top(c.profile, **options)) == pprof("-top", *flags, c.path), c.name


@pytest.mark.go
@needs_go
def test_top_of_recursive_and_inlined_code(live):
    cpu = live["cpu"].profile
    weights = cpu.samples.values[cpu.sample_index()]
    rows = {row.name.rsplit(".", 1)[-1]: row for row in top(cpu, node_fraction=0, edge_fraction=0).rows}

    def holds(sample, function: str) -> int:
        return sum(line.function.name.endswith(function)
                   for i in sample.location_ids for line in cpu.locations[i].lines)

    # Recursion: samples deep in recurseFib hold it many times, cum counts each sample once.
    assert max(holds(s, ".recurseFib") for s in cpu.samples) > 2
    assert rows["recurseFib"].cum == sum(w for s, w in zip(cpu.samples, weights) if holds(s, ".recurseFib"))
    # Inlined into recurseMix, a real call under recurseMixIndirect: both kinds of in-edges.
    (square,) = peek(cpu, r"\.recurseSquare$").entries
    kinds = {edge.inline for edge in square.callers}
    assert rows["recurseSquare"].inline == {frozenset({True, False}): "(partial-inline)",
                                            frozenset({True}): "(inline)"}.get(frozenset(kinds), "")
    assert format_top(cpu, top(cpu, node_fraction=0)) == pprof("-top", "-nodefraction=0", live["cpu"].path)


@pytest.mark.go
@needs_go
@pytest.mark.parametrize("name, pattern", [
    ("cpu", "recurse"),
    ("cpu", r"workload\.recurse(Fib|Square)$"),
    ("heap", "retainHere|main"),
    ("goroutine", "gopark|parkedHere"),
    ("labelled", "."),
    ("heap-base", "runtime"),
])
def test_peek_is_pprofs(live, name, pattern):
    c = live[name]
    report = peek(c.profile, pattern)
    assert format_peek(c.profile, report) == pprof("-peek", pattern, c.path)
    for entry in report.entries:  # every caller/callee weight is within the node's cum
        assert all(abs(edge.weight) <= abs(entry.node.cum) for edge in entry.callers + entry.callees)


@pytest.mark.go
@needs_go
@pytest.mark.parametrize("name, pattern", [("cpu", "recurse"), ("heap", "retain"), ("goroutine", "parkedHere")])
def test_list_is_pprofs(live, name, pattern):
    c = live[name]
    lines = format_list(list_routines(c.profile, pattern), lambda path: (Path(path).read_text(), ""))
    assert lines == pprof("-list", pattern, c.path)
    assert any(line.startswith("ROUTINE") for line in lines)


@pytest.mark.go
def test_list_of_an_unreadable_file_says_so(live):
    lines = format_list(list_routines(live["cpu"].profile, "recurseFib"), lambda path: (None, f"{path}: gone"))
    assert lines[1].startswith("ROUTINE") and lines[3] == f" Error: {lines[1].rsplit(' in ', 1)[1]}: gone"


@pytest.mark.go
def test_source_lines_cover_the_function(live):
    report = list_routines(live["cpu"].profile, r"recurseFib$")
    (routine,) = report.routines
    text = Path(routine.file).read_text()
    rows = source_lines(routine, text)
    assert rows[0].line == routine.lines[0].start_line  # Go >= 1.20 records where the function starts
    assert "func recurseFib" in rows[0].text
    assert sum(r.flat for r in rows) == routine.flat and sum(r.cum for r in rows) == routine.cum
    assert source_lines(routine, "") == []  # an empty file: nothing to show, no error


@pytest.mark.go
@needs_go
@pytest.mark.parametrize("base, profile", [("heap-base", "heap"), ("heap", "heap-base")])
@pytest.mark.parametrize("diff_base", [False, True])
def test_diff_is_pprofs_base(live, base, profile, diff_base):
    b, p = live[base], live[profile]
    delta = diff(b.profile, p.profile, diff_base=diff_base)
    flag = "-diff_base" if diff_base else "-base"
    for sample_index in ("inuse_space", "alloc_objects"):
        for cum in (False, True):
            flags = [f"-sample_index={sample_index}"] + (["-cum"] if cum else [])
            assert format_top(delta, top(delta, sample_index, cum=cum)) == pprof("-top", flag, b.path, *flags, p.path)
    assert format_peek(delta, peek(delta, "retain")) == pprof("-peek", "retain", flag, b.path, p.path)


@pytest.mark.go
def test_diff_is_per_node_difference(live):
    """Flat and cum of the diff are the profile's minus the base's, node by node."""
    base, profile = live["heap-base"].profile, live["heap"].profile
    delta = diff(base, profile)

    def costs(p: Profile) -> dict[str, tuple[int, int]]:
        return {row.name: (row.flat, row.cum) for row in top(p, "alloc_space", node_fraction=0).rows}

    before, after, change = costs(base), costs(profile), costs(delta)
    for name in set(before) | set(after):
        expected = tuple(a - b for a, b in zip(after.get(name, (0, 0)), before.get(name, (0, 0))))
        assert change.get(name, (0, 0)) == expected, name
    same = diff(profile, profile)
    assert len(same.samples) == 0 and top(same).rows == ()


@pytest.mark.go
def test_diff_needs_the_same_sample_types(live):
    with pytest.raises(ProfileError, match="cannot diff profiles with different period types"):
        diff(live["goroutine"].profile, live["heap"].profile)


@pytest.mark.go
def test_paths_to_a_function_add_up_to_its_cum(live):
    cpu = live["cpu"].profile
    cums = {row.name: row.cum for row in top(cpu, node_fraction=0).rows}
    for name in cums:
        if name.endswith(("recurseFib", "recurseSquare", "recursePong")):
            paths = paths_to(cpu, name, limit=10**6)
            assert sum(p.weight for p in paths) == cums[name]
            assert all(p.frames[-1] == name and name not in p.frames[:-1] for p in paths)
            assert [abs(p.weight) for p in paths] == sorted((abs(p.weight) for p in paths), reverse=True)
    with pytest.raises(ProfileError):
        paths_to(cpu, "no.such.function")


# --- the decoded model against pprof's -raw ---------------------------------------------------


def raw_lines(profile: Profile) -> list[str]:
    """Samples and locations printed as pprof's Profile.String (-raw) prints them."""
    lines = ["Samples:", " ".join(
        f"{t.type}/{t.unit}{'[dflt]' if t.type == profile.default_sample_type else ''}" for t in profile.sample_types)]
    for sample in profile.samples:
        lines.append("".join(f" {v:10d}" for v in sample.values) + ": " + "".join(f"{i} " for i in sample.location_ids))
        strings = {}
        numbers = {}
        for label in sample.labels:
            if label.value is not None:
                strings.setdefault(label.key, []).append(label.value)
            else:
                numbers.setdefault(label.key, []).append(label)
        if strings:
            lines.append(" " * 16 + " ".join(sorted(f"{k}:[{' '.join(v)}]" for k, v in strings.items())))
        if numbers:
            lines.append(" " * 16 + " ".join(sorted(
                f"{k}:[{' '.join(f'{n.num} {n.unit}' if any(x.unit for x in v) else str(n.num) for n in v)}]"
                for k, v in numbers.items())))
    lines.append("Locations")
    for location in profile.locations.values():
        head = f"{location.id:6d}: {location.address:#x} " + (f"M={location.mapping.id} " if location.mapping else "")
        head += "[F] " if location.is_folded else ""
        if not location.lines:
            lines.append(head)
        for line in location.lines:
            f = line.function
            system = f"({f.system_name})" if f.name != f.system_name else ""
            lines.append(f"{head}{f.name} {f.filename}:{line.line}:{line.column} s={f.start_line}{system}")
            head = " " * 13
    return lines


def pprof_raw_without_zero_samples(path: Path, value_count: int) -> list[str]:
    raw = pprof("-raw", path)
    raw = raw[raw.index("Samples:"):raw.index("Mappings")]
    kept, skipping = [], False
    for line in raw:
        if line.startswith(" " * 16):  # a label line belongs to the sample above
            if not skipping:
                kept.append(line)
            continue
        values = line.split(":")[0].split()
        skipping = len(values) == value_count and ":" in line and all(v == "0" for v in values)
        if not skipping:
            kept.append(line)
    return kept


@pytest.mark.go
@needs_go
def test_model_is_pprofs_raw_profile_minus_zero_samples(live):
    for c in all_captures(live):
        assert raw_lines(c.profile) == pprof_raw_without_zero_samples(c.path, len(c.profile.sample_types)), c.name


@pytest.mark.skipif(os.environ.get("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION") == "python",
                    reason="pure-Python protobuf forced")
def test_profiles_parse_with_upb():
    """The C parser: pure-Python protobuf is ~100x slower on big profiles."""
    assert profile_pb.BACKEND == "upb"


def test_the_hand_encoded_schema_is_the_one_descriptor_pb2_builds():
    """profile_pb encodes its FileDescriptorProto itself (descriptor_pb2 costs RSS): the same
    message, field by field, as protobuf's own classes build from the schema table."""
    from google.protobuf import descriptor_pb2

    field_type = descriptor_pb2.FieldDescriptorProto
    expected = descriptor_pb2.FileDescriptorProto(name="gotop_profile.proto", package=profile_pb._PACKAGE,
                                                  syntax="proto3")
    for message_name, fields in profile_pb._SCHEMA.items():
        message = expected.message_type.add(name=message_name)
        for name, number, kind, repeated, type_name in fields:
            field = message.field.add(name=name, number=number, type=kind, label=(
                field_type.LABEL_REPEATED if repeated else field_type.LABEL_OPTIONAL))
            if type_name:
                field.type_name = f".{profile_pb._PACKAGE}.{type_name}"
    assert descriptor_pb2.FileDescriptorProto.FromString(profile_pb.file_descriptor()) == expected
    assert (profile_pb.I64, profile_pb.U64, profile_pb.BOOL, profile_pb.MSG, profile_pb.BYTES) == (
        field_type.TYPE_INT64, field_type.TYPE_UINT64, field_type.TYPE_BOOL, field_type.TYPE_MESSAGE,
        field_type.TYPE_BYTES)


def test_header_of_a_heap_profile():
    p = parse_profile((SAMPLES / "pprof-heap.pb.gz").read_bytes())
    assert [t.type for t in p.sample_types] == ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"]
    assert p.period_type.type == "space" and p.period_type.unit == "bytes" and p.period == 524288
    assert p.time_nanos > 0 and p.duration_nanos == 0
    assert p.mappings[0].filename.endswith("/leaky") and p.mappings[0].has_functions
    assert len(p.samples) == 2  # the file holds 4 samples, 2 of them all zero
    assert p.samples[0].labels[0].key == "bytes" and p.samples[0].labels[0].value is None


@pytest.mark.go
def test_goroutine_labels_and_frames(live):
    p = live["labelled"].profile
    labelled = [s for s in p.samples if s.labels]
    assert labelled and sum(s.values[0] for s in labelled) >= 30
    assert {(label.key, label.value) for label in labelled[0].labels} == {
        ("role", "worker"), ("note", "needs quoting: yes")}
    frames = p.frames(labelled[0])
    assert frames[0].function.name.startswith("runtime.")  # where the goroutine is blocked
    assert any(f.function.name.endswith("workload.labelledHere") and f.function.filename.endswith("labelled.go")
               for f in frames)


# Names from real Go 1.26/1.27 profiles, shown as go tool pprof shows them (its symbolizer's
# default demangling mode); test_commands.py compares whole reports with pprof's.
@pytest.mark.parametrize("system_name, shown", [
    ("encoding/json.typeEncoder.OnceValue[go.shape.func(*encoding/json.encodeState, reflect.Value, "
     "encoding/json.encOpts)].func3", "encoding/json.typeEncoder.OnceValue[go.shape.func].func3"),
    ("workload.keep[go.shape.map[string]func(int) (int, error)]", "workload.keep[go.shape.map[string]func ]"),
    ("sync.(*Map[go.shape.int,go.shape.string]).Load", "sync.(*Map[go.shape.int,go.shape.string]).Load"),
    ("net/http.(*conn).serve", "net/http.(*conn).serve"),
    ("f[go.shape.func(int]", "f[go.shape.func(int]"),  # unbalanced: kept
    ("f[go.shape.func)(]", "f[go.shape.func)(]"),
])
def test_function_names_are_shown_as_pprof_shows_them(system_name, shown):
    assert pprof_function_name(system_name, system_name) == shown
    assert pprof_function_name("", system_name) == shown
    assert pprof_function_name("demangled by the writer", system_name) == "demangled by the writer"


def test_sample_index_rules():
    heap = parse_profile((SAMPLES / "pprof-heap.pb.gz").read_bytes())
    assert heap.sample_index() == 3  # no default type: the last
    assert heap.sample_index("inuse_space") == 3 and heap.sample_index("alloc_objects") == 0
    assert heap.sample_index("1") == 1 and heap.sample_index(2) == 2
    with pytest.raises(ProfileError, match=r"outside the range \[0\.\.3\]"):
        heap.sample_index("4")
    with pytest.raises(ProfileError, match="must be one of"):
        heap.sample_index("cpu")
    legacy = parse_profile(crafted(sample_types=[("objects", "count"), ("space", "bytes")],
                                   default_sample_type="objects"))
    assert legacy.sample_index("inuse_space") == 1  # pprof strips a legacy inuse_ prefix
    assert legacy.sample_index() == 0  # default_sample_type names one


@pytest.mark.go
def test_packed_and_typed_decoding_agree(live):
    """The fast path (packed varint bytes) and the general one (ints through upb)
    decode every real profile to the same samples."""
    for c in all_captures(live):
        view = profile_pb.ProfileView.FromString(gzip.decompress(c.path.read_bytes()))
        ids = [location.id for location in view.location]
        fast = LocationCodes.for_ids(ids)
        general = LocationCodes({i: dense_code(n) for n, i in enumerate(ids, 1)}, direct=False)
        assert fast.direct
        tables = []
        for codes in (fast, general):
            columns = decode_samples(view.sample, len(view.sample_type), codes, lambda blob: blob)
            id_of = {code: location_id for location_id, code in codes.of_id.items()}
            tables.append([
                ([id_of[code] for code in stack], values, [columns.label_table[ord(x)] for x in label_set])
                for stack, label_set, values in zip(columns.stacks, columns.label_sets, zip(*columns.values))
            ])
        assert tables[0] == tables[1], c.name


# --- pprof's number formatting against Go's fmt ---------------------------------------------


GO_FORMAT_PROGRAM = """package main

import "fmt"

func main() {
	for _, v := range []float64{%s} {
		fmt.Printf("%%.2f|%%5.2f|%%5.2g\\n", v, v, v)
	}
}
"""
FLOATS = [0.0, 0.125, 0.375, 2.675, 1.005, 72.19, 0.005, 0.995, 0.999, 99.95, 99.994, 99.995, 1e-7, 1.2e-05,
          0.0012345, 0.00999, 0.099999, 5e-324, 123456.785, 0.5, 0.05, 9.995, 0.9999, 1024.0 / 3]


@pytest.mark.go
@needs_go
def test_python_float_formats_are_gos(tmp_path):
    program = tmp_path / "main.go"
    program.write_text(GO_FORMAT_PROGRAM % ", ".join(repr(v) for v in FLOATS))
    out = subprocess.run(["go", "run", program.name], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"{v:.2f}|{v:5.2f}|{v:5.2g}" for v in FLOATS]


@pytest.mark.parametrize("value, unit, to, text", [
    (75_694_080, "bytes", "MB", "72.19MB"),
    (0, "bytes", "MB", "0"),
    (-1024, "bytes", "minimum", "-1kB"),
    (1536, "bytes", "kB", "1.50kB"),
    (10_000_000, "nanoseconds", "s", "0.01s"),
    (2_067_638_074, "nanoseconds", "auto", "2.07s"),
    (50, "count", "count", "50"),
    (3, "objects", "minimum", "3"),
])
def test_scaled_label(value, unit, to, text):
    assert scaled_label(value, unit, to) == text


@pytest.mark.parametrize("value, total, text", [
    (1, 1, "  100%"), (9995, 10000, "  100%"), (6356, 10000, "63.56%"), (1, 100, " 1.00%"),
    (1, 1000, "  0.1%"), (3, 250000, "0.0012%"), (0, 0, "    0%"), (-5, 10, "50.00%"),
])
def test_percentage(value, total, text):
    assert percentage(value, total) == text


# --- bad input: one clear error, bounded work ------------------------------------------------


def crafted(*, sample_types=(("count", "count"),), samples=(), locations=(), functions=(), mappings=(),
            strings=None, default_sample_type=None) -> bytes:
    """A raw profile built field by field, string indexes assigned as needed."""
    table = [""] if strings is None else list(strings)
    indexes = {s: i for i, s in reversed(list(enumerate(table)))}

    def index(s):
        if isinstance(s, int):
            return s
        if s not in indexes:
            indexes[s] = len(table)
            table.append(s)
        return indexes[s]

    view = profile_pb.ProfileView()
    for t, u in sample_types:
        view.sample_type.add(type=index(t), unit=index(u))
    for sample in samples:
        view.sample.append(sample.SerializeToString())
    for mapping in mappings:
        view.mapping.add(**mapping)
    for function in functions:
        view.function.add(**{k: index(v) if k in ("name", "system_name", "filename") else v
                             for k, v in function.items()})
    for location in locations:
        loc = view.location.add(id=location["id"], mapping_id=location.get("mapping_id", 0))
        for function_id in location.get("functions", ()):
            loc.line.add(function_id=function_id, line=1)
    if default_sample_type is not None:
        view.default_sample_type = index(default_sample_type)
    view.string_table.extend(s.encode() for s in table)
    return view.SerializeToString()


def sample(ids=(1,), values=(1,), labels=()):
    s = profile_pb.SampleBatch(location_id=list(ids), value=list(values))
    s.label.extend(label.SerializeToString() for label in labels)
    return s


ONE_LOCATION = dict(functions=[dict(id=1, name="main.f", system_name="main.f", filename="/f.go")],
                    locations=[dict(id=1, functions=[1])])


def test_a_crafted_profile_decodes():
    p = parse_profile(crafted(samples=[sample(), sample(ids=(1, 1, 1), values=(2,))], **ONE_LOCATION))
    assert [s.values for s in p.samples] == [(1,), (2,)]
    assert [row.name for row in top(p).rows] == ["main.f"]
    assert top(p).rows[0].cum == 3  # recursion counted once per sample


@pytest.mark.parametrize("data, message", [
    (b"", "empty profile"),
    (b"hello, not a profile", "not a pprof profile"),
    (b"\x08\x01", "string table"),  # decodes as protobuf, but no string table
    (gzip.compress(b"x" * 100)[:-8], "truncated gzip"),
    (b"\x1f\x8b" + b"\x00" * 30, "corrupt gzip"),
    (crafted(strings=["x"]), "must start with an empty string"),
    (crafted(sample_types=[(7, 0)]), "string index 7 out of range"),
    (crafted(samples=[sample(ids=(2,))], **ONE_LOCATION), "unknown location"),
    (crafted(samples=[sample(ids=(1, 0))], **ONE_LOCATION), "location id 0"),
    (crafted(samples=[sample(values=(1, 2))], **ONE_LOCATION), "does not have 1 values"),
    (crafted(samples=[sample(values=())], **ONE_LOCATION), "does not have 1 values"),
    (crafted(sample_types=[], samples=[sample()], **ONE_LOCATION), "no sample types"),
    (crafted(sample_types=[]), "no sample types"),  # found by the fuzz test below: top() raised
    (crafted(functions=[dict(id=1, name="f")], locations=[dict(id=1, functions=[2])]), "unknown function"),
    (crafted(locations=[dict(id=0)]), "location with reserved id 0"),
    (crafted(locations=[dict(id=3), dict(id=3)]), "two locations with id 3"),
    (crafted(functions=[dict(id=1), dict(id=1)]), "two functions with id 1"),
    (crafted(mappings=[dict(id=0)]), "mapping with reserved id 0"),
    (crafted(samples=[sample(labels=[profile_pb.LabelMessage(key=99, str=1)])], **ONE_LOCATION),
     "string index 99 out of range"),
    # The Python path reads key -1 as its separator; the compiled one reads the key's string.
    (crafted(samples=[sample(labels=[profile_pb.LabelMessage(key=-1)])], **ONE_LOCATION),
     "label with key -1|string index -1 out of range"),
])
def test_malformed_profiles_get_one_clear_error(data, message):
    with pytest.raises(ProfileError, match=message) as raised:
        parse_profile(data)
    assert isinstance(raised.value, GotopError) and "\n" not in str(raised.value)


def test_gzip_bomb_stops_at_the_cap():
    bomb = gzip.compress(b"\x00" * (4 << 20))  # 4 MiB of zeros in ~4 KiB
    with pytest.raises(ProfileError, match="inflates beyond"):
        parse_profile(bomb, max_size=1 << 20)
    with pytest.raises(ProfileError, match="larger than"):
        parse_profile(b"\x08" * 2048, max_size=1024)
    assert DEFAULT_MAX_SIZE == 512 << 20


def test_gzip_bomb_costs_memory_up_to_the_cap_not_twice_it():
    """256 MiB of zeros against a 64 MiB cap: inflation stops at the cap, and
    the inflated bytes are held once (the peak is about the cap)."""
    bomb = gzip_bomb(256 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(ProfileError, match="^gzip data inflates beyond 64.0 MiB$"):
            parse_profile(bomb, max_size=64 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 64 << 20 <= peak < 80 << 20


def test_concatenated_gzip_members_are_one_profile():
    raw = gzip.decompress((SAMPLES / "pprof-heap.pb.gz").read_bytes())
    split = gzip.compress(raw[:100]) + gzip.compress(raw[100:])
    assert raw_lines(parse_profile(split)) == raw_lines(parse_profile(raw))


@pytest.mark.parametrize("locations", [100, 300, 16383, 16384])
def test_location_ids_of_one_and_two_varint_bytes(locations):
    """Stacks over many locations (2-byte varints past id 127; past 16383 the
    general path) decode to the ids written, stacks of 1-2 frames included."""
    rng = random.Random(locations)
    functions = [dict(id=i, name=f"f{i}", system_name=f"f{i}") for i in range(1, locations + 1)]
    stacks = [tuple(rng.randint(1, locations) for _ in range(rng.choice([1, 2, 3, 8, 40]))) for _ in range(500)]
    stacks += [(locations,), tuple(min(i, locations) for i in (127, 128, locations, 1, 128, 255, 256))]
    data = crafted(samples=[sample(ids=stack, values=(i + 1,)) for i, stack in enumerate(stacks)],
                   functions=functions, locations=[dict(id=i, functions=[i]) for i in range(1, locations + 1)])
    p = parse_profile(data)
    assert [s.location_ids for s in p.samples] == stacks
    assert [s.values for s in p.samples] == [(i + 1,) for i in range(len(stacks))]


def test_non_minimal_varints_decode_as_protobuf_says():
    """Location ids written with padded varints (legal protobuf, never by Go):
    the packed fast path declines and the typed one decodes them."""
    minimal = profile_pb.ProfileView.FromString(crafted(samples=[sample(ids=(1, 1), values=(5,))], **ONE_LOCATION))
    padded = profile_pb.ProfileView()
    padded.CopyFrom(minimal)
    del padded.sample[:]
    padded.sample.append(b"\x0a\x04\x81\x00\x01\x01" + b"\x10\x05")  # ids [1 (as 0x81 0x00), 1, 1]
    p = parse_profile(padded.SerializeToString())
    assert [(s.location_ids, s.values) for s in p.samples] == [((1, 1, 1), (5,))]


def test_unknown_location_ids_beyond_a_str_still_decode():
    """Ids that are not 1..L (other producers) go the general path with dense codes."""
    functions = [dict(id=7, name="a", system_name="a"), dict(id=9, name="b", system_name="b")]
    locations = [dict(id=(1 << 40) + 5, functions=[7]), dict(id=0xD800, functions=[9])]
    p = parse_profile(crafted(samples=[sample(ids=((1 << 40) + 5, 0xD800), values=(4,))],
                              functions=functions, locations=locations))
    assert p.samples[0].location_ids == ((1 << 40) + 5, 0xD800)
    rows = top(p).rows
    assert [(r.name, r.flat, r.cum) for r in rows] == [("a", 4, 4), ("b", 0, 4)]


# --- the compiled paths (gotop/model/_profile_speedups.c) against the Python ones -------------


needs_speedups = pytest.mark.skipif(profile_samples.speedups is None,
                                    reason="gotop was built without its C extension (no C compiler)")


@pytest.fixture
def python_paths_only(monkeypatch):
    """Runs the Python paths alone, as a gotop built without a compiler does."""
    def use():
        monkeypatch.setattr(profile_samples, "speedups", None)
        monkeypatch.setattr(profile_graph, "speedups", None)
    return use


def test_the_c_extension_is_built_where_a_compiler_is():
    """Its build is optional (it fails quietly): where there are a compiler and Python's
    headers, it must be there."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler here: gotop runs the Python paths alone")
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        pytest.skip("no Python headers here (python3-dev): gotop runs the Python paths alone")
    assert profile_samples.speedups is not None


def test_the_tui_loads_no_protobuf_until_it_parses_a_profile():
    """protobuf costs 20 ms and 3.3 MB: the TUI's modules, the profile model among them (and
    with it the C extension), load it only when a profile is parsed."""
    script = ("import sys\nimport gotop.ui.app, gotop.model.profile_graph, gotop.model.speedups\n"
              "print(any(m.split('.')[0] == 'google' for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False"], out.stderr


def columns_and_costs(profile: Profile) -> tuple:
    """Everything the two paths compute: the sample columns, and cum and flat per node
    for every sample type at both granularities."""
    s = profile.samples
    costs = [node_costs(profile, t, node_index(profile, granularity))
             for t in range(len(profile.sample_types)) for granularity in ("functions", "lines")]
    return s.stacks, [v.tolist() for v in s.values], s.label_sets, s.label_table, [(c.nodes, c.total) for c in costs]


def compiled_path_inputs() -> list[tuple[str, bytes]]:
    """Crafted profiles for what Go's do not show: no samples, unpacked ids, 2-byte varints, ids up to
    16383, labels pprof ignores (numbered around), zero samples with labels of their own."""
    ignored = profile_pb.LabelMessage(key=1)  # neither a value nor a unit
    labels = [profile_pb.LabelMessage(key=1, str=2), ignored, profile_pb.LabelMessage(key=1, num=7)]
    functions = [dict(id=i, name=f"f{i}", system_name=f"f{i}") for i in range(1, 16384)]
    many = dict(functions=functions, locations=[dict(id=i, functions=[i]) for i in range(1, 16384)])
    unpacked = profile_pb.ProfileView.FromString(crafted(sample_types=[("a", "count"), ("b", "count")], **ONE_LOCATION))
    unpacked.sample.append(b"\x08\x01\x10\x05\x08\x01\x10\x00")  # ids and values unpacked, interleaved
    unpacked.sample.append(b"\x0a\x04\x81\x00\x01\x01\x12\x02\x00\x07")  # a non-minimal varint id
    return [
        ("no samples", crafted(**ONE_LOCATION)),  # empty arrays: their buffer may be unaligned
        ("unpacked", unpacked.SerializeToString()),
        ("labels", crafted(strings=["", "k", "v"], samples=[
            sample(ids=(1,), values=(3,), labels=labels[:2]), sample(ids=(1, 1), values=(0,), labels=[labels[2]]),
            sample(ids=(1,), values=(4,), labels=labels[1:])], **ONE_LOCATION)),
        ("2-byte ids", crafted(samples=[sample(ids=(16383, 128, 1), values=(-5,)), sample(ids=(127,), values=(9,))],
                               **many)),
    ]


@needs_speedups
@pytest.mark.go
def test_compiled_and_python_paths_agree(live, python_paths_only):
    """Every real profile, and crafted ones, decode and sum to the same columns and costs
    through the C extension as through the Python paths (the extension declines none)."""
    inputs = [(c.name, c.path.read_bytes()) for c in all_captures(live)] + compiled_path_inputs()
    compiled = {}
    for name, data in inputs:
        view = profile_pb.ProfileView.FromString(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
        codes = LocationCodes.for_ids(location.id for location in view.location)
        assert profile_samples.compiled_samples(view.SerializeToString(), len(view.sample_type), codes,
                                                lambda blob: blob) is not None, name
        profile = parse_profile(data)
        assert compiled_sums(profile.samples.stacks, profile.samples.values[0], node_index(profile)) is not None
        compiled[name] = columns_and_costs(profile)
    python_paths_only()
    for name, data in inputs:
        assert columns_and_costs(parse_profile(data)) == compiled[name], name


@needs_speedups
@pytest.mark.parametrize("tag", [b"\x88\x80\x80\x80\x80\x01", b"\x88\x80\x80\x80\x80\x00"])
def test_the_compiled_path_declines_tags_upb_refuses(tag):
    """A tag of 6 bytes (field 2^32 + 1, or field 1 padded): upb refuses the sample, so the
    compiled path must decline it rather than read field 1 (found by review)."""
    view = profile_pb.ProfileView.FromString(crafted(**ONE_LOCATION))
    view.sample.append(tag + b"\x01\x10\x05")
    data = view.SerializeToString()
    assert profile_samples.compiled_samples(data, 1, LocationCodes.for_ids([1]), lambda blob: blob) is None
    with pytest.raises(ProfileError, match="a sample does not decode"):
        parse_profile(data)


@needs_speedups
def test_sums_beyond_int64_are_left_to_python():
    p = parse_profile(crafted(samples=[sample(values=(1 << 62,)), sample(ids=(1, 1), values=(1 << 62,))],
                              **ONE_LOCATION))
    assert compiled_sums(p.samples.stacks, p.samples.values[0], node_index(p)) is None
    assert [(r.flat, r.cum) for r in top(p).rows] == [(1 << 63, 1 << 63)]


def fuzz_inputs() -> list[bytes]:
    files = [p.read_bytes() for p in SAMPLE_FILES]
    return files + [gzip.decompress(f) for f in files]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(fuzz_inputs()).flatmap(mutated))
@example(crafted(sample_types=[]))  # found by this test: decoded, then top() raised
def test_fuzzed_profiles_decode_or_fail_cleanly(data):
    try:
        profile = parse_profile(data, max_size=64 << 20)
    except ProfileError as e:
        assert "\n" not in str(e)
        return
    for index in range(len(profile.sample_types)):  # whatever decoded must also report
        format_top(profile, top(profile, index))
        format_top(profile, top(profile, index, granularity="lines", cum=True))
    if any(top(profile).rows):
        format_peek(profile, peek(profile, "."))
        list_routines(profile, ".")
    diff(profile, profile)
    list(profile.samples)


def outcome(data: bytes) -> tuple | type[ProfileError]:
    try:
        return columns_and_costs(parse_profile(data, max_size=64 << 20))
    except ProfileError:
        return ProfileError


@needs_speedups
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from([gzip.decompress(f) for f in fuzz_inputs()[:len(SAMPLE_FILES)]]).flatmap(mutated))
def test_fuzzed_profiles_give_the_same_outcome_on_both_paths(data):
    """What the C extension accepts, the Python paths accept, with the same result; what
    one refuses (or declines, and Python then refuses), so does the other."""
    compiled = outcome(data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(profile_samples, "speedups", None)
        patch.setattr(profile_graph, "speedups", None)
        assert outcome(data) == compiled


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_decode_or_fail_cleanly(data):
    try:
        parse_profile(data)
    except ProfileError:
        pass


def test_damaged_deflate_data_is_a_profile_error():
    broken = bytearray(gzip.compress(b"some profile bytes" * 50))
    broken[20] ^= 0xFF
    with pytest.raises(ProfileError, match="gzip"):
        parse_profile(bytes(broken))

"""The GC trace (GODEBUG=gctrace=1) parser: real lines of Go 1.19, 1.26 and 1.27,
every field, the markers, and fuzzing (a line is a cycle, another trace line, or
the program's own; never an exception)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import mutated

from gotop.model.gctrace import MIB, GcCycle, is_trace_line, parse_gc_line

SAMPLES = Path(__file__).parent / "samples"
TRACES = ["gctrace-go1.19.txt", "gctrace-go1.26.txt", "gctrace-go1.27.txt"]
GCTRACE2 = ["gctrace2-go1.26.txt", "gctrace2-go1.27.txt"]


def sample_lines(name: str) -> list[str]:
    return (SAMPLES / name).read_text().splitlines()


def test_every_field_of_a_line():
    line = ("gc 2 @1.010s 3% (checking for goroutine leaks): 0.86+1.5+0.003 ms clock, "
            "1.7+0/0.70/1.3+0.007 ms cpu, 1->2->0 MB, 4 MB goal, 0 MB stacks, 1 MB globals, 2 P (forced)")
    assert parse_gc_line(line) == GcCycle(
        num=2, since_start=1.01, cpu_percent=3, sweep_term_ns=860_000, mark_ns=1_500_000, mark_term_ns=3_000,
        sweep_term_cpu_ns=1_700_000, assist_cpu_ns=0, background_cpu_ns=700_000, idle_cpu_ns=1_300_000,
        mark_term_cpu_ns=7_000, heap_start=1 * MIB, heap_end=2 * MIB, heap_live=0, heap_goal=4 * MIB,
        stacks=0, globals=1 * MIB, gomaxprocs=2, forced=True, leak_check=True)
    cycle = parse_gc_line(line)
    assert cycle is not None
    assert cycle.pause_ns == 863_000  # sweep termination + mark termination: the world stopped
    assert cycle.cpu_ns == 1_700_000 + 700_000 + 1_300_000 + 7_000


def test_whole_milliseconds_and_big_heaps():
    line = ("gc 1313 @294.780s 12%: 21+190+12 ms clock, 42+0/65/52+24 ms cpu, 4096->4100->2222 MB, "
            "4444 MB goal, 3 MB stacks, 0 MB globals, 16 P")
    cycle = parse_gc_line(line)
    assert cycle is not None
    assert (cycle.sweep_term_ns, cycle.mark_ns, cycle.mark_term_ns) == (21_000_000, 190_000_000, 12_000_000)
    assert (cycle.heap_live, cycle.heap_goal, cycle.stacks) == (2222 * MIB, 4444 * MIB, 3 * MIB)
    assert (cycle.gomaxprocs, cycle.forced, cycle.leak_check) == (16, False, False)


def test_lines_before_go_1_18_have_no_stacks_and_globals():
    cycle = parse_gc_line("gc 7 @0.5s 1%: 0.01+1.2+0.003 ms clock, 0.02+0.3/1.1/0.2+0.006 ms cpu, "
                          "4->4->2 MB, 5 MB goal, 4 P")
    assert cycle is not None and (cycle.stacks, cycle.globals, cycle.heap_live) == (None, None, 2 * MIB)


@pytest.mark.parametrize("name", TRACES)
def test_real_traces_parse_whole(name):
    """Every line the runtime printed is a cycle or sysmon's `GC forced` (two captures, of an idle pprof
    server asked for heap?gc=1 and of a program that allocated once, then idled for over two minutes)."""
    lines = sample_lines(name)
    cycles = [c for c in map(parse_gc_line, lines) if c is not None]
    assert all(is_trace_line(line) for line in lines)
    assert {line for line in lines if parse_gc_line(line) is None} == {"GC forced"}
    assert all(c.gomaxprocs >= 1 and c.heap_goal >= 4 * MIB for c in cycles)
    assert any(c.forced for c in cycles)  # runtime.GC(), from heap?gc=1
    after_sysmon = [parse_gc_line(lines[i + 1]) for i, line in enumerate(lines) if line == "GC forced"]
    assert all(c is not None and not c.forced and c.since_start > 120 for c in after_sysmon)  # none for 2 minutes


def test_go_1_27_marks_the_cycles_that_look_for_leaked_goroutines():
    cycles = [c for c in map(parse_gc_line, sample_lines("gctrace-go1.27.txt")) if c is not None]
    assert any(c.leak_check for c in cycles)
    assert not any(c.leak_check for name in TRACES[:2]
                   for c in map(parse_gc_line, sample_lines(name)) if c is not None)


@pytest.mark.parametrize("name", GCTRACE2)
def test_gctrace_2_scan_lines_are_trace_lines_not_cycles(name):
    lines = sample_lines(name)
    assert parse_gc_line(lines[0]) is not None
    assert all(is_trace_line(line) and parse_gc_line(line) is None for line in lines[1:])


@pytest.mark.parametrize("line", [
    "gc is great", "gc 1 @0.1s 0%: garbage", "GC forced!", "scan: the horizon", "scan: total lots objs",
    " gc 1 @0.083s 0%: 0.17+0.20+0.002 ms clock, 0.34+0/0.10/0.13+0.005 ms cpu, 3->4->0 MB, 4 MB goal, "
    "0 MB stacks, 0 MB globals, 2 P",  # not at the start of the line: the program's own
    "gc 1 @0.083s 0%: 0.17+0.20+0.002 ms clock, 0.34+0/0.10/0.13+0.005 ms cpu, 3->4->0 MB, 4 MB goal, "
    "0 MB stacks, 0 MB globals, 2 P and more",
    "2024/01/01 12:00:00 gc 1 @0.083s 0%: as logged by a program",
    "",
])
def test_the_programs_own_lines_are_not_trace_lines(line):
    assert parse_gc_line(line) is None
    assert not is_trace_line(line)


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", [*TRACES, *GCTRACE2])
def test_fuzzed_trace_lines_are_cycles_or_not_and_never_raise(name):
    @FUZZ
    @given(data=mutated((SAMPLES / name).read_bytes()))
    def check(data):
        for line in data.decode("utf-8", errors="replace").split("\n"):
            cycle = parse_gc_line(line)
            assert cycle is None or (isinstance(cycle, GcCycle) and is_trace_line(line))
            if cycle is not None:  # what a cycle holds is what its line says, in bytes and nanoseconds
                assert cycle.heap_live % MIB == 0 and cycle.pause_ns >= 0 and cycle.num >= 0

    check()


@FUZZ
@given(st.text(max_size=300))
def test_any_text_is_a_cycle_or_not(text):
    assert parse_gc_line(text) is None or is_trace_line(text)


@FUZZ
@given(num=st.integers(1, 10**9), millis=st.integers(0, 10**9), percent=st.integers(0, 100),
       times=st.lists(st.integers(0, 10**12), min_size=8, max_size=8),
       heaps=st.lists(st.integers(0, 10**7), min_size=6, max_size=6), procs=st.integers(1, 4096),
       forced=st.booleans(), leak=st.booleans())
def test_a_line_printed_as_the_runtime_prints_it_parses_back(num, millis, percent, times, heaps, procs, forced,
                                                            leak):
    clock, cpu = times[:3], times[3:]
    line = (f"gc {num} @{millis // 1000}.{millis % 1000:03d}s {percent}%"
            + " (checking for goroutine leaks)" * leak
            + f": {'+'.join(map(runtime_ms, clock))} ms clock, "
            f"{runtime_ms(cpu[0])}+{runtime_ms(cpu[1])}/{runtime_ms(cpu[2])}/{runtime_ms(cpu[3])}+{runtime_ms(cpu[4])}"
            f" ms cpu, {heaps[0]}->{heaps[1]}->{heaps[2]} MB, {heaps[3]} MB goal, {heaps[4]} MB stacks, "
            f"{heaps[5]} MB globals, {procs} P" + " (forced)" * forced)
    cycle = parse_gc_line(line)
    assert cycle is not None, line
    assert (cycle.num, cycle.cpu_percent, cycle.gomaxprocs, cycle.forced, cycle.leak_check) == (
        num, percent, procs, forced, leak)
    assert [cycle.heap_start, cycle.heap_end, cycle.heap_live, cycle.heap_goal, cycle.stacks, cycle.globals] == [
        h * MIB for h in heaps]
    shown = [cycle.sweep_term_ns, cycle.mark_ns, cycle.mark_term_ns, cycle.sweep_term_cpu_ns, cycle.assist_cpu_ns,
             cycle.background_cpu_ns, cycle.idle_cpu_ns, cycle.mark_term_cpu_ns]
    for ns, parsed in zip(times, shown):
        assert parsed == pytest.approx(ns, rel=0.1, abs=1000)  # two significant digits, at most 3 decimals


def runtime_ms(ns: int) -> str:
    """The runtime's fmtNSAsMS: whole milliseconds from 10 ms, else two significant digits with
    at most three decimals (runtime/mgc.go)."""
    if ns >= 10_000_000:
        return str(ns // 1_000_000)
    x, dec = ns // 1000, 3
    if x == 0:
        return "0"
    while x >= 100:
        x //= 10
        dec -= 1
    digits = str(x).rjust(dec, "0")
    return f"{digits[:-dec] or '0'}.{digits[-dec:]}"

"""Leak detection: the detectors on constructed histories (thresholds, plateaus,
churn, windows, restarts), and `gotop check` against the leaking and healthy
workloads of the Go test targets.

The live part starts every workload at once and watches them with three
concurrent checks for the default 30 s: one `gotop check` process on the
leaking targets, one on the healthy ones, and an in-process check whose heap
profiles the site tests read. Then four checks of targets the detectors can
watch only in part (no pprof, no GC) run for 20 s. The file takes about 70 s.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from elfbytes import without_section_headers
from gotargets import TOOLCHAINS, RunningTarget, start_target, target_binary
from leakcases import HEALTHY, LEAKS_AT_DEFAULT, UNNAMED_HEAP, Case, findings_of, matches, of_kind, run_check

from gotop.cli import main
from gotop.commands import check as check_command
from gotop.engine import trends
from gotop.engine.fleet import SUSPECT_HEAP_EVERY, Watched, apply_update
from gotop.engine.heapsites import HeapSites, heap_sites
from gotop.engine.history import HeapSnapshot, TargetHistory, TargetState, Update
from gotop.engine.leaks import (
    MIN_GC_CYCLES_PER_THIRD,
    MIN_SITE_KEPT,
    Basis,
    Confidence,
    Coverage,
    DescriptorRef,
    Detector,
    GroupRef,
    LeakKind,
    LiveBasis,
    SiteRef,
    coverage,
    descriptor_leaks,
    find_leaks,
    gc_cycles,
    goroutine_leaks,
    growing_sites,
    heap_leaks,
)
from gotop.engine.target import Sample, Target
from gotop.engine.trends import MIN_POINTS, rising_level, steady_rise
from gotop.model import profile_pb
from gotop.model.goroutines import KIND_GOROUTINELEAK, Frame, GoroutineProfile, profile_from_stacks
from gotop.model.memstats import MemStats, Stats
from gotop.model.profile import parse_profile
from gotop.sources.procfs import OsFigures

T0 = 1_700_000_000.0
MIB = 1 << 20
WORKLOAD = "gotop.test/targets/internal/workload"


# --- trends -----------------------------------------------------------------------------------

def points(values, step=2.0, start=T0):
    return [(start + i * step, float(v)) for i, v in enumerate(values)]


def test_a_count_that_only_grows_is_a_steady_rise():
    rise = steady_rise(points(range(20, 320, 20)), min_gain=10)  # +20 every 2 s
    assert rise is not None
    assert rise.start == T0
    assert rise.gained == 280
    assert rise.rate_per_min == pytest.approx(600)


def test_small_falls_on_the_way_are_allowed_big_ones_are_not():
    # 10 leaked a step, and now and then one finishes: falls are 1/20 of the rises.
    leaky = [0, 10, 20, 19, 29, 39, 38, 48, 58, 57, 67]
    assert steady_rise(points(leaky), min_gain=10) is not None
    # Come and go: the count falls about as much as it rises.
    churning = [0, 10, 20, 12, 22, 32, 21, 31, 41, 30, 40]
    assert steady_rise(points(churning), min_gain=10) is None


def test_a_pool_that_filled_up_and_stays_flat_is_not_a_rise():
    assert steady_rise(points([0, 60, 100, 100, 100, 100, 100, 100, 100]), min_gain=10) is None
    # Still filling at the end of the window: it looks like a leak, and is judged one.
    assert steady_rise(points([0, 20, 40, 60, 80, 100]), min_gain=10) is not None


def test_a_rise_is_judged_only_with_enough_readings_and_gain():
    assert steady_rise(points([0, 20, 40, 60]), min_gain=10) is None  # 4 readings over 6 s
    assert steady_rise(points([0, 1, 2, 3, 4, 5, 6, 7]), min_gain=10) is None  # gains 7


def test_the_rise_starts_at_the_last_lowest_reading():
    values = [50, 80, 10, 10, 20, 30, 40, 50, 60, 70, 80, 90]  # a drop, then a leak
    rise = steady_rise(points(values), min_gain=10)
    assert rise is not None
    assert rise.start == T0 + 3 * 2.0
    assert rise.gained == 80
    # Until it leaves the range of what came before, it could be the burst's goroutines coming back.
    assert steady_rise(points(values[:8]), min_gain=10) is None


def test_a_pools_idle_workers_wandering_within_their_range_are_no_rise():
    # 100 workers, the rest of them busy: the idle ones wander (as in CI).
    assert steady_rise(points([98, 100, 96, 99, 97, 100, 95, 96, 96, 97, 97, 97]), min_gain=2) is None
    assert steady_rise(points([96, 97, 96, 96, 96, 95, 96, 96, 97, 97, 97]), min_gain=2) is None
    # Under load, readings 7 s apart: one jump and a wobble, not two steps up.
    assert steady_rise(points([86, 96, 95, 96, 96], step=7.0), min_gain=10) is None
    assert steady_rise(points([86, 96, 96, 95, 96], step=7.0), min_gain=10) is None
    # Nor is one jump that later highs add little to: a program's 100 connections (200 sockets)
    # opened in its first 2 s, under `gotop check -- CMD` on a loaded machine.
    opened = [(0, 151), (1.4, 198), (3, 198), (5, 198), (7, 198), (10, 199), (12, 199), (14, 199), (16, 199)]
    assert steady_rise([(T0 + t, float(v)) for t, v in opened], min_gain=10) is None
    # A slow leak makes new highs, however slowly.
    assert steady_rise(points([2, 3, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]), min_gain=2) is not None


def test_a_noisy_level_that_keeps_rising_is_a_rise_and_a_plateau_is_not():
    # The heap a while after each GC: the live heap plus up to 2 MiB of garbage.
    garbage = [0.0, 1.8, 0.2, 1.5, 0.1, 2.0, 0.3, 1.1, 0.0, 1.7, 0.4, 1.9]
    leak = [(T0 + 3 * i, (4 + 0.5 * i + g) * MIB) for i, g in enumerate(garbage)]
    rise = rising_level(leak, MIB, 0.25, MIN_GC_CYCLES_PER_THIRD)
    assert rise is not None and rise.still_rising
    assert rise.rate_per_min == pytest.approx(10 * MIB, rel=0.3)
    plateau = [(T0 + 3 * i, (4 + min(i, 4) + g) * MIB) for i, g in enumerate(garbage)]
    rise = rising_level(plateau, MIB, 0.25, MIN_GC_CYCLES_PER_THIRD)
    assert rise is not None and not rise.still_rising  # it did rise, early
    flat = [(T0 + 3 * i, (4 + g) * MIB) for i, g in enumerate(garbage)]
    assert rising_level(flat, MIB, 0.25, MIN_GC_CYCLES_PER_THIRD) is None
    assert rising_level(leak[:5], MIB, 0.25, MIN_GC_CYCLES_PER_THIRD) is None  # too few GC cycles to judge


def test_a_lone_low_reading_does_not_stand_for_a_third():
    readings = [3.3] * 15
    readings[1] = 0.5  # the first GC found the program between two bursts of work
    points = [(T0 + i, v * MIB) for i, v in enumerate(readings)]
    assert rising_level(points, MIB, 0.25, MIN_GC_CYCLES_PER_THIRD) is None
    assert rising_level(points, MIB, 0.0, MIN_GC_CYCLES_PER_THIRD) is not None  # its lowest reading would


# --- goroutines -------------------------------------------------------------------------------

def blocked_in(function: str, wait: str = "runtime.chanrecv1", line: int = 12) -> tuple[Frame, ...]:
    """A stack as the protobuf goroutine profile gives it, leaf first."""
    return (Frame("runtime.gopark", "/go/src/runtime/proc.go", 435),
            Frame(wait, "/go/src/runtime/chan.go", 442),
            Frame(f"example.com/app.{function}", "/src/app/leak.go", line),
            Frame("runtime.goexit", "/go/src/runtime/asm_amd64.s", 1700))


def profile(groups: dict[tuple[Frame, ...], int], kind: str = "goroutine") -> GoroutineProfile:
    return profile_from_stacks([(count, frames, None) for frames, count in groups.items() if count], kind=kind)


def goroutine_history(counts: dict[tuple[Frame, ...], list[int]], step: float = 2.0,
                      leaked: dict[tuple[Frame, ...], int] | None = None) -> TargetHistory:
    history = TargetHistory(1.0, 600)
    n = len(next(iter(counts.values())))
    for i in range(n):
        leaks = profile(leaked, KIND_GOROUTINELEAK) if leaked is not None and i == n - 1 else None
        history.apply(Update(T0 + i * step, TargetState.UP,
                             goroutines=profile({f: c[i] for f, c in counts.items()}), leaks=leaks))
    return history


LEAKING = blocked_in("leakyWorker")
POOL = blocked_in("poolWorker", line=30)
SPAWNED = blocked_in("shortTask", line=40)
NOW = T0 + 60


def test_a_growing_blocked_group_is_a_goroutine_leak_with_its_place_and_evidence():
    history = goroutine_history({
        LEAKING: list(range(20, 320, 20)),
        POOL: [100] * 15,
        SPAWNED: [16, 26, 23, 28, 24, 27, 13, 26, 28, 32, 29, 25, 28, 27, 23],
    })
    (finding,) = find_leaks(history, NOW)
    assert finding.kind is LeakKind.GOROUTINES
    assert finding.where == "example.com/app.leakyWorker (leak.go:12)"
    assert finding.ref == GroupRef(history.goroutines.groups[0].key)  # the view opens this group
    assert finding.rate_per_min == pytest.approx(600)
    assert finding.since == T0
    assert finding.basis is Basis.GROWING_GROUP
    assert finding.confidence is Confidence.HIGH and finding.fails_gate  # 20 -> 300: fifteen times as many
    assert "blocked in chan receive" in finding.evidence[0].text
    assert finding.evidence[0].series[-1] == (T0 + 28, 300)
    json.dumps(finding.to_json())


def test_a_big_group_growing_slowly_and_an_unblocked_group_stay_below_the_gates_bar():
    history = goroutine_history({LEAKING: list(range(1000, 1030, 2))})  # +60 a minute on 1000
    (finding,) = goroutine_leaks(history, NOW)
    assert (finding.confidence, finding.fails_gate) == (Confidence.MEDIUM, False)
    assert finding.short_of == "grows by 6% of its count a minute; the gate wants 50%"
    sleeping = blocked_in("pollForever", wait="time.Sleep")
    history = goroutine_history({sleeping: list(range(0, 150, 10))})
    (finding,) = goroutine_leaks(history, NOW)
    assert (finding.confidence, finding.fails_gate) == (Confidence.LOW, False)
    assert "in sleep" in finding.evidence[0].text
    assert finding.short_of == "its goroutines are not blocked in a wait: busy ones may yet finish"


def test_a_slow_goroutine_leak_is_found_at_the_pace_of_its_steps():
    """One goroutine every 10 s, read every 2 s: two steps in 30 s, measured between them, whatever
    the phase of the readings; below the gate's bar until it has gained 10."""
    for phase in range(5):
        counts = [1 + (i + phase) // 5 for i in range(15)]  # steps where (i + phase) is a multiple of 5
        (finding,) = goroutine_leaks(goroutine_history({LEAKING: counts}), NOW)
        assert finding.rate_per_min == pytest.approx(6), counts
        assert finding.confidence is Confidence.MEDIUM
        assert re.fullmatch(r"gained [23] goroutines; the gate wants 10", finding.short_of or ""), finding.short_of
    # Goroutines that are not parked on a channel, select or lock need ten to be a finding at all.
    sleeping = blocked_in("pollForever", wait="time.Sleep")
    assert goroutine_leaks(goroutine_history({sleeping: [1 + i // 5 for i in range(15)]}), NOW) == ()


def test_the_runtimes_proof_makes_a_finding_even_without_growth():
    history = goroutine_history({LEAKING: [40] * 6, POOL: [100] * 6}, leaked={LEAKING: 40})
    (finding,) = goroutine_leaks(history, NOW)
    assert finding.basis is Basis.PROVEN
    assert finding.confidence is Confidence.HIGH
    assert finding.rate_per_min == 0
    assert finding.evidence[0].text == "40 goroutines proven leaked, blocked in chan receive"


def test_a_growing_group_the_runtime_does_not_prove_says_so():
    ticker = blocked_in("tickerLoop")
    history = goroutine_history({LEAKING: list(range(20, 320, 20)), ticker: list(range(20, 320, 20))},
                                leaked={LEAKING: 300})
    by_where = {f.where.split(" ")[0]: f for f in goroutine_leaks(history, NOW)}
    proven, growing = by_where["example.com/app.leakyWorker"], by_where["example.com/app.tickerLoop"]
    assert [e.basis for e in proven.evidence] == [Basis.PROVEN, Basis.GROWING_GROUP]
    assert [e.basis for e in growing.evidence] == [Basis.GROWING_GROUP]
    assert "not proven leaked" in growing.evidence[0].text


def test_growth_before_the_window_or_before_a_restart_is_not_judged():
    history = goroutine_history({LEAKING: [*range(20, 320, 20), *[300] * 15]})  # grew, then flat for 30 s
    assert goroutine_leaks(history, T0 + 60, window=30) == ()
    assert goroutine_leaks(history, T0 + 60, window=60) == ()  # it stopped rising
    history = goroutine_history({LEAKING: list(range(20, 320, 20))})
    history.mark_restart(T0 + 21)  # the new process has only 4 readings
    assert goroutine_leaks(history, NOW) == ()


# --- descriptors ------------------------------------------------------------------------------

def fd_history(by_kind: dict[str, list[int]]) -> TargetHistory:
    """Descriptors by kind, as the slow tier reads them every 2 s."""
    history = TargetHistory(1.0, 600)
    for i in range(len(next(iter(by_kind.values())))):
        history.apply(Update(T0 + 2 * i, TargetState.UP, fds={kind: values[i] for kind, values in by_kind.items()}))
    return history


def test_descriptors_that_keep_opening_are_found_by_kind():
    history = fd_history({
        "tcp": list(range(80, 880, 40)),  # leaked connections, both ends
        "file": [101, 102, 102, 102, 101, 102, 102, 102, 102, 101, 102, 102, 102, 102, 102, 102, 102, 102, 102, 102],
        "unix": [0] * 20,
        "other": [2, 2, 4, 5, 4, 3, 3, 2, 4, 4, 2, 2, 2, 2, 4, 2, 2, 2, 2, 2],
    })
    (finding,) = descriptor_leaks(history, NOW)
    assert (finding.kind, finding.where, finding.ref) == (LeakKind.SOCKETS, "TCP sockets", DescriptorRef("tcp"))
    assert finding.rate_per_min == pytest.approx(1200)
    files = fd_history({"file": list(range(40, 440, 20))})
    assert [(f.kind, f.where) for f in descriptor_leaks(files, NOW)] == [(LeakKind.FDS, "open files")]


def test_without_kinds_the_total_is_judged():
    history = TargetHistory(1.0, 600)
    for i, count in enumerate(range(10, 210, 10)):  # the fast tier's count only
        t = T0 + i
        history.apply(Update(t, TargetState.UP, Sample(t, None, Stats(), OsFigures(t, 1 << 24, 1.0, 8, count), {})))
    (finding,) = descriptor_leaks(history, NOW)
    assert (finding.kind, finding.ref) == (LeakKind.FDS, DescriptorRef("all"))


# --- heap -------------------------------------------------------------------------------------

def heap_history(readings: list[tuple[float, float]], step: float = 1.0) -> TargetHistory:
    """One sample a second; each reading is (heap in use, heap goal) and comes
    right after a GC (num_gc rises by one each time)."""
    history = TargetHistory(1.0, 600)
    for i, (heap_alloc, next_gc) in enumerate(readings):
        memstats = MemStats(heap_alloc=int(heap_alloc), next_gc=int(next_gc), num_gc=i)
        history.apply(Update(T0 + i * step, TargetState.UP, Sample(T0 + i * step, memstats, Stats(), None, {})))
    return history


GARBAGE = [0.1, 1.8, 0.2, 1.5, 0.0, 2.0, 0.3, 1.1, 0.0, 1.7, 0.4, 1.9, 0.2, 0.9, 0.0, 1.2, 0.1, 1.6]


def live_heap(live_mib: list[float]) -> list[tuple[float, float]]:
    """(heap after GC, goal) for a live heap: garbage allocated since the GC, goal at GOGC=100."""
    return [((live + g) * MIB, max(4.0, 2 * live) * MIB) for live, g in zip(live_mib, GARBAGE)]


def test_a_live_heap_rising_across_gc_cycles_is_a_heap_leak():
    history = heap_history(live_heap([3 + 0.25 * i for i in range(18)]))  # +15 MiB/min
    assert [c.time for c in gc_cycles(history, T0 - 1).cycles] == [T0 + i for i in range(1, 18)]
    (finding,) = heap_leaks(history, NOW)
    assert (finding.kind, finding.where, finding.ref) == (LeakKind.HEAP, "live heap", SiteRef(None))
    assert finding.basis is Basis.LIVE_HEAP
    assert finding.confidence is Confidence.MEDIUM  # no heap profile names a site
    assert finding.rate_per_min == pytest.approx(15 * MIB, rel=0.5)


@pytest.mark.parametrize("live", [
    [3.0] * 18,  # churn: the GC reclaims everything
    [min(3 + 0.5 * i, 6) for i in range(18)],  # a cache that filled up early
    [1 + 0.05 * i for i in range(18)],  # below the 4 MiB minimum goal: too small to judge
], ids=["churn", "plateau", "tiny"])
def test_no_heap_leak_for_churn_or_a_plateau(live):
    assert heap_leaks(heap_history(live_heap(live)), NOW) == ()


def test_rare_low_readings_of_a_busy_program_are_not_a_rise():
    # healthy-churn: most GCs find its 3.3 MiB burst of work in flight, now and then none.
    heap = [3.3] * 18
    heap[2], heap[4] = 1.3, 3.0
    goal = [6.8] * 18
    goal[1], goal[8], goal[9] = 4.0, 4.4, 5.0
    history = heap_history([(h * MIB, g * MIB) for h, g in zip(heap, goal)])
    assert heap_leaks(history, NOW) == ()


def test_a_churning_programs_early_dips_are_not_a_rise():
    """healthy-churn read from its GC trace under load: most of its 200 cycles in 20 s mark its 3 MiB
    working set, a few none, and by chance none of those came after the first 8 s. The line under the
    readings runs from the dips to the last readings, but the bulk of them did not move."""
    dips = (0, 3, 7, 20, 41, 66, 80)
    cycles = [(T0 + 0.1 * i, 0.0 if i in dips else 3 * MIB) for i in range(200)]
    assert trends.floor_rise(cycles, MIB) is None
    # The same leaking 300 KiB/s, with dips late too: a rise.
    leaking = [(T0 + 0.1 * i, (0.0 if i in (*dips, 120, 150, 185) else 3 * MIB) + 0.03 * MIB * i) for i in range(200)]
    assert trends.floor_rise(leaking, MIB).rate_per_min == pytest.approx(18 * MIB, rel=0.1)


def test_a_rising_heap_needs_a_second_witness():
    # The heap after GC rises by 2 MiB, but the goal stays at its minimum and no
    # heap profile names a site that keeps its bytes.
    readings = [((1 + 0.12 * i + g) * MIB, 4 * MIB) for i, g in enumerate(GARBAGE)]
    history = heap_history(readings)
    cycles = gc_cycles(history, T0).cycles
    assert rising_level([(c.time, c.live) for c in cycles], MIB, 0.25, MIN_GC_CYCLES_PER_THIRD) is not None
    assert heap_leaks(history, NOW) == ()


def marked_history(cycles: list[tuple[float, float]], until: float, kept: float = 0.05,
                   asked: tuple[float, ...] = ()) -> TargetHistory:
    """Polled every second as the memory source reads a runtime: each poll sees the number of the
    last GC, when it ended and the heap it marked live. `cycles`: (seconds after T0 each GC ended, MB
    it marked); the program keeps `kept` of what it allocates; the polls at the seconds in `asked`
    take 0.6 s (a GC ending meanwhile marked gotop's answers too), the others 20 ms."""
    history = TargetHistory(1.0, 600)
    for second in range(int(until) + 1):
        t = T0 + second
        done = [(num, c) for num, c in enumerate(cycles, 1) if c[0] <= second]
        sample = None
        if done:
            num, (ended, live) = done[-1]
            bytes_live = int(live * 1e6)
            m = MemStats(heap_alloc=bytes_live, next_gc=2 * bytes_live, num_gc=num, heap_marked=bytes_live,
                         last_gc=int((T0 + ended) * 1e9), total_alloc=int(bytes_live / kept))
            sample = Sample(t, m, Stats(), None, {})
        history.apply(Update(t, TargetState.UP, sample, asked=(t, t + (0.6 if second in asked else 0.02))))
    return history


def mb_cycles(text: str) -> list[tuple[float, float]]:
    """'2.6:30.71 5.0:55.88' -> [(2.6, 30.71), (5.0, 55.88)]."""
    return [(float(t), float(v)) for t, v in (pair.split(":") for pair in text.split())]


# Read from real targets (gotop check of tests/targets, leak-heap and healthy-cache workloads, on a
# busy machine): seconds after the check began that each GC ended, and the MB it marked live.
FAST_LEAK = mb_cycles("-0.0:3.32 0.5:8.68 1.3:16.97 2.6:30.71 5.0:55.88 9.3:100.97 17.0:181.61")  # 10 MiB/s
SLOW_LEAK = mb_cycles("-0.6:1.04 1.4:1.12 2.4:1.19 6.8:1.59 9.3:1.77 10.5:1.73 12.6:1.98 13.5:2.95 14.7:3.01 "
                      "15.9:3.41 16.5:3.40 17.7:3.46 18.3:3.52 24.3:2.69 26.4:2.83")  # 64 KiB/s, noisy mid-way
BOUNDED_CACHE = mb_cycles("-3.5:1.22 6.4:1.24 8.6:1.27 10.0:1.98 12.0:1.98 14.0:2.00 15.0:2.27 16.0:2.53 "
                          "18.0:2.56 20.0:2.54 22.1:2.52 24.1:2.47 25.1:2.45 26.1:2.49 28.1:2.54")


def test_the_heap_each_gc_marked_tracks_a_fast_leak_from_few_cycles():
    """A fast leak doubles its heap goal at each cycle: in 30 s, a few cycles, their live heap a
    straight line in time, and the GC keeping what is allocated."""
    history = marked_history(FAST_LEAK, until=30, kept=0.95)
    gc = gc_cycles(history, T0 - 10)
    assert gc.basis is LiveBasis.MARKED
    assert [round(c.time - T0, 1) for c in gc.cycles] == [c[0] for c in FAST_LEAK]
    (finding,) = heap_leaks(history, T0 + 30)
    assert finding.rate_per_min / 60 == pytest.approx(10 * MIB, rel=0.01)
    assert (finding.confidence, finding.fails_gate, finding.where) == (Confidence.HIGH, True, "live heap")
    assert "the GC kept 95% of what was allocated meanwhile" in finding.evidence[0].text
    # Three cycles suffice.
    history = marked_history(FAST_LEAK[-3:], until=18)
    assert [f.fails_gate for f in heap_leaks(history, T0 + 18)] == [True]


def test_two_cycles_that_kept_what_was_allocated_show_a_fast_leak_watched_late():
    """A fast leak that ran a while before the watch: its heap goal doubles past it, and a 30 s watch
    sees two cycles; the GC kept nearly all that was allocated between them."""
    history = marked_history([(-2.0, 268.0), (25.0, 536.0)], until=30, kept=0.95)
    (finding,) = heap_leaks(history, T0 + 30)
    assert finding.rate_per_min / 60 == pytest.approx(268e6 / 27, rel=0.01)
    assert (finding.fails_gate, finding.where) == (True, "live heap")
    # Two cycles of a busy program that keeps little of what it allocates are nothing.
    assert heap_leaks(marked_history([(-2.0, 268.0), (25.0, 536.0)], until=30, kept=0.3), T0 + 30) == ()


def test_a_slow_leak_is_measured_along_the_line_under_the_noise():
    """What was in flight when a GC marked only adds to its live heap (more of it while a busy machine
    stretches the marking): the low readings carry the leak's rate."""
    history = marked_history(SLOW_LEAK, until=27)
    (finding,) = heap_leaks(history, T0 + 27)
    assert finding.rate_per_min / 60 == pytest.approx(64 << 10, rel=0.1)
    # 1.9 MB gained, the noise 1.3 MB: below the gate's bar without a site to name.
    assert (finding.confidence, finding.fails_gate) == (Confidence.MEDIUM, False)
    assert re.fullmatch(r"its rise \(1\.\d MiB\) is less than 1\.5 times the noise on it \(1\.\d MiB\), "
                        r"and no allocation site stands out", finding.short_of or ""), finding.short_of
    # Heap profiles that name the site keeping what it allocates: the bar is met.
    for i, mib in enumerate([0.5, 1, 1.5, 2, 2.5]):
        history.apply(Update(T0 + 5 * i + 0.5, TargetState.UP,
                             heap=heap_snapshot(T0 + 5 * i + 0.5, {LEAKY_PUT: (mib, mib)})))
    (finding,) = heap_leaks(history, T0 + 27)
    assert (finding.where, finding.fails_gate) == ("app.leakyPut (cache.go:10)", True)
    assert finding.rate_per_min / 60 == pytest.approx(64 << 10, rel=0.1)  # the live heap's, not the samples'


def test_noise_that_comes_and_stays_is_not_a_rise():
    """A bounded cache on a busy machine: the heap its GCs marked jumps by 1.2 MB for the last 18 s
    (catch-up bursts marked in flight). Judged after every poll, never a finding."""
    history = marked_history(BOUNDED_CACHE, until=29)
    for second in range(8, 30):
        assert heap_leaks(history, T0 + second, window=second + 10) == (), second


def test_a_slowly_filling_store_is_below_the_gates_bar():
    """etcd under steady writes: its live heap rises about 20 KB/s on 6 MB, until it compacts."""
    noise = [0.0, 0.3, 0.1, 0.4, 0.05, 0.2]
    history = marked_history([(s + 0.5, 6.2 + 0.02 * s + noise[s % 6]) for s in range(60)], until=61)
    (finding,) = heap_leaks(history, T0 + 61)
    assert finding.rate_per_min / 60 == pytest.approx(20_000, rel=0.1)
    assert (finding.confidence, finding.fails_gate) == (Confidence.MEDIUM, False)
    assert (finding.short_of or "").startswith("grows by 19% of itself a minute; the gate wants 50%, or the GC "
                                               "to keep 50% of what is allocated")


# A bounded cache polled for profiles: most of its GC cycles end while gotop fetches one (its
# allocation starts them), and mark the answer in flight too.
POLLED_CACHE = mb_cycles("-1.3:1.27 0.1:2.06 2.0:2.12 4.1:2.23 5.4:1.27 8.1:2.00 10.1:2.56 12.1:2.02 14.1:1.99 "
                         "15.1:2.23 16.1:2.52 18.1:2.53 20.1:2.56")
# A leak of 100 KB/s whose cycles all end while gotop fetches a profile (GOGC=25), one of them
# (at 18 s) early in the answer.
POLLED_LEAK = mb_cycles("0.2:1.53 2.0:1.19 4.1:1.95 5.0:1.54 6.1:2.17 8.0:1.89 10.1:2.18 12.1:2.83 14.1:2.52 "
                        "15.1:3.14 16.1:2.76 18.0:2.27 19.1:2.96 20.2:3.30 22.1:3.89 24.1:3.67 25.1:4.26 26.1:3.82 "
                        "28.1:4.58")


def test_cycles_that_marked_gotops_answers_are_judged_apart():
    """A GC that ends while gotop fetches a profile marks gotop's answer (about 1 MiB) too: such cycles
    are judged among themselves, or with the others only in a rise far larger than that."""
    history = marked_history(POLLED_CACHE, until=21, asked=(0, 2, 4, 8, 10, 12, 14, 15, 16, 18, 20))
    assert [c.asked for c in gc_cycles(history, T0 - 10).cycles] == [False, *[True] * 3, False, *[True] * 8]
    for second in range(8, 22):
        assert heap_leaks(history, T0 + second, window=second + 10) == (), second
    history = marked_history(POLLED_LEAK, until=29, asked=tuple(range(29)))
    (finding,) = heap_leaks(history, T0 + 29)
    assert finding.rate_per_min / 60 == pytest.approx(105e3, rel=0.1)  # the median line's
    assert trends.floor_rise([(c.time, c.live) for c in gc_cycles(history, T0 - 10).cycles], MIB) is None
    # A fast leak of which one of three cycles ended during a poll: it counts.
    cycles = [(-5.0, 87.27), (4.5, 190.0), (14.6, 292.87)]
    history = marked_history(cycles, until=30, kept=0.9, asked=(4,))
    assert [c.asked for c in gc_cycles(history, T0 - 10).cycles] == [False, True, False]
    (finding,) = heap_leaks(history, T0 + 30)
    assert finding.rate_per_min / 60 == pytest.approx(10.5e6, rel=0.02)


def test_the_detector_wants_heap_profiles_only_while_it_finds_a_heap_leak():
    """Heap profiles every SUSPECT_HEAP_EVERY while the live heap rises (they name the site),
    and none once it has stopped rising."""
    watched = Watched("x", Target("x"), TargetHistory(1.0, 600))
    live = [3 + 0.25 * min(i, 17) for i in range(60)]  # rises for 17 GC cycles, then stays
    wanted = []
    for i, live_mib in enumerate(live):
        memstats = MemStats(heap_alloc=int((live_mib + GARBAGE[i % len(GARBAGE)]) * MIB),
                            next_gc=int(max(4.0, 2 * live_mib) * MIB), num_gc=i)
        sample = Sample(T0 + i, memstats, Stats(), None, {})
        apply_update(watched, Update(T0 + i, TargetState.UP, sample, fds={}))  # each poll a slow-tier one
        wanted.append(watched.heap_demand.every)
    assert SUSPECT_HEAP_EVERY in wanted[:20]
    assert watched.findings == () and wanted[-1] is None


def heap_snapshot(t: float, stacks: dict[tuple[str, ...], tuple[float, float]]) -> HeapSnapshot:
    """A Go heap profile: per stack (functions, leaf first), MiB allocated and MiB in use."""
    table = [""]

    def index(s: str) -> int:
        if s not in table:
            table.append(s)
        return table.index(s)

    view = profile_pb.ProfileView()
    for kind, unit in (("alloc_objects", "count"), ("alloc_space", "bytes"),
                       ("inuse_objects", "count"), ("inuse_space", "bytes")):
        view.sample_type.add(type=index(kind), unit=index(unit))
    ids: dict[str, int] = {}
    for stack, (allocated, inuse) in stacks.items():
        for name in stack:
            if name not in ids:
                ids[name] = len(ids) + 1  # one function and one location each
                view.function.add(id=ids[name], name=index(name), system_name=index(name),
                                  filename=index("/src/app/cache.go"))
                view.location.add(id=ids[name]).line.add(function_id=ids[name], line=10 * ids[name])
        values = [1, int(allocated * MIB), 1, int(inuse * MIB)]
        sample = profile_pb.SampleBatch(location_id=[ids[n] for n in stack], value=values)
        view.sample.append(sample.SerializeToString())
    view.string_table.extend(s.encode() for s in table)
    raw = view.SerializeToString()
    return HeapSnapshot(t, raw, parse_profile(raw))


def sites_of(snapshot: HeapSnapshot) -> HeapSites:
    return heap_sites(snapshot.time, snapshot.profile)


LEAKY_PUT = ("app.leakyPut", "app.handle")
MAP_GROWTH = ("runtime.mallocgc", "internal/runtime/maps.newarray", "app.leakyPut", "app.handle")
CACHE_PUT = ("app.cachePut", "app.handle")
LAZY_INIT = ("app.buildTable", "sync.(*Once).doSlow")
GOROUTINE_DESCRIPTOR = ("runtime.mallocgc", "runtime.malg", "runtime.newproc1", "runtime.systemstack")


def test_growing_sites_keep_most_of_what_they_allocate():
    first = heap_snapshot(T0, {LEAKY_PUT: (1, 1), MAP_GROWTH: (0.1, 0.1), CACHE_PUT: (2, 1)})
    last = heap_snapshot(T0 + 30, {
        LEAKY_PUT: (4, 4), MAP_GROWTH: (0.6, 0.6),  # all it allocated still in use
        CACHE_PUT: (8, 1.1),  # a bounded cache: what it allocated is mostly gone again
        LAZY_INIT: (0.5, 0.5),  # one sample's worth, kept: not enough to name
    })
    (site,) = growing_sites([sites_of(first), sites_of(last)])
    assert site.site == Frame("app.leakyPut", "/src/app/cache.go", 10)  # the map's growth is charged to it
    assert site.inuse == pytest.approx(3.5 * MIB, rel=0.01) and site.kept == pytest.approx(1.0)


def test_the_monitoring_requests_own_allocations_are_no_site():
    """gotop's profile fetches allocate in the target (net/http/pprof's gzip writer): once read as
    a site that keeps what it allocates (compress/flate.newDeflateFast), now left out."""
    gzip_writer = ("compress/flate.newDeflateFast", "compress/gzip.(*Writer).Write",
                   "net/http/pprof.handler.ServeHTTP", "net/http.(*conn).serve")
    first = heap_snapshot(T0, {LEAKY_PUT: (1, 1), gzip_writer: (1, 1)})
    last = heap_snapshot(T0 + 30, {LEAKY_PUT: (4, 4), gzip_writer: (6, 6)})
    assert [g.site.function for g in growing_sites([sites_of(first), sites_of(last)])] == ["app.leakyPut"]


def test_a_site_whose_bytes_in_use_fall_back_is_not_named_and_a_profile_published_twice_counts_once():
    """In use 1 -> 4 -> 2 -> 5 MiB: it kept what it allocated between the first profile and the last,
    but gave back 2 of its 7 MiB of rises on the way (a cache that fills and evicts in bursts)."""
    profiles = [sites_of(heap_snapshot(T0 + 5 * i, {CACHE_PUT: (a, u)}))
                for i, (a, u) in enumerate([(1, 1), (4, 4), (4.5, 2), (6, 5)])]
    assert growing_sites(profiles) == ()
    leak = [sites_of(heap_snapshot(T0 + 5 * i, {LEAKY_PUT: (u, u)})) for i, u in enumerate([1, 3, 3, 5])]
    (site,) = growing_sites(leak)
    # The runtime publishes a profile as of the GC before its latest: until another GC ends, the same
    # one again (here at T0 + 10, the one of T0 + 5).
    assert [t for t, _ in site.series] == [T0, T0 + 5, T0 + 15]
    assert site.seconds == 15


def test_a_rising_heap_is_named_by_its_retaining_sites():
    history = heap_history(live_heap([3 + 0.25 * i for i in range(18)]))
    history.apply(Update(T0, TargetState.UP, heap=heap_snapshot(T0, {LEAKY_PUT: (1, 1)})))
    history.apply(Update(T0 + 17, TargetState.UP, heap=heap_snapshot(T0 + 17, {LEAKY_PUT: (5, 5)})))
    (finding,) = find_leaks(history, NOW)
    assert (finding.where, finding.basis, finding.confidence) == (
        "app.leakyPut (cache.go:10)", Basis.ALLOCATION_SITE, Confidence.HIGH)
    assert finding.rate_per_min == pytest.approx(4 * MIB / 17 * 60)
    assert [e.basis for e in finding.evidence] == [Basis.ALLOCATION_SITE, Basis.LIVE_HEAP]


def test_heap_held_by_leaking_goroutines_is_left_to_them():
    """A heap rising 7.5 MiB/min beside 6000 goroutines leaked a minute: 1.3 KiB each, what leaked
    goroutines hold (their descriptors, channels, timers). Beside 600 a minute, a leak of its own."""
    history = heap_history(live_heap([3 + 0.25 * i for i in range(18)]), step=2.0)
    for i in range(18):
        history.apply(Update(T0 + 2 * i, TargetState.UP, goroutines=profile({LEAKING: 200 * (i + 1)})))
    assert len(heap_leaks(history, NOW)) == 1  # the live heap, no site
    assert {f.kind for f in find_leaks(history, NOW)} == {LeakKind.GOROUTINES}
    # The same, whatever the site the heap profiles blame: the runtime's (each goroutine's descriptor) ...
    history.apply(Update(T0, TargetState.UP, heap=heap_snapshot(T0, {GOROUTINE_DESCRIPTOR: (1, 1)})))
    history.apply(Update(T0 + 34, TargetState.UP, heap=heap_snapshot(T0 + 34, {GOROUTINE_DESCRIPTOR: (3, 3)})))
    assert [f.where.split(" ")[0] for f in heap_leaks(history, NOW)] == ["runtime.mallocgc"]
    assert {f.kind for f in find_leaks(history, NOW)} == {LeakKind.GOROUTINES}
    # ... or the function that makes the channels they wait on.
    history.apply(Update(T0 + 35, TargetState.UP, heap=heap_snapshot(T0 + 35, {LEAKY_PUT: (3, 3)})))
    assert {f.kind for f in find_leaks(history, NOW)} == {LeakKind.GOROUTINES}
    history = heap_history(live_heap([3 + 0.25 * i for i in range(18)]), step=2.0)
    for i in range(18):
        history.apply(Update(T0 + 2 * i, TargetState.UP, goroutines=profile({LEAKING: 20 * (i + 1)})))
    assert {f.kind for f in find_leaks(history, NOW)} == {LeakKind.GOROUTINES, LeakKind.HEAP}


# --- what the detectors could watch ----------------------------------------------------------

def readings(history: TargetHistory, now: float = NOW, window: float | None = None) -> dict[Detector, tuple[int, bool]]:
    return {c.detector: (c.readings, c.watched) for c in coverage(history, now, window)}


def test_coverage_counts_the_readings_each_detector_judges():
    nothing = TargetHistory(1.0, 600)
    assert readings(nothing) == {d: (0, False) for d in Detector}
    groups = goroutine_history({LEAKING: [1] * MIN_POINTS, POOL: [3] * MIN_POINTS})  # 2 groups a profile
    assert readings(groups)[Detector.GOROUTINES] == (MIN_POINTS, True)
    assert readings(goroutine_history({POOL: [3] * (MIN_POINTS - 1)}))[Detector.GOROUTINES] == (MIN_POINTS - 1, False)
    # The heap: readings right after a GC (the first reading has none before it).
    heap = heap_history(live_heap([3.0] * 7))
    assert readings(heap)[Detector.HEAP] == (6, True)
    assert readings(heap_history(live_heap([3.0] * 6)))[Detector.HEAP] == (5, False)
    assert readings(fd_history({"file": [3] * 5, "tcp": [1] * 5}))[Detector.DESCRIPTORS] == (5, True)


def test_coverage_without_gc_or_outside_the_window_is_not_watched():
    no_gc = TargetHistory(1.0, 600)  # memstats every second, GOGC=off: num_gc stays 0
    for i in range(30):
        no_gc.apply(Update(T0 + i, TargetState.UP, Sample(T0 + i, MemStats(heap_alloc=MIB, next_gc=4 * MIB, num_gc=0),
                                                          Stats(), None, {})))
    assert readings(no_gc)[Detector.HEAP] == (0, False)
    groups = goroutine_history({POOL: [3] * 10})  # readings at T0 .. T0 + 18
    assert readings(groups, T0 + 18, window=5)[Detector.GOROUTINES] == (3, False)
    groups.mark_restart(T0 + 17)  # the new process has one profile
    assert readings(groups, T0 + 18)[Detector.GOROUTINES] == (1, False)


# --- gotop check: errors and hygiene ---------------------------------------------------------

def test_a_finding_below_the_gates_bar_is_shown_but_does_not_fail_the_check():
    history = goroutine_history({LEAKING: [1] * 5 + [2] * 5 + [3] * 5})  # one every 10 s
    watch = check_command.Watch(Target("app"), history, started=T0)
    watch.on_update(Update(T0 + 30, TargetState.UP))  # the detectors run after each poll
    (finding,) = find_leaks(history, T0 + 30)
    watched = tuple(Coverage(d, 10, 5, "readings") for d in Detector)
    verdict = check_command.Verdict(watch, (finding,), watched)
    assert (verdict.outcome, check_command.exit_status([verdict])) == (check_command.Outcome.OK, 0)
    lines = check_command.format_verdicts([verdict]).splitlines()
    assert lines[0] == "app: ok"
    assert "  goroutines  example.com/app.leakyWorker (leak.go:12)" in lines
    assert "              below the gate's bar: gained 2 goroutines; the gate wants 10" in lines
    assert lines[-1] == "verdict: ok (1 finding below the gate's bar)"
    (shown,) = check_command.to_json([("app", verdict)], 30)["findings"]
    assert (shown["fails_gate"], shown["confidence"], shown["confirmed_after"]) == (False, "medium", None)
    assert shown["found_after"] is not None and shown["short_of"] == finding.short_of


def test_check_errors_exit_2_with_one_line(capsys):
    assert main(["check", "not a target"]) == 2
    with pytest.raises(SystemExit, match="2"):  # a usage error, from argparse
        main(["check", "1", "--for", "soon"])
    err = capsys.readouterr().err
    assert "'not a target' is not a target" in err
    assert "'soon' is not a duration" in err
    assert "Traceback" not in err


def test_check_of_an_unreachable_agent_exits_2():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    result = run_check(f"127.0.0.1:{port}", "--for", "5s")
    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_target_that_exits_during_the_check_exits_2(go_target):
    target = go_target("agentpprof", args=["-workload", "healthy-pool"])
    killer = threading.Timer(3.0, target.kill)
    killer.start()
    try:
        result = run_check(str(target.pid), "--for", "8s")
    finally:
        killer.cancel()
    assert result.returncode == 2
    assert "exited" in result.stdout + result.stderr


def test_check_does_not_import_textual():
    probe = ("import sys, gotop.commands.check; "
             "print(any(m.split('.')[0] == 'textual' for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


# --- gotop check on live targets ------------------------------------------------------------------

LEAKS = [
    *(Case(w) for w in LEAKS_AT_DEFAULT),
    Case("retain-map", n=25),  # four times the pace: heap profile samples enough to always name the site
    Case("leak-all", toolchain="go1.27"),  # the runtime's goroutineleak profile proves three of the four
    Case("leak-fds", binary="plain"),  # no agent, no pprof: descriptors are still read from /proc
    Case("leak-sockets", binary="plain"),
]
HEALTHY_CASES = [
    *(Case(w) for w in HEALTHY),
    Case("healthy-pool", binary="pprofonly"),
    Case("healthy-pool", toolchain="go1.27"),  # goroutineleak stays quiet on waiting workers
    Case("healthy-spawn", toolchain="go1.27"),
]
# Watched in-process, for their heap profiles.
SITES = [Case("retain-slice"), Case("healthy-cache")]
CHECK_SECONDS = 30.0  # what `gotop check` watches by default


@dataclass
class Checked:
    returncode: int
    report: dict  # gotop check --json
    pids: dict[Case, int]

    def findings(self, case: Case) -> list[dict]:
        return findings_of(self.report, self.pids[case])

    def target(self, case: Case) -> dict:
        return next(t for t in self.report["targets"] if t["pid"] == self.pids[case])


def available(cases) -> list[Case]:
    return [c for c in cases if TOOLCHAINS[c.toolchain].available()]


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> dict[str, object]:
    """Start every case, then run the three checks at once for the default 30 s."""
    if not TOOLCHAINS["go"].available():
        pytest.skip("Go is not installed")
    leaks, healthy, sites = available(LEAKS), available(HEALTHY_CASES), available(SITES)
    running: list[RunningTarget] = []

    def start(cases: list[Case]) -> dict[Case, int]:
        for case in cases:
            running.append(start_target(case.binary, toolchain=case.toolchain, args=case.args(), env=case.env(),
                                        config_dir=tmp_path_factory.mktemp("gops")))
        return {case: target.pid for case, target in zip(cases, running[-len(cases):])}

    def check_in_process(pids: dict[Case, int]) -> dict[Case, check_command.Verdict]:
        targets = [Target.open(str(pid)) for pid in pids.values()]
        return dict(zip(pids, asyncio.run(check_command.check(targets, CHECK_SECONDS))))

    try:
        leak_pids, healthy_pids, site_pids = start(leaks), start(healthy), start(sites)
        with ThreadPoolExecutor(3) as pool:
            leak_run = pool.submit(run_check, *map(str, leak_pids.values()), "--json")
            healthy_run = pool.submit(run_check, *map(str, healthy_pids.values()), "--json")
            site_run = pool.submit(check_in_process, site_pids)
            return {"leaks": _checked(leak_run.result(), leak_pids),
                    "healthy": _checked(healthy_run.result(), healthy_pids),
                    "sites": site_run.result()}
    finally:
        for target in running:
            target.kill()


def _checked(result: subprocess.CompletedProcess, pids: dict[Case, int]) -> Checked:
    assert result.stdout.startswith("{"), result.stderr
    return Checked(result.returncode, json.loads(result.stdout), pids)


@pytest.mark.go
@pytest.mark.parametrize("case", LEAKS, ids=str)
def test_check_finds_each_leak_with_its_kind_and_place(live, case):
    if case not in live["leaks"].pids:
        pytest.skip(f"{case.toolchain} is not installed")
    findings = live["leaks"].findings(case)
    for expected in case.expected:
        found = [f for f in findings if matches(expected, f)]
        if case.site_may_be_unnamed and not found:
            found = [f for f in findings if of_kind(expected, f) and f["where"] == UNNAMED_HEAP]
        assert found, (expected, findings)
    assert len(findings) == len(case.expected), findings  # nothing else
    for f in findings:
        assert f["rate_per_min"] > 0 and f["evidence"] and f["found_after"] is not None, f
    first_found = live["leaks"].target(case)["first_found"]
    assert first_found.keys() == {kind for kind, _ in case.expected}


@pytest.mark.go
def test_check_exits_1_on_leaks_and_says_so(live):
    checked = live["leaks"]
    assert checked.returncode == 1
    assert checked.report["verdict"] == "leak"
    assert {t["verdict"] for t in checked.report["targets"]} == {"leak"}, checked.report["targets"]  # /proc-only too
    assert all(t["problem"] is None for t in checked.report["targets"])


@pytest.mark.go
def test_the_runtime_proves_the_channel_leaks_but_not_the_ticker_go127(live):
    case = Case("leak-all", toolchain="go1.27")
    if case not in live["leaks"].pids:
        pytest.skip("go1.27 is not installed")
    basis = {f["where"].split(" ")[0].rsplit(".", 1)[1]: (f["basis"], f["confidence"])
             for f in live["leaks"].findings(case)}
    proven = (Basis.PROVEN.value, "high")
    assert basis == {"leakySendResult": proven, "leakyAwaitReply": proven, "leakySelectForever": proven,
                     "leakyTickerLoop": (Basis.GROWING_GROUP.value, "high")}  # not proven, but past the bar


@pytest.mark.go
def test_check_finds_nothing_on_healthy_busy_targets(live):
    checked = live["healthy"]
    assert checked.report["findings"] == [], checked.report["findings"]
    assert checked.report["verdict"] in ("ok", "partial")
    assert checked.returncode == (0 if checked.report["verdict"] == "ok" else 3)
    for t in checked.report["targets"]:  # every detector had something to judge, or says to watch longer
        watched, c = t["watched"], t["checked"]
        assert watched["goroutines"]["watched"] and watched["descriptors"]["watched"], t
        # The heap is judged once per GC cycle, at the program's own pace: gotop's requests no longer
        # drive its GC (nor do goroutineleak requests: none where no group grows), and a program that
        # allocates little runs fewer than 6 cycles in 30 s, or none.
        heap = watched["heap"]
        assert heap["watched"] or "watch longer" in heap["why_not"] or "no GC ran in" in heap["why_not"], t
        # goroutineleak (a GC cycle each) only where a goroutine group grew for a while (a finding, if brief)
        assert c["goroutineleak_profiles"] == 0 or "goroutines" in t["first_found"], t
        assert t["verdict"] == ("ok" if heap["watched"] else "partial"), t
        assert c["descriptor_counts"] >= 10 and c["samples"] >= 20, t
        if "plain" not in t["label"]:
            # One heap profile, the baseline: more only while the live heap rises.
            assert c["goroutine_profiles"] >= 10 and c["heap_profiles"] >= 1, t


@pytest.mark.go
def test_the_heap_profiles_name_the_retaining_site_and_not_a_bounded_cache(live):
    leak, cache = live["sites"][Case("retain-slice")], live["sites"][Case("healthy-cache")]
    sites = growing_sites(leak.watch.history.heap_sites)
    assert sites and sites[0].site.function == f"{WORKLOAD}.retainAppend", sites
    assert Path(sites[0].site.file).name == "leak_heap.go"
    assert sites[0].kept > 0.9 >= MIN_SITE_KEPT  # what a leak allocates, it keeps
    assert [f.ref for f in leak.findings] == [SiteRef(sites[0].site)], (leak.findings, leak.checked())
    cache_sites = growing_sites(cache.watch.history.heap_sites)
    assert cache_sites == ()
    assert cache.findings == (), (cache.findings, cache.checked())


# --- gotop check on what it cannot see ---------------------------------------------------------

UNWATCHED_SECONDS = "20s"  # 10 goroutine profiles and descriptor counts, a few dozen GC cycles


@pytest.fixture(scope="module")
def unwatched(tmp_path_factory) -> dict[str, object]:
    """Targets the detectors can watch only in part, checked at once in four ways. The plain
    one runs a binary whose section headers were cut off (as sstrip does): discovered by its
    build info, its memory cannot be mapped (no pclntab found): no way in but /proc."""
    if not TOOLCHAINS["go"].available():
        pytest.skip("Go is not installed")
    sstripped = tmp_path_factory.mktemp("sstrip") / "plain"
    sstripped.write_bytes(without_section_headers(target_binary("plain").read_bytes()))
    sstripped.chmod(0o755)
    gc_off = {"GOGC": "off"}  # no GC cycle ever: the heap after GC cannot be read
    specs = {
        "plain": ("plain", "healthy-pool", None),  # /proc only
        "expvar": ("expvaronly", "healthy-churn", None),  # memstats, no net/http/pprof
        "gc-off": ("pprofonly", "healthy-pool", gc_off),
        "leak": ("pprofonly", "leak-send", gc_off),
    }
    running = []
    try:
        for binary, workload, env in specs.values():
            running.append(start_target(binary, args=["-workload", workload], env=env,
                                        config_dir=tmp_path_factory.mktemp("gops"),
                                        binary=sstripped if binary == "plain" else None))
        pid = {name: str(t.pid) for name, t in zip(specs, running)}
        runs = {
            "all": (*pid.values(), "--json"),
            "blind": (pid["plain"], pid["expvar"], pid["gc-off"]),
            "partial": (pid["expvar"], pid["gc-off"], "--json"),
            "allowed": (pid["expvar"], pid["gc-off"], "--allow-partial"),
        }
        with ThreadPoolExecutor(len(runs)) as pool:
            futures = {name: pool.submit(run_check, *args, "--for", UNWATCHED_SECONDS) for name, args in runs.items()}
            return {"pid": {name: int(p) for name, p in pid.items()},
                    **{name: future.result() for name, future in futures.items()}}
    finally:
        for target in running:
            target.kill()


def watched_of(report: dict, pid: int) -> tuple[str, dict[str, bool], dict]:
    target = next(t for t in report["targets"] if t["pid"] == pid)
    return target["verdict"], {d: w["watched"] for d, w in target["watched"].items()}, target["watched"]


@pytest.mark.go
def test_check_says_what_each_target_let_it_watch(unwatched):
    result = unwatched["all"]
    report = json.loads(result.stdout)
    pid = unwatched["pid"]
    verdict, watched, detail = watched_of(report, pid["plain"])
    assert (verdict, watched) == ("blind", {"goroutines": False, "heap": False, "descriptors": True})
    assert detail["goroutines"]["readings"] == 0 and detail["heap"]["readings"] == 0
    assert detail["goroutines"]["why_not"] == (f"no goroutine groups: pid {pid['plain']} (plain) serves no "
                                               "net/http/pprof and its memory cannot be read")
    assert detail["heap"]["why_not"].startswith(f"no GC cycles: no memstats read from pid {pid['plain']} (plain)")
    # expvar alone, and the goroutine groups read from its memory: every detector watches.
    verdict, watched, detail = watched_of(report, pid["expvar"])
    assert (verdict, watched) == ("ok", {"goroutines": True, "heap": True, "descriptors": True}), detail
    assert detail["heap"]["readings"] >= detail["heap"]["needed"]
    verdict, watched, detail = watched_of(report, pid["gc-off"])
    assert (verdict, watched) == ("partial", {"goroutines": True, "heap": False, "descriptors": True})
    assert "no GC ran" in detail["heap"]["why_not"]
    # A leak found is a leak, whatever could not be watched beside it.
    verdict, watched, _ = watched_of(report, pid["leak"])
    assert (verdict, watched) == ("leak", {"goroutines": True, "heap": False, "descriptors": True})
    assert [f["kind"] for f in findings_of(report, pid["leak"])] == ["goroutines"]
    assert report["verdict"] == "leak" and result.returncode == 1


@pytest.mark.go
def test_a_blind_check_fails_with_exit_2_and_names_what_it_could_not_watch(unwatched):
    result, pid = unwatched["blind"], unwatched["pid"]
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"pid {pid['plain']} (plain): blind" in lines
    assert (f"  not watched: goroutine groups: no goroutine groups: pid {pid['plain']} (plain) "
            "serves no net/http/pprof and its memory cannot be read") in lines
    assert f"pid {pid['expvar']} (expvaronly): ok" in lines
    # Each count has its name: the heap readings judged (one per poll after a GC), the GC cycles run.
    expvar = lines[lines.index(f"pid {pid['expvar']} (expvaronly): ok"):]
    readings = int(re.fullmatch(r"  watched: heap after GC \((\d+) GC cycles with their live heap\)", expvar[2])[1])
    gc_cycles = int(re.search(r", (\d+) gc cycles,", expvar[4])[1])
    assert 6 <= readings <= gc_cycles, expvar[:5]
    assert f"pid {pid['gc-off']} (pprofonly): partial" in lines
    assert lines[-1] == "verdict: blind (1 of 3 targets: neither goroutine groups nor the heap could be watched)"


@pytest.mark.go
def test_a_partial_check_exits_3_unless_allowed(unwatched):
    partial, allowed = unwatched["partial"], unwatched["allowed"]
    assert partial.returncode == 3, partial.stderr
    assert json.loads(partial.stdout)["verdict"] == "partial"
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert allowed.stdout.splitlines()[-1] == (
        "verdict: partial (1 of 2 targets not fully watched; --allow-partial accepts it)")

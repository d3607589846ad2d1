"""The engine: series, history, pollers and the fleet, against real Go processes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
from faultservers import InjectingProxy, gzip_bomb, http_response
from faulttargets import BreakableScanner, BreakableTarget
from gotargets import start_target, target_binary
from waiting import eventually

from gotop.discovery.processes import Scanner
from gotop.engine.fleet import MAX_FIRST_POLLS_SPREAD, Fleet
from gotop.engine.history import TargetHistory, TargetState, Update
from gotop.engine.poller import MAX_BACKOFF, Poller, Tiers, backoff
from gotop.engine.recording import Recorder, Recording
from gotop.engine.series import Series
from gotop.engine.target import Target
from gotop.sources import payload
from gotop.sources.http import PprofClient
from gotop.sources.procfs import OsSampler, ProcessGone, fd_kinds

FAST = Tiers(interval=0.2, slow_every=0.5)


def test_series_keeps_the_last_points_and_their_slope():
    s = Series(capacity=5)
    for i in range(8):
        s.append(100.0 + i, 10.0 * i)
    assert s.times == [103.0, 104.0, 105.0, 106.0, 107.0]
    assert len(s) == 5 and list(s)[0] == (103.0, 30.0) and s.since(106.0) == [(106.0, 60.0), (107.0, 70.0)]
    assert (s.min, s.max, s.last) == (30.0, 70.0, 70.0)
    long = Series(capacity=40)  # holds a few points more than it shows, dropped in one go
    for i in range(1000):
        long.append(float(i), -float(i))
        assert len(long) == min(i + 1, 40) and long.values[0] == -max(0, i - 39) and long.min == -i
    assert s.slope_per_minute() == pytest.approx(600.0)  # 10 per second
    assert Series(3).slope_per_minute() is None


async def poll_until(poller: Poller, updates: list[Update], condition, limit: int = 100) -> None:
    for _ in range(limit):
        update = await poller.poll_once()
        updates.append(update)
        poller.on_update(update)
        if condition(update):
            return
        await asyncio.sleep(poller.tiers.interval)
    raise AssertionError(f"condition not met in {limit} polls: last {updates[-1]}")


async def test_poller_fills_history_and_sees_the_exit(go_target):
    t = go_target("agentpprof", args=["-workload", "park", "-n", "25"])
    history = TargetHistory(FAST.interval)
    updates: list[Update] = []
    async with Target.open(str(t.pid)) as target:
        poller = Poller(target, history.apply, FAST)
        await poll_until(poller, updates, lambda u: len(history.series["heap_alloc"]) >= 3)
        assert {u.state for u in updates} == {TargetState.UP}
        assert updates[0].goroutines is not None  # the slow tier runs on the first poll
        assert history.goroutines.groups[0].top_function.endswith("workload.parkedHere")
        assert history.series["goroutines"].last >= 25
        assert history.series["rss"].last > 0
        t.kill()
        await poll_until(poller, updates, lambda u: u.state is TargetState.EXITED)
    assert history.state is TargetState.EXITED


async def test_polls_keep_their_http_connections_open(go_target):
    """Each poll of a pprof-only target asks two things at once; the same two
    connections serve every poll (no connect and TIME_WAIT per second)."""
    t = go_target("pprofonly")
    port = int(t.http_addr.rsplit(":", 1)[1])
    client_ports: set[int] = set()
    async with Target.open(str(t.pid)) as target:
        poller = Poller(target, lambda u: None, FAST)
        for _ in range(8):
            assert (await poller.poll_once()).state is TargetState.UP
            client_ports |= {c.raddr.port for c in psutil.Process(t.pid).net_connections("tcp")
                             if c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED}
    assert 1 <= len(client_ports) <= 2


async def test_unreachable_target_backs_off(go_target):
    t = go_target("agentpprof")
    agent = t.ready["agent"]
    t.kill()
    async with Target.open(agent) as target:
        poller = Poller(target, lambda u: None, Tiers(interval=1.0))
        update = await poller.poll_once()
        assert update.state is TargetState.UNREACHABLE
        assert "refused" in update.error
        assert poller._delay(update, 0.0) == 2.0
        assert poller._delay(await poller.poll_once(), 0.0) == 4.0
        for _ in range(1100):  # hours of a target that stays down: 2 ** 1024 overflowed a float
            update = await poller.poll_once()
        assert update.state is TargetState.UNREACHABLE
        assert poller._delay(update, 0.0) == MAX_BACKOFF
    assert backoff(1.0, 1100) == MAX_BACKOFF


def _stopped(pid: int) -> bool:
    """Whether every thread of `pid` is stopped (a signal's stop takes each thread in turn)."""
    states = [(Path(task) / "stat").read_text().rsplit(")", 1)[1].split()[0]
              for task in Path(f"/proc/{pid}/task").iterdir()]
    return all(state == "T" for state in states)


async def test_a_frozen_target_is_unreachable_after_one_poll_deadline(go_target):
    """SIGSTOPped, a target still accepts connections (the kernel does) but answers nothing:
    every source of a poll shares one deadline, where each fallback waited its own timeout."""
    t = go_target("agentpprof")
    # The network transports alone: its memory would still be read while it is stopped.
    proc = replace(Scanner().inspect(t.pid), memory_note="left out: this test is about the network transports")
    async with Target.for_process(proc) as target:
        poller = Poller(target, lambda u: None, FAST)
        assert (await poller.poll_once()).sample is not None
        os.kill(t.pid, signal.SIGSTOP)
        try:
            await eventually(lambda: _stopped(t.pid))  # a thread on its way may still answer a request
            frozen = await poller.poll_once()
        finally:
            os.kill(t.pid, signal.SIGCONT)
        assert frozen.state is TargetState.UNREACHABLE
        # The last fallback of memstats: not its own 15 s after the others' timeouts.
        assert f"heap?debug=1: the poll's {target.poll_budget:g} s ran out" in frozen.error
        assert (await poller.poll_once()).sample is not None  # continued, it answers again


@pytest.mark.parametrize("kind", ["goroutine", "heap"])
async def test_a_target_sending_gzip_bombs_is_asked_less_and_less_often(go_target, monkeypatch, kind):
    """A goroutine profile (slow tier) or heap profile (heap tier) inflating
    past its cap (lowered here to spare the machine) on every request: each
    poll stays up with the other figures and names the refusal, and the tier
    backs off, where without back-off every one of these polls (each longer
    than the tier's period) would fetch it."""
    monkeypatch.setitem(payload._MAX_INFLATED, kind, 1 << 20)
    t = go_target("pprofonly")
    bomb = http_response("200 OK", gzip_bomb(2 << 20), content_type="application/octet-stream")
    async with InjectingProxy(t.http_addr, {f"/debug/pprof/{kind}": bomb}) as proxy:
        client = PprofClient(proxy.url)
        async with Target(proxy.url, http=client, vars_client=client) as target:
            poller = Poller(target, lambda u: None, Tiers(interval=0.001, slow_every=0.001))
            poller.heap_demand.want("test", 0.001)
            updates = [await poller.poll_once() for _ in range(50)]
    assert {u.state for u in updates} <= {TargetState.UP, TargetState.SLOW}
    assert all(u.sample.memstats is not None for u in updates)
    assert f"the {kind} profile inflates beyond 1 MiB: refused" in updates[0].error
    assert 3 <= proxy.injected <= 20


async def test_fleet_takes_the_endpoints_a_process_opens_after_it_was_found(tmp_path):
    """A service that listens 10 s after it starts (it loads its data first): found without
    endpoints, then read through its net/http/pprof once a rescan sees it listen."""
    fleet = Fleet(on_change=lambda w: None, tiers=FAST, rescan_every=0.2)
    discovery = asyncio.create_task(fleet.run())
    starting = asyncio.create_task(asyncio.to_thread(
        start_target, "pprofonly", args=["-listen-after", "10s", "-workload", "park"], config_dir=tmp_path))
    try:
        pid = await eventually(lambda: next((p.pid for p in psutil.Process().children() if p.name() == "pprofonly"),
                                            None))
        watched = await eventually(lambda: fleet.find_pid(pid))
        assert watched.target.http is None  # found while it loads: nothing to read but its memory
        target = await starting
        await eventually(lambda: watched.target.http is not None, timeout=30)
        assert watched.process.pprof == f"http://{target.http_addr}/debug/pprof/"
        watched.heap_demand.want("a heap view", 0.5)  # heap profiles: net/http/pprof alone serves them here
        await eventually(lambda: watched.history.heap_sites)
    finally:
        discovery.cancel()
        await fleet.aclose()
        (await starting).kill()


async def test_fleet_discovers_and_follows_a_restart(go_target, tmp_path):
    """...and a recording keeps the restart, with the new process."""
    exe = tmp_path / "devbuild"
    shutil.copy(target_binary("agentpprof"), exe)
    first = go_target("agentpprof", binary=exe)
    changes: list = []
    recorded = tmp_path / "restart.gotop"
    fleet = Fleet(on_change=changes.append, tiers=FAST,
                  recorder=Recorder(str(recorded), interval=FAST.interval, slow_every=FAST.slow_every))
    discovery = asyncio.create_task(fleet.run())
    try:
        watched = await eventually(lambda: fleet.find_pid(first.pid))
        watched.follow("a screen")
        watched.heap_demand.want("a screen", 15.0)
        await eventually(lambda: len(watched.history.series["heap_alloc"]) >= 2)

        first.kill()
        shutil.copy(target_binary("agentpprof"), exe.with_suffix(".new"))
        exe.with_suffix(".new").rename(exe)  # a rebuild replaces the binary
        await eventually(lambda: watched.history.state is TargetState.EXITED)
        second = go_target("agentpprof", binary=exe)

        await eventually(lambda: watched.pid == second.pid)
        assert len(watched.history.restarts) == 1
        assert watched.poller.target.pid == second.pid and watched.poller.heap_every == 15.0  # still wanted
        assert fleet.find_pid(second.pid) is watched
        # Polled again (SLOW only says the polls take longer than the interval: a loaded machine).
        await eventually(lambda: watched.history.state in (TargetState.UP, TargetState.SLOW))
    finally:
        discovery.cancel()
        await fleet.aclose()
    recording = Recording(str(recorded))
    [detail] = [detail for _, _, kind, detail in recording.events() if kind == "restart"]
    assert json.loads(detail)["pid"] == second.pid
    recording.close()


async def test_slow_tier_reads_proven_leaks_and_descriptor_kinds(go_target):
    leaky = go_target("agentpprof", toolchain="go1.27", args=["-workload", "leak-send", "-n", "50"])
    sockets = go_target("pprofonly", args=["-workload", "leak-sockets", "-n", "50"])
    tiers = Tiers(interval=0.2, slow_every=0.2)
    async with Target.open(str(leaky.pid)) as target:
        poller = Poller(target, lambda u: None, tiers)
        history = TargetHistory(tiers.interval)
        poller.on_update = history.apply
        # Each goroutineleak request runs a GC cycle in the target: none while nobody wants one.
        await poll_until(poller, [], lambda u: u.goroutines is not None and u.goroutines.total > 20)
        assert history.leaks is None
        poller.leak_demand.want("a growing group", 0.5)
        await poll_until(poller, [], lambda u: history.leaks is not None and history.leaks.groups)
        group = history.leaks.groups[0]
        assert group.top_function.endswith("leakySendResult")
        assert group.leaked == group.count > 0
    async with Target.open(str(sockets.pid)) as target:
        history = TargetHistory(tiers.interval)
        poller = Poller(target, history.apply, tiers)
        tcp = history.series["fds_tcp"]
        await poll_until(poller, [], lambda u: len(tcp) >= 2 and tcp.last >= tcp.values[0] + 10)
        assert history.series["fds_file"].last < 20  # the growth is sockets, not files


def _polls(watched) -> int:
    """Polls that answered (each gives the OS figures of a local process)."""
    return len(watched.history.series["rss"])


async def test_a_target_nobody_asks_for_is_polled_at_the_unseen_pace_and_at_once_when_asked(go_target):
    """Two targets, one shown by a screen: it is polled every interval, the other every
    unseen_every (a minute: at most once more meanwhile); shown instead, the other is
    polled at once and then every interval (a minute's wait would outlast the safety timeout)."""
    tiers = Tiers(interval=0.2, slow_every=0.4, unseen_every=60.0)
    fleet = Fleet(lambda _: None, tiers, discover=False)
    async with fleet.running():
        a, b = (fleet.add(Target.open(str(go_target("plain", args=["-workload", "park"]).pid))) for _ in range(2))
        fleet.view("a screen", [a])
        await eventually(lambda: _polls(a) and _polls(b))  # each polled once at its start
        first = _polls(b)
        await eventually(lambda: _polls(a) >= 10)
        assert _polls(b) <= first + 1 and a.poller.interval == 0.2 and b.poller.interval == 60.0
        fleet.view("a screen", [b])
        shown_at, hidden_at = _polls(b), _polls(a)
        await eventually(lambda: _polls(b) >= shown_at + 5)
        assert _polls(a) <= hidden_at + 1


async def test_the_first_polls_of_a_scan_are_spread_over_an_interval_unless_asked_for(go_target):
    """A scan at start-up finds every Go process of the host at once: their first polls are
    spread over one interval, a second at most (a hundred at once delayed the TUI's first
    frame by 0.4 s), and a target that a screen asks for is polled at once."""
    started = [go_target("plain", args=["-workload", "park"]) for _ in range(3)]
    fleet = Fleet(lambda _: None, Tiers(interval=60.0, slow_every=60.0, unseen_every=60.0))
    async with fleet.running():
        for t in started:
            await eventually(lambda t=t: fleet.find_pid(t.pid))
        delays = sorted(w.poller.first_poll_in for w in fleet.watched.values())
        assert delays[0] == 0 and len(set(delays)) == len(delays) and delays[-1] < MAX_FIRST_POLLS_SPREAD
    fleet = Fleet(lambda _: None, Tiers(interval=60.0, slow_every=60.0, unseen_every=60.0), discover=False)
    async with fleet.running():
        now, later = (fleet.add(Target.open(str(t.pid)), first_poll_in=first) for t, first in zip(started, (0, 60)))
        await eventually(lambda: _polls(now))
        assert _polls(later) == 0
        fleet.view("a screen", [later])
        await eventually(lambda: _polls(later))


async def test_the_slow_tier_of_steady_counts_waits_for_them_to_move(go_target):
    """With steady_every, a target whose goroutine and descriptor counts stand still has its
    groups and descriptor kinds read once, not at every slow run; one whose goroutines grow
    has its groups read at every run; a screen that follows the steady one brings its slow
    tier back to its own pace, and its groups stay the runtime's."""
    parked = go_target("plain", args=["-workload", "park", "-n", "50"])
    growing = go_target("plain", args=["-workload", "leak-recv", "-n", "20"])
    fleet = Fleet(lambda _: None, Tiers(interval=0.2, slow_every=0.2, steady_every=600.0), discover=False)

    def groups(w) -> int:
        return len(w.history.series["goroutine_groups"])

    def kinds(w) -> int:
        return len(w.history.series["fds_file"])

    async with fleet.running():
        steady, moving = (fleet.add(Target.open(str(t.pid))) for t in (parked, growing))
        await eventually(lambda: _polls(steady) >= 3)
        read = groups(steady), kinds(steady)
        await eventually(lambda: groups(moving) >= 15 and _polls(steady) >= 15)
        assert (groups(steady), kinds(steady)) == read == (1, 1)
        steady.follow("a process screen")
        await eventually(lambda: groups(steady) >= 6 and kinds(steady) >= 6)
        assert steady.history.goroutines.total == steady.history.series["goroutines"].last


async def test_leaks_are_found_in_targets_polled_at_the_unseen_pace(go_target):
    """Off screen, the fast and slow tiers run together every unseen_every: the detectors
    still see a goroutine group and a live heap that keep growing."""
    goroutines = go_target("plain", args=["-workload", "leak-recv", "-n", "20"])
    heap = go_target("plain", args=["-workload", "retain-slice", "-n", "25"], env={"GOGC": "25"})
    fleet = Fleet(lambda _: None, Tiers(interval=0.2, slow_every=1.0, unseen_every=1.0), discover=False)
    async with fleet.running():
        watched = {kind: fleet.add(Target.open(str(t.pid))) for kind, t in (("goroutines", goroutines),
                                                                              ("heap", heap))}
        found = {kind: await eventually(lambda w=w, kind=kind: next(
                     (f for f in w.findings if f.kind.value == kind), None), timeout=120)
                 for kind, w in watched.items()}
        assert all(w.poller.interval == 1.0 for w in watched.values())
    assert "leakyAwaitReply" in found["goroutines"].where
    assert found["heap"].rate_per_min > 0


async def test_every_gc_pause_is_recovered_from_the_ring(go_target):
    t = go_target("pprofonly", args=["-workload", "healthy-churn", "-n", "20"])
    history = TargetHistory(FAST.interval)
    async with Target.open(str(t.pid)) as target:
        poller = Poller(target, history.apply, FAST)
        first: list = []
        await poll_until(poller, first, lambda u: True)
        start = first[0].sample.memstats.num_gc
        await poll_until(poller, [], lambda u: u.sample.memstats.num_gc >= start + 10)
        end = history.last_sample.memstats.num_gc
    # Several GCs run between polls; expvar's PauseNs ring gives each one.
    assert len(history.gc_pauses) == end - start
    assert history.lost_pauses == 0
    assert all(p > 0 for p in history.gc_pauses.values)


def test_descriptor_kinds_name_each_socket_protocol(tmp_path):
    """Counted on this test's own process: one more of each kind, each in its place."""
    before = fd_kinds(os.getpid())
    opened = [
        socket.socket(socket.AF_INET, socket.SOCK_STREAM), socket.socket(socket.AF_INET6, socket.SOCK_STREAM),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM), *socket.socketpair(socket.AF_UNIX),
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW), open(tmp_path / "f", "w"),
    ]
    read_end, write_end = os.pipe()
    try:
        after = fd_kinds(os.getpid())
    finally:
        for f in opened:
            f.close()
        os.close(read_end)
        os.close(write_end)
    grown = {kind: after[kind] - before[kind] for kind in after}
    assert grown == {"tcp": 2, "udp": 1, "unix": 2, "other": 1, "file": 1, "pipe": 2}


def test_os_figures_are_the_kernels(go_target):
    """OsSampler reads /proc/PID/stat itself: its figures are psutil's, and CPU shows work."""
    spinning = go_target("plain", args=["-workload", "spin"])
    parked = go_target("plain", args=["-workload", "park", "-n", "50"])
    samplers = {t.pid: OsSampler(t.pid) for t in (spinning, parked)}
    time.sleep(0.5)
    cpu = {pid: sampler.sample().cpu_percent for pid, sampler in samplers.items()}
    assert cpu[spinning.pid] > 10  # one goroutine computing all the time
    assert cpu[parked.pid] < cpu[spinning.pid]
    for pid, sampler in samplers.items():
        proc = psutil.Process(pid)
        for _ in range(10):  # the Go runtime may start a thread between the two readings
            ours, psutils = sampler.sample(), proc.as_dict(["num_threads", "num_fds", "memory_info"])
            if (ours.threads, ours.open_fds) == (psutils["num_threads"], psutils["num_fds"]):
                break
        assert (ours.threads, ours.open_fds) == (psutils["num_threads"], psutils["num_fds"])
        assert abs(ours.rss - psutils["memory_info"].rss) < 1 << 20
    spinning.kill()  # and reaped
    with pytest.raises(ProcessGone, match=f"pid {spinning.pid} has exited"):
        samplers[spinning.pid].sample()


async def test_a_poll_failing_in_any_way_is_shown_and_retried(go_target):
    t = go_target("agentpprof")
    fleet = Fleet(on_change=lambda w: None, tiers=FAST, discover=False)
    target = BreakableTarget.open(str(t.pid))
    target.fault = ZeroDivisionError("injected")
    watched = fleet.add(target)
    try:
        await eventually(lambda: watched.history.state is TargetState.FAILED)
        assert watched.history.error == "poll failed: ZeroDivisionError: injected"
        target.fault = None
        await eventually(lambda: watched.history.state in (TargetState.UP, TargetState.SLOW))
    finally:
        await fleet.aclose()


async def test_a_crash_in_handling_a_poll_is_shown_and_the_poller_restarted(go_target):
    t = go_target("agentpprof")
    broken = True

    def on_change(w) -> None:  # a fault-injecting stand-in for a screen's bug
        if broken:
            raise RuntimeError("injected")

    fleet = Fleet(on_change=on_change, tiers=FAST, discover=False)
    watched = fleet.add(Target.open(str(t.pid)))
    try:
        await eventually(lambda: watched.history.state is TargetState.FAILED)
        assert watched.history.error == "poller crashed: RuntimeError: injected"
        broken = False
        await eventually(lambda: watched.history.state in (TargetState.UP, TargetState.SLOW))
    finally:
        await fleet.aclose()


async def test_discovery_failing_in_any_way_is_shown_and_retried(go_target):
    t = go_target("agentpprof")
    scanner = BreakableScanner()
    scanner.fault = RecursionError("injected")
    fleet = Fleet(on_change=lambda w: None, tiers=FAST, scanner=scanner, rescan_every=0.2)
    discovery = asyncio.create_task(fleet.run())
    try:
        await eventually(lambda: fleet.discovery_error)
        assert fleet.discovery_error == "discovery failed: RecursionError: injected"
        scanner.fault = None
        await eventually(lambda: fleet.find_pid(t.pid))
        assert fleet.discovery_error is None
    finally:
        discovery.cancel()
        await fleet.aclose()


@pytest.mark.parametrize("command", ["check", "record"])
async def test_headless_commands_say_in_one_line_that_polls_fail(go_target, tmp_path, capsys, command):
    """One line on stderr when the polls of a target start failing, however often they are retried."""
    from gotop.commands.check import check
    from gotop.commands.record import _record

    t = go_target("agentpprof")
    target = BreakableTarget.open(str(t.pid))
    if command == "check":
        run = check([target], 600.0, tiers=FAST)
    else:
        run = _record([target], FAST, Recorder(str(tmp_path / "r.gotop"), interval=0.2, slow_every=0.5), 600.0, 60.0)
    task = asyncio.create_task(run)
    try:
        await eventually(lambda: target.samples >= 2)
        target.fault = ZeroDivisionError("injected")
        await eventually(lambda: target.faults >= 3)
        target.fault = None
        await eventually(lambda: target.samples >= target.faults + 4)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    lines = capsys.readouterr().err.splitlines()
    assert [line for line in lines if "injected" in line] == [
        f"gotop {command}: {target.label}: poll failed: ZeroDivisionError: injected (retrying)"]

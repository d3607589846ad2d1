"""A process that serves /debug/vars but not net/http/pprof (etcd without
--enable-pprof): memstats from expvar (polls read them from the memory first,
which costs the process nothing), nothing asked of pprof, and commands that
need pprof say so."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
from dataclasses import replace

import pytest
from netns import gotop_in, requests_in
from waiting import eventually

from gotop.discovery.processes import Scanner
from gotop.engine.history import TargetState
from gotop.engine.poller import Poller, Tiers
from gotop.engine.target import POLL_GRACE, Target

EXPVAR_ONLY = ["-pprof=false"]


# What discovery asks to tell whether pprof is there.
PROBES = {"GET /debug/pprof/cmdline"}


def asked_of_pprof(log) -> list[str]:
    """The requests to pprof other than discovery's probes."""
    return [line for line in requests_in(log) if line.startswith("GET /debug/pprof/") and line not in PROBES]


async def test_a_discovered_expvar_only_process_is_not_taken_for_pprof(go_target):
    target = go_target("pprofonly", args=EXPVAR_ONLY)
    async with Target.for_process(Scanner().inspect(target.pid)) as t:
        assert t.http is None  # the overview marks "E", not "P E"
        assert t.expvar
        sample = await t.sample(every_field=True)
    assert sample.sources["memstats"] == "expvar"
    assert sample.memstats is not None and sample.memstats.heap_alloc > 0
    assert not any("404" in problem for problem in sample.problems)


async def test_an_expvar_only_target_gets_its_clients_time_to_answer(go_target):
    """A poll's budget counts the expvar client too: a target serving /debug/vars alone
    (and no agent) that answers after the grace of a zero budget is still read."""
    t = go_target("expvaronly")
    # The network transports alone: polls would read memstats from its memory, even while it is stopped.
    proc = replace(Scanner().inspect(t.pid), memory_note="left out: this test is about the expvar client")
    async with Target.for_process(proc) as target:
        assert target.vars is not None and target.poll_budget == target.vars.timeout
        poller = Poller(target, lambda u: None, Tiers(interval=60.0))
        updates = [await poller.poll_once() for _ in range(3)]
        loop = asyncio.get_running_loop()
        os.kill(t.pid, signal.SIGSTOP)
        try:
            frozen_at = loop.time()
            poll = asyncio.create_task(poller.poll_once())
            # Frozen past the deadline a zero budget gave (the grace alone), well within the client's timeout.
            await eventually(lambda: loop.time() > frozen_at + POLL_GRACE + 0.5)
        finally:
            os.kill(t.pid, signal.SIGCONT)
        updates.append(await poll)
    for update in updates:
        assert update.state is TargetState.UP, update.error
        assert update.sample is not None and update.sample.sources.get("memstats") == "expvar", update.error
        assert "ran out" not in (update.error or "")


def test_snapshot_asks_expvar_record_the_memory_and_neither_pprof(go_target, private_netns, tmp_path):
    log = tmp_path / "requests.log"
    target = go_target("pprofonly", args=[*EXPVAR_ONLY, "-log", str(log)], wrapper=private_netns)
    snapshot = gotop_in(private_netns, "snapshot", str(target.pid), "--json")
    assert snapshot.returncode == 0, snapshot.stderr
    reading = json.loads(snapshot.stdout)
    assert reading["source"]["memstats"] == "expvar"
    assert reading["memstats"]["heap_alloc"] > 0
    assert not any("404" in problem for problem in reading["problems"])

    recording = tmp_path / "expvar.gotop"
    recorded = gotop_in(private_netns, "record", str(target.pid), "-o", str(recording), "--for", "4s",
                        "--interval", "0.5", "--slow-every", "0.5", "--heap-every", "1s")
    assert recorded.returncode == 0, recorded.stderr
    db = sqlite3.connect(recording)
    info = json.loads(db.execute("SELECT info FROM targets").fetchone()[0])
    assert info["transports"] == {"agent": False, "pprof": False, "expvar": True, "memory": True, "metrics": False}
    polls = [json.loads(row) for (row,) in db.execute("SELECT row FROM polls")]
    assert polls and all("404" not in (row[2] or "") for row in polls)  # row[2]: the poll's error

    assert asked_of_pprof(log) == []
    # Polls read memstats from the memory: /debug/vars only for discovery's probe and the snapshot.
    assert sum(line == "GET /debug/vars" for line in requests_in(log)) <= 3


def test_goroutine_groups_of_an_expvar_only_process_come_from_its_memory(go_target, private_netns, tmp_path):
    log = tmp_path / "requests.log"
    target = go_target("pprofonly", args=[*EXPVAR_ONLY, "-log", str(log), "-workload", "park", "-n", "9"],
                       wrapper=private_netns)
    result = gotop_in(private_netns, "stack", "--groups", str(target.pid), "--json")
    assert result.returncode == 0, result.stderr
    [group] = [g for g in json.loads(result.stdout)["groups"] if g["top_function"].endswith("workload.parkedHere")]
    assert group["count"] == 9 and group["states"] == {"chan receive": 9}
    assert asked_of_pprof(log) == []


@pytest.mark.parametrize("command", [
    ["stack"], ["gc"], ["top"],
    ["profile", "heap"], ["profile", "goroutine"], ["profile", "cpu"], ["profile", "trace"],
])
def test_commands_that_need_pprof_say_so(go_target, private_netns, tmp_path, command):
    log = tmp_path / "requests.log"
    target = go_target("pprofonly", args=[*EXPVAR_ONLY, "-log", str(log)], wrapper=private_netns)
    output = ["-o", str(tmp_path / "out")] if command[0] == "profile" else []
    result = gotop_in(private_netns, *command, str(target.pid), *output)
    assert result.returncode == 2
    assert re.search(r"needs? (the gops agent or )?net/http/pprof", result.stderr), result.stderr
    assert "404" not in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert asked_of_pprof(log) == []

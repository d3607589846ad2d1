"""Healthy, busy, real services: `gotop check` never says `leak` of them.

Prometheus, etcd and caddy from Debian's packages (tests/services.py: stripped, Go
1.19), each started for this file and kept busy by a loop of real requests
(tests/serviceload.py: queries, writes, a gzipped site), all checked for 60 s at once.
Under steady writes etcd's live heap grows (it keeps every revision until it is
compacted): at most a finding below the gate's bar. Each check must have watched
all it could watch (goroutine groups, the live heap each GC marked, descriptors),
so that it could have seen a leak. The file takes about 70 s.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
from leakcases import run_check
from serviceload import ServiceLoad
from services import running_service, unavailable
from waiting import eventually

SERVICES = ("prometheus", "etcd", "caddy")
CHECK_FOR = "60s"
MIN_GC_CYCLES = 30  # what the load makes each of them run in a minute, at least


@dataclass
class Checked:
    result: subprocess.CompletedProcess
    requests: int  # answered during the check
    failures: list[str]


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict[str, Checked]:
    names = [name for name in SERVICES if unavailable(name) is None]
    if not names:
        pytest.skip("; ".join(filter(None, map(unavailable, SERVICES))))
    with ExitStack() as stack:
        services = {name: stack.enter_context(running_service(name, tmp_path_factory.mktemp(name))) for name in names}
        loads = {name: stack.enter_context(ServiceLoad(service)) for name, service in services.items()}
        asyncio.run(eventually(lambda: all(load.requests for load in loads.values())))
        before = {name: load.requests for name, load in loads.items()}
        with ThreadPoolExecutor(len(services)) as pool:
            runs = {name: pool.submit(run_check, str(service.pid), "--for", CHECK_FOR, "--json", timeout=300)
                    for name, service in services.items()}
            results = {name: run.result() for name, run in runs.items()}
        return {name: Checked(results[name], loads[name].requests - before[name], loads[name].failures)
                for name in names}


@pytest.mark.parametrize("name", SERVICES)
def test_a_busy_healthy_service_is_no_leak(checked, name):
    if name not in checked:
        pytest.skip(unavailable(name) or "")
    result, load = checked[name].result, checked[name]
    assert result.stdout.startswith("{"), result.stderr
    report = json.loads(result.stdout)
    assert [f for f in report["findings"] if f["fails_gate"]] == [], report["findings"]
    assert (result.returncode, report["verdict"]) == (0, "ok"), result.stdout
    (target,) = report["targets"]
    assert all(w["watched"] for w in target["watched"].values()), target["watched"]
    assert target["watched"]["heap"]["unit"] == "GC cycles with their live heap"  # the memory's heapMarked
    # It was busy the whole minute.
    assert target["checked"]["gc_cycles"] >= MIN_GC_CYCLES, target["checked"]
    assert load.requests >= 1000 and load.failures == [], (load.requests, load.failures[:5])

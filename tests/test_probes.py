"""Discovery's HTTP probes of Go processes' listeners, against real targets:
what they ask, how often, and what one hostile process can cost."""

from __future__ import annotations

import json
import sqlite3

import pytest

from netns import gotop_in, private_netns, requests_in  # noqa: F401 (a fixture)

from gotop.errors import GotopError
from gotop.model.memstats import parse_expvar
from gotop.sources.http import NotPprof, PprofClient


def listed(netns, *args: str) -> dict[int, dict]:
    result = gotop_in(netns, "list", "--json", *args)
    assert result.returncode == 0, result.stderr
    return {p["pid"]: p for p in json.loads(result.stdout)}


def test_deeply_nested_vars_cost_only_their_process(go_target, private_netns, tmp_path):
    hostile = go_target("pprofonly", args=["-vars", "nested"], wrapper=private_netns)
    good = go_target("pprofonly", wrapper=private_netns)

    procs = listed(private_netns)
    assert procs[hostile.pid]["pprof"] == f"http://{hostile.http_addr}/debug/pprof/"
    assert procs[hostile.pid]["expvar"] is None  # not expvar: nothing to read there
    assert procs[good.pid]["expvar"] == f"http://{good.http_addr}/debug/vars"

    recording = tmp_path / "all.gotop"
    recorded = gotop_in(private_netns, "record", "-o", str(recording), "--for", "3s", "--interval", "0.5")
    assert recorded.returncode == 0, recorded.stderr
    labels = [label for (label,) in sqlite3.connect(recording).execute("SELECT label FROM targets")]
    assert f"pid {good.pid} (pprofonly)" in labels
    assert f"pid {hostile.pid} (pprofonly)" in labels


async def test_deeply_nested_vars_are_refused_by_the_parsers(go_target):
    target = go_target("pprofonly", args=["-vars", "nested"])
    async with PprofClient(target.http_addr) as client:
        body = await client.vars_raw()
        with pytest.raises(NotPprof, match="not expvar: invalid JSON"):
            await client.vars()
    with pytest.raises(GotopError, match="expvar: not JSON"):
        parse_expvar(body)

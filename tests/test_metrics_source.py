"""The Prometheus /metrics source: found by discovery and read by the target.

Live: Debian's etcd, prometheus and caddy (tests/services.py: stripped Go 1.19
binaries nobody here wrote, serving client_golang's Go collector); what gotop
reads from their /metrics is checked against what the memory source reads of
the same process just before and just after. Faults a real service will not
produce on demand (a huge, slow or garbage /metrics, two collectors merged)
come from a stand-in proxy in front of a real Go target, which serves
everything else.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import httpx
import pytest
from faultservers import InjectingProxy, Trickled, http_response, service_families, streamed_response
from gotargets import RunningTarget

from gotop.discovery.processes import Scanner
from gotop.engine.history import TargetState
from gotop.engine.poller import Poller, Tiers
from gotop.engine.target import Target, TargetError
from gotop.sources.http import PprofClient
from gotop.sources.metrics import MetricsClient

SCRAPE_GOROUTINES = 10  # a scrape's own goroutines: its connection's, the registry's collector workers, ReadMemStats


def gotop(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gotop", *args], capture_output=True, text=True, timeout=90)


def serves_go_metrics(port: int) -> bool:
    """Whether a port answers /metrics with client_golang's Go collector (asked without gotop)."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and b"\ngo_goroutines " in response.content


# service fixture -> (serves pprof, serves expvar): etcd serves expvar (not pprof) on its client port
SERVICES = {"etcd_service": (False, True), "prometheus_service": (True, False), "caddy_service": (True, True)}


@pytest.mark.parametrize("fixture", SERVICES)
def test_list_shows_where_a_real_service_serves_its_metrics(request, fixture):
    service = request.getfixturevalue(fixture)
    listing = gotop("list", "--json")
    assert listing.returncode == 0, listing.stderr
    proc = next(p for p in json.loads(listing.stdout)["processes"] if p["pid"] == service.pid)
    ports = sorted(s["port"] for s in proc["listening"])
    first = next(port for port in ports if serves_go_metrics(port))  # the lowest port serving it wins
    assert proc["metrics"] == f"http://127.0.0.1:{first}/metrics"
    assert (proc["pprof"] is not None, proc["expvar"] is not None) == SERVICES[fixture]

    table = gotop("list")
    row = next(line.split() for line in table.stdout.splitlines() if line.split()[:1] == [str(service.pid)])
    via = row[3:row.index(proc["go_version"])]
    assert "R" in via and ("P" in via) == SERVICES[fixture][0] and ("E" in via) == SERVICES[fixture][1]


async def test_a_snapshot_through_metrics_agrees_with_the_memory_between_two_readings(etcd_service):
    proc = Scanner().inspect(etcd_service.pid)
    assert proc.metrics is not None and proc.pprof is None
    if not proc.memory:
        pytest.skip(f"etcd's memory cannot be read here: {proc.memory_note}")
    async with Target.for_process(proc, only="memory") as memory:
        async def between_two_readings():
            """memory, `gotop snapshot --source metrics`, memory: that snapshot, if no GC ran meanwhile."""
            before = await memory.sample()
            snapshot = gotop("snapshot", str(etcd_service.pid), "--source", "metrics", "--json")
            after = await memory.sample()
            assert snapshot.returncode == 0, snapshot.stderr
            same_cycle = before.memstats.num_gc == after.memstats.num_gc
            return (before, json.loads(snapshot.stdout), after) if same_cycle else None

        before, snapshot, after = await _until(between_two_readings)
    assert snapshot["source"] == {"memstats": "metrics", "stats": "metrics", "process": "procfs"}
    m, was, now = snapshot["memstats"], before.memstats, after.memstats
    assert m["num_gc"] == was.num_gc
    assert m["next_gc"] == was.next_gc
    assert m["pause_total_ns"] == pytest.approx(was.pause_total_ns, abs=1000)  # seconds as float64 in /metrics
    assert m["last_gc"] == pytest.approx(was.last_gc, abs=1000)
    # The heap grows with every allocation (a scrape allocates): the figure lies between the two readings,
    # give or take what the memory source counts as cached for allocation.
    for figure in ("heap_alloc", "total_alloc"):
        assert getattr(was, figure) - (1 << 20) <= m[figure] <= getattr(now, figure) + (1 << 20), figure
    assert m["heap_objects"] > 0 and m["mallocs"] - m["frees"] == m["heap_objects"]  # what the memory lacks
    low, high = sorted((before.stats.goroutines, after.stats.goroutines))
    assert low <= snapshot["goroutines"] <= high + SCRAPE_GOROUTINES
    assert before.stats.os_threads <= snapshot["os_threads"] <= after.stats.os_threads


async def _until(attempt, tries: int = 20):
    for _ in range(tries):
        if (result := await attempt()) is not None:
            return result
    raise AssertionError(f"a GC ran between the readings {tries} times in a row")


# -- a /metrics that cannot be taken: refused in one line, the target read through its other sources ----------

TEXT = "text/plain; version=0.0.4; charset=utf-8"
FAULTS = {
    "huge-declared": http_response("200 OK", service_families(400_000), content_type=TEXT),  # 22 MB
    "huge-streamed": streamed_response(service_families(400_000), content_type=TEXT),  # read until the cap
    "garbage": streamed_response(b"\x00\xff\xfe garbage\n", content_type=TEXT),
    "html": streamed_response(b"<!DOCTYPE html>\n<html><body>Sign in</body></html>\n", content_type="text/html"),
    "no-go-collector": streamed_response(service_families(10), content_type=TEXT),
    "conflicting": streamed_response(b"go_goroutines 3\ngo_goroutines 5\n", content_type=TEXT),
}
REASONS = {
    "huge-declared": "answer larger than 16 MiB: aborted", "huge-streamed": "answer larger than 16 MiB: aborted",
    "garbage": "not text (invalid UTF-8", "html": "not Prometheus text (line 1: 'invalid metric name:<!DOCTYPE html>')",
    "no-go-collector": "no Go collector series (go_*) in 10 metric families",
    "conflicting": "conflicting values for go_goroutines: 3, 5",
}


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_metrics_answer_that_cannot_be_taken_is_refused_and_the_target_stays_up(go_target, fault):
    """Stand-in: a proxy in front of a real pprof and expvar target answers /metrics itself."""
    real = go_target("pprofonly", args=["-workload", "park", "-n", "30"])
    refusal, injected = await _refused_while_the_others_answer(real, FAULTS[fault])
    assert REASONS[fault] in refusal
    assert injected == 2  # once alone, once with the others: the refusal stands for the polls after


async def test_two_real_go_collectors_merged_in_one_answer_are_refused(go_target):
    """Stand-in: a proxy answers /metrics with what a merging proxy in front of two processes
    would: client_golang v1.11's answer followed by v1.25's (tests/targets/promold, promnew)."""
    bodies = [httpx.get(f"http://{go_target(name).http_addr}/metrics", headers={"Accept": TEXT}).content
              for name in ("promold", "promnew")]
    real = go_target("pprofonly", args=["-workload", "park", "-n", "30"])
    refusal, _ = await _refused_while_the_others_answer(real, streamed_response(b"".join(bodies), content_type=TEXT))
    assert re.search(r"conflicting values for go_\w+: \d", refusal), refusal


async def _refused_while_the_others_answer(real: RunningTarget, answer: bytes) -> tuple[str, int]:
    """`answer` to /metrics of a proxy in front of `real`: refused when read alone (the
    one-line refusal), while with its other sources the target is read through them
    (asserted), poll after poll; and how many times /metrics was asked."""
    async with InjectingProxy(real.http_addr, {"/metrics": answer}) as proxy:
        alone = Target(proxy.url, metrics=MetricsClient(PprofClient(proxy.url), "/metrics"), only="metrics")
        async with alone:
            with pytest.raises(TargetError) as refused:
                await alone.sample()
        assert "\n" not in str(refused.value)

        # With its other sources: /metrics is asked first for the counts, refused, and the pprof index answers.
        client = PprofClient(proxy.url)
        async with Target(proxy.url, http=client, vars_client=client, metrics=MetricsClient(client, "/metrics"),
                          pid=real.pid) as target:
            poller = Poller(target, lambda update: None, Tiers(interval=0.001, slow_every=3600))
            updates = [await poller.poll_once() for _ in range(3)]
    assert {u.state for u in updates} <= {TargetState.UP, TargetState.SLOW}
    for update in updates:
        assert update.sample.sources == {"memstats": "expvar", "stats": "pprof index", "process": "procfs"}
        assert update.sample.stats.goroutines >= 30
    return str(refused.value), proxy.injected


SLOW_TIMEOUT = 2.0  # the timeout of the client that asks the slow /metrics


async def test_a_metrics_answer_slower_than_the_timeout_ends_with_it_and_the_target_stays_up(go_target):
    """Stand-in: a proxy in front of a real pprof and expvar target starts an answer to
    /metrics, then sends a byte every 50 ms, forever: each read succeeds, only the
    client's timeout ends it. That the poll ends at all is what is asserted (no clock:
    that a poll which waited out the timeout is slow is the poller's own finding)."""
    real = go_target("pprofonly", args=["-workload", "park", "-n", "30"])
    slow = Trickled(streamed_response(b"# TYPE go_goroutines gauge\ngo_goroutines 30\n", content_type=TEXT))
    async with InjectingProxy(real.http_addr, {"/metrics": slow}) as proxy:
        alone = Target(proxy.url, metrics=MetricsClient(PprofClient(proxy.url, timeout=SLOW_TIMEOUT), "/metrics"),
                       only="metrics")
        async with alone:
            with pytest.raises(TargetError) as timed_out:
                await alone.sample()
        assert "metrics: no complete answer within 2.0 s" in str(timed_out.value)
        assert "\n" not in str(timed_out.value)

        # One client for the three, as discovery makes for one server: /metrics is asked first for the
        # counts and takes the whole timeout; the pprof index answers in what is left of the poll's deadline.
        client = PprofClient(proxy.url, timeout=SLOW_TIMEOUT)
        async with Target(proxy.url, http=client, vars_client=client, metrics=MetricsClient(client, "/metrics"),
                          pid=real.pid) as target:
            # The first poll waits out the timeout of /metrics before the pprof index: longer than the
            # interval; the next one, within TIMED_OUT_PAUSE, does not ask /metrics again.
            poller = Poller(target, lambda update: None, Tiers(interval=SLOW_TIMEOUT / 2, slow_every=3600))
            updates = [await poller.poll_once() for _ in range(2)]
            asked = proxy.injected
    assert [u.state for u in updates] == [TargetState.SLOW, TargetState.UP]
    for update in updates:
        assert update.sample.sources == {"memstats": "expvar", "stats": "pprof index", "process": "procfs"}
        assert update.sample.stats.goroutines >= 30
    assert asked == 2  # the timeout stood for the second poll


async def test_one_scrape_answers_a_polls_memstats_and_counts(etcd_service):
    """Stand-in: a proxy answers /metrics with what etcd's said, and counts the scrapes."""
    said = httpx.get(etcd_service.metrics_url, headers={"Accept": "text/plain; version=0.0.4"}, timeout=10.0)
    upstream = etcd_service.metrics_url.removeprefix("http://").removesuffix("/metrics")
    answer = http_response("200 OK", said.content, content_type=said.headers["content-type"])
    async with InjectingProxy(upstream, {"/metrics": answer}) as proxy:
        target = Target(proxy.url, metrics=MetricsClient(PprofClient(proxy.url), "/metrics"), only="metrics")
        async with target:
            samples = [await target.sample() for _ in range(3)]
    assert proxy.injected == 3  # one a poll
    for sample in samples:
        assert sample.sources == {"memstats": "metrics", "stats": "metrics"}
        assert sample.memstats.heap_objects > 0 and sample.stats.goroutines > 0

"""gotop.model.monitoring: which stacks of a watched process are its monitors' requests,
in the heap and goroutine profiles of real Go programs and of Debian's caddy."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from targetio import http_get
from waiting import eventually

from gotop.model.goroutines import parse_goroutine_profile_text, profile_from_pprof
from gotop.model.monitoring import (
    CONNECTION_READER,
    is_monitor_handler,
    monitoring_groups,
    monitoring_share,
    split_monitoring,
)
from gotop.model.profile import Profile, parse_profile

WORKLOAD = "gotop.test/targets/internal/workload"


def functions(profile: Profile, sample_index: int) -> set[str]:
    """Every function on a stack with a non-zero value of the sample type."""
    values = profile.samples.values[sample_index]
    return {line.function.name for stack, value in zip(profile.samples.stacks, values) if value
            for code in stack for line in profile.locations[profile.samples.location_ids[code]].lines}


def test_handlers_of_monitoring_requests_are_told_from_the_programs_own_code():
    for name in ("net/http/pprof.handler.ServeHTTP", "net/http/pprof.Index", "expvar.expvarHandler",
                 "github.com/google/gops/agent.handle",
                 "github.com/prometheus/client_golang/prometheus/promhttp.HandlerForTransactional.func1",
                 "github.com/prometheus/client_golang/prometheus/promhttp.HandlerFor.func1",
                 "example.com/app/vendor/github.com/google/gops/agent.handle"):
        assert is_monitor_handler(name), name
    for name in ("net/http/pprof.init.0", "expvar.(*Map).Add", "github.com/google/gops/agent.Listen",
                 "github.com/google/gops/agent.handler",
                 "github.com/prometheus/client_golang/prometheus/promhttp.InstrumentHandlerCounter.func1",
                 "main.handlePprofLikeThing", "compress/flate.NewWriter"):
        assert not is_monitor_handler(name), name


def test_the_gzip_writers_of_goroutine_profiles_are_the_requests_and_the_retained_heap_the_programs(go_target):
    """Twenty protobuf goroutine profiles (what gotop fetched every 5 s) leave their gzip
    writers in the allocations of a program that retains heap of its own."""
    t = go_target("pprofonly", args=["-workload", "retain", "-n", "200"])
    for _ in range(20):
        http_get(t.http_addr, "/debug/pprof/goroutine")
    http_get(t.http_addr, "/debug/pprof/heap?gc=1")  # two GCs publish the allocations in the profile
    heap = parse_profile(http_get(t.http_addr, "/debug/pprof/heap?gc=1"))
    allocated = heap.sample_index("alloc_space")
    program, requests = split_monitoring(heap)
    assert len(program.samples) + len(requests.samples) == len(heap.samples)
    asked = functions(requests, allocated)
    assert "net/http/pprof.handler.ServeHTTP" in asked and "compress/flate.NewWriter" in asked
    assert f"{WORKLOAD}.retainHere" not in asked
    kept = functions(program, allocated)
    assert f"{WORKLOAD}.retainHere" in kept and not any(map(is_monitor_handler, kept))
    own, total = monitoring_share(heap, allocated)
    assert own == sum(requests.samples.values[allocated]) and 0 < own < total == sum(heap.samples.values[allocated])


@pytest.mark.parametrize("form", ["protobuf", "text"])
def test_the_goroutine_serving_the_request_is_the_monitors(go_target, form):
    """A goroutine profile holds the goroutine writing it (its connection's, in the pprof
    handler), and on a kept-alive connection the reader net/http may start beside it:
    those are marked; the program's goroutines and the accept loop are not."""
    t = go_target("pprofonly", args=["-workload", "park", "-n", "5"])
    with httpx.Client(base_url=f"http://{t.http_addr}") as client:  # kept alive, as gotop's
        if form == "protobuf":
            profile = profile_from_pprof(parse_profile(client.get("/debug/pprof/goroutine").content))
        else:
            profile = parse_goroutine_profile_text(client.get("/debug/pprof/goroutine", params={"debug": "1"}).text)
    own = monitoring_groups(profile.groups)
    [handler] = [g for g in profile.groups if any(f.function == "net/http/pprof.handler.ServeHTTP" for f in g.frames)]
    assert handler.key in own and handler.count == 1
    assert all(g is handler or any(f.function == CONNECTION_READER for f in g.frames)
               for g in profile.groups if g.key in own)
    others = [g for g in profile.groups if g.key not in own]
    assert any(g.top_function == f"{WORKLOAD}.parkedHere" and g.count == 5 for g in others)
    assert any(g.label == "net/http.(*Server).Serve" for g in others)


async def test_readers_of_more_requests_than_the_monitors_serve_are_not_marked(go_target):
    """A request of the program's own, held open (its /debug/vars never answers), has a
    connection reader too: readers then outnumber the monitoring handlers, and none is marked."""
    t = go_target("pprofonly", args=["-vars", "hang"])
    host, port = t.http_addr.rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /debug/vars HTTP/1.1\r\nHost: target\r\n\r\n")
    try:
        def profile_with_two_readers():
            profile = profile_from_pprof(parse_profile(http_get(t.http_addr, "/debug/pprof/goroutine")))
            readers = [g for g in profile.groups if any(f.function == CONNECTION_READER for f in g.frames)]
            return profile if sum(g.count for g in readers) == 2 else None

        profile = await eventually(profile_with_two_readers)
    finally:
        writer.close()
    own = monitoring_groups(profile.groups)
    [handler] = [g for g in profile.groups if any(is_monitor_handler(f.function) for f in g.frames)]
    assert own == {handler.key}


async def test_caddys_metrics_scrapes_are_its_monitors(caddy_service):
    """Debian's caddy serves client_golang's promhttp handler on its admin port, and pprof:
    what its /metrics scrapes allocate is the monitors', not caddy's."""
    admin = caddy_service.metrics_url.removesuffix("/metrics")
    heaps: list[Profile] = []

    def scraped_in(heap: Profile) -> bool:
        return any("promhttp.HandlerFor" in name
                   for name in functions(split_monitoring(heap)[1], heap.sample_index("alloc_space")))

    async with httpx.AsyncClient(timeout=10) as client:
        async def scrape() -> None:
            for _ in range(10):
                (await client.get(caddy_service.metrics_url)).raise_for_status()
            await client.get(f"{admin}/debug/pprof/heap", params={"gc": "1"})  # publish what they allocated
            heaps.append(parse_profile((await client.get(f"{admin}/debug/pprof/heap", params={"gc": "1"})).content))

        await eventually(lambda: heaps and scraped_in(heaps[-1]), pause=scrape, timeout=60)
    heap = heaps[-1]
    program = split_monitoring(heap)[0]
    assert not any("promhttp.HandlerFor" in name for name in functions(program, heap.sample_index("alloc_space")))

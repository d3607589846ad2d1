"""The net/http/pprof + expvar client against real Go targets, and against
stand-in fault servers for what a real target will not do on demand."""

from __future__ import annotations

import asyncio
import gzip
import re
import tracemalloc

import pytest
from faultservers import (
    CannedAnswerServer,
    DropsKeptConnectionServer,
    EchoServer,
    EndlessAnswerServer,
    InjectingProxy,
    SilentServer,
    TrickleServer,
    closed_port,
    gzip_bomb,
    http_response,
)
from gotargets import target_binary
from hypothesis import given
from hypothesis import strategies as st

from gotop.sources.errors import AnswerInflatesTooLarge
from gotop.sources.http import (
    MAX_CONNECTIONS,
    HttpStatusError,
    HttpTimeout,
    HttpUnreachable,
    InvalidRequest,
    NotPprof,
    PprofClient,
    ProfilerBusy,
    ResponseTooLarge,
    is_loopback,
    normalize_base,
    parse_pprof_index,
)
from gotop.sources.payload import max_inflated
from gotop.sources.progress import CaptureProgress

TOOLCHAINS = ["go", "go1.27", "go1.19"]
HTTP_OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"


def inflate(profile: bytes) -> bytes:
    return gzip.decompress(profile)


# -- real targets ----------------------------------------------------------------


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
async def test_index_lists_profiles_with_counts(go_target, toolchain):
    target = go_target("pprofonly", toolchain=toolchain, args=["-workload", "park", "-n", "40"])
    async with PprofClient(target.http_addr) as client:
        index = await client.index()

    assert {"allocs", "block", "goroutine", "heap", "mutex", "threadcreate"} <= set(index.names)
    assert 40 <= index.count("goroutine") < 60
    # The leak profile exists from Go 1.27 on (1.26 only with GOEXPERIMENT).
    assert ("goroutineleak" in index) == (toolchain == "go1.27")


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
async def test_named_profiles_and_texts(go_target, toolchain):
    target = go_target("agentpprof", toolchain=toolchain, args=["-workload", "park", "-n", "40"])
    async with PprofClient(f"http://{target.http_addr}/debug/pprof/") as client:
        goroutines = await client.profile("goroutine")
        text = await client.profile_text("goroutine")
        heap_text = await client.profile_text("heap")
        allocs = await client.profile("allocs")

    assert b"workload.parkedHere" in inflate(goroutines)
    assert re.match(r"goroutine profile: total \d+\n40 @ ", text)
    assert "workload.parkedHere" in text
    assert heap_text.startswith("heap profile: ") and "# runtime.MemStats" in heap_text
    assert b"alloc_space" in inflate(allocs)


async def test_heap_profile_names_the_retaining_function(go_target):
    target = go_target("pprofonly", args=["-workload", "retain", "-n", "50"])
    async with PprofClient(target.http_addr) as client:
        heap = await client.profile("heap", gc=True)

    assert b"workload.retainHere" in inflate(heap)


async def test_goroutineleak_where_the_runtime_has_it(go_target):
    new = go_target("pprofonly", toolchain="go1.27")
    old = go_target("pprofonly", toolchain="go")
    async with PprofClient(new.http_addr) as client:
        assert b"goroutineleak" in inflate(await client.profile("goroutineleak"))
    async with PprofClient(old.http_addr) as client:
        with pytest.raises(HttpStatusError) as info:
            await client.profile("goroutineleak")

    error = info.value
    assert (error.status, error.reason, error.from_pprof) == (404, "Unknown profile", True)
    assert str(error) == f"http://{old.http_addr}/debug/pprof/goroutineleak: HTTP 404: Unknown profile"


@pytest.mark.parametrize("name", ["heap", "goroutine"])
async def test_delta_profiles_report_progress(go_target, name):
    target = go_target("pprofonly", args=["-workload", "churn", "-n", "100"])
    reports: list[CaptureProgress] = []
    async with PprofClient(target.http_addr) as client:
        delta = await client.profile(name, seconds=1, progress=reports.append)

    assert inflate(delta)
    assert reports[0].duration == 1 and reports[-1].done and reports[-1].received == len(delta)


async def test_cpu_profile_and_trace(go_target):
    target = go_target("pprofonly", args=["-workload", "churn", "-n", "2000"])
    reports: list[CaptureProgress] = []
    async with PprofClient(target.http_addr) as client:
        cpu = await client.cpu_profile(2, progress=reports.append)
        trace = await client.trace(0.5)

    assert b"samples" in inflate(cpu)
    # Progress starts with the request, not with the headers (sent only at the end).
    assert not reports[0].done and reports[0].received == 0
    assert reports[-1].done and reports[-1].received == len(cpu)
    assert re.match(rb"go 1\.\d+ trace\x00", trace)


async def test_second_cpu_profile_gets_profiler_busy(go_target):
    target = go_target("pprofonly")
    async with PprofClient(target.http_addr) as client:
        results = await asyncio.gather(client.cpu_profile(2), client.cpu_profile(2), return_exceptions=True)

    busy = [r for r in results if isinstance(r, ProfilerBusy)]
    profiles = [r for r in results if isinstance(r, bytes)]
    assert len(busy) == 1 and len(profiles) == 1
    assert busy[0].status == 500 and busy[0].from_pprof  # through pprof's serveError
    assert str(busy[0]) == (
        f"http://{target.http_addr}/debug/pprof/profile?seconds=2: "
        "HTTP 500: Could not enable CPU profiling: cpu profiling already in use"
    )


async def test_second_trace_gets_profiler_busy(go_target):
    target = go_target("pprofonly")
    async with PprofClient(target.http_addr) as client:
        results = await asyncio.gather(client.trace(1), client.trace(1), return_exceptions=True)

    busy = [r for r in results if isinstance(r, ProfilerBusy)]
    assert len(busy) == 1 and sum(isinstance(r, bytes) for r in results) == 1
    # "tracing is already enabled" (Go 1.19) or "execution tracer already enabled" (newer)
    assert re.search(r"trace\?seconds=1: HTTP 500: Could not enable tracing: .*already enabled$", str(busy[0]))


async def test_full_goroutine_dump_only_on_demand(go_target):
    target = go_target("pprofonly", args=["-workload", "park", "-n", "40"])
    async with PprofClient(target.http_addr) as client:
        dump = await client.full_goroutine_dump()

    assert dump.startswith("goroutine ")
    assert len(re.findall(r"\[chan receive[^\]]*\]:\n.*workload\.parkedHere", dump)) == 40


async def test_expvar_and_cmdline(go_target):
    target = go_target("agentpprof", args=["-workload", "idle", "-n", "3"])
    async with PprofClient(target.http_addr) as client:
        raw = await client.vars_raw()
        doc = await client.vars()
        cmdline = await client.cmdline()

    assert raw.startswith(b"{")
    assert doc["memstats"]["NumGC"] >= 0 and doc["memstats"]["HeapAlloc"] > 0
    binary = str(target_binary("agentpprof"))
    assert cmdline == [binary, "-workload", "idle", "-n", "3"] == doc["cmdline"]


async def test_pprof_status_errors_name_the_url(go_target):
    target = go_target("pprofonly")
    async with PprofClient(target.http_addr) as client:
        expected = f"http://{target.http_addr}/debug/pprof/nosuch: HTTP 404: Unknown profile"
        with pytest.raises(HttpStatusError, match=expected):
            await client.profile("nosuch")
        with pytest.raises(HttpStatusError) as info:
            await client.get("/debug/pprof/heap", {"seconds": "1", "debug": "1"}, max_bytes=4096)

    assert (info.value.status, info.value.from_pprof) == (400, True)
    assert str(info.value).endswith("heap?seconds=1&debug=1: HTTP 400: seconds and debug params are incompatible")


async def test_same_origin_redirect_is_followed(go_target):
    """Go's mux redirects /debug/pprof to /debug/pprof/ (301)."""
    target = go_target("pprofonly")
    async with PprofClient(target.http_addr) as client:
        answer = await client.get("/debug/pprof", max_bytes=1 << 20)

    assert answer.url == f"http://{target.http_addr}/debug/pprof/"
    assert answer.is_html and b"goroutine?debug=1" in answer.body


async def test_environment_proxies_are_ignored(go_target, monkeypatch):
    target = go_target("pprofonly")
    async with SilentServer(request="http") as proxy:
        for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(var, proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with PprofClient(target.http_addr) as client:
            assert "goroutine" in await client.index()
    assert proxy.connections == 0


async def test_agent_port_given_as_http_base(go_target):
    target = go_target("agentpprof")
    async with PprofClient(f"127.0.0.1:{target.agent_port}") as client:
        with pytest.raises(NotPprof, match=r"no HTTP answer .*: not an HTTP server\?"):
            await client.index()


async def test_exited_target_is_unreachable(go_target):
    target = go_target("pprofonly")
    async with PprofClient(target.http_addr) as client:
        assert await client.cmdline()
        target.kill()
        with pytest.raises(HttpUnreachable, match=f"http://{target.http_addr}/debug/vars: "):
            await client.vars()


# -- stand-in fault servers ------------------------------------------------------


async def test_refused_connection():
    port = closed_port()
    async with PprofClient(f"127.0.0.1:{port}") as client:
        with pytest.raises(HttpUnreachable, match=f"http://127.0.0.1:{port}/debug/pprof/: cannot connect"):
            await client.index()


async def test_a_kept_connection_closed_by_the_server_is_replaced():
    vars_doc = http_response("200 OK", b'{"memstats": {"HeapAlloc": 1}}', keep_alive=True)
    async with DropsKeptConnectionServer(vars_doc) as server, PprofClient(server.url) as client:
        for _ in range(3):
            assert b"HeapAlloc" in await client.vars_raw()
    assert server.connections == 3  # each request after the first was sent twice


async def test_requests_given_up_free_their_connection_slots(go_target):
    """More abandoned requests than the pool has connections: the next one still goes through."""
    t = go_target("agentpprof")
    async with PprofClient(t.http_addr) as client:
        for _ in range(MAX_CONNECTIONS + 2):
            with pytest.raises(HttpTimeout):
                await client.profile("heap", seconds=5, timeout=0.2)
        assert "memstats" in await client.vars()


async def test_server_that_never_answers_times_out():
    async with SilentServer(request="http") as server, PprofClient(server.url, timeout=0.3) as client:
        with pytest.raises(HttpTimeout, match=f"{server.url}/debug/vars: no complete answer"):
            await client.vars()


async def test_headers_then_hang_times_out():
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"
    async with CannedAnswerServer(head, then_hang=True, request="http") as server:
        async with PprofClient(server.url, timeout=0.3) as client:
            with pytest.raises(HttpTimeout):
                await client.vars()


async def test_trickling_body_hits_the_overall_deadline():
    async with TrickleServer(HTTP_OK_HEAD, request="http") as server:
        async with PprofClient(server.url) as client:
            with pytest.raises(HttpTimeout):
                await client.profile("heap", timeout=0.5)
        assert server.bytes_sent > len(HTTP_OK_HEAD)


async def test_endless_body_is_cut_at_the_cap_with_bounded_memory():
    async with EndlessAnswerServer(HTTP_OK_HEAD, request="http") as server:
        async with PprofClient(server.url) as client:
            tracemalloc.start()
            try:
                with pytest.raises(ResponseTooLarge, match=r"/debug/pprof/heap: answer larger than 2 MiB"):
                    await client.profile("heap", max_bytes=2 << 20)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        assert peak < 16 << 20
        assert server.bytes_sent < server.limit


async def test_a_gzip_bomb_is_refused_at_the_cap_of_its_kind(go_target):
    """A real target whose goroutine profile is replaced by 1 MB of gzip that
    inflates past the goroutine cap: refused as too large, not handed on."""
    t = go_target("pprofonly")
    cap = max_inflated("goroutine")
    bomb = http_response("200 OK", gzip_bomb(cap + (1 << 20)), content_type="application/octet-stream")
    async with InjectingProxy(t.http_addr, {"/debug/pprof/goroutine": bomb}) as proxy:
        async with PprofClient(proxy.url) as client:
            assert "goroutine" in await client.index()  # the rest is the real target's
            with pytest.raises(AnswerInflatesTooLarge,
                               match=r"/debug/pprof/goroutine: the goroutine profile inflates beyond 128 MiB: refused"):
                await client.profile("goroutine")
            assert gzip.decompress(await client.profile("heap"))  # the heap cap is higher
    assert cap == 128 << 20 and proxy.injected == 1


async def test_declared_oversize_is_refused_before_reading():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10737418240\r\n\r\n"
    async with CannedAnswerServer(head, then_hang=True, request="http") as server:
        async with PprofClient(server.url) as client:
            with pytest.raises(ResponseTooLarge, match="answer larger than 16 MiB"):
                await client.vars_raw()


async def test_body_cut_short_is_reported():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n{\"memstats\": "
    async with CannedAnswerServer(head, request="http") as server:
        async with PprofClient(server.url) as client:
            with pytest.raises(HttpUnreachable, match="connection lost"):
                await client.vars()


@pytest.mark.parametrize(
    ("method", "response", "message"),
    [
        ("index", http_response("200 OK", b"<html><body>Welcome to nginx!</body></html>", content_type="text/html"),
         r"not the pprof index page \(text/html"),
        ("index", http_response("200 OK", b'{"memstats": {}}', content_type="application/json"),
         "not the pprof index page"),
        ("heap", http_response("200 OK", b"<!doctype html><title>login</title>", content_type="text/html"),
         "expected a gzip pprof profile, got an HTML page"),
        ("heap", http_response("200 OK", b"\x1f\x8b\x08\x00garbage"), "expected a gzip pprof profile, got"),
        ("goroutine_text", http_response("200 OK", b"<html>", content_type="text/html"), "not a pprof text profile"),
        ("vars", http_response("200 OK", b'{"cmdline": ["x"]}', content_type="application/json"),
         "not expvar: no JSON object with memstats"),
        ("vars", http_response("200 OK", b'{"memstats": 1, "x": [}', content_type="application/json"),
         "not expvar: invalid JSON"),
        ("vars", http_response("200 OK", b'{"memstats": 1}', content_type="application/json"),
         "not expvar: no memstats object"),
        ("trace", http_response("200 OK", b"go 2 trace"), "not a Go execution trace"),
        ("cmdline", http_response("200 OK", b"<p>hi</p>", content_type="text/html"), "not a pprof cmdline"),
    ],
)
async def test_answers_that_are_not_pprof(method, response, message):
    calls = {
        "index": lambda c: c.index(),
        "heap": lambda c: c.profile("heap"),
        "goroutine_text": lambda c: c.profile_text("goroutine"),
        "vars": lambda c: c.vars(),
        "trace": lambda c: c.trace(0.1),
        "cmdline": lambda c: c.cmdline(),
    }
    async with CannedAnswerServer(response, request="http") as server, PprofClient(server.url) as client:
        with pytest.raises(NotPprof, match=message) as info:
            await calls[method](client)
    assert str(info.value).startswith(server.url + "/debug/")


async def test_html_error_pages_become_status_errors():
    page = http_response("502 Bad Gateway", b"<html><h1>upstream\nerror</h1></html>", content_type="text/html")
    async with CannedAnswerServer(page, request="http") as server, PprofClient(server.url) as client:
        with pytest.raises(HttpStatusError) as info:
            await client.profile("heap")
    assert str(info.value) == f"{server.url}/debug/pprof/heap: HTTP 502: Bad Gateway"
    assert info.value.from_pprof is False


async def test_hostile_error_body_is_one_bounded_line():
    body = b"\x1b[31mred\x07 " + b"A" * 100_000
    async with CannedAnswerServer(http_response("500 Oops", body), request="http") as server:
        async with PprofClient(server.url) as client:
            with pytest.raises(HttpStatusError) as info:
                await client.index()
    message = str(info.value)
    assert "\x1b" not in message and "\x07" not in message and len(message) < 300


async def test_redirect_to_another_host_is_not_followed():
    response = http_response("302 Found", b"", extra="Location: http://198.51.100.7/debug/pprof/\r\n")
    async with CannedAnswerServer(response, request="http") as server, PprofClient(server.url) as client:
        with pytest.raises(HttpStatusError, match="redirect to another origin not followed: http://198.51.100.7/"):
            await client.index()
    assert server.connections == 1


async def test_redirect_loop_ends():
    async with CannedAnswerServer(b"", request="http") as server:
        server.answer = http_response("302 Found", b"", extra=f"Location: {server.url}/debug/pprof/\r\n")
        async with PprofClient(server.url) as client:
            with pytest.raises(HttpStatusError, match="HTTP 302: more than 3 redirects"):
                await client.index()
    assert server.connections == 4


async def test_echo_server_is_not_http():
    async with EchoServer() as server, PprofClient(server.url) as client:
        with pytest.raises(NotPprof, match="not an HTTP server"):
            await client.index()


# -- base URLs, names, loopback --------------------------------------------------


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("127.0.0.1:6060", "http://127.0.0.1:6060"),
        ("http://127.0.0.1:6060/", "http://127.0.0.1:6060"),
        ("http://127.0.0.1:6060/debug/pprof", "http://127.0.0.1:6060"),
        ("http://127.0.0.1:6060/debug/pprof/", "http://127.0.0.1:6060"),
        ("http://127.0.0.1:6060/debug/vars", "http://127.0.0.1:6060"),
        ("https://[::1]:8443/app/debug/pprof/", "https://[::1]:8443/app"),
        (" localhost:6060 ", "http://localhost:6060"),
    ],
)
def test_normalize_base(given, base):
    assert normalize_base(given) == base


@pytest.mark.parametrize(
    "bad",
    ["ftp://127.0.0.1/", "http://", "http://u:secret@h:1/", "http://h:1/?x=1", "http://h:99999", "http://h:0", ""],
)
def test_bad_base_is_a_clear_error(bad):
    with pytest.raises(InvalidRequest, match="invalid pprof base URL"):
        normalize_base(bad)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.profile("../vars"), "invalid profile name"),
        (lambda c: c.profile("heap?debug=2"), "invalid profile name"),
        (lambda c: c.profile("heap", seconds=0), "positive number of seconds"),
        (lambda c: c.cpu_profile(1.5), "whole seconds"),
        (lambda c: c.trace(-1), "positive number of seconds"),
    ],
)
async def test_bad_arguments_are_clear_errors(call, message):
    async with SilentServer(request="http") as server, PprofClient(server.url) as client:
        with pytest.raises(InvalidRequest, match=message):
            await call(client)
    assert server.connections == 0


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
        ("::ffff:127.0.0.1", True), ("localhost", True), ("LOCALHOST.", True), ("app.localhost", True),
        ("0.0.0.0", False), ("10.0.0.1", False), ("::", False), ("example.com", False),
        ("localhost.example.com", False), ("", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


# -- index parser ----------------------------------------------------------------

_names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)


@given(st.dictionaries(_names, st.integers(0, 10**12), max_size=20))
def test_index_rows_round_trip(rows):
    """Rows written the way net/http/pprof writes them parse back."""
    html = "<table>\n<thead><td>Count</td><td>Profile</td></thead>\n" + "".join(
        f"<tr><td>{count}</td><td><a href='{name}?debug=1'>{name}</a></td></tr>\n"
        for name, count in rows.items()
    ) + '</table>\n<a href="goroutine?debug=2">full goroutine stack dump</a>'
    index = parse_pprof_index(html)
    assert {e.name: e.count for e in index.entries} == rows


@given(st.text(alphabet=st.sampled_from("<>td/a href='?debug=1 0123x\n"), max_size=400))
def test_index_parser_takes_any_text(text):
    assert all(e.count >= 0 for e in parse_pprof_index(text).entries)


def test_index_parser_is_linear_on_hostile_pages():
    assert parse_pprof_index("<td" * 400_000).entries == ()
    assert parse_pprof_index("<td>1" + " " * 1_000_000).entries == ()

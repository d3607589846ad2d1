"""The gops agent client against real Go targets running the real agent, and
against stand-in fault servers for the faults a real agent will not produce
on demand (hung, lying, cut short, endless)."""

from __future__ import annotations

import asyncio
import gzip
import re
import tracemalloc
from pathlib import Path

import pytest
from faultservers import (
    CannedAnswerServer,
    CommandAnswerServer,
    EchoServer,
    EndlessAnswerServer,
    SilentServer,
    TrickleServer,
    closed_port,
)
from gotargets import go_version, target_binary
from hypothesis import given
from hypothesis import strategies as st

from gotop.errors import GotopError
from gotop.sources.gops import (
    AgentCommand,
    AgentProtocolError,
    AgentTimeout,
    AgentUnreachable,
    CommandNotSupported,
    GopsClient,
    InvalidRequest,
    ResponseTooLarge,
    encode_varint,
)
from gotop.sources.progress import CaptureProgress

SAMPLES = Path(__file__).resolve().parent / "samples"
TOOLCHAINS = ["go", "go1.27", "go1.19"]


def field(text: str, key: str) -> str:
    """The value of a `key: value` line of memstats/stats text."""
    match = re.search(rf"^{re.escape(key)}: (.*)$", text, re.MULTILINE)
    assert match, f"no {key!r} in {text!r}"
    return match[1]


def agent(target) -> GopsClient:
    return GopsClient("127.0.0.1", target.agent_port)


# -- real agent ------------------------------------------------------------------


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
async def test_quick_commands_on_each_go_version(go_target, toolchain):
    target = go_target("agentpprof", toolchain=toolchain, args=["-workload", "park", "-n", "40"])
    client = agent(target)

    assert await client.version() == go_version(toolchain)

    stats = await client.stats()
    assert 40 <= int(field(stats, "goroutines")) < 60
    assert int(field(stats, "GOMAXPROCS")) >= 1

    memstats = await client.memstats()
    assert re.fullmatch(r"\S+ \((\d+) bytes\)|\d+ bytes", field(memstats, "heap-alloc"))

    stack = await client.stack()
    assert stack.startswith("goroutine ")
    assert stack.count("workload.parkedHere(") == 40


@pytest.mark.parametrize("toolchain", ["go", "go1.19"])
async def test_gc_runs_a_collection(go_target, toolchain):
    client = agent(go_target("agentpprof", toolchain=toolchain))
    before = int(field(await client.memstats(), "num-gc"))

    assert await client.gc() is None  # the agent's "ok" was checked

    after = await client.memstats()
    assert int(field(after, "num-gc")) > before
    assert int(field(after, "num-forced-gc")) >= 1


@pytest.mark.parametrize("toolchain", ["go", "go1.19"])
async def test_set_gc_percent_round_trips(go_target, toolchain):
    client = agent(go_target("agentpprof", toolchain=toolchain, env={"GOGC": "100"}))

    half = await client.set_gc_percent(50)
    assert (half.new, half.previous) == (50, 100)
    assert half.line == "New GC percent set to 50. Previous value was 100."

    off = await client.set_gc_percent("off")
    assert (off.new, off.previous) == (-1, 50)

    back = await client.set_gc_percent(100)
    assert (back.new, back.previous) == (100, -1)
    assert (await client.set_gc_percent(None)).new == -1


async def test_heap_profile_is_complete_gzip_naming_the_retaining_function(go_target):
    client = agent(go_target("agentpprof", args=["-workload", "retain", "-n", "50"]))

    profile = await client.heap_profile()

    assert profile[:2] == b"\x1f\x8b"
    assert b"workload.retainHere" in gzip.decompress(profile)


async def test_binary_dump_is_the_executable(go_target):
    target = go_target("agentpprof")
    expected = target_binary("agentpprof").read_bytes()

    dump = await agent(target).binary_dump(max_bytes=len(expected))

    assert dump == expected


async def test_binary_dump_over_the_callers_cap_is_refused(go_target):
    target = go_target("agentpprof")
    size = target_binary("agentpprof").stat().st_size

    with pytest.raises(ResponseTooLarge, match=re.escape(f"127.0.0.1:{target.agent_port}")):
        await agent(target).binary_dump(max_bytes=size // 2)
    # The agent is still serving after the client dropped the connection.
    assert await agent(target).version() == go_version("go")


async def test_trace_reports_progress_and_returns_a_go_trace(go_target):
    client = agent(go_target("agentpprof", args=["-workload", "churn", "-n", "100"]))
    reports: list[CaptureProgress] = []

    trace = await client.trace(progress=reports.append)

    assert re.match(rb"go 1\.\d+ trace\x00", trace)
    assert reports and all(r.duration == 5.0 for r in reports)
    assert reports[-1].done and reports[-1].received == len(trace)
    assert [r.elapsed for r in reports] == sorted(r.elapsed for r in reports)


async def test_cpu_profile_blocks_the_agent_and_other_requests_wait(go_target):
    """The agent serves one connection at a time: during the 30 s CPU profile a
    request on the same client queues behind it and one from another client
    waits in the agent's backlog; both time out clearly, then succeed."""
    target = go_target("agentpprof", args=["-workload", "churn", "-n", "5000"])
    client, other = agent(target), agent(target)
    reports: list[CaptureProgress] = []
    sent = asyncio.Event()

    def on_progress(report: CaptureProgress) -> None:
        reports.append(report)
        sent.set()

    capture = asyncio.create_task(client.cpu_profile(progress=on_progress))
    try:
        await asyncio.wait_for(sent.wait(), 10)
        assert client.busy

        with pytest.raises(AgentTimeout, match="still busy with an earlier pprof-cpu"):
            await client.version(timeout=1.0)
        with pytest.raises(AgentTimeout, match="may be busy with a CPU profile or trace"):
            await other.version(timeout=1.0)
        # Given enough time, the waiting request is answered once the profile ends.
        assert await other.version(timeout=60.0) == go_version("go")

        profile = await capture
    finally:
        capture.cancel()
    assert b"workload.churnHere" in gzip.decompress(profile)
    assert reports[0].duration == 30.0 and reports[-1].done
    assert not client.busy


async def test_unknown_command_byte_is_reported_as_not_supported(go_target):
    client = agent(go_target("agentpprof"))
    probe = AgentCommand(0x42, "probe", 1024)

    with pytest.raises(CommandNotSupported, match=r"probe \(command 0x42\): not supported by this agent"):
        await client.request(probe)
    assert await client.version() == go_version("go")


@pytest.mark.parametrize("capture", ["cpu_profile", "trace"])
async def test_agent_killed_mid_capture_went_away(go_target, capture):
    """The target dies during a CPU profile or trace: the agent went away,
    which is no unsupported command, and no partial trace is handed on."""
    target = go_target("agentpprof", args=["-workload", "churn", "-n", "50"])
    client = agent(target)
    started = asyncio.Event()
    task = asyncio.create_task(getattr(client, capture)(progress=lambda report: started.set()))
    await asyncio.wait_for(started.wait(), 10)
    target.kill()
    with pytest.raises(AgentUnreachable) as raised:
        await task
    assert re.search(r"(and nothing listens any more: the agent went away|connection lost after \d+ bytes)",
                     str(raised.value)), raised.value
    assert "not supported" not in str(raised.value)


async def test_http_server_given_as_agent(go_target):
    target = go_target("pprofonly")
    host, port = target.http_addr.rsplit(":", 1)

    with pytest.raises(AgentProtocolError, match="an HTTP server answered: not a gops agent"):
        await GopsClient(host, int(port)).memstats()


async def test_exited_target_is_unreachable(go_target):
    target = go_target("agentpprof")
    client = agent(target)
    target.kill()

    with pytest.raises(AgentUnreachable, match=f"127.0.0.1:{target.agent_port}: connection refused"):
        await client.version()


# -- stand-in fault servers ------------------------------------------------------


async def test_refused_connection():
    port = closed_port()
    with pytest.raises(AgentUnreachable) as info:
        await GopsClient("127.0.0.1", port).stats()
    assert str(info.value) == f"127.0.0.1:{port}: connection refused: no agent listening"


async def test_agent_that_never_answers_times_out():
    async with SilentServer() as server:
        with pytest.raises(AgentTimeout) as info:
            await GopsClient("127.0.0.1", server.port, timeout=0.3).memstats()
    assert str(info.value) == (
        f"127.0.0.1:{server.port}: no answer within 0.3 s: "
        "the agent may be busy with a CPU profile or trace, or hung"
    )


async def test_agent_that_trickles_forever_hits_the_overall_deadline():
    async with TrickleServer(b"alloc: ") as server:
        with pytest.raises(AgentTimeout):
            await GopsClient("127.0.0.1", server.port).memstats(timeout=0.5)
        assert server.bytes_sent > len(b"alloc: ")  # every read got data, yet it ended


async def test_answer_cut_short_then_hanging_times_out():
    async with CannedAnswerServer(b"goroutines: 4\nOS thr", then_hang=True) as server:
        with pytest.raises(AgentTimeout):
            await GopsClient("127.0.0.1", server.port).stats(timeout=0.3)


async def test_text_answer_cut_short_is_returned_as_received():
    """An agent ends every answer by closing: for text the transport cannot
    tell a short answer from a complete one, and it must not hang on it."""
    partial = (SAMPLES / "gops-memstats.txt").read_bytes()[:200]
    async with CannedAnswerServer(partial) as server:
        assert await GopsClient("127.0.0.1", server.port).memstats() == partial.decode()


async def test_profile_cut_short_is_a_protocol_error():
    whole = (SAMPLES / "gops-heap.pb.gz").read_bytes()
    async with CannedAnswerServer(whole[: len(whole) // 2]) as server:
        with pytest.raises(AgentProtocolError, match=r"pprof-heap: truncated gzip data \(cut short after \d+ bytes\)"):
            await GopsClient("127.0.0.1", server.port).heap_profile()


async def test_profile_with_trailing_garbage_is_a_protocol_error():
    whole = (SAMPLES / "gops-heap.pb.gz").read_bytes()
    async with CannedAnswerServer(whole + b"junk") as server:
        with pytest.raises(AgentProtocolError, match="4 unexpected bytes after the gzip stream"):
            await GopsClient("127.0.0.1", server.port).heap_profile()


@pytest.mark.parametrize(
    ("method", "garbage"),
    [
        ("version", b"\x00\xff\xfe garbage"),
        ("memstats", b"<html>hello</html>"),
        ("stats", b"\x89PNG\r\n"),
        ("stack", b"panic: nope"),
        ("gc", b"okay then"),
        ("heap_profile", b"PK\x03\x04 not gzip"),
    ],
)
async def test_garbage_answers_are_protocol_errors(method, garbage):
    async with CannedAnswerServer(garbage) as server:
        with pytest.raises(AgentProtocolError, match=f"127.0.0.1:{server.port}: "):
            await getattr(GopsClient("127.0.0.1", server.port), method)()


async def test_endless_answer_is_cut_at_the_cap_with_bounded_memory():
    async with EndlessAnswerServer(b"alloc: ") as server:
        client = GopsClient("127.0.0.1", server.port)
        tracemalloc.start()
        try:
            with pytest.raises(ResponseTooLarge, match=r"answer larger than 1 MiB: aborted"):
                await client.memstats()  # text commands are capped at 1 MiB
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 8 << 20
        assert server.bytes_sent < server.limit  # the client hung up long before a gigabyte


async def test_echo_server_is_not_an_agent():
    async with EchoServer() as server:
        with pytest.raises(AgentProtocolError, match=r"unexpected answer to version \(b'\\x04'\): not a gops agent\?"):
            await GopsClient("127.0.0.1", server.port).version()


async def test_set_gc_percent_on_an_agent_too_old_for_it():
    """Stand-in for a pre-v0.3.3 agent: it answers its version, does not know
    0x10, and closes with the payload unread (which may reset the connection)."""
    async with CommandAnswerServer({0x04: b"go1.9.7\n"}) as server:
        with pytest.raises(CommandNotSupported, match=r"to setgc \(command 0x10\): not supported by this agent"):
            await GopsClient("127.0.0.1", server.port).set_gc_percent(50)


async def test_a_port_that_closes_without_a_word_is_not_an_agent():
    """Stand-in for a connection multiplexer's port (cmux, influxd's tcp.Mux) or a
    TLS server: it closes on the command byte without answering anything."""
    async with CannedAnswerServer(b"") as server:
        with pytest.raises(AgentProtocolError, match=r"memstats: no answer, and no version either: not a gops agent$"):
            await GopsClient("127.0.0.1", server.port).memstats()


async def test_requests_on_one_client_are_serialised():
    async with SilentServer() as server:
        client = GopsClient("127.0.0.1", server.port)
        results = await asyncio.gather(
            client.stats(timeout=1.0), client.stats(timeout=0.3), return_exceptions=True,
        )
    assert all(isinstance(r, AgentTimeout) for r in results)
    assert server.connections == 1  # the second never got the lock before its deadline
    assert "still busy with an earlier stats" in str(results[1])


# -- encoding and arguments ------------------------------------------------------


@pytest.mark.parametrize(("n", "encoded"), [(100, b"\xc8\x01"), (50, b"\x64"), (-1, b"\x01"), (0, b"\x00")])
def test_varint_matches_go_put_varint(n, encoded):
    assert encode_varint(n) == encoded


def _go_read_varint(data: bytes) -> int:
    """binary.ReadVarint as the agent does it: LEB128, then undo the zig-zag."""
    u = shift = 0
    for byte in data:
        u |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    return (u >> 1) ^ -(u & 1)


@given(st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1))
def test_varint_round_trips_through_the_agents_decoding(n):
    encoded = encode_varint(n)
    assert len(encoded) <= 10
    assert _go_read_varint(encoded) == n


@pytest.mark.parametrize("bad", [1 << 63, "fifty", 1.5, True])
async def test_bad_gc_percent_is_a_clear_error(bad):
    with pytest.raises(InvalidRequest) as info:
        await GopsClient("127.0.0.1", closed_port()).set_gc_percent(bad)
    assert isinstance(info.value, GotopError) and "\n" not in str(info.value)

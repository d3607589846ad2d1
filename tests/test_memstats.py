"""gotop.model.memstats: every memstats source against captured samples, the
documented formats of old gops agents, and live Go targets under three toolchains."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import mutated
from targetio import agent_request, http_get

from gotop.errors import GotopError
from gotop.model.memstats import (
    PAUSE_RING_SIZE,
    MemStats,
    MemStatsParseError,
    Stats,
    gc_pauses_since,
    parse_expvar,
    parse_go_duration,
    parse_go_time,
    parse_gops_memstats,
    parse_gops_stats,
    parse_heap_debug1_memstats,
)

SAMPLES = Path(__file__).resolve().parent / "samples"


def unix_ns(*args: int, fraction_ns: int = 0) -> int:
    """Unix ns of a UTC wall time, computed independently of the parser."""
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1_000_000_000 + fraction_ns


def assert_runtime_invariants(m: MemStats) -> None:
    """Identities the Go runtime guarantees inside one ReadMemStats; a field mapped
    to the wrong name breaks them."""
    assert m.heap_idle + m.heap_inuse == m.heap_sys
    assert m.heap_objects == m.mallocs - m.frees
    assert m.alloc == m.heap_alloc
    assert m.heap_released <= m.heap_idle
    if m.buck_hash_sys is not None:
        assert m.sys == (m.heap_sys + m.stack_sys + m.mspan_sys + m.mcache_sys
                         + m.buck_hash_sys + m.gc_sys + m.other_sys)


# --- Go value formats -------------------------------------------------------------------


@pytest.mark.parametrize("text, ns", [
    ("0s", 0),
    ("0", 0),
    ("840ns", 840),
    ("165.327µs", 165_327),  # U+00B5, what Go prints
    ("165.327μs", 165_327),  # U+03BC
    ("165.327us", 165_327),
    ("8.761893ms", 8_761_893),
    ("1.5s", 1_500_000_000),
    ("2m3.5s", 123_500_000_000),
    ("1h0m0s", 3_600_000_000_000),
    ("2562047h47m16.854775807s", 2**63 - 1),  # the largest Duration, exactly
    ("-1.5s", -1_500_000_000),
])
def test_go_durations_parse_exactly(text, ns):
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize("text", ["", "-", "1", "1.", "s", "µs", "1x", "1h-2m", "1 s", "NaNs"])
def test_malformed_go_durations_are_value_errors(text):
    with pytest.raises(ValueError):
        parse_go_duration(text)


@pytest.mark.parametrize("text, ns", [
    ("2026-11-25 17:08:04 +0000 UTC", unix_ns(2026, 11, 25, 17, 8, 4)),  # zero fraction: none printed
    ("2026-11-25 17:08:04.15797236 +0000 UTC", unix_ns(2026, 11, 25, 17, 8, 4, fraction_ns=157_972_360)),
    ("2026-11-25 20:08:04.000000001 +0300 +03", unix_ns(2026, 11, 25, 17, 8, 4, fraction_ns=1)),
    ("2026-11-25 22:38:04.5 +0530 IST", unix_ns(2026, 11, 25, 17, 8, 4, fraction_ns=500_000_000)),
    ("2026-11-25 13:38:04 -0330 NDT", unix_ns(2026, 11, 25, 17, 8, 4)),
    ("2017-09-20 14:03:05.123456789 +0200 CEST", unix_ns(2017, 9, 20, 12, 3, 5, fraction_ns=123_456_789)),
])
def test_go_times_parse_to_unix_ns(text, ns):
    assert parse_go_time(text) == ns


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01 00:00:00 +0000 UTC",
                                  "2026-11-25 17:08:04", "2026-11-25T17:08:04Z"])
def test_malformed_go_times_are_value_errors(text):
    with pytest.raises(ValueError):
        parse_go_time(text)


# --- captured samples (Go 1.27.3, gops master agent) --------------------------------------


def test_gops_memstats_sample_with_master_key_names():
    m = parse_gops_memstats((SAMPLES / "gops-memstats.txt").read_bytes())
    assert m.alloc == 26445624 and m.total_alloc == 26525608 and m.sys == 37837064
    assert (m.lookups, m.mallocs, m.frees) == (0, 1305, 238)
    assert (m.heap_sys, m.heap_idle, m.heap_inuse, m.heap_released) == (32833536, 5980160, 26853376, 5726208)
    assert (m.mspan_inuse, m.mspan_sys, m.mcache_inuse, m.mcache_sys) == (24000, 32640, 4592, 16072)
    assert (m.buck_hash_sys, m.other_sys, m.gc_sys, m.next_gc) == (1443523, 579309, 2211088, 38393018)
    assert m.last_gc == unix_ns(2026, 11, 25, 17, 16, 10, fraction_ns=779_156_013)
    assert m.pause_total_ns == 103_514  # "103.514µs"
    assert m.last_pause_ns == 21512 and m.last_pause_end == 1795626970779156013
    assert (m.num_gc, m.num_forced_gc, m.enable_gc, m.debug_gc) == (3, 0, True, False)
    assert m.gc_cpu_fraction == 8.986558538610117e-05
    assert m.pause_ns is None and m.pause_end is None and m.max_rss is None
    assert_runtime_invariants(m)
    # time.Time.String() and the raw PauseEnd of the same GC agree to the nanosecond
    assert m.last_gc == m.last_pause_end


def test_expvar_sample():
    v = parse_expvar((SAMPLES / "expvar-vars.json").read_bytes())
    assert v.cmdline == ("/srv/leaky/leaky", "-http", "127.0.0.1:16061")
    assert dict(v.other) == {}
    m = v.memstats
    assert len(m.pause_ns) == len(m.pause_end) == PAUSE_RING_SIZE
    assert m.pause_ns[:4] == (63234, 18768, 21512, 0)
    assert (m.num_gc, m.last_pause_ns, m.last_pause_end) == (3, 21512, 1795626970779156013)
    assert m.pause_total_ns == sum(m.pause_ns)  # fewer than 256 GCs: the ring holds them all
    assert m.enable_gc is True and m.max_rss is None
    assert_runtime_invariants(m)


def test_expvar_accepts_a_decoded_document_and_keeps_user_vars_raw():
    doc = json.loads((SAMPLES / "expvar-vars.json").read_text())
    doc["requests"] = {"ok": 3, "failed": 1}
    doc["build"] = "v1.2.3"
    v = parse_expvar(doc)
    assert v.memstats == parse_expvar((SAMPLES / "expvar-vars.json").read_text()).memstats
    assert dict(v.other) == {"requests": {"ok": 3, "failed": 1}, "build": "v1.2.3"}
    assert parse_expvar('{"cmdline": ["x"]}').memstats is None


def test_heap_debug1_trailer_sample():
    m = parse_heap_debug1_memstats((SAMPLES / "pprof-heap-debug1.txt").read_text())
    assert (m.stack_inuse, m.stack_sys) == (720896, 720896)  # "Stack = a / b"
    assert (m.mspan_inuse, m.mspan_sys, m.mcache_inuse, m.mcache_sys) == (44480, 48960, 4592, 16072)
    assert m.max_rss == 10878976
    assert m.pause_ns[:4] == (63234, 18768, 21512, 0) and m.pause_end[2] == 1795626970779156013
    assert m.enable_gc is None  # not in the trailer
    assert m.pause_total_ns == 103_514  # nor is this, but 3 GCs: the ring holds every pause
    assert m.debug_gc is False and m.gc_cpu_fraction == 8.986558538610117e-05
    assert_runtime_invariants(m)


def test_the_three_samples_describe_the_same_gc_history():
    gops = parse_gops_memstats((SAMPLES / "gops-memstats.txt").read_text())
    expvar = parse_expvar((SAMPLES / "expvar-vars.json").read_text()).memstats
    heap = parse_heap_debug1_memstats((SAMPLES / "pprof-heap-debug1.txt").read_text())
    for field in ("num_gc", "num_forced_gc", "last_gc", "next_gc", "last_pause_ns", "last_pause_end",
                  "gc_cpu_fraction", "pause_total_ns"):
        assert getattr(gops, field) == getattr(expvar, field) == getattr(heap, field), field
    assert expvar.pause_ns == heap.pause_ns and expvar.pause_end == heap.pause_end


def test_heap_trailer_pause_total_is_unknown_once_the_ring_wrapped():
    """After 256 GCs the ring no longer holds every pause: the total is not derived."""
    text = (SAMPLES / "pprof-heap-debug1.txt").read_text()
    assert parse_heap_debug1_memstats(text.replace("# NumGC = 3\n", "# NumGC = 256\n")).pause_total_ns == 103_514
    assert parse_heap_debug1_memstats(text.replace("# NumGC = 3\n", "# NumGC = 257\n")).pause_total_ns is None


def test_gops_stats_sample():
    assert parse_gops_stats((SAMPLES / "gops-stats.txt").read_bytes()) == Stats(130, 9, 2, 2)


def test_to_json_is_the_snake_case_dict_without_the_rings():
    m = parse_expvar((SAMPLES / "expvar-vars.json").read_text()).memstats
    data = m.to_json()
    assert "pause_ns" not in data and "pause_end" not in data
    assert data["heap_inuse"] == m.heap_inuse and data["last_pause_ns"] == 21512
    assert json.loads(json.dumps(data)) == data


# --- documented formats of old gops agents (hand-written from the agent source of each tag) ---

V0_0_1 = """\
alloc: 1234567
total-alloc: 2345678
sys: 7000000
lookups: 0
mallocs: 500
frees: 100
heap-alloc: 1234567
heap-sys: 3000000
heap-idle: 1000000
heap-in-use: 2000000
heap-released: 0
heap-objects: 400
stack-in-use: 300000
stack-sys: 300000
next-gc: 4194304
last-gc: 1485000000123456789 ns ago
gc-pause: 123456 ns
num-gc: 2
enable-gc: true
debug-gc: false
"""

V0_1_0 = """\
alloc: 1234567 bytes
total-alloc: 2345678 bytes
sys: 7000000 bytes
lookups: 0
mallocs: 500
frees: 100
heap-alloc: 1234567 bytes
heap-sys: 3000000 bytes
heap-idle: 1000000 bytes
heap-in-use: 2000000 bytes
heap-released: 0 bytes
heap-objects: 400
stack-in-use: 300000 bytes
stack-sys: 300000 bytes
next-gc: when heap-alloc >= 4194304 bytes
last-gc: 1485000000123456789 ns
gc-pause: 123456 ns
num-gc: 2
enable-gc: true
debug-gc: false
"""

V0_3_2 = """\
alloc: 1.18MB (1234567 bytes)
total-alloc: 2.24MB (2345678 bytes)
sys: 6.68MB (7000000 bytes)
lookups: 0
mallocs: 500
frees: 100
heap-alloc: 1.18MB (1234567 bytes)
heap-sys: 2.86MB (3000000 bytes)
heap-idle: 976.56KB (1000000 bytes)
heap-in-use: 1.91MB (2000000 bytes)
heap-released: 0 bytes
heap-objects: 400
stack-in-use: 292.97KB (300000 bytes)
stack-sys: 292.97KB (300000 bytes)
next-gc: when heap-alloc >= 4.00MB (4194304 bytes)
last-gc: 2017-09-20 14:03:05.123456789 +0200 CEST
gc-pause: 8.761893ms
num-gc: 2
enable-gc: true
debug-gc: false
"""

V0_3_3 = """\
alloc: 1.18MB (1234567 bytes)
total-alloc: 2.24MB (2345678 bytes)
sys: 6.68MB (7000000 bytes)
lookups: 0
mallocs: 500
frees: 100
heap-alloc: 1.18MB (1234567 bytes)
heap-sys: 2.86MB (3000000 bytes)
heap-idle: 976.56KB (1000000 bytes)
heap-in-use: 1.91MB (2000000 bytes)
heap-released: 0 bytes
heap-objects: 400
stack-in-use: 292.97KB (300000 bytes)
stack-sys: 292.97KB (300000 bytes)
stack-mspan-inuse: 23.44KB (24000 bytes)
stack-mspan-sys: 31.88KB (32640 bytes)
stack-mcache-inuse: 4.48KB (4592 bytes)
stack-mcache-sys: 15.70KB (16072 bytes)
other-sys: 565.73KB (579309 bytes)
gc-sys: 2.11MB (2211088 bytes)
next-gc: when heap-alloc >= 4.00MB (4194304 bytes)
last-gc: 2018-03-01 10:00:00.5 +0000 UTC
gc-pause-total: 8.761893ms
gc-pause: 40751
num-gc: 2
enable-gc: true
debug-gc: false
"""


def test_gops_v0_0_1_bare_numbers_and_ns_ago():
    m = parse_gops_memstats(V0_0_1)
    assert (m.alloc, m.heap_inuse, m.next_gc) == (1234567, 2000000, 4194304)
    assert m.last_gc == 1485000000123456789  # absolute despite the agent's "ago"
    assert m.pause_total_ns == 123456 and m.last_pause_ns is None  # gc-pause was the total
    assert m.mspan_inuse is None and m.gc_sys is None and m.num_forced_gc is None
    assert_runtime_invariants(m)


def test_gops_v0_1_0_to_v0_3_1_byte_suffixes():
    m = parse_gops_memstats(V0_1_0)
    assert m == parse_gops_memstats(V0_0_1)
    assert m.next_gc == 4194304 and m.last_gc == 1485000000123456789 and m.pause_total_ns == 123456


def test_gops_v0_3_2_duration_gc_pause_is_the_total():
    m = parse_gops_memstats(V0_3_2)
    assert m.pause_total_ns == 8_761_893 and m.last_pause_ns is None
    assert m.last_gc == unix_ns(2017, 9, 20, 12, 3, 5, fraction_ns=123_456_789)
    assert m.heap_idle == 1000000 and m.heap_released == 0


def test_gops_v0_3_3_gc_pause_is_the_last_pause_and_old_span_names_alias():
    m = parse_gops_memstats(V0_3_3)
    assert m.pause_total_ns == 8_761_893 and m.last_pause_ns == 40751
    assert m.last_pause_end is None  # gc-pause-end came in v0.3.11
    assert (m.mspan_inuse, m.mspan_sys, m.mcache_inuse, m.mcache_sys) == (24000, 32640, 4592, 16072)
    assert (m.other_sys, m.gc_sys, m.buck_hash_sys) == (579309, 2211088, None)
    assert m.last_gc == unix_ns(2018, 3, 1, 10, 0, 0, fraction_ns=500_000_000)


def test_gops_text_tolerates_unknown_missing_keys_blank_lines_and_crlf():
    text = "\r\n".join(["", "future-key: 12 widgets", "num-gc: 7", "", "heap-alloc: 1.00KB (1024 bytes)", ""])
    m = parse_gops_memstats(text)
    assert (m.num_gc, m.heap_alloc, m.alloc, m.last_pause_ns) == (7, 1024, None, None)


def test_gops_no_gc_yet():
    text = "last-gc: -\ngc-pause-total: 0s\ngc-pause: 0\ngc-pause-end: 0\nnum-gc: 0\n"
    m = parse_gops_memstats(text)
    assert (m.last_gc, m.pause_total_ns, m.last_pause_ns, m.last_pause_end) == (0, 0, None, None)
    assert m.new_pauses(0).pauses == ()


# --- GC pauses between samples -----------------------------------------------------------------


def ring_sample(num_gc: int) -> MemStats:
    """A MemStats whose GC k paused k*10 ns and ended at k*1000, like the runtime stores them."""
    pauses, ends = [0] * PAUSE_RING_SIZE, [0] * PAUSE_RING_SIZE
    for k in range(max(1, num_gc - PAUSE_RING_SIZE + 1), num_gc + 1):
        pauses[(k + 255) % 256], ends[(k + 255) % 256] = k * 10, k * 1000
    return MemStats(num_gc=num_gc, pause_ns=tuple(pauses), pause_end=tuple(ends))


@pytest.mark.parametrize("prev, num_gc, first, lost", [
    (0, 3, 1, 0),
    (3, 3, None, 0),
    (250, 260, 251, 0),  # across the ring's wrap
    (10, 300, 45, 34),  # 290 GCs since: the oldest 34 fell out of the ring
    (0, 1000, 745, 744),
    (500, 3, 1, 0),  # counter went backwards: a restarted process
])
def test_gc_pauses_since_recovers_every_pause_in_the_ring(prev, num_gc, first, lost):
    got = gc_pauses_since(prev, ring_sample(num_gc))
    assert got.lost == lost
    if first is None:
        assert got.pauses == ()
    else:
        assert [p.num for p in got.pauses] == list(range(first, num_gc + 1))
        assert all(p.pause_ns == p.num * 10 and p.end_ns == p.num * 1000 for p in got.pauses)


def test_gc_pauses_since_on_gops_knows_only_the_last_pause():
    m = parse_gops_memstats((SAMPLES / "gops-memstats.txt").read_text())
    one = m.new_pauses(2)
    assert [(p.num, p.pause_ns, p.end_ns) for p in one.pauses] == [(3, 21512, 1795626970779156013)]
    assert one.lost == 0
    assert m.new_pauses(0).lost == 2
    assert gc_pauses_since(0, parse_gops_memstats(V0_3_2)).lost == 2  # no last pause at all


def test_gc_pauses_since_on_the_expvar_sample():
    m = parse_expvar((SAMPLES / "expvar-vars.json").read_text()).memstats
    assert [(p.num, p.pause_ns) for p in m.new_pauses(0).pauses] == [(1, 63234), (2, 18768), (3, 21512)]


# --- bad input -------------------------------------------------------------------------------------

HTML = b"<!DOCTYPE html><html><body><h1>404 page not found</h1></body></html>\n"
BINARY = bytes(range(256)) * 4


@pytest.mark.parametrize("parse", [parse_gops_memstats, parse_gops_stats, parse_heap_debug1_memstats, parse_expvar])
@pytest.mark.parametrize("data", [HTML, BINARY, b"", b"\n\n", "x" * 10_000_000])
def test_garbage_is_a_one_line_parse_error(parse, data):
    with pytest.raises(MemStatsParseError) as info:
        parse(data)
    assert isinstance(info.value, GotopError)
    message = str(info.value)
    assert message and "\n" not in message and len(message) < 200


@pytest.mark.parametrize("text, needle", [
    ("alloc: lots\n", "'alloc'"),
    ("num-gc: -1\n", "'num-gc'"),
    ("num-gc: ³\n", "'num-gc'"),
    ("gc-pause-total: 5 parsecs\n", "'gc-pause-total'"),
    ("last-gc: 2026-02-30 00:00:00 +0000 UTC\n", "'last-gc'"),
    ("enable-gc: yes\n", "'enable-gc'"),
    ("gc-cpu-fraction: 0x1p-3\n", "'gc-cpu-fraction'"),
])
def test_a_bad_value_names_its_key(text, needle):
    with pytest.raises(MemStatsParseError, match=needle):
        parse_gops_memstats(text)


@pytest.mark.parametrize("doc", [
    "[1, 2]", '"memstats"', '{"memstats": [1]}', '{"memstats": {"Alloc": "12"}}',
    '{"memstats": {"Alloc": true}}', '{"memstats": {"PauseNs": [1, 2]}}', '{"memstats": {}}',
    '{"cmdline": "x"}', "[" * 100_000,
])
def test_malformed_expvar_documents(doc):
    with pytest.raises(MemStatsParseError):
        parse_expvar(doc)


def test_heap_trailer_with_a_short_ring_is_an_error():
    text = (SAMPLES / "pprof-heap-debug1.txt").read_text().replace("# PauseNs = [63234 ", "# PauseNs = [")
    with pytest.raises(MemStatsParseError, match="PauseNs"):
        parse_heap_debug1_memstats(text)


# --- fuzzing ---------------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SAMPLE_PARSERS = [
    ("gops-memstats.txt", parse_gops_memstats, MemStats),
    ("gops-stats.txt", parse_gops_stats, Stats),
    ("pprof-heap-debug1.txt", parse_heap_debug1_memstats, MemStats),
    ("expvar-vars.json", parse_expvar, object),
]


@pytest.mark.parametrize("name, parse, result_type", SAMPLE_PARSERS)
def test_fuzzed_samples_parse_or_raise_the_parse_error(name, parse, result_type):
    @FUZZ
    @given(data=mutated((SAMPLES / name).read_bytes()), as_text=st.booleans())
    def check(data, as_text):
        payload = data.decode("utf-8", errors="replace") if as_text else data
        try:
            result = parse(payload)
        except MemStatsParseError as exc:
            assert "\n" not in str(exc)
        else:
            assert isinstance(result, result_type)

    check()


@FUZZ
@given(st.text(st.sampled_from("0123456789.hmsuµnμ-+ x"), max_size=30))
def test_fuzzed_durations_are_ints_or_value_errors(text):
    try:
        assert isinstance(parse_go_duration(text), int)
    except ValueError:
        pass


# --- live targets ----------------------------------------------------------------------------------

TOOLCHAIN_ZONES = [("go", "UTC", "+0000 UTC"), ("go1.27", "Europe/Istanbul", "+0300 +03"),
                   ("go1.19", "America/St_Johns", " -0")]


def read_all_sources(t):
    """gops, expvar, heap debug=1, gops again; retried until no GC ran in between."""
    for _ in range(5):
        first = parse_gops_memstats(agent_request(t.agent_port, b"\x03"))
        expvar = parse_expvar(http_get(t.http_addr, "/debug/vars"))
        heap = parse_heap_debug1_memstats(http_get(t.http_addr, "/debug/pprof/heap?debug=1"))
        last = parse_gops_memstats(agent_request(t.agent_port, b"\x03"))
        if first.num_gc == last.num_gc:
            return first, expvar, heap, last
    pytest.fail("a GC ran during every one of 5 attempts on an idle target")


@pytest.mark.parametrize("toolchain, tz, zone_text", TOOLCHAIN_ZONES)
def test_live_gops_expvar_and_heap_agree(go_target, toolchain, tz, zone_text):
    t = go_target("agentpprof", toolchain=toolchain, args=["-workload", "park", "-n", "37"], env={"TZ": tz})
    assert agent_request(t.agent_port, b"\x02") == b"ok"  # a forced GC, so there is GC history
    raw = agent_request(t.agent_port, b"\x03").decode()
    if os.path.exists(f"/usr/share/zoneinfo/{tz}"):
        assert zone_text in raw  # last-gc really is printed in the target's zone
    gops1, expvar_vars, heap, gops2 = read_all_sources(t)
    expvar = expvar_vars.memstats
    samples = (gops1, expvar, heap, gops2)

    assert expvar_vars.cmdline[1:] == ("-workload", "park", "-n", "37")
    for m in samples:
        assert_runtime_invariants(m)
        assert m.num_gc >= 1 and m.num_forced_gc >= 1
    for field in ("num_gc", "num_forced_gc", "last_gc", "next_gc", "last_pause_ns", "last_pause_end"):
        assert len({getattr(m, field) for m in samples}) == 1, field
    assert gops1.pause_total_ns == expvar.pause_total_ns == gops2.pause_total_ns == heap.pause_total_ns
    assert expvar.pause_ns == heap.pause_ns and expvar.pause_end == heap.pause_end
    assert expvar.pause_total_ns == sum(expvar.pause_ns)
    assert gops1.last_gc == gops1.last_pause_end  # the time string equals the raw ns
    # cumulative counters can only grow in read order
    for field in ("total_alloc", "mallocs", "frees"):
        values = [getattr(m, field) for m in samples]
        assert values == sorted(values), field
    # sizes move a little while the reads are served, never by much
    for field in ("sys", "heap_sys", "stack_sys", "gc_sys"):
        values = [getattr(m, field) for m in samples]
        assert max(values) - min(values) <= max(values) // 20 + 1024 * 1024, field
    assert gops1.enable_gc is expvar.enable_gc is True and heap.debug_gc is False
    assert heap.max_rss > 0 and gops1.mspan_inuse > 0  # v0.3.28 agent: stack-mspan-inuse alias
    pauses = expvar.new_pauses(0)
    assert pauses.lost == 0 and len(pauses.pauses) == expvar.num_gc


@pytest.mark.parametrize("toolchain", ["go", "go1.27", "go1.19"])
def test_live_gops_stats(go_target, toolchain):
    t = go_target("agentpprof", toolchain=toolchain, args=["-workload", "park", "-n", "37"])
    stats = parse_gops_stats(agent_request(t.agent_port, b"\x07"))
    assert 37 < stats.goroutines < 60
    assert stats.os_threads >= 1 and stats.num_cpu >= 1 and stats.gomaxprocs >= 1

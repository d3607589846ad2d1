"""/metrics parsed into the Go runtime's figures (gotop/model/prometheus.py).

Live: Debian's etcd, prometheus, containerd and caddy (programs nobody here wrote,
stripped, Go 1.19) started by tests/services.py; what their /metrics says is
checked against the runtime's own identities, against the binary's build info and
/proc, and across two scrapes. Captured samples of two of them (tests/samples/)
are fuzzed and rendered as OpenMetrics by prometheus_client's own writer.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import replace
from pathlib import Path

import httpx
import psutil
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mutations import mutated
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest as prometheus_text
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_text
from prometheus_client.parser import text_string_to_metric_families

from gotop.discovery.buildinfo import read_build_info
from gotop.model.memstats import MemStats
from gotop.model.prometheus import (
    MAX_INT64,
    MAX_LINE_CHARS,
    MAX_METRICS_BYTES,
    MetricsParseError,
    MetricsReading,
    parse_metrics,
)

SAMPLES = Path(__file__).resolve().parent / "samples"
SAMPLE_FILES = ["metrics-caddy.txt", "metrics-prometheus.txt"]
TEXT = "text/plain; version=0.0.4; charset=utf-8"

SERVICES = ["etcd_service", "prometheus_service", "containerd_service", "caddy_service"]


@pytest.fixture(params=SERVICES)
def service(request):
    return request.getfixturevalue(request.param)


def scrape(url: str, uds: Path | None = None) -> httpx.Response:
    transport = httpx.HTTPTransport(uds=str(uds)) if uds else None
    with httpx.Client(transport=transport, timeout=10.0) as client:
        return client.get(url)


def read_metrics(service) -> tuple[bytes, MetricsReading]:
    response = scrape(service.metrics_url)
    assert response.status_code == 200
    return response.content, parse_metrics(response.content, response.headers["content-type"])


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


# --- live services -----------------------------------------------------------------------------------


def test_a_real_service_s_metrics_give_go_figures_that_hold_together(service):
    threads_before = len(os.listdir(f"/proc/{service.pid}/task"))
    body, reading = read_metrics(service)
    m, s = reading.memstats, reading.stats

    assert reading.has_go_collector
    # The whole exposition was read, not only its Go part: one family per TYPE line.
    assert reading.families_seen == sum(line.startswith(b"# TYPE ") for line in body.splitlines())
    assert reading.go_version == read_build_info(f"/proc/{service.pid}/exe").go_version

    # runtime.MemStats identities (client_golang reads one ReadMemStats per scrape).
    assert m.alloc == m.heap_alloc
    assert m.heap_sys == m.heap_idle + m.heap_inuse
    assert m.heap_released <= m.heap_idle and m.heap_alloc <= m.heap_inuse
    assert m.heap_objects == m.mallocs - m.frees
    assert m.sys == m.heap_sys + m.stack_sys + m.mspan_sys + m.mcache_sys + m.buck_hash_sys + m.gc_sys + m.other_sys
    assert m.stack_inuse <= m.stack_sys and m.mspan_inuse <= m.mspan_sys and m.mcache_inuse <= m.mcache_sys
    assert m.total_alloc >= m.heap_alloc > 0 and m.next_gc > 0

    if m.num_gc:
        started = psutil.Process(service.pid).create_time()
        assert started - 1 <= m.last_gc / 1e9 <= time.time() + 1
        quantiles = [q for q, _ in reading.gc_pause_quantiles]
        pauses = [ns for _, ns in reading.gc_pause_quantiles]
        assert quantiles == sorted(quantiles) and pauses == sorted(pauses)
        assert 0 < pauses[-1] <= m.pause_total_ns  # the longest recent pause is part of the total
    else:
        assert m.last_gc == 0 and m.pause_total_ns == 0

    assert s.goroutines > 0
    assert s.os_threads >= threads_before  # threads ever created: never fewer than were alive before
    assert reading.open_fds >= 3  # stdin, stdout and stderr at least (tests/services.py opens them)


def test_a_real_service_s_counters_never_go_back(service):
    _, first = read_metrics(service)
    _, second = read_metrics(service)
    for field in ("total_alloc", "mallocs", "frees", "num_gc", "pause_total_ns", "last_gc"):
        assert getattr(second.memstats, field) >= getattr(first.memstats, field), field
    assert second.stats.os_threads >= first.stats.os_threads


def test_what_else_real_services_serve_is_refused_cleanly(containerd_service, caddy_service):
    """containerd's pprof index (HTML, on its debug socket) and caddy's /debug/vars
    (expvar JSON) are real answers a /metrics probe can meet."""
    admin = caddy_service.metrics_url.removesuffix("/metrics")
    for response in (scrape("http://containerd/debug/pprof/", containerd_service.debug_socket),
                     scrape(f"{admin}/debug/vars")):
        assert response.status_code == 200
        with pytest.raises(MetricsParseError, match=r"^/metrics: not Prometheus text \(line 1: ") as error:
            parse_metrics(response.content, response.headers["content-type"])
        assert "\n" not in str(error.value)


def test_containerd_serves_pprof_on_its_debug_socket(containerd_service):
    cmdline = scrape("http://containerd/debug/pprof/cmdline", containerd_service.debug_socket)
    assert cmdline.status_code == 200
    assert cmdline.content.split(b"\0")[0] == b"containerd"


# --- OpenMetrics ----------------------------------------------------------------------------------------


def families_of(text: str) -> list[Metric]:
    return list(text_string_to_metric_families(text))


class Families:
    """A collector of given families, for prometheus_client's writers."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def as_openmetrics(families: list[Metric]) -> bytes:
    return openmetrics_text(Families(families))


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_client_golang_s_go_collector_as_openmetrics_is_refused_not_misread(name):
    """The gauge go_memstats_alloc_bytes and the counter go_memstats_alloc_bytes_total
    are one family name in OpenMetrics (client_golang#829): the strict parser refuses it."""
    body = as_openmetrics(families_of(sample(name)))
    with pytest.raises(MetricsParseError, match=r"not OpenMetrics \(line \d+: .*go_memstats_alloc_bytes"):
        parse_metrics(body, OPENMETRICS)


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_openmetrics_gives_the_figures_the_text_format_gives(name):
    """Without the clashing gauge (Alloc, the same figure as HeapAlloc), OpenMetrics
    is read by the strict parser to the same reading as the text."""
    text_reading = parse_metrics(sample(name), TEXT)
    families = [f for f in families_of(sample(name)) if (f.name, f.type) != ("go_memstats_alloc_bytes", "gauge")]
    reading = parse_metrics(as_openmetrics(families), OPENMETRICS)
    assert reading.memstats == replace(text_reading.memstats, alloc=None)
    assert (reading.stats, reading.open_fds, reading.go_version, reading.gc_pause_quantiles) == (
        text_reading.stats, text_reading.open_fds, text_reading.go_version, text_reading.gc_pause_quantiles)
    assert reading.families_seen == len(families)


def test_openmetrics_cut_short_is_refused():
    families = [f for f in families_of(sample("metrics-caddy.txt")) if f.name != "go_memstats_alloc_bytes"]
    body = as_openmetrics(families)
    assert body.endswith(b"# EOF\n")
    with pytest.raises(MetricsParseError, match="not OpenMetrics.*EOF"):
        parse_metrics(body.removesuffix(b"# EOF\n"), OPENMETRICS)


# --- runtime/metrics names ----------------------------------------------------------------------------

def runtime_metrics_families(m: MemStats, goroutines: int) -> list[Metric]:
    """The series a registry serving runtime/metrics names only gives for `m` (client_golang
    v1.12+ with WithGoCollectorRuntimeMetrics and the MemStats series off), split the way
    the runtime's memory classes split MemStats."""
    mc = "go_memory_classes_"
    values = {
        mc + "heap_objects_bytes": m.heap_alloc, mc + "heap_unused_bytes": m.heap_inuse - m.heap_alloc,
        mc + "heap_free_bytes": m.heap_idle - m.heap_released, mc + "heap_released_bytes": m.heap_released,
        mc + "heap_stacks_bytes": m.stack_inuse, mc + "os_stacks_bytes": m.stack_sys - m.stack_inuse,
        mc + "metadata_mspan_inuse_bytes": m.mspan_inuse, mc + "metadata_mspan_free_bytes": m.mspan_sys - m.mspan_inuse,
        mc + "metadata_mcache_inuse_bytes": m.mcache_inuse,
        mc + "metadata_mcache_free_bytes": m.mcache_sys - m.mcache_inuse,
        mc + "profiling_buckets_bytes": m.buck_hash_sys, mc + "metadata_other_bytes": m.gc_sys,
        mc + "other_bytes": m.other_sys, mc + "total_bytes": m.sys,
        "go_gc_heap_goal_bytes": m.next_gc, "go_gc_heap_objects_objects": m.heap_objects,
        "go_gc_cycles_total_gc_cycles_total": m.num_gc, "go_sched_goroutines_goroutines": goroutines,
        "go_sched_gomaxprocs_threads": 2, "go_gc_gogc_percent": 100, "go_gc_gomemlimit_bytes": float(MAX_INT64),
    }
    return [CounterMetricFamily(name.removesuffix("_total"), "", value=value) if name.endswith("_total")
            else GaugeMetricFamily(name, "", value=value) for name, value in values.items()]


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_runtime_metrics_names_give_the_memstats_the_memstats_series_give(name):
    reading = parse_metrics(sample(name), TEXT)
    m = reading.memstats
    families = runtime_metrics_families(m, reading.stats.goroutines)
    from_runtime_metrics = parse_metrics(prometheus_text(Families(families)), TEXT)
    expected = MemStats(**{field: getattr(m, field) for field in (
        "alloc", "sys", "heap_alloc", "heap_sys", "heap_idle", "heap_inuse", "heap_released", "heap_objects",
        "stack_inuse", "stack_sys", "mspan_inuse", "mspan_sys", "mcache_inuse", "mcache_sys", "buck_hash_sys",
        "gc_sys", "other_sys", "next_gc", "num_gc")})
    assert from_runtime_metrics.memstats == expected
    assert from_runtime_metrics.stats.goroutines == reading.stats.goroutines
    assert from_runtime_metrics.stats.gomaxprocs == 2 and from_runtime_metrics.gogc_percent == 100
    assert from_runtime_metrics.memory_limit == MAX_INT64  # float64(math.MaxInt64) is 2**63: no limit


# --- faults ------------------------------------------------------------------------------------------------


def test_a_go_series_served_twice_with_two_values_is_refused():
    text = sample("metrics-caddy.txt")
    with pytest.raises(MetricsParseError, match=r"conflicting values for go_goroutines: \d+, 999"):
        parse_metrics(text + 'go_goroutines{registry="second"} 999\n')
    with pytest.raises(MetricsParseError, match="conflicting go_info versions: 'go1.19.8', 'go1.22.1'"):
        parse_metrics(text + 'go_info{version="go1.22.1"} 1\n')


def test_a_go_series_served_twice_with_one_value_is_read():
    text = sample("metrics-caddy.txt")
    goroutines = parse_metrics(text).stats.goroutines
    assert parse_metrics(text + f'go_goroutines{{registry="second"}} {goroutines}\n').stats.goroutines == goroutines


@pytest.mark.parametrize("value, what", [("-1", "not a count"), ("NaN", "not a count"), ("+Inf", "not a count"),
                                         ("12.5", "not a count")])
def test_a_go_figure_that_is_no_count_is_refused(value, what):
    text = sample("metrics-caddy.txt")
    goroutines = parse_metrics(text).stats.goroutines
    bad = text.replace(f"\ngo_goroutines {goroutines}\n", f"\ngo_goroutines {value}\n")
    assert bad != text
    with pytest.raises(MetricsParseError, match=f"go_goroutines is .*, {what}"):
        parse_metrics(bad)


def test_a_body_too_large_or_with_a_line_too_long_is_refused_before_parsing():
    text = sample("metrics-caddy.txt")
    with pytest.raises(MetricsParseError, match="too large"):
        parse_metrics(text * (MAX_METRICS_BYTES // len(text) + 1))
    long_line = 'caddy_label{value="' + "x" * MAX_LINE_CHARS + '"} 1\n'
    with pytest.raises(MetricsParseError, match=f"line {len(text.splitlines()) + 1} is longer than 65536 characters"):
        parse_metrics(text + long_line)


def test_a_body_that_is_not_utf8_is_refused():
    with pytest.raises(MetricsParseError, match="not text"):
        parse_metrics(sample("metrics-caddy.txt").encode() + b"go_x{a=\"\xff\"} 1\n")


def test_an_exposition_without_a_go_collector_is_a_reading_that_says_so():
    text = "".join(line + "\n" for line in sample("metrics-caddy.txt").splitlines()
                   if not line.startswith(("go_", "# HELP go_", "# TYPE go_", "process_", "# HELP process_",
                                           "# TYPE process_")))
    reading = parse_metrics(text)
    assert not reading.has_go_collector and reading.go_series == frozenset()
    assert reading.memstats == MemStats() and reading.open_fds is None and reading.families_seen > 0
    assert not parse_metrics("").has_go_collector


# --- fuzzing --------------------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", SAMPLE_FILES)
@pytest.mark.parametrize("content_type", [TEXT, OPENMETRICS], ids=["text", "openmetrics"])
def test_fuzzed_expositions_parse_or_raise_the_parse_error(name, content_type):
    original = sample(name).encode()
    if content_type == OPENMETRICS:
        families = [f for f in families_of(sample(name)) if (f.name, f.type) != ("go_memstats_alloc_bytes", "gauge")]
        original = as_openmetrics(families)

    @FUZZ
    @given(data=mutated(original), as_text=st.booleans())
    def check(data, as_text):
        payload = data.decode("utf-8", errors="replace") if as_text else data
        try:
            reading = parse_metrics(payload, content_type)
        except MetricsParseError as exc:
            assert "\n" not in str(exc)
        else:
            assert isinstance(reading, MetricsReading)
            m = reading.memstats
            assert all(v is None or (isinstance(v, int | float) and math.isfinite(v) and v >= 0)
                       for v in (m.heap_alloc, m.next_gc, m.num_gc, m.last_gc, reading.stats.goroutines))

    check()


# Pieces of the two formats, for expositions the parsers were never meant to see.
SYNTAX = [*'a_{}="\\,# \n\t1.eE+-', "NaN", "+Inf", " TYPE ", " HELP ", " UNIT ", "# EOF\n", "counter", "gauge",
          "summary", "histogram", "info", "stateset", "unknown", "_total", "_bucket", "_count", "_sum", "_created",
          "le", "quantile", "__name__", "go_goroutines", '{le="+Inf"}', "\n# TYPE a histogram\n",
          "\n# TYPE a summary\n", ' # {a="1"} 1 ']


@FUZZ
@given(pieces=st.lists(st.sampled_from(SYNTAX), max_size=40), content_type=st.sampled_from([TEXT, OPENMETRICS]))
# What a random search found the parsers raising other than ValueError on (IndexError, KeyError):
@example(pieces=['{, = # {a="1"} 1 +1unknown}"'], content_type=TEXT)
@example(pieces=['#e TYPE \t UNIT #_created UNIT {le="+Inf"}-Inf HELP  # {a="1"} 1 '], content_type=OPENMETRICS)
@example(pieces=['#info1,=gaugeNaNNaNle{ UNIT  UNIT \n# TYPE a histogram\ne{le="+Inf"}stateset{le="+Inf"}E,'
                 '_count_gauge UNIT _totalgo_goroutinesa\n"\\_sum__name__a'], content_type=OPENMETRICS)
def test_syntax_soup_parses_or_raises_the_parse_error(pieces, content_type):
    try:
        assert isinstance(parse_metrics("".join(pieces), content_type), MetricsReading)
    except MetricsParseError as exc:
        assert "\n" not in str(exc)

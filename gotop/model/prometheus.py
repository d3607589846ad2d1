"""A Prometheus /metrics exposition -> the Go runtime figures of client_golang's collectors.

Text in, one frozen `MetricsReading` out, no I/O. The exposition is parsed by
the `prometheus_client` library's parsers: the text format (`text/plain;
version=0.0.4`, what client_golang serves unless asked otherwise) and
OpenMetrics (`application/openmetrics-text`, whose strict parser also catches a
body cut short: it must end with `# EOF`). The text format has no end mark: a
body cut at a line end parses, so the transport must know it read it whole.

Ask for the text format (TEXT_ACCEPT): client_golang's Go collector serves a gauge
`go_memstats_alloc_bytes` beside the counter `go_memstats_alloc_bytes_total`, which
OpenMetrics names the same family (client_golang#829); prometheus_client's
OpenMetrics parser refuses that, and its text parser misreads it.

Series recognised (client_golang's names; a figure takes the first series present):
  - `go_memstats_*` (every client_golang version; MemStats field by field),
    `go_gc_duration_seconds` (`_count` = NumGC, `_sum` = PauseTotal, quantiles),
    `go_goroutines`, `go_threads`, `go_info{version}`;
  - runtime/metrics names (client_golang v1.12+; v1.20+ serve the first three by
    default, the rest on opt-in): `go_sched_gomaxprocs_threads`, `go_gc_gogc_percent`,
    `go_gc_gomemlimit_bytes`, `go_gc_heap_goal_bytes`, `go_gc_cycles_*`, `go_gc_heap_*`,
    `go_sched_goroutines_goroutines`, and `go_memory_classes_*`, summed into MemStats
    fields the way client_golang derives MemStats from them;
  - `process_open_fds` (the process collector).
Values arrive as float64: a count or byte figure that is negative, NaN, infinite or
fractional is refused, not rounded; seconds become nanoseconds (float64 keeps them
to within a microsecond).
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gotop.errors import GotopError
from gotop.model.memstats import MemStats, Stats

# A big service's /metrics is megabytes (etcd's 150 KB idle, kube-apiserver's
# 10+ MB). prometheus_client parses ~0.2 s/MiB; a line longer than 64 KiB is
# refused because its cost per line grows faster than the line (~1.4 s/MiB at
# 64 KiB lines of escaped quotes, 0.75 s for one 320 KB line).
MAX_METRICS_BYTES = 16 * 1024 * 1024
MAX_LINE_CHARS = 64 * 1024

OPENMETRICS_TYPE = "application/openmetrics-text"
TEXT_ACCEPT = "text/plain; version=0.0.4"  # the Accept header that asks client_golang for the text format
MAX_INT64 = 2**63 - 1  # math.MaxInt64: "no memory limit"; as float64 it reads back as 2**63


class MetricsParseError(GotopError):
    """A body that is not a Prometheus exposition, or Go figures that make no sense."""


@dataclass(frozen=True, slots=True)
class MetricsReading:
    """What one /metrics says about the Go runtime serving it; None = series absent."""

    memstats: MemStats
    stats: Stats  # goroutines, os_threads (go_threads: threads ever created), gomaxprocs
    open_fds: int | None
    go_version: str | None  # go_info's version label, e.g. "go1.19.8"
    gogc_percent: int | None  # -1 = GC off
    memory_limit: int | None  # bytes; MAX_INT64 = no limit
    gc_pause_quantiles: tuple[tuple[float, int], ...]  # go_gc_duration_seconds: (quantile, ns), by quantile
    go_series: frozenset[str]  # the Go collector series recognised
    families_seen: int  # metric families in the whole exposition, as the parser groups them

    @property
    def has_go_collector(self) -> bool:
        return bool(self.go_series)


# --- the series -------------------------------------------------------------------

_MC = "go_memory_classes_"

# MemStats field -> alternatives, first complete one wins; an alternative is the
# series summed (client_golang's memStatsFromRM for the runtime/metrics names).
_MEMSTATS: dict[str, tuple[tuple[str, ...], ...]] = {
    "alloc": (("go_memstats_alloc_bytes",), (_MC + "heap_objects_bytes",)),
    "total_alloc": (("go_memstats_alloc_bytes_total",), ("go_gc_heap_allocs_bytes_total",)),
    "sys": (("go_memstats_sys_bytes",), (_MC + "total_bytes",)),
    "lookups": (("go_memstats_lookups_total",),),
    "mallocs": (("go_memstats_mallocs_total",),
                ("go_gc_heap_allocs_objects_total", "go_gc_heap_tiny_allocs_objects_total")),
    "frees": (("go_memstats_frees_total",),
              ("go_gc_heap_frees_objects_total", "go_gc_heap_tiny_allocs_objects_total")),
    "heap_alloc": (("go_memstats_heap_alloc_bytes",), (_MC + "heap_objects_bytes",)),
    "heap_sys": (("go_memstats_heap_sys_bytes",),
                 tuple(_MC + f"heap_{kind}_bytes" for kind in ("objects", "unused", "free", "released"))),
    "heap_idle": (("go_memstats_heap_idle_bytes",), (_MC + "heap_free_bytes", _MC + "heap_released_bytes")),
    "heap_inuse": (("go_memstats_heap_inuse_bytes",), (_MC + "heap_objects_bytes", _MC + "heap_unused_bytes")),
    "heap_released": (("go_memstats_heap_released_bytes",), (_MC + "heap_released_bytes",)),
    "heap_objects": (("go_memstats_heap_objects",), ("go_gc_heap_objects_objects",)),
    "stack_inuse": (("go_memstats_stack_inuse_bytes",), (_MC + "heap_stacks_bytes",)),
    "stack_sys": (("go_memstats_stack_sys_bytes",), (_MC + "heap_stacks_bytes", _MC + "os_stacks_bytes")),
    "mspan_inuse": (("go_memstats_mspan_inuse_bytes",), (_MC + "metadata_mspan_inuse_bytes",)),
    "mspan_sys": (("go_memstats_mspan_sys_bytes",),
                  (_MC + "metadata_mspan_inuse_bytes", _MC + "metadata_mspan_free_bytes")),
    "mcache_inuse": (("go_memstats_mcache_inuse_bytes",), (_MC + "metadata_mcache_inuse_bytes",)),
    "mcache_sys": (("go_memstats_mcache_sys_bytes",),
                   (_MC + "metadata_mcache_inuse_bytes", _MC + "metadata_mcache_free_bytes")),
    "buck_hash_sys": (("go_memstats_buck_hash_sys_bytes",), (_MC + "profiling_buckets_bytes",)),
    "gc_sys": (("go_memstats_gc_sys_bytes",), (_MC + "metadata_other_bytes",)),
    "other_sys": (("go_memstats_other_sys_bytes",), (_MC + "other_bytes",)),
    "next_gc": (("go_memstats_next_gc_bytes",), ("go_gc_heap_goal_bytes",)),
    "last_gc": (("go_memstats_last_gc_time_seconds",),),
    "pause_total_ns": (("go_gc_duration_seconds_sum",),),
    "num_gc": (("go_gc_duration_seconds_count",), ("go_gc_cycles_total_gc_cycles_total",)),
    "num_forced_gc": (("go_gc_cycles_forced_gc_cycles_total",),),
    "gc_cpu_fraction": (("go_memstats_gc_cpu_fraction",),),  # client_golang before v1.12
}
_STATS: dict[str, tuple[tuple[str, ...], ...]] = {
    "goroutines": (("go_goroutines",), ("go_sched_goroutines_goroutines",)),
    "os_threads": (("go_threads",),),
    "gomaxprocs": (("go_sched_gomaxprocs_threads",),),
}
_PAUSES = "go_gc_duration_seconds"  # its quantile samples
_INFO = "go_info"
_SECONDS_FIELDS = {"last_gc", "pause_total_ns"}  # seconds in /metrics, ns in MemStats
_GO_SERIES = frozenset(
    name for table in (_MEMSTATS, _STATS) for alternatives in table.values() for names in alternatives for name in names
) | {_PAUSES, _INFO, "go_gc_gogc_percent", "go_gc_gomemlimit_bytes"}
_WANTED = _GO_SERIES | {"process_open_fds"}


# --- values -------------------------------------------------------------------------


def _count(name: str, value: float) -> int:
    if not (math.isfinite(value) and value >= 0 and float(value).is_integer()):
        raise MetricsParseError(f"/metrics: {name} is {value!r}, not a count")
    return int(value)


def _nanoseconds(name: str, value: float) -> int:
    if not (math.isfinite(value) and value >= 0):
        raise MetricsParseError(f"/metrics: {name} is {value!r}, not a duration or time")
    return round(value * 1e9)


def _fraction(name: str, value: float) -> float:
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise MetricsParseError(f"/metrics: {name} is {value!r}, not a fraction")
    return float(value)


def _gogc(name: str, value: float) -> int:
    if not (math.isfinite(value) and value >= -1 and float(value).is_integer()):
        raise MetricsParseError(f"/metrics: {name} is {value!r}, not a GOGC percentage")
    return int(value)


def _converter(field: str) -> Callable[[str, float], Any]:
    if field in _SECONDS_FIELDS:
        return _nanoseconds
    return _fraction if field == "gc_cpu_fraction" else _count


# --- parsing --------------------------------------------------------------------------


class _BoundedLines(io.StringIO):
    """The exposition as the parsers read it (`for line in fd`), each line counted
    (an error says where) and bounded (see MAX_LINE_CHARS)."""

    line_number = 0

    def __next__(self) -> str:  # type: ignore[override]  # typeshed gives IOBase's (bytes) to StringIO
        line = super().__next__()
        self.line_number += 1
        if len(line) > MAX_LINE_CHARS:
            raise MetricsParseError(f"/metrics: line {self.line_number} is longer than {MAX_LINE_CHARS} characters")
        return line


def _decode(data: str | bytes) -> str:
    if len(data) > MAX_METRICS_BYTES:
        raise MetricsParseError(f"/metrics: too large ({len(data)} > {MAX_METRICS_BYTES} bytes)")
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MetricsParseError(f"/metrics: not text (invalid UTF-8 at byte {exc.start})") from None


def _samples(text: str, openmetrics: bool) -> tuple[dict[str, list[tuple[Mapping[str, str], float]]], int]:
    """{wanted sample name: [(labels, value), ...]} and the number of families."""
    # Imported here: prometheus_client's package holds its whole client (12 MB of gotop's
    # RSS), paid for only by a gotop that reads some /metrics.
    from prometheus_client.openmetrics.parser import text_fd_to_metric_families as openmetrics_families
    from prometheus_client.parser import text_fd_to_metric_families as text_families

    lines = _BoundedLines(text)
    parse = openmetrics_families if openmetrics else text_families
    wanted: dict[str, list[tuple[Mapping[str, str], float]]] = defaultdict(list)
    families = 0
    try:
        for family in parse(lines):
            families += 1
            for sample in family.samples:
                if sample.name in _WANTED:
                    wanted[sample.name].append((sample.labels, sample.value))
    # The parsers raise ValueError for what they refuse; fuzzing found them raising
    # IndexError (both) and KeyError (OpenMetrics) on some malformed lines too.
    except (ValueError, IndexError, KeyError) as exc:
        what = "OpenMetrics" if openmetrics else "Prometheus text"
        reason = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        raise MetricsParseError(f"/metrics: not {what} (line {lines.line_number}: {reason!r})") from None
    return wanted, families


def _one(name: str, samples: list[tuple[Mapping[str, str], float]]) -> float:
    """The value of a series served once; the same series twice with two values
    (two Go collectors in one registry, a proxy's merge) is refused, not guessed."""
    values = {value for _, value in samples}
    if len(values) > 1:
        shown = ", ".join(repr(v) for v in sorted(values)[:3])
        raise MetricsParseError(f"/metrics: conflicting values for {name}: {shown}")
    return samples[0][1]


def _fields(table: Mapping[str, tuple[tuple[str, ...], ...]], values: Mapping[str, float]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for field, alternatives in table.items():
        names = next((names for names in alternatives if all(n in values for n in names)), None)
        if names is not None:
            convert = _converter(field)
            found[field] = sum(convert(n, values[n]) for n in names)
    return found


def _pause_quantiles(samples: list[tuple[Mapping[str, str], float]]) -> tuple[tuple[float, int], ...]:
    by_quantile: dict[float, list[tuple[Mapping[str, str], float]]] = defaultdict(list)
    for labels, value in samples:
        try:
            quantile = float(labels.get("quantile", "nan"))
        except ValueError:
            quantile = math.nan
        if not 0 <= quantile <= 1:
            raise MetricsParseError(f"/metrics: {_PAUSES} has a sample without a quantile in [0, 1]")
        by_quantile[quantile].append((labels, value))
    return tuple(sorted((q, _nanoseconds(_PAUSES, _one(_PAUSES, s))) for q, s in by_quantile.items()))


def _go_version(samples: list[tuple[Mapping[str, str], float]]) -> str | None:
    versions = {labels["version"] for labels, _ in samples if "version" in labels}
    if len(versions) > 1:
        shown = ", ".join(repr(v[:40]) for v in sorted(versions)[:3])
        raise MetricsParseError(f"/metrics: conflicting {_INFO} versions: {shown}")
    return versions.pop() if versions else None


def parse_metrics(data: str | bytes, content_type: str = "") -> MetricsReading:
    """A /metrics body (its Content-Type says which format) -> MetricsReading.

    Raises MetricsParseError for a body too large, not UTF-8, not the format, or
    Go series whose values make no sense; a valid exposition with no Go collector
    gives a reading whose `has_go_collector` is False.
    """
    text = _decode(data)
    openmetrics = content_type.split(";")[0].strip().lower() == OPENMETRICS_TYPE
    samples, families = _samples(text, openmetrics)
    values = {name: _one(name, found) for name, found in samples.items() if name not in (_PAUSES, _INFO)}
    limit = values.get("go_gc_gomemlimit_bytes")
    return MetricsReading(
        memstats=MemStats(**_fields(_MEMSTATS, values)),
        stats=Stats(**_fields(_STATS, values)),
        open_fds=_count("process_open_fds", values["process_open_fds"]) if "process_open_fds" in values else None,
        go_version=_go_version(samples.get(_INFO, [])),
        gogc_percent=_gogc("go_gc_gogc_percent", values["go_gc_gogc_percent"])
        if "go_gc_gogc_percent" in values else None,
        memory_limit=min(_count("go_gc_gomemlimit_bytes", limit), MAX_INT64) if limit is not None else None,
        gc_pause_quantiles=_pause_quantiles(samples.get(_PAUSES, [])),
        go_series=frozenset(samples) & _GO_SERIES,
        families_seen=families,
    )

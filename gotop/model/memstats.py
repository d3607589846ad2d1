"""Runtime figures of a Go process: one `MemStats` from whichever source answered.

Sources (all pure text/JSON in, frozen dataclasses out, no I/O):
  - gops agent command 0x03 (`parse_gops_memstats`), every key generation since v0.0.1;
  - expvar `/debug/vars` (`parse_expvar`), whose `memstats` is runtime.MemStats as JSON;
  - the `# runtime.MemStats` trailer of `/debug/pprof/heap?debug=1` (`parse_heap_debug1_memstats`);
  - gops agent command 0x07 (`parse_gops_stats`) for the goroutine/thread/CPU counts.

Field names are Go's runtime.MemStats names in snake_case; a field a source does
not provide is None. Only gops and expvar report enable_gc and pause_total_ns
(heap debug=1 gives the total while its ring still holds every pause); only
expvar and heap debug=1 carry the 256-entry pause rings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from types import MappingProxyType
from typing import Any

from gotop.errors import GotopError

PAUSE_RING_SIZE = 256  # len(runtime.MemStats.PauseNs) and PauseEnd

# Real inputs are ~1 KB (gops), ~4 KB + user vars (expvar); refuse anything absurd.
MAX_GOPS_TEXT_CHARS = 64 * 1024
MAX_EXPVAR_CHARS = 16 * 1024 * 1024
MAX_HEAP_TEXT_CHARS = 256 * 1024 * 1024


class MemStatsParseError(GotopError):
    """Text or JSON that is not the runtime figures it claims to be."""


@dataclass(frozen=True, slots=True)
class MemStats:
    """runtime.MemStats in snake_case; None = not provided by the source."""

    alloc: int | None = None
    total_alloc: int | None = None
    sys: int | None = None
    lookups: int | None = None
    mallocs: int | None = None
    frees: int | None = None
    heap_alloc: int | None = None
    heap_sys: int | None = None
    heap_idle: int | None = None
    heap_inuse: int | None = None
    heap_released: int | None = None
    heap_objects: int | None = None
    stack_inuse: int | None = None
    stack_sys: int | None = None
    mspan_inuse: int | None = None
    mspan_sys: int | None = None
    mcache_inuse: int | None = None
    mcache_sys: int | None = None
    buck_hash_sys: int | None = None
    gc_sys: int | None = None
    other_sys: int | None = None
    next_gc: int | None = None
    last_gc: int | None = None  # unix ns of the last GC's end, 0 if no GC yet
    pause_total_ns: int | None = None
    pause_ns: tuple[int, ...] | None = None  # the 256-entry ring, GC k at [(k-1) % 256]
    pause_end: tuple[int, ...] | None = None  # the ring of pause end times, unix ns
    num_gc: int | None = None
    num_forced_gc: int | None = None
    gc_cpu_fraction: float | None = None
    enable_gc: bool | None = None
    debug_gc: bool | None = None
    # Not runtime.MemStats fields:
    last_pause_ns: int | None = None  # pause of GC number num_gc; None before the first GC
    last_pause_end: int | None = None  # its end, unix ns
    max_rss: int | None = None  # peak RSS in bytes (heap debug=1 trailer only, from getrusage)
    # The GC controller's own figures (the memory source only):
    heap_marked: int | None = None  # the live heap the last GC marked (heap after GC)
    gc_percent: int | None = None  # GOGC; -1 = off
    memory_limit: int | None = None  # GOMEMLIMIT in bytes; None = no limit (or not known)

    def new_pauses(self, prev_num_gc: int) -> GcPauses:
        """Pauses of the GCs numbered (prev_num_gc, num_gc]; see `GcPauses`."""
        return gc_pauses_since(prev_num_gc, self)

    def to_json(self) -> dict[str, Any]:
        """The snake_case fields as a JSON-ready dict.

        The two 256-entry rings are omitted; `last_pause_ns`/`last_pause_end`
        summarise them and `new_pauses()` recovers every recent pause.
        """
        data = asdict(self)
        del data["pause_ns"], data["pause_end"]
        return data


@dataclass(frozen=True, slots=True)
class GcPause:
    num: int  # the GC's number (NumGC after it finished), 1-based
    pause_ns: int
    end_ns: int | None  # unix ns; None when the source has no PauseEnd


@dataclass(frozen=True, slots=True)
class GcPauses:
    """The GC pauses between two samples, oldest first.

    `lost` counts GCs in the interval whose pause is not known: they fell out of
    the 256-entry ring (more than 256 GCs between samples), or the source only
    reports the last pause (gops) and more than one GC ran.
    """

    pauses: tuple[GcPause, ...]
    lost: int


def gc_pauses_since(prev_num_gc: int, current: MemStats) -> GcPauses:
    """Recover the pauses of GC numbers (prev_num_gc, current.num_gc].

    A num_gc lower than prev_num_gc means a different (restarted) process: then
    every GC of `current` counts as new.
    """
    num_gc = current.num_gc
    if num_gc is None:
        return GcPauses((), 0)
    first = prev_num_gc + 1 if 0 <= prev_num_gc <= num_gc else 1
    wanted = num_gc - first + 1
    if wanted <= 0:
        return GcPauses((), 0)
    if current.pause_ns is not None:
        ring, ends = current.pause_ns, current.pause_end
        first_kept = max(first, num_gc - PAUSE_RING_SIZE + 1)
        pauses = tuple(
            GcPause(k, ring[(k - 1) % PAUSE_RING_SIZE],
                    ends[(k - 1) % PAUSE_RING_SIZE] if ends is not None else None)
            for k in range(first_kept, num_gc + 1)
        )
        return GcPauses(pauses, wanted - len(pauses))
    if current.last_pause_ns is not None:
        return GcPauses((GcPause(num_gc, current.last_pause_ns, current.last_pause_end),), wanted - 1)
    return GcPauses((), wanted)


def _last_in_ring(ring: tuple[int, ...] | None, num_gc: int | None) -> int | None:
    if ring is None or not num_gc:
        return None
    return ring[(num_gc - 1) % PAUSE_RING_SIZE]


def _with_last_pause(values: dict[str, Any]) -> MemStats:
    """Build a MemStats, deriving last_pause_* from the rings when there are rings."""
    if values.get("pause_ns") is not None:
        values["last_pause_ns"] = _last_in_ring(values["pause_ns"], values.get("num_gc"))
        values["last_pause_end"] = _last_in_ring(values.get("pause_end"), values.get("num_gc"))
    return MemStats(**values)


# --- Go value formats ---------------------------------------------------------

_DURATION_UNITS_NS = {
    "ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000,  # U+00B5 (Go prints this) and U+03BC
    "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> int:
    """A Go time.Duration string (`1h0m0s`, `165.327µs`, `0s`, `-1.5s`) -> exact ns.

    Raises ValueError on anything else.
    """
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    if body == "0":
        return 0
    total, pos = Fraction(0), 0
    while pos < len(body):
        part = _DURATION_PART.match(body, pos)
        if part is None:
            raise ValueError(f"not a Go duration: {text!r}")
        total += Fraction(part.group(1)) * _DURATION_UNITS_NS[part.group(2)]
        pos = part.end()
    if pos == 0:
        raise ValueError(f"not a Go duration: {text!r}")
    return sign * round(total)


_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# time.Time.String(): "2006-01-02 15:04:05.999999999 -0700 MST", fraction trimmed.
_GO_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))? ([+-])(\d\d)(\d\d)(?: \S+)?"
    r"(?: m=[+-]\d+\.\d+)?"
)


def parse_go_time(text: str) -> int:
    """A Go time.Time.String() -> unix ns (exact). Raises ValueError otherwise."""
    match = _GO_TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"not a Go time: {text!r}")
    fraction = (match.group(7) or "").ljust(9, "0")
    offset = (int(match.group(9)) * 3600 + int(match.group(10)) * 60) * (1 if match.group(8) == "+" else -1)
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
        wall = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:  # e.g. February 30th
        raise ValueError(f"not a Go time: {text!r}") from exc
    seconds = (wall - _UNIX_EPOCH) // timedelta(seconds=1)
    return (seconds - offset) * 1_000_000_000 + int(fraction)


def _uint(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"not an unsigned integer: {text!r}")
    return int(text)


_BYTES = re.compile(r"(?:\d+(?:\.\d+)?[KMGTP]B \((\d+) bytes\)|(\d+) bytes|(\d+))")


def _bytes(text: str) -> int:
    """formatBytes output (`1.00KB (1024 bytes)`, `1023 bytes`) or a bare number (v0.0.1)."""
    match = _BYTES.fullmatch(text)
    if match is None:
        raise ValueError(f"not a byte count: {text!r}")
    return int(next(g for g in match.groups() if g is not None))


def _next_gc(text: str) -> int:
    return _bytes(text.removeprefix("when heap-alloc >= "))


def _gops_last_gc(text: str) -> int:
    """`-` (no GC), a time.Time string, or `<n> ns` / `<n> ns ago` (old agents; still unix ns)."""
    if text == "-":
        return 0
    raw = text.removesuffix(" ago").removesuffix(" ns")
    if raw.isascii() and raw.isdigit():
        return int(raw)
    return parse_go_time(text)


def _gops_duration(text: str) -> int:
    """A raw ns count (v0.3.3+ gc-pause), `<n> ns` (v0.1.0) or a Duration string."""
    raw = text.removesuffix(" ns")
    if raw.isascii() and raw.isdigit():
        return int(raw)
    return parse_go_duration(text)


def _bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(f"not a bool: {text!r}")
    return text == "true"


def _float(text: str) -> float:
    if not re.fullmatch(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|NaN|[-+]Inf", text):
        raise ValueError(f"not a number: {text!r}")
    return float(text.replace("Inf", "inf"))


# --- gops memstats (agent command 0x03) ----------------------------------------

_GOPS_KEYS: dict[str, tuple[str, Any]] = {
    "alloc": ("alloc", _bytes),
    "total-alloc": ("total_alloc", _bytes),
    "sys": ("sys", _bytes),
    "lookups": ("lookups", _uint),
    "mallocs": ("mallocs", _uint),
    "frees": ("frees", _uint),
    "heap-alloc": ("heap_alloc", _bytes),
    "heap-sys": ("heap_sys", _bytes),
    "heap-idle": ("heap_idle", _bytes),
    "heap-in-use": ("heap_inuse", _bytes),
    "heap-released": ("heap_released", _bytes),
    "heap-objects": ("heap_objects", _uint),
    "stack-in-use": ("stack_inuse", _bytes),
    "stack-sys": ("stack_sys", _bytes),
    "mspan-in-use": ("mspan_inuse", _bytes),  # gops master (2024-11) names ...
    "mspan-sys": ("mspan_sys", _bytes),
    "mcache-in-use": ("mcache_inuse", _bytes),
    "mcache-sys": ("mcache_sys", _bytes),
    "stack-mspan-inuse": ("mspan_inuse", _bytes),  # ... and v0.3.3-v0.3.28 names
    "stack-mspan-sys": ("mspan_sys", _bytes),
    "stack-mcache-inuse": ("mcache_inuse", _bytes),
    "stack-mcache-sys": ("mcache_sys", _bytes),
    "buck-hash-sys": ("buck_hash_sys", _bytes),
    "other-sys": ("other_sys", _bytes),
    "gc-sys": ("gc_sys", _bytes),
    "next-gc": ("next_gc", _next_gc),
    "last-gc": ("last_gc", _gops_last_gc),
    "gc-pause-total": ("pause_total_ns", parse_go_duration),
    "gc-pause": ("gc_pause", _gops_duration),  # meaning depends on the generation
    "gc-pause-end": ("last_pause_end", _uint),
    "num-gc": ("num_gc", _uint),
    "num-forced-gc": ("num_forced_gc", _uint),
    "gc-cpu-fraction": ("gc_cpu_fraction", _float),
    "enable-gc": ("enable_gc", _bool),
    "debug-gc": ("debug_gc", _bool),
}


def _to_text(data: str | bytes, what: str, limit: int) -> str:
    if len(data) > limit:
        raise MemStatsParseError(f"{what}: input too large ({len(data)} > {limit} bytes)")
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise MemStatsParseError(f"{what}: not text (invalid UTF-8)") from None
    return data


def _snippet(text: str) -> str:
    return repr(text[:60])


def _parse_key_values(lines: list[str], keys: Mapping[str, tuple[str, Any]], what: str,
                      separator: str = ": ") -> dict[str, Any]:
    """`key<sep>value` lines -> {field: parsed}; unknown keys and blank lines are skipped."""
    values: dict[str, Any] = {}
    for line in lines:
        key, sep, raw = line.strip().partition(separator)
        if not sep or key not in keys:
            continue
        field, parse = keys[key]
        try:
            values[field] = parse(raw.strip())
        except (ValueError, ArithmeticError):
            raise MemStatsParseError(f"{what}: bad value for {key!r}: {_snippet(raw)}") from None
    if not values:
        first = next((line for line in lines if line.strip()), None)
        if first is None:
            raise MemStatsParseError(f"{what}: empty input")
        raise MemStatsParseError(f"{what}: no known keys (starts with {_snippet(first.strip())})")
    return values


def parse_gops_memstats(data: str | bytes) -> MemStats:
    """The gops agent's memstats text, any agent generation, -> MemStats.

    `gc-pause` is the total pause time up to v0.3.2 and the last pause (raw ns)
    once `gc-pause-total` exists (v0.3.3+); `last-gc` is `<n> ns` in old agents
    and time.Time.String() in newer ones.
    """
    text = _to_text(data, "gops memstats", MAX_GOPS_TEXT_CHARS)
    values = _parse_key_values(text.splitlines(), _GOPS_KEYS, "gops memstats")
    gc_pause = values.pop("gc_pause", None)
    if "pause_total_ns" in values:
        values["last_pause_ns"] = gc_pause
    elif gc_pause is not None:
        values["pause_total_ns"] = gc_pause
    if not values.get("num_gc"):  # gops prints 0 for "no pause yet"
        values.pop("last_pause_ns", None)
        values.pop("last_pause_end", None)
    return MemStats(**values)


# --- expvar /debug/vars ---------------------------------------------------------

# runtime.MemStats JSON/Go names -> field; heap debug=1 uses the same names.
_GO_NAMES: dict[str, str] = {
    "Alloc": "alloc", "TotalAlloc": "total_alloc", "Sys": "sys", "Lookups": "lookups",
    "Mallocs": "mallocs", "Frees": "frees", "HeapAlloc": "heap_alloc", "HeapSys": "heap_sys",
    "HeapIdle": "heap_idle", "HeapInuse": "heap_inuse", "HeapReleased": "heap_released",
    "HeapObjects": "heap_objects", "StackInuse": "stack_inuse", "StackSys": "stack_sys",
    "MSpanInuse": "mspan_inuse", "MSpanSys": "mspan_sys", "MCacheInuse": "mcache_inuse",
    "MCacheSys": "mcache_sys", "BuckHashSys": "buck_hash_sys", "GCSys": "gc_sys",
    "OtherSys": "other_sys", "NextGC": "next_gc", "LastGC": "last_gc",
    "PauseTotalNs": "pause_total_ns", "PauseNs": "pause_ns", "PauseEnd": "pause_end",
    "NumGC": "num_gc", "NumForcedGC": "num_forced_gc", "GCCPUFraction": "gc_cpu_fraction",
    "EnableGC": "enable_gc", "DebugGC": "debug_gc",
}
_RINGS = {"pause_ns", "pause_end"}
_FLOATS = {"gc_cpu_fraction"}
_BOOLS = {"enable_gc", "debug_gc"}


@dataclass(frozen=True, slots=True)
class ExpvarVars:
    """The parsed /debug/vars document."""

    memstats: MemStats | None  # None if the program does not publish "memstats"
    cmdline: tuple[str, ...] | None
    other: Mapping[str, Any]  # every other published variable, as decoded JSON (read-only)


def _json_field(field: str, value: Any) -> Any:
    if field in _RINGS:
        # Checked as a whole (type() and min() run in C): this runs on every poll.
        if not isinstance(value, list) or len(value) != PAUSE_RING_SIZE or set(map(type, value)) != {int}:
            raise ValueError("expected a list of 256 integers")
        if min(value) < 0:
            raise ValueError("expected unsigned integers")
        return tuple(value)
    if field in _BOOLS:
        if not isinstance(value, bool):
            raise ValueError("expected a bool")
        return value
    if field in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("expected a number")
        return float(value)
    return _json_uint(value)


def _json_uint(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("expected an unsigned integer")
    return value


def memstats_from_json(obj: Mapping[str, Any]) -> MemStats:
    """A runtime.MemStats marshalled by encoding/json (expvar's "memstats") -> MemStats."""
    values: dict[str, Any] = {}
    for name, field in _GO_NAMES.items():
        if name in obj:
            try:
                values[field] = _json_field(field, obj[name])
            except ValueError as exc:
                raise MemStatsParseError(f"expvar memstats: bad {name}: {exc}") from None
    if not values:
        raise MemStatsParseError("expvar memstats: no runtime.MemStats fields")
    return _with_last_pause(values)


def parse_expvar(data: str | bytes | Mapping[str, Any]) -> ExpvarVars:
    """GET /debug/vars body (or its decoded JSON object) -> ExpvarVars."""
    if isinstance(data, Mapping):
        doc = data
    else:
        text = _to_text(data, "expvar", MAX_EXPVAR_CHARS)
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            raise MemStatsParseError(f"expvar: not JSON (starts with {_snippet(text.lstrip())})") from None
    if not isinstance(doc, Mapping):
        raise MemStatsParseError("expvar: the document is not a JSON object")
    memstats = doc.get("memstats")
    if memstats is not None and not isinstance(memstats, Mapping):
        raise MemStatsParseError("expvar: \"memstats\" is not an object")
    cmdline = doc.get("cmdline")
    if cmdline is not None and not (isinstance(cmdline, list) and all(isinstance(a, str) for a in cmdline)):
        raise MemStatsParseError("expvar: \"cmdline\" is not a list of strings")
    return ExpvarVars(
        memstats=memstats_from_json(memstats) if memstats is not None else None,
        cmdline=tuple(cmdline) if cmdline is not None else None,
        other=MappingProxyType({k: v for k, v in doc.items() if k not in ("memstats", "cmdline")}),
    )


# --- heap?debug=1 trailer ----------------------------------------------------------

_TRAILER_HEADER = "# runtime.MemStats"
# `# Stack = <StackInuse> / <StackSys>` and the MSpan/MCache pairs.
_PAIRS = {"Stack": ("stack_inuse", "stack_sys"), "MSpan": ("mspan_inuse", "mspan_sys"),
          "MCache": ("mcache_inuse", "mcache_sys")}


def _ring(text: str) -> tuple[int, ...]:
    if not (text.startswith("[") and text.endswith("]")):
        raise ValueError("expected [n n ...]")
    ring = tuple(_uint(v) for v in text[1:-1].split())
    if len(ring) != PAUSE_RING_SIZE:
        raise ValueError(f"expected 256 values, got {len(ring)}")
    return ring


def _pair(text: str) -> tuple[int, int]:
    inuse, sep, sys = text.partition(" / ")
    if not sep:
        raise ValueError("expected <inuse> / <sys>")
    return _uint(inuse), _uint(sys)


def _heap_parser(field: str) -> Any:
    if field in _RINGS:
        return _ring
    if field in _BOOLS:
        return _bool
    if field in _FLOATS:
        return _float
    return _uint


_HEAP_KEYS: dict[str, tuple[str, Any]] = {
    **{name: (field, _heap_parser(field)) for name, field in _GO_NAMES.items()},
    **{name: (name, _pair) for name in _PAIRS},
    "MaxRSS": ("max_rss", _uint),
}


def parse_heap_debug1_memstats(data: str | bytes) -> MemStats:
    """The `# runtime.MemStats` trailer of heap/allocs?debug=1 -> MemStats.

    The trailer has no EnableGC (it stays None) and adds MaxRSS. It has no
    PauseTotalNs either: up to 256 GCs that is the sum of the PauseNs ring,
    which then holds every pause; after that it stays None.
    """
    text = _to_text(data, "heap debug=1", MAX_HEAP_TEXT_CHARS)
    start = text.rfind(_TRAILER_HEADER)
    if start < 0:
        raise MemStatsParseError(f"heap debug=1: no '{_TRAILER_HEADER}' section "
                                 f"(starts with {_snippet(text.lstrip())})")
    lines = [line.removeprefix("#").strip() for line in text[start + len(_TRAILER_HEADER):].splitlines()]
    values = _parse_key_values(lines, _HEAP_KEYS, "heap debug=1 MemStats", separator=" = ")
    for name, (inuse_field, sys_field) in _PAIRS.items():
        if name in values:
            values[inuse_field], values[sys_field] = values.pop(name)
    ring, num_gc = values.get("pause_ns"), values.get("num_gc")
    if ring is not None and num_gc is not None and num_gc <= PAUSE_RING_SIZE:
        values["pause_total_ns"] = sum(ring[:num_gc])
    return _with_last_pause(values)


# --- gops stats (agent command 0x07) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stats:
    """The gops agent's process stats; None = line missing."""

    goroutines: int | None = None  # runtime.NumGoroutine()
    os_threads: int | None = None  # threads ever created by the runtime, not live ones
    gomaxprocs: int | None = None
    num_cpu: int | None = None


_STATS_KEYS: dict[str, tuple[str, Any]] = {
    "goroutines": ("goroutines", _uint),
    "OS threads": ("os_threads", _uint),
    "GOMAXPROCS": ("gomaxprocs", _uint),
    "num CPU": ("num_cpu", _uint),
}


def parse_gops_stats(data: str | bytes) -> Stats:
    """The gops agent's stats text (4 `key: value` lines, keys with spaces) -> Stats."""
    text = _to_text(data, "gops stats", MAX_GOPS_TEXT_CHARS)
    return Stats(**_parse_key_values(text.splitlines(), _STATS_KEYS, "gops stats"))


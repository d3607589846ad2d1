"""Which stacks of a watched process are monitoring requests: gotop's own.

Watching a process costs it something, and its own profiles show that cost: the
net/http/pprof handler writing the very profile gotop asked for, expvar's handler
encoding memstats, the gops agent's handler, client_golang's promhttp handler
gathering /metrics. A heap top-N or a goroutine group list that shows them as the
program's own work misleads, so the screens mark them (and can hide them).

A stack is a monitoring request's when one of its frames is such a handler
(`is_monitor_handler`); a request from another monitor than gotop looks the
same, and is marked the same. Beside the handler's goroutine, a goroutine
profile taken over HTTP holds the goroutine net/http starts to watch the
request's connection (`CONNECTION_READER`): it is counted as monitoring when no
more of them exist than monitoring handlers are running.

Pure functions over decoded profiles; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from itertools import compress

from gotop.model.goroutines import Frame, GoroutineGroup, StackKey
from gotop.model.profile import Profile, SampleTable
from gotop.model.profile_graph import locations_pattern

# Function names of monitoring handlers: their closures and methods match too.
# A vendored copy of a module keeps its import path after a prefix ending in "/".
_MONITOR_HANDLER = re.compile(
    r"net/http/pprof\.(?!init(?:\.|$))"  # Index, Profile, Trace, handler.ServeHTTP, ...
    r"|expvar\.expvarHandler(?:\.|$)"  # expvar.Handler()
    r"|(?:.*/)?github\.com/google/gops/agent\.handle(?:\.|$)"
    r"|(?:.*/)?github\.com/prometheus/client_golang/prometheus/promhttp\.HandlerFor"  # and HandlerForTransactional
)
# net/http's per-request goroutine that watches the connection while a handler runs.
CONNECTION_READER = "net/http.(*connReader).backgroundRead"


def is_monitor_handler(function: str) -> bool:
    """Whether `function` serves a monitoring request (pprof, expvar, gops agent, promhttp)."""
    return _MONITOR_HANDLER.match(function) is not None


def monitoring_samples(profile: Profile) -> bytes:
    """Per sample, 1 if its stack holds a monitoring handler's frame, else 0."""
    codes = [code for code, location_id in profile.samples.location_ids.items()
             if any(is_monitor_handler(line.function.name) for line in profile.locations[location_id].lines)]
    if not codes:
        return bytes(len(profile.samples))
    search = locations_pattern(codes).search
    return bytes(search(stack) is not None for stack in profile.samples.stacks)


def split_monitoring(profile: Profile) -> tuple[Profile, Profile]:
    """The profile's samples in two profiles: the program's own work, and the monitoring requests'."""
    mask = monitoring_samples(profile)
    if 1 not in mask:
        return profile, _with_samples(profile, b"")  # none: compress stops at once
    return _with_samples(profile, bytes(1 - own for own in mask)), _with_samples(profile, mask)


def monitoring_share(profile: Profile, sample_index: int) -> tuple[int, int]:
    """(monitoring, total) of one sample type's values."""
    values = profile.samples.values[sample_index]
    return sum(compress(values, monitoring_samples(profile))), sum(values)


def _with_samples(profile: Profile, keep: bytes) -> Profile:
    s = profile.samples
    return replace(profile, samples=SampleTable(
        stacks=tuple(compress(s.stacks, keep)),
        values=tuple(type(column)(column.typecode, compress(column, keep)) for column in s.values),
        label_sets=tuple(compress(s.label_sets, keep)),
        label_table=s.label_table,
        location_ids=s.location_ids,
    ))


def monitoring_groups(groups: Sequence[GoroutineGroup]) -> frozenset[StackKey]:
    """The keys of the goroutine groups that serve monitoring requests, and of the
    connection readers those requests started (when there are no more of them)."""
    handlers = [g for g in groups if _any_handler(g.frames)]
    serving = sum(g.count for g in handlers)
    readers = [g for g in groups if g.frames and any(f.function == CONNECTION_READER for f in g.frames)]
    keys = {g.key for g in handlers}
    if readers and sum(g.count for g in readers) <= serving:
        keys.update(g.key for g in readers)
    return frozenset(keys)


def _any_handler(frames: Iterable[Frame]) -> bool:
    return any(is_monitor_handler(f.function) for f in frames)

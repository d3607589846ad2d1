"""Allocation sites of a heap profile, joined to the compiler's escape reasons (pure).

A heap profile's sample ends at the first frame outside the runtime: the line
that allocated (runtime/pprof hides mallocgc and its callers). Its flat value
at line granularity (profile_graph) is the site's cost: live bytes and objects
(inuse_*), bytes allocated (alloc_space, since the program started). Where the
allocating function was inlined, the compiler reports the escape at the call
site it was inlined into: a site matches an allocation at any line of its
location. A file matches by its path, or when built elsewhere (another
checkout, -trimpath) by the path the allocation has in its module.

The rate is the alloc_space allocated between two profiles over the seconds
between them, or since the start over the process's age. A site allocating
fast objects that die young (live bytes / rate, their mean lifetime by
Little's law, under a second) gets a hint: a sync.Pool candidate.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from gotop.model.escapes import Allocation
from gotop.model.profile import Profile, ProfileError
from gotop.model.profile_graph import NodeIndex, NodeInfo, node_costs, node_index
from gotop.units import fmt_duration_ns

POOL_RATE = 1 << 20  # bytes/s from which a site is worth a pool
POOL_LIFETIME = 1.0  # seconds: objects living shorter than this die young


@dataclass(frozen=True, slots=True)
class Site:
    """One allocating line and what it costs."""

    function: str
    file: str  # as the profile names it
    line: int
    inuse_bytes: int
    inuse_objects: int
    alloc_bytes: int  # allocated over the rate's window
    rate: float  # bytes allocated per second
    escapes: tuple[Allocation, ...]  # the compiler's reasons at this site; () when it gave none

    @property
    def lifetime(self) -> float | None:
        """The mean seconds an object of this site lives (live bytes over the rate), if it allocates."""
        return self.inuse_bytes / self.rate if self.rate > 0 else None

    @property
    def hint(self) -> str:
        """A best practice the numbers suggest (a hint, not a verdict); "" when none."""
        lifetime = self.lifetime
        if self.rate >= POOL_RATE and lifetime is not None and lifetime < POOL_LIFETIME:
            return f"sync.Pool candidate: its objects live about {fmt_duration_ns(lifetime * 1e9)} on average"
        return ""


def allocation_sites(profile: Profile, allocations: Iterable[Allocation], module: str, *,
                     base: Profile | None = None, seconds: float) -> list[Site]:
    """Every line of `profile` with live or allocated bytes, the most live bytes
    first, with the escapes of `allocations` (of the module at directory `module`)
    at it. The rate is over `seconds`: since `base` (an earlier profile of the same
    process), else since the start. ProfileError if it is not a heap profile."""
    index = node_index(profile, "lines")
    inuse, objects, allocated = (_flat(profile, index, kind)
                                 for kind in ("inuse_space", "inuse_objects", "alloc_space"))
    before = _flat(base, node_index(base, "lines"), "alloc_space") if base is not None else {}
    outer_lines = _outer_lines(index)
    escapes = EscapeIndex(allocations, module)
    sites = []
    for node in set(inuse) | set(allocated):
        grown = max(allocated.get(node, 0) - before.get(node, 0), 0)
        if not (inuse.get(node) or grown):
            continue
        found = _escapes_at(node, outer_lines, escapes)
        sites.append(Site(node.name, node.file, node.line, inuse.get(node, 0), objects.get(node, 0), grown,
                          grown / seconds if seconds > 0 else 0.0, found))
    return sorted(sites, key=lambda s: (-s.inuse_bytes, -s.rate, s.file, s.line))


def escapes_by_function(profile: Profile, escapes: EscapeIndex) -> dict[str, tuple[Allocation, ...]]:
    """For each function of a heap profile that allocates, the compiler's reasons at the
    lines it allocates on (a library function inlined into the program's code has those
    of the line it was inlined into); functions without one are left out."""
    index = node_index(profile, "lines")
    outer_lines = _outer_lines(index)
    found: defaultdict[str, dict[Allocation, None]] = defaultdict(dict)
    for node in _flat(profile, index, "alloc_space"):
        found[node.name].update(dict.fromkeys(_escapes_at(node, outer_lines, escapes)))
    return {function: tuple(reasons) for function, reasons in found.items() if reasons}


def _escapes_at(node: NodeInfo, outer_lines: dict[NodeInfo, set[NodeInfo]],
                escapes: EscapeIndex) -> tuple[Allocation, ...]:
    """The reasons at an allocating line, or at the lines its code was inlined into."""
    places = [node, *outer_lines.get(node, ())]
    return tuple(dict.fromkeys(a for place in places for a in escapes.at(place)))


def _flat(profile: Profile, index: NodeIndex, sample_type: str) -> dict[NodeInfo, int]:
    """Flat per line node (of `index`) of one sample type."""
    try:
        sample_index = profile.sample_index(sample_type)
    except ProfileError:
        raise ProfileError(f"not a heap profile (no {sample_type} samples)") from None
    costs = node_costs(profile, sample_index, index)
    return {index.infos[c.node]: c.flat for c in costs.nodes if c.flat}


def _outer_lines(index: NodeIndex) -> dict[NodeInfo, set[NodeInfo]]:
    """For each innermost line, the lines its code was inlined into."""
    outer: defaultdict[NodeInfo, set[NodeInfo]] = defaultdict(set)
    for nodes in index.of_location.values():
        if len(nodes) > 1:
            outer[index.infos[nodes[0]]].update(index.infos[n] for n in nodes[1:])
    return outer


class EscapeIndex:
    """The allocations of a module (at directory `module`) by line: `at` a profile's
    line node, those at its file (by path, or by path in the module) and line, in
    its function where the compiler names one."""

    def __init__(self, allocations: Iterable[Allocation], module: str) -> None:
        self._by_line: defaultdict[tuple[str, int], list[tuple[str, str, Allocation]]] = defaultdict(list)
        for a in allocations:
            relative = posixpath.relpath(a.file, module) if module and a.file.startswith(module + "/") else ""
            self._by_line[(posixpath.basename(a.file), a.line)].append((a.file, relative, a))

    def at(self, place: NodeInfo) -> list[Allocation]:
        return [a for path, relative, a in self._by_line.get((posixpath.basename(place.file), place.line), ())
                if (path == place.file or (relative and place.file.endswith("/" + relative)))
                and (not a.function or _same_function(place.name, a.function))]


def _same_function(profiled: str, compiled: str) -> bool:
    """Whether pprof's 'main.init.func4' is the compiler's 'init.func4' (type arguments aside)."""
    profiled, compiled = _without_type_arguments(profiled), _without_type_arguments(compiled)
    return profiled == compiled or profiled.endswith("." + compiled)


def _without_type_arguments(name: str) -> str:
    while (shorter := re.sub(r"\[[^\[\]]*\]", "", name)) != name:
        name = shorter
    return name

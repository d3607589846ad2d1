"""Flat and cum per report node, as `go tool pprof` computes them (internal/graph).

A node is a function (granularity "functions", pprof's default) or a source
line ("lines"); inlined frames are nodes of their own. Per sample, the leaf
node gets the sample's weight as flat, and every *distinct* node on the stack
gets it once as cum, so recursion is not counted twice.

Cum only depends on which locations a sample holds, so samples are first
summed by their set of locations (`StackWeights`), in one C-heavy pass; the
node-level sums then run over the far fewer distinct sets.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import reduce
from itertools import compress
from operator import or_
from typing import Literal

from gotop.model.profile import Location, Profile

Granularity = Literal["functions", "lines"]
GRANULARITIES: tuple[Granularity, ...] = ("functions", "lines")

_DIFF_BASE_KEY, _DIFF_BASE_VALUE = "pprof::base", "true"
_CWD_PREFIXES = ("/proc/self/cwd/./", "/proc/self/cwd/")  # what pprof trims off file names


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What identifies a report node (pprof's graph.NodeInfo at these granularities)."""

    name: str
    file: str = ""
    line: int = 0
    start_line: int = 0
    objfile: str = ""

    @property
    def printable_name(self) -> str:
        """pprof's PrintableName: 'main.f', 'main.f /src/x.go:12', '[binary]' or '<unknown>'."""
        parts = [self.name] if self.name else []
        if self.line:
            parts.append(f"{self.file}:{self.line}")
        elif self.file:
            parts.append(self.file)
        elif not self.name:
            parts.append(f"[{go_base(self.objfile)}]" if self.objfile else "<unknown>")
        return " ".join(parts)

    @property
    def go_sprint(self) -> str:
        """fmt.Sprint of pprof's NodeInfo: its last-resort sort key."""
        return f"{{{self.name}  0 {self.file} {self.start_line} {self.line} 0 {self.objfile}}}"


@dataclass(frozen=True, slots=True)
class StackWeights:
    """One sample type's weights, summed by what flat and cum depend on."""

    sample_index: int
    by_location_set: dict[frozenset[str], int]  # cum: the set of locations a sample holds
    by_leaf: dict[str, int]  # flat: the sample's leaf location ('' for an empty stack)
    total: int  # pprof's report total: sum of |weight| (over the diff base only, if marked)


@dataclass(frozen=True, slots=True)
class NodeCost:
    node: int  # index into NodeIndex.infos
    flat: int
    cum: int


@dataclass(frozen=True, slots=True)
class NodeIndex:
    """The nodes of one granularity, and each location's nodes (innermost first)."""

    infos: tuple[NodeInfo, ...]
    of_location: dict[str, tuple[int, ...]]  # location code -> node indexes
    masks: dict[str, int]  # location code -> OR of 1 << node index


def stack_weights(profile: Profile, sample_index: int) -> StackWeights:
    weights = profile.samples.values[sample_index]
    stacks = profile.samples.stacks
    by_set: defaultdict[frozenset[str], int] = defaultdict(int)
    by_leaf: defaultdict[str, int] = defaultdict(int)
    # Zero weights add nothing (pprof skips them too): drop them in C first.
    for stack, weight in zip(compress(stacks, weights), filter(None, weights)):
        by_set[frozenset(stack)] += weight
        by_leaf[stack[:1]] += weight
    return StackWeights(sample_index, dict(by_set), dict(by_leaf), _total(profile, weights))


def _total(profile: Profile, weights) -> int:
    base_codes = {
        chr(code) for code, label in enumerate(profile.samples.label_table)
        if label is not None and label.key == _DIFF_BASE_KEY and label.value == _DIFF_BASE_VALUE
    }
    if base_codes:
        in_base = [not base_codes.isdisjoint(labels) for labels in profile.samples.label_sets]
        base_total = sum(map(abs, compress(weights, in_base)))
        if base_total:
            return base_total
    return sum(map(abs, weights))


def node_index(profile: Profile, granularity: Granularity = "functions", *, obj_names: bool = False) -> NodeIndex:
    """Nodes per location. `obj_names` keeps the binary name and start line in
    every node, as pprof does for `list`."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"unknown granularity {granularity!r}")
    ids: dict[NodeInfo, int] = {}
    of_location = {
        code: tuple(ids.setdefault(info, len(ids)) for info in _location_infos(profile.locations[loc_id], granularity, obj_names))
        for code, loc_id in profile.samples.location_ids.items()
    }
    masks = {code: reduce(or_, (1 << node for node in nodes), 0) for code, nodes in of_location.items()}
    return NodeIndex(tuple(ids), of_location, masks)


def _location_infos(loc: Location, granularity: Granularity, obj_names: bool) -> Iterator[NodeInfo]:
    objfile = loc.mapping.filename if loc.mapping else ""
    if not loc.lines:
        yield NodeInfo("", objfile=objfile)
        return
    for line in loc.lines:
        function = line.function
        keep_obj = obj_names or not function.name
        yield NodeInfo(
            name=function.name,
            file=go_clean(_trim_cwd(function.filename)) if granularity == "lines" and function.filename else "",
            line=line.line if granularity == "lines" else 0,
            start_line=function.start_line if keep_obj else 0,
            objfile=objfile if keep_obj else "",
        )


def node_costs(index: NodeIndex, weights: StackWeights) -> list[NodeCost]:
    """Flat and cum of every node that has either (pprof drops the others).

    A location set's nodes are the OR of its locations' node bitmasks: location
    sets with the same nodes merge, and cum then walks each distinct mask once.
    """
    mask_of = index.masks.__getitem__
    by_mask: defaultdict[int, int] = defaultdict(int)
    for locations, weight in weights.by_location_set.items():
        by_mask[reduce(or_, map(mask_of, locations), 0)] += weight
    cum = [0] * len(index.infos)
    for mask, weight in by_mask.items():
        while mask:
            lowest = mask & -mask
            cum[lowest.bit_length() - 1] += weight
            mask ^= lowest
    flat = [0] * len(index.infos)
    for leaf, weight in weights.by_leaf.items():
        if leaf:
            flat[index.of_location[leaf][0]] += weight
    return [NodeCost(node, flat[node], cum[node]) for node in range(len(cum)) if cum[node] or flat[node]]


def _trim_cwd(path: str) -> str:
    for prefix in _CWD_PREFIXES:
        if path.startswith(prefix):
            return path[len(prefix):]
    return path


def go_clean(path: str) -> str:
    """Go's filepath.Clean (posixpath.normpath keeps a leading '//')."""
    cleaned = posixpath.normpath(path)
    return cleaned[1:] if cleaned.startswith("//") else cleaned


def go_base(path: str) -> str:
    """Go's filepath.Base."""
    if not path:
        return "."
    stripped = path.rstrip("/")
    return posixpath.basename(stripped) if stripped else "/"


@dataclass(slots=True)
class EdgeWeight:
    weight: int = 0
    inline: bool = True  # every contribution was an inlined call (pprof's Edge.Inline)


def edges_touching(
    profile: Profile, index: NodeIndex, sample_index: int, targets: set[int], kept: set[int] | None = None,
) -> dict[tuple[int, int], EdgeWeight]:
    """Caller->callee edges that end at a target (and, when `kept` is None, the
    ones that start at one), each sample counted once per edge (pprof's
    seenEdge) and self-edges skipped.

    With `kept`, nodes outside it are skipped as in pprof's trimmed graph: a
    target's caller is then its nearest kept ancestor.
    """
    target_codes = {code for code, nodes in index.of_location.items() if not targets.isdisjoint(nodes)}
    if not target_codes:
        return {}
    find_targets = _char_class(target_codes)
    weights = profile.samples.values[sample_index]
    of_location = index.of_location
    edges: defaultdict[tuple[int, int], EdgeWeight] = defaultdict(EdgeWeight)
    for stack, weight in zip(compress(profile.samples.stacks, weights), filter(None, weights)):
        positions = [m.start() for m in find_targets.finditer(stack)]
        if not positions:
            continue
        seen: dict[tuple[int, int], bool] = {}
        for position in reversed(positions):  # root first, as pprof walks a sample
            nodes = of_location[stack[position]]
            for line in range(len(nodes) - 1, -1, -1):
                node = nodes[line]
                if node not in targets:
                    continue
                caller = _caller(stack, position, line, of_location, kept)
                if caller is not None and caller != node:
                    seen.setdefault((caller, node), line != len(nodes) - 1)
                if kept is None:
                    callee, inline = _callee(stack, position, line, of_location)
                    if callee is not None and callee != node:
                        seen.setdefault((node, callee), inline)
        for pair, inline in seen.items():
            edge = edges[pair]
            edge.weight += weight
            edge.inline = edge.inline and inline
    return dict(edges)


def _caller(stack: str, position: int, line: int, of_location, kept: set[int] | None) -> int | None:
    """The node visited just before (position, line) on the way from the root."""
    nodes = of_location[stack[position]]
    line += 1
    while True:
        if line == len(nodes):
            position += 1
            if position == len(stack):
                return None
            nodes, line = of_location[stack[position]], 0
        node = nodes[line]
        if kept is None or node in kept:
            return node
        line += 1


def _callee(stack: str, position: int, line: int, of_location) -> tuple[int | None, bool]:
    """The node visited just after (position, line), and whether that call was inlined."""
    if line > 0:
        return of_location[stack[position]][line - 1], True
    if position == 0:
        return None, False
    return of_location[stack[position - 1]][-1], False


def _char_class(codes: set[str]) -> re.Pattern[str]:
    return re.compile("[" + "".join(re.escape(code) for code in sorted(codes)) + "]")

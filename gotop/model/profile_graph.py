"""Flat and cum per report node, as `go tool pprof` computes them (internal/graph).

A node is a function (granularity "functions", pprof's default) or a source
line ("lines"); inlined frames are nodes of their own. Per sample, the leaf
node gets the sample's weight as flat, and every *distinct* node on the stack
gets it once as cum, so recursion is not counted twice.

Cum only depends on which nodes a sample holds, so samples are first summed
by that set (a frozenset of one-character codes, built in C), and the per-node
sums run over the far fewer distinct sets. Sets of latin-1 characters are the
cheapest (CPython shares those strings): samples are summed by location set, and
each distinct set turned into nodes with bitmasks; but when location codes are
not latin-1 and the granularity has at most 255 nodes, stacks are first
translated to node codes, which are.

Where gotop was built with its C extension, one compiled pass over the samples
does it instead (compiled_sums); the paths above are taken when it declines.
"""

from __future__ import annotations

import posixpath
import re
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import reduce
from itertools import compress
from operator import or_
from typing import Literal

from gotop.model.profile import Location, Profile
from gotop.model.speedups import speedups

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
class NodeCost:
    node: int  # index into NodeIndex.infos
    flat: int
    cum: int


@dataclass(frozen=True, slots=True)
class NodeIndex:
    """The nodes of one granularity, and each location's nodes (innermost first)."""

    granularity: Granularity
    infos: tuple[NodeInfo, ...]
    of_location: dict[str, tuple[int, ...]]  # location code -> node indexes
    masks: dict[str, int]  # location code -> OR of 1 << node index


@dataclass(frozen=True, slots=True)
class Costs:
    """Flat and cum per node for one sample type, and pprof's report total."""

    sample_index: int
    index: NodeIndex
    nodes: tuple[NodeCost, ...]  # every node with a non-zero flat or cum (pprof drops the others)
    total: int  # sum of |weight| (over the diff base only, if marked)


_LATIN1_NODES = 255  # node codes chr(1..255): CPython shares these strings
_LATIN1_MAX = "\xff"


def node_costs(profile: Profile, sample_index: int, index: NodeIndex) -> Costs:
    weights = profile.samples.values[sample_index]
    size = len(index.infos)
    sums = compiled_sums(profile.samples.stacks, weights, index) if speedups is not None else None
    cum, flat = sums if sums is not None else python_sums(profile.samples.stacks, weights, index)
    nodes = tuple(NodeCost(node, flat[node], cum[node]) for node in range(size) if cum[node] or flat[node])
    return Costs(sample_index, index, nodes, _total(profile, weights))


def compiled_sums(stacks: tuple[str, ...], weights: array, index: NodeIndex) -> tuple[list[int], list[int]] | None:
    """Cum and flat per node from the C extension, or None when it declines (a sum beyond int64)."""
    assert speedups is not None
    first_node, nodes = array("I"), array("I")  # the nodes of code c: nodes[first_node[c]:first_node[c + 1]]
    for code in range(ord(max(index.of_location, default="\x00")) + 1):
        first_node.append(len(nodes))
        nodes.extend(index.of_location.get(chr(code), ()))
    first_node.append(len(nodes))
    return speedups.node_costs(stacks, weights, first_node, nodes, len(index.infos))


def python_sums(stacks: tuple[str, ...], weights: array, index: NodeIndex) -> tuple[list[int], list[int]]:
    """Cum and flat per node (see the module doc)."""
    # Zero weights add nothing (pprof skips them too): drop them in C first.
    kept = list(compress(stacks, weights))
    nonzero = list(filter(None, weights))
    if len(index.infos) <= _LATIN1_NODES and max(index.of_location, default="\x00") > _LATIN1_MAX:
        return _by_node_set(kept, nonzero, index)  # worth a translation to latin-1
    return _by_location_set(kept, nonzero, index)


def _by_node_set(stacks: list[str], weights: list[int], index: NodeIndex) -> tuple[list[int], list[int]]:
    """Stacks translated to node codes chr(node + 1), leaf first, then summed by node set."""
    to_nodes = {ord(code): "".join(chr(node + 1) for node in nodes) for code, nodes in index.of_location.items()}
    node_stacks = "\x00".join(stacks).translate(to_nodes).split("\x00")
    by_set: defaultdict[frozenset[str], int] = defaultdict(int)
    by_leaf: defaultdict[str, int] = defaultdict(int)
    for key, stack, weight in zip(map(frozenset, node_stacks), node_stacks, weights):
        by_set[key] += weight
        by_leaf[stack[:1]] += weight
    cum = [0] * len(index.infos)
    for nodes, weight in by_set.items():
        for code in nodes:
            cum[ord(code) - 1] += weight
    flat = [0] * len(index.infos)
    for leaf, weight in by_leaf.items():
        if leaf:
            flat[ord(leaf) - 1] += weight
    return cum, flat


def _by_location_set(stacks: list[str], weights: list[int], index: NodeIndex) -> tuple[list[int], list[int]]:
    """Summed by location set, then each distinct set's nodes as an OR of bitmasks."""
    by_set: defaultdict[frozenset[str], int] = defaultdict(int)
    by_leaf: defaultdict[str, int] = defaultdict(int)
    for key, stack, weight in zip(map(frozenset, stacks), stacks, weights):
        by_set[key] += weight
        by_leaf[stack[:1]] += weight
    mask_of = index.masks.__getitem__
    by_mask: defaultdict[int, int] = defaultdict(int)
    for locations, weight in by_set.items():
        by_mask[reduce(or_, map(mask_of, locations), 0)] += weight
    cum = [0] * len(index.infos)
    for mask, weight in by_mask.items():
        while mask:
            lowest = mask & -mask
            cum[lowest.bit_length() - 1] += weight
            mask ^= lowest
    flat = [0] * len(index.infos)
    for leaf, weight in by_leaf.items():
        if leaf:
            flat[index.of_location[leaf][0]] += weight
    return cum, flat


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
        code: tuple(ids.setdefault(info, len(ids))
                    for info in _location_infos(profile.locations[loc_id], granularity, obj_names))
        for code, loc_id in profile.samples.location_ids.items()
    }
    masks = {code: reduce(or_, (1 << node for node in nodes), 0) for code, nodes in of_location.items()}
    return NodeIndex(granularity, tuple(ids), of_location, masks)


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
    find_targets = locations_pattern(target_codes)
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


def locations_pattern(codes: Iterable[str]) -> re.Pattern[str]:
    """A regex that finds any of these location codes in a stack."""
    return re.compile("[" + "".join(map(re.escape, sorted(codes))) + "]")

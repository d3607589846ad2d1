"""Reports over a profile with `go tool pprof`'s semantics (internal/report):
top, peek, list, and the heaviest call paths to a function. Pure data;
profile_text.py prints them the way pprof does.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import compress

from gotop.model.profile import Profile, ProfileError, ValueType
from gotop.model.profile_graph import (
    Costs,
    Granularity,
    NodeCost,
    NodeIndex,
    NodeInfo,
    edges_touching,
    locations_pattern,
    node_costs,
    node_index,
)
from gotop.model.profile_units import output_unit

DEFAULT_NODE_FRACTION = 0.005  # pprof -nodefraction
DEFAULT_EDGE_FRACTION = 0.001  # pprof -edgefraction
INLINE, PARTIAL_INLINE = "(inline)", "(partial-inline)"


@dataclass(frozen=True, slots=True)
class ReportNode:
    name: str  # pprof's printable name
    flat: int
    cum: int
    inline: str = ""  # "", "(inline)" or "(partial-inline)" (top only)


@dataclass(frozen=True, slots=True)
class Scope:
    """What every report is about: one sample type, its total and print unit."""

    sample_type: ValueType
    total: int  # the 100% of every percentage
    unit: str  # the unit values are printed in (pprof -unit)


@dataclass(frozen=True, slots=True)
class TopReport:
    scope: Scope
    rows: tuple[ReportNode, ...]
    dropped_nodes: int  # below the node fraction
    dropped_cutoff: int  # the "cum <=" of pprof's "Dropped N nodes" line
    node_limit: int  # 0: all
    nodes_before_limit: int


@dataclass(frozen=True, slots=True)
class CallEdge:
    name: str  # the caller (in callers) or the callee (in callees)
    weight: int
    inline: bool


@dataclass(frozen=True, slots=True)
class PeekEntry:
    node: ReportNode
    callers: tuple[CallEdge, ...]  # heaviest first
    callees: tuple[CallEdge, ...]


@dataclass(frozen=True, slots=True)
class PeekReport:
    scope: Scope
    entries: tuple[PeekEntry, ...]  # matching nodes, in top (flat) order
    shown_total: int  # sum of flat over all nodes (pprof's header counts them all)


@dataclass(frozen=True, slots=True)
class CallPath:
    frames: tuple[str, ...]  # root first, ending at the function
    weight: int


@dataclass(frozen=True, slots=True)
class LineCost:
    line: int
    flat: int
    cum: int
    start_line: int  # the function's first line, 0 if the profile does not say


@dataclass(frozen=True, slots=True)
class Routine:
    """One function in one source file, with flat/cum per line (pprof `list`)."""

    function: str
    file: str  # "" when the profile has no file name for it
    flat: int
    cum: int
    lines: tuple[LineCost, ...]  # in pprof's order; the first one anchors the listing


@dataclass(frozen=True, slots=True)
class ListReport:
    scope: Scope
    routines: tuple[Routine, ...]


@dataclass(frozen=True, slots=True)
class SourceLine:
    line: int
    flat: int
    cum: int
    text: str


class _Analysis:
    """One profile, one sample type, one granularity: the shared first steps."""

    def __init__(self, profile: Profile, sample_index: str | int | None, granularity: Granularity,
                 costs: Costs | None = None, obj_names: bool = False):
        self.profile = profile
        self.index_of_type = profile.sample_index(sample_index)
        if costs is None:
            costs = node_costs(profile, self.index_of_type, node_index(profile, granularity, obj_names=obj_names))
        elif costs.sample_index != self.index_of_type or costs.index.granularity != granularity:
            raise ValueError("costs are for another sample type or granularity")
        self.total = costs.total
        self.nodes: NodeIndex = costs.index
        self.costs = list(costs.nodes)
        self.sample_type = profile.sample_types[self.index_of_type]

    def info(self, cost: NodeCost) -> NodeInfo:
        return self.nodes.infos[cost.node]

    def sorted(self, costs: Iterable[NodeCost], by_cum: bool = False) -> list[NodeCost]:
        """pprof's FlatNameOrder (|flat|, name, |cum|) or CumNameOrder (|cum|, name, |flat|)."""
        infos = self.nodes.infos

        def key(c: NodeCost) -> tuple[int, str, int, str]:
            first, second = (c.cum, c.flat) if by_cum else (c.flat, c.cum)
            info = infos[c.node]
            return -abs(first), info.printable_name, -abs(second), info.go_sprint

        return sorted(costs, key=key)

    def scope(self, shown: Iterable[NodeCost]) -> Scope:
        unit = output_unit([(c.flat, c.cum) for c in shown], self.total, self.sample_type.unit)
        return Scope(self.sample_type, self.total, unit)


def costs_of(profile: Profile, sample_index: str | int | None = None,
             granularity: Granularity = "functions") -> Costs:
    """Flat and cum per node, to reuse across top() calls (the costly part)."""
    index = profile.sample_index(sample_index)
    return node_costs(profile, index, node_index(profile, granularity))


def top(
    profile: Profile,
    sample_index: str | int | None = None,
    *,
    cum: bool = False,
    granularity: Granularity = "functions",
    node_limit: int = 0,
    node_fraction: float = DEFAULT_NODE_FRACTION,
    edge_fraction: float = DEFAULT_EDGE_FRACTION,
    costs: Costs | None = None,
) -> TopReport:
    """`go tool pprof -top` (and -cum, -lines, -nodecount, -nodefraction, -edgefraction).

    `costs` (from costs_of() with the same sample type and granularity) skips
    the aggregation, e.g. to re-sort a report.
    """
    analysis = _Analysis(profile, sample_index, granularity, costs)
    costs_list = analysis.costs
    flat_total = sum(c.flat for c in costs_list)
    node_cutoff = abs(int(flat_total * node_fraction))
    edge_cutoff = abs(int(flat_total * edge_fraction))
    kept = [c for c in costs_list if abs(c.cum) >= node_cutoff] if node_cutoff > 0 else costs_list
    kept = analysis.sorted(kept, by_cum=cum)
    before_limit = len(kept)
    if 0 < node_limit < before_limit:
        kept = kept[:node_limit]
    labels = _inline_labels(analysis, kept, edge_cutoff)
    rows = tuple(
        ReportNode(analysis.info(c).printable_name, c.flat, c.cum, labels.get(c.node, "")) for c in kept
    )
    return TopReport(
        scope=analysis.scope(kept),
        rows=rows,
        dropped_nodes=len(costs_list) - before_limit,
        dropped_cutoff=abs(int(analysis.total * node_fraction)),
        node_limit=node_limit,
        nodes_before_limit=before_limit,
    )


def _inline_labels(analysis: _Analysis, kept: list[NodeCost], edge_cutoff: int) -> dict[int, str]:
    """pprof marks a node '(inline)' when all its kept in-edges are inlined calls,
    '(partial-inline)' when only some are.

    The common case needs no edges: a node only ever inlined, always into the same
    kept caller, has exactly one in-edge, whose weight is the node's cum.
    """
    kept_nodes = {c.node for c in kept}
    inliners: defaultdict[int, set[int]] = defaultdict(set)
    called: set[int] = set()  # nodes that are some location's physical (last) frame
    for nodes in analysis.nodes.of_location.values():
        for line, node in enumerate(nodes[:-1]):
            inliners[node].add(nodes[line + 1])
        called.add(nodes[-1])
    labels: dict[int, str] = {}
    walk: dict[int, NodeCost] = {}
    for cost in kept:
        callers = inliners.get(cost.node)
        if not callers:
            continue
        if cost.node not in called and len(callers) == 1 and cost.node not in callers and callers <= kept_nodes:
            labels[cost.node] = INLINE if abs(cost.cum) >= edge_cutoff else ""
        else:
            walk[cost.node] = cost
    if walk:
        edges = edges_touching(analysis.profile, analysis.nodes, analysis.index_of_type, set(walk), kept_nodes)
        flags: defaultdict[int, set[bool]] = defaultdict(set)
        for (_, node), edge in edges.items():
            if abs(edge.weight) >= edge_cutoff:
                flags[node].add(edge.inline)
        for node in walk:
            found = flags.get(node, set())
            labels[node] = (PARTIAL_INLINE if False in found else INLINE) if True in found else ""
    return labels


def peek(profile: Profile, pattern: str, sample_index: str | int | None = None, *,
         granularity: Granularity = "functions") -> PeekReport:
    """`go tool pprof -peek PATTERN`: callers and callees of the matching nodes,
    with edge weights counted once per sample (no trimming, as pprof)."""
    regex = _compile(pattern)
    analysis = _Analysis(profile, sample_index, granularity)
    ordered = analysis.sorted(analysis.costs)
    matched = [c for c in ordered if regex.search(analysis.info(c).printable_name)]
    if not matched:
        raise ProfileError(f"no matches found for regexp: {pattern}")
    edges = edges_touching(profile, analysis.nodes, analysis.index_of_type, {c.node for c in matched})
    infos = analysis.nodes.infos
    callers: defaultdict[int, list[CallEdge]] = defaultdict(list)
    callees: defaultdict[int, list[CallEdge]] = defaultdict(list)
    # pprof's edge order: |weight|, then caller name, then callee name.
    for (src, dst), edge in sorted(
        edges.items(), key=lambda e: (-abs(e[1].weight), infos[e[0][0]].printable_name, infos[e[0][1]].printable_name)
    ):
        callers[dst].append(CallEdge(infos[src].printable_name, edge.weight, edge.inline))
        callees[src].append(CallEdge(infos[dst].printable_name, edge.weight, edge.inline))
    entries = tuple(
        PeekEntry(
            ReportNode(analysis.info(c).printable_name, c.flat, c.cum),
            tuple(callers.get(c.node, ())), tuple(callees.get(c.node, ())),
        )
        for c in matched
    )
    return PeekReport(analysis.scope(ordered), entries, sum(c.flat for c in ordered))


def paths_to(profile: Profile, function: str, sample_index: str | int | None = None, *,
             limit: int = 20) -> list[CallPath]:
    """The heaviest call paths from the root to `function` (a function-level node
    name), summed over the samples through it; under recursion a sample counts
    once, on the path to the outermost call."""
    nodes = node_index(profile, "functions")
    targets = {i for i, info in enumerate(nodes.infos) if info.printable_name == function}
    if not targets:
        raise ProfileError(f"no function named {function!r} in the profile")
    of_location = nodes.of_location
    find = locations_pattern(code for code, held in of_location.items() if not targets.isdisjoint(held))
    weights = profile.samples.values[profile.sample_index(sample_index)]
    sums: defaultdict[tuple[int, ...], int] = defaultdict(int)
    for stack, weight in zip(compress(profile.samples.stacks, weights), filter(None, weights)):
        matches = list(find.finditer(stack))
        if not matches:
            continue
        outermost = matches[-1].start()  # stacks are leaf first
        held = of_location[stack[outermost]]
        line = max(i for i, node in enumerate(held) if node in targets)
        path = [node for code in reversed(stack[outermost + 1:]) for node in reversed(of_location[code])]
        path.extend(reversed(held[line:]))
        sums[tuple(path)] += weight
    heaviest = sorted(sums.items(), key=lambda item: (-abs(item[1]), item[0]))[:limit]
    return [CallPath(tuple(nodes.infos[n].printable_name for n in path), weight) for path, weight in heaviest]


def list_routines(profile: Profile, pattern: str, sample_index: str | int | None = None) -> ListReport:
    """`go tool pprof -list PATTERN` without the source text: per matching function
    and file, flat and cum per line (line granularity, no trimming)."""
    regex = _compile(pattern)
    analysis = _Analysis(profile, sample_index, "lines", obj_names=True)
    by_routine: defaultdict[str, defaultdict[str, list[NodeCost]]] = defaultdict(lambda: defaultdict(list))
    for cost in analysis.costs:
        info = analysis.info(cost)
        if regex.search(info.name):
            by_routine[info.name][info.file].append(cost)
    if not by_routine:
        raise ProfileError(f"no matches found for regexp: {pattern}")
    routines = []
    for name in sorted(by_routine):
        files = by_routine[name]
        named_files = sorted(f for f in files if f)
        if not named_files:
            routines.append(Routine(name, "", 0, 0, ()))
        for file in named_files:
            costs = sorted(files[file], key=lambda c: (analysis.info(c).line, analysis.info(c).go_sprint))
            lines = tuple(
                LineCost(analysis.info(c).line, c.flat, c.cum, analysis.info(c).start_line) for c in costs
            )
            routines.append(Routine(name, file, sum(c.flat for c in costs), sum(c.cum for c in costs), lines))
    scope = Scope(analysis.sample_type, analysis.total, "minimum")  # pprof's list keeps -unit=minimum
    return ListReport(scope, tuple(routines))


_LIST_MARGIN = 5  # lines shown around the sampled ones


def source_lines(routine: Routine, text: str) -> list[SourceLine]:
    """The listing of `routine` over the file's `text`, rows as pprof's list
    prints them: from the function's start line (or 5 before the first sampled
    line) to 5 after, stopping at the end of the file."""
    if not routine.lines:
        return []
    first = routine.lines[0]
    start = first.start_line or first.line - _LIST_MARGIN
    end = first.line + _LIST_MARGIN
    costs: defaultdict[int, list[int]] = defaultdict(lambda: [0, 0])
    for cost in routine.lines:
        node_start = cost.start_line or cost.line - _LIST_MARGIN
        if node_start < start:
            start = node_start
        elif cost.line + _LIST_MARGIN > end:  # pprof's else-if: kept as is
            end = cost.line + _LIST_MARGIN
        costs[cost.line][0] += cost.flat
        costs[cost.line][1] += cost.cum
    file_lines = _scan_lines(text)
    rows = []
    for number in range(max(start, 1), end + 1):
        if number > len(file_lines):
            break
        flat, cum = costs.get(number, (0, 0))
        rows.append(SourceLine(number, flat, cum, file_lines[number - 1]))
    return rows


def _scan_lines(text: str) -> list[str]:
    """Lines as Go's bufio.ScanLines yields them (no final empty line, no '\\r')."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ProfileError(f"bad regexp {pattern!r}: {e}") from None

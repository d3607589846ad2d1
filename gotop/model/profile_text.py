"""Reports printed as `go tool pprof` prints them (-top, -peek, -list): lists of
lines, identical to pprof's output, for the CLI to write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gotop.model.profile import Profile
from gotop.model.profile_graph import go_base
from gotop.model.profile_report import ListReport, PeekReport, Scope, TopReport, source_lines
from gotop.model.profile_units import percentage, scale, scaled_label

_TREE_SEPARATOR = "----------------------------------------------------------+-------------"
_TREE_LEGEND = "      flat  flat%   sum%        cum   cum%   calls calls% + context \t \t "


def format_top(profile: Profile, report: TopReport) -> list[str]:
    scope = report.scope
    value = _formatter(scope)
    shown = sum(row.flat for row in report.rows)
    lines = profile_labels(profile, scope) + [_showing(scope, shown)]
    if scope.total:
        if report.dropped_nodes:
            lines.append(_dropped(report.dropped_nodes, value(report.dropped_cutoff)))
        if 0 < report.node_limit < report.nodes_before_limit:
            lines.append(f"Showing top {report.node_limit} nodes out of {report.nodes_before_limit}")
    lines.append(f"{'flat':>10s} {'flat':>5s}% {'sum':>5s}% {'cum':>10s} {'cum':>5s}%")
    flat_sum = 0
    for row in report.rows:
        flat_sum += row.flat
        inline = f" {row.inline}" if row.inline else ""
        lines.append(
            f"{value(row.flat):>10s} {percentage(row.flat, scope.total)} {percentage(flat_sum, scope.total)} "
            f"{value(row.cum):>10s} {percentage(row.cum, scope.total)}  {row.name}{inline}"
        )
    return lines


def format_peek(profile: Profile, report: PeekReport) -> list[str]:
    scope = report.scope
    value = _formatter(scope)
    lines = profile_labels(profile, scope) + [_showing(scope, report.shown_total), _TREE_SEPARATOR, _TREE_LEGEND]
    flat_sum = 0
    for entry in report.entries:
        node = entry.node
        lines.append(_TREE_SEPARATOR)
        lines.extend(_edge_line(edge.weight, node.cum, edge.name, edge.inline, value) for edge in entry.callers)
        flat_sum += node.flat
        lines.append(
            f"{value(node.flat):>10s} {percentage(node.flat, scope.total)} {percentage(flat_sum, scope.total)} "
            f"{value(node.cum):>10s} {percentage(node.cum, scope.total)}                | {node.name}"
        )
        lines.extend(_edge_line(edge.weight, node.cum, edge.name, edge.inline, value) for edge in entry.callees)
    lines.append(_TREE_SEPARATOR)  # pprof closes the table whenever the graph has nodes: peek always does
    return lines


def format_list(report: ListReport, text_or_why: Callable[[str], tuple[str | None, str]]) -> list[str]:
    """`text_or_why(path)` gives a file's text, or None and why not (printed as the
    routine's error, as pprof prints a missing file)."""
    scope = report.scope
    value = _formatter(scope)
    lines = [f"Total: {value(scope.total)}"]
    for routine in report.routines:
        if not routine.file:
            lines.append(f"No source information for {routine.function}")
            continue
        lines.append(f"ROUTINE ======================== {routine.function} in {routine.file}")
        share = percentage(routine.cum, scope.total)
        lines.append(f"{value(routine.flat):>10s} {value(routine.cum):>10s} (flat, cum) {share} of Total")
        text, why = text_or_why(routine.file)
        if text is None:
            lines.append(f" Error: {why}")
            continue
        for row in source_lines(routine, text):
            flat = value(row.flat) if row.flat else "."
            cum = value(row.cum) if row.cum else "."
            lines.append(f"{flat:>10s} {cum:>10s} {row.line:6d}:{row.text}")
    return lines


def profile_labels(profile: Profile, scope: Scope) -> list[str]:
    """pprof's report header: File, Build ID, comments, Type, Doc, Time, Duration."""
    labels = []
    if profile.mappings:
        main = profile.mappings[0]
        if main.filename:
            labels.append(f"File: {go_base(main.filename)}")
        if main.build_id:
            labels.append(f"Build ID: {main.build_id}")
    labels.extend(c for c in profile.comments if not c.startswith("#"))
    labels.append(f"Type: {scope.sample_type.type}")
    if profile.doc_url:
        labels.append(f"Doc: {profile.doc_url}")
    if profile.time_nanos:
        labels.append(f"Time: {_local_time(profile.time_nanos)}")
    if profile.duration_nanos:
        duration = scaled_label(profile.duration_nanos, "nanoseconds", "auto")
        total_nanos, total_unit = scale(scope.total, scope.sample_type.unit, "nanoseconds")
        ratio = ""
        if total_unit == "ns" and total_nanos:
            ratio = f"({percentage(int(total_nanos), profile.duration_nanos)})"
        labels.append(f"Duration: {duration}, Total samples = {_formatter(scope)(scope.total)} {ratio}")
    return labels


def _local_time(unix_nanos: int) -> str:
    """Go's "2006-01-02 15:04:05 MST" in local time (UTC if the OS cannot say)."""
    seconds = unix_nanos // 1_000_000_000
    try:
        when = datetime.fromtimestamp(seconds).astimezone()
    except (OverflowError, OSError, ValueError):
        when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%d %H:%M:%S %Z")


def _formatter(scope: Scope) -> Callable[[int], str]:
    unit, output = scope.sample_type.unit, scope.unit
    return lambda value: scaled_label(value, unit, output)


def _showing(scope: Scope, shown: int) -> str:
    value = _formatter(scope)
    share = percentage(shown, scope.total).strip()
    return f"Showing nodes accounting for {value(shown)}, {share} of {value(scope.total)} total"


def _dropped(count: int, cutoff: str) -> str:
    return f"Dropped {count} node{'s' if count > 1 else ''} (cum <= {cutoff})"


def _edge_line(weight: int, cum: int, name: str, inline: bool, value: Callable[[int], str]) -> str:
    return f"{value(weight):>50s} {percentage(weight, cum)} |   {name}{' (inline)' if inline else ''}"

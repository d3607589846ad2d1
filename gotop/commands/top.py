"""`gotop top PROFILE_FILE|TARGET`: `go tool pprof -top` (and -peek, -list), no Go toolchain needed."""

from __future__ import annotations

import os
from argparse import Namespace
from dataclasses import asdict
from typing import TYPE_CHECKING

from gotop.errors import GotopError
from gotop.model.profile import DEFAULT_MAX_SIZE, Profile, parse_profile
from gotop.model.profile_report import ListReport, PeekReport, Scope, TopReport, list_routines, peek, source_lines, top
from gotop.model.profile_text import format_list, format_peek, format_top
from gotop.textsafe import plain_lines

if TYPE_CHECKING:  # loaded by -list alone
    from gotop.engine.sourcefiles import SourceFiles


def run(args: Namespace) -> int:
    profile, origin = load(args.source)
    if args.peek:
        peek_report = peek(profile, args.peek, args.sample_index)
        if args.json:
            _print_json(origin, peek_json(peek_report))
            return 0
        lines = format_peek(profile, peek_report)
    elif args.list:
        from gotop.engine.sourcefiles import SourceFiles

        list_report = list_routines(profile, args.list, args.sample_index)
        files = SourceFiles.of(profile, args.source_dir or ())
        if args.json:
            _print_json(origin, list_json(list_report, files))
            return 0
        lines = format_list(list_report, files.text_or_why)
    else:
        top_report = top(profile, args.sample_index, cum=args.cum, node_limit=args.n or 0)
        if args.json:
            _print_json(origin, top_json(top_report))
            return 0
        lines = format_top(profile, top_report)
    print("\n".join(plain_lines(line) for line in lines))
    return 0


def load(source: str) -> tuple[Profile, dict]:
    """A profile file, or the heap profile of a target; with where it came from, for JSON."""
    if os.path.isfile(source):
        try:
            with open(source, "rb") as f:
                data = f.read(DEFAULT_MAX_SIZE + 1)
        except OSError as e:
            raise GotopError(f"{source}: {e.strerror}") from None
        return _parse(source, data), {"file": source}
    # Only now the transports and asyncio: reading a file must not pay for loading them
    # (asyncio alone was 40 ms of the 0.11 s that importing this command took).
    from gotop.commands.common import named, with_target
    from gotop.engine.target import Target

    target, data = with_target(source, Target.heap_profile)
    return _parse(source, data), named(source, target)


def _print_json(origin: dict, data: dict) -> None:
    from gotop.commands.common import print_json  # with asyncio: only when asked for

    print_json(origin, data)


def _parse(source: str, data: bytes) -> Profile:
    try:
        return parse_profile(data)
    except GotopError as e:
        raise GotopError(f"{source}: {e}") from None


def top_json(report: TopReport) -> dict:
    total = report.scope.total
    rows, running = [], 0

    def pct(v: int) -> float:
        return round(abs(v) / total * 100, 4) if total else 0.0

    for row in report.rows:
        running += row.flat
        rows.append({"function": row.name, "flat": row.flat, "flat_pct": pct(row.flat),
                     "sum_pct": pct(running), "cum": row.cum, "cum_pct": pct(row.cum)})
    return _scope_json(report.scope) | {"rows": rows}


def peek_json(report: PeekReport) -> dict:
    """pprof -peek's table: each matching function with its callers and callees, heaviest first."""
    def edges(calls) -> list[dict]:
        return [{"function": e.name, "value": e.weight, "inline": e.inline} for e in calls]

    return _scope_json(report.scope) | {"functions": [
        {"function": e.node.name, "flat": e.node.flat, "cum": e.node.cum,
         "callers": edges(e.callers), "callees": edges(e.callees)}
        for e in report.entries
    ]}


def list_json(report: ListReport, files: SourceFiles) -> dict:
    """pprof -list's listing: each matching function's source lines with their values
    (lines null, and an error, when the source cannot be read)."""
    routines = []
    for r in report.routines:
        text, why = files.text_or_why(r.file) if r.file else (None, "no source information")
        lines = [asdict(row) for row in source_lines(r, text)] if text is not None else None
        error = why if text is None else None
        routines.append({"function": r.function, "file": r.file or None, "flat": r.flat, "cum": r.cum,
                         "lines": lines, "error": error})
    return _scope_json(report.scope) | {"functions": routines}


def _scope_json(scope: Scope) -> dict:
    return {"sample_type": scope.sample_type.type, "unit": scope.sample_type.unit, "total": scope.total}

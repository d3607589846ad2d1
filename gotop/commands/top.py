"""`gotop top PROFILE_FILE|TARGET`: `go tool pprof -top` (and -peek, -list), no Go toolchain needed."""

from __future__ import annotations

import json
import os
from argparse import Namespace

from gotop.errors import GotopError
from gotop.model.profile import DEFAULT_MAX_SIZE, Profile, parse_profile
from gotop.engine.sourcefiles import read_source
from gotop.model.profile_report import TopReport, list_routines, peek, top
from gotop.model.profile_text import format_list, format_peek, format_top
from gotop.textsafe import plain_lines


def run(args: Namespace) -> int:
    profile = load(args.source)
    if args.peek:
        lines = format_peek(profile, peek(profile, args.peek, args.sample_index))
    elif args.list:
        lines = format_list(list_routines(profile, args.list, args.sample_index), read_source)
    else:
        report = top(profile, args.sample_index, cum=args.cum, node_limit=args.n or 0)
        if args.json:
            print(json.dumps(top_json(report), indent=2))
            return 0
        lines = format_top(profile, report)
    print("\n".join(plain_lines(line) for line in lines))
    return 0


def load(source: str) -> Profile:
    """A profile file, or the heap profile of a target."""
    if os.path.isfile(source):
        try:
            with open(source, "rb") as f:
                data = f.read(DEFAULT_MAX_SIZE + 1)
        except OSError as e:
            raise GotopError(f"{source}: {e.strerror}") from None
        return _parse(source, data)
    # Only now the transports: reading a file must not pay for loading them.
    from gotop.commands.common import with_target
    from gotop.engine.target import Target

    return _parse(source, with_target(source, Target.heap_profile))


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
    return {"sample_type": report.scope.sample_type.type, "unit": report.scope.sample_type.unit,
            "total": total, "rows": rows}

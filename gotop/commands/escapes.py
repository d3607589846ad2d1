"""`gotop escapes DIR|TARGET`: the compiler's escape analysis, alone or joined to a running program's heap."""

from __future__ import annotations

import os
import sys
from argparse import Namespace

from gotop.commands.common import named, print_json, with_target
from gotop.commands.table import render
from gotop.model.escape_sites import Site
from gotop.sources.escapes import BuildFailed, EscapeAnalysis, analyse
from gotop.textsafe import plain, plain_lines
from gotop.units import fmt_bytes, fmt_elapsed

DEFAULT_SITES = 20


def run(args: Namespace) -> int:
    try:
        if os.path.isdir(args.target):
            return _directory(args)
        return _process(args)
    except BuildFailed as e:  # the compiler's own lines, not just the first
        print(f"gotop: {plain(str(e))}", file=sys.stderr)
        print(plain_lines("\n".join(f"    {line}" for line in e.compiler_lines)), file=sys.stderr)
        return 2


def _directory(args: Namespace) -> int:
    analysis = analyse(args.target)
    if args.json:
        print_json({}, analysis.to_json())
        return 0
    inside = [a for a in analysis.allocations if _under(a.file, analysis.directory)]
    count = f"{len(inside)} heap allocation{'s' * (len(inside) != 1)}" if inside else "no heap allocation"
    print(plain(f"{analysis.directory}: {count} ({_built(analysis)})"))
    if inside:
        rows = [[f"{os.path.relpath(a.file, analysis.directory)}:{a.line}:{a.column}", a.what, a.why] for a in inside]
        table = render(["WHERE", "WHAT", "WHY"], rows).split("\n")
        lines = table[:1]
        for row, allocation in zip(table[1:], inside):
            lines += [row, *(f"        {flow}" for flow in allocation.flow if args.flow)]
        print(plain_lines("\n".join(lines)))
    if outside := len(analysis.allocations) - len(inside):
        print(f"and {outside} in code inlined from outside the directory (--json lists them)")
    return 0


def _process(args: Namespace) -> int:
    from gotop.engine.escapes import rank_sites  # only now the transports

    target, ranked = with_target(args.target, lambda t: rank_sites(t, args.source, args.duration))
    sites = sorted(ranked.sites, key=lambda s: (-s.rate, -s.inuse_bytes)) if args.rate else ranked.sites
    analysis = ranked.analysis
    if args.json:
        print_json(named(args.target, target), {
            "source": analysis.directory, "found_by": ranked.found_by, "go_version": analysis.go_version,
            "cached": analysis.cached, "rate_seconds": ranked.seconds, "rate_since_start": ranked.since_start,
            "sites": [_site_json(s) for s in sites]})
        return 0
    window = f"since the process started {fmt_elapsed(ranked.seconds)} ago" if ranked.since_start \
        else f"over {ranked.seconds:.1f} s between two heap profiles"
    print(plain(f"{target.label}: source {analysis.directory} (found by {ranked.found_by}); {_built(analysis)}"))
    print(f"live heap by allocation site; allocation rate {window}")
    shown = sites[:args.n or DEFAULT_SITES]
    rows = []
    for site in shown:
        reasons = [a.why for a in site.escapes] or ["-"]
        if site.hint:
            reasons.append(site.hint)
        rows.append([fmt_bytes(site.inuse_bytes), f"{fmt_bytes(site.rate)}/s", _place(site, analysis.module),
                     reasons[0]])
        rows += [["", "", "", more] for more in reasons[1:]]
    print(plain_lines(render(["LIVE", "RATE", "SITE", "WHY ON THE HEAP"], rows)))
    if len(sites) > len(shown):
        print(f"and {len(sites) - len(shown)} more sites (-n N shows more, --json all)")
    return 0


def _built(analysis: EscapeAnalysis) -> str:
    how = "from gotop's cache" if analysis.cached else "built now"
    return f"{analysis.go_version}, module {analysis.module}, {how}"


def _under(path: str, directory: str) -> bool:
    return path.startswith(directory.rstrip("/") + "/")


def _place(site: Site, module: str) -> str:
    file = os.path.relpath(site.file, module) if _under(site.file, module) else "/".join(site.file.split("/")[-2:])
    return f"{site.function} {file}:{site.line}"


def _site_json(site: Site) -> dict:
    return {"function": site.function, "file": site.file, "line": site.line, "inuse_bytes": site.inuse_bytes,
            "inuse_objects": site.inuse_objects, "alloc_bytes": site.alloc_bytes, "rate": site.rate,
            "lifetime": site.lifetime, "hint": site.hint or None,
            "escapes": [a.to_json() for a in site.escapes]}


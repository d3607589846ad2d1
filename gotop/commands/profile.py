"""`gotop profile heap|cpu|trace|goroutine TARGET`: save a profile in its standard format."""

from __future__ import annotations

from argparse import Namespace

from gotop.commands.common import named, print_json, progress_bar, with_target
from gotop.engine.captures import capture, default_name, opener, save_private
from gotop.engine.target import Target
from gotop.units import fmt_bytes


def run(args: Namespace) -> int:
    async def take(target: Target) -> bytes:
        what = f"{'CPU profile' if args.kind == 'cpu' else args.kind} of {target.label}"
        return await capture(target, args.kind, args.seconds, progress_bar(what))

    target, data = with_target(args.target, take)
    path = args.output or default_name(args.kind, args.target)
    save_private(path, data)
    if args.json:
        print_json(named(args.target, target), {"kind": args.kind, "path": path, "bytes": len(data),
                                                "open_with": opener(args.kind)})
    else:
        print(f"{target.label}: {args.kind} saved to {path} ({fmt_bytes(len(data))}); "
              f"open it with: {opener(args.kind)} {path}")
    return 0

"""`gotop gc TARGET` and `gotop setgc TARGET PERCENT|off`: the two actions that change a target."""

from __future__ import annotations

from argparse import Namespace

from gotop.commands.common import with_target
from gotop.engine.target import Target
from gotop.engine.targetspec import parse_gc_percent
from gotop.errors import GotopError
from gotop.units import fmt_bytes


def run_gc(args: Namespace) -> int:
    print(with_target(args.target, force_gc))
    return 0


async def force_gc(target: Target) -> str:
    """Run a GC and say what it changed, when memstats can be read around it."""
    before = await _memstats_or_none(target)
    via = await target.gc()
    after = await _memstats_or_none(target)
    text = f"{target.label}: garbage collection ran (via {via})"
    if before and after and before.num_gc is not None and after.num_gc is not None:
        text += (f"; GC cycles {before.num_gc:,} -> {after.num_gc:,}; heap in use "
                 f"{fmt_bytes(before.heap_inuse)} -> {fmt_bytes(after.heap_inuse)}")
    return text


async def _memstats_or_none(target: Target):
    try:
        return (await target.memstats())[0]
    except GotopError:
        return None


def run_setgc(args: Namespace) -> int:
    percent = parse_gc_percent(args.percent)

    async def act(target: Target) -> str:
        change = await target.set_gc_percent(percent)
        return f"{target.label}: GC percent set to {_percent(change.new)} (was {_percent(change.previous)})"

    print(with_target(args.target, act))
    return 0


def _percent(value: int) -> str:
    return "off" if value < 0 else str(value)

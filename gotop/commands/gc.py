"""`gotop gc TARGET` and `gotop setgc TARGET PERCENT|off`: the two actions that change a target."""

from __future__ import annotations

from argparse import Namespace
from dataclasses import dataclass

from gotop.commands.common import named, print_json, with_target
from gotop.engine.target import Target
from gotop.engine.targetspec import parse_gc_percent
from gotop.errors import GotopError
from gotop.model.memstats import MemStats
from gotop.units import fmt_bytes


@dataclass(frozen=True)
class GcRun:
    """A garbage collection run in a target, with memstats around it when they could be read."""

    via: str
    before: MemStats | None
    after: MemStats | None

    def text(self, label: str) -> str:
        text = f"{label}: garbage collection ran (via {self.via})"
        before, after = self.before, self.after
        if before and after and before.num_gc is not None and after.num_gc is not None:
            text += (f"; GC cycles {before.num_gc:,} -> {after.num_gc:,}; heap in use "
                     f"{fmt_bytes(before.heap_inuse)} -> {fmt_bytes(after.heap_inuse)}")
        return text

    def to_json(self) -> dict:
        """Memstats are null where they could not be read."""
        return {"via": self.via, "memstats_before": self.before and self.before.to_json(),
                "memstats_after": self.after and self.after.to_json()}


def run_gc(args: Namespace) -> int:
    target, run = with_target(args.target, force_gc)
    if args.json:
        print_json(named(args.target, target), run.to_json())
    else:
        print(run.text(target.label))
    return 0


async def force_gc(target: Target) -> GcRun:
    """Run a GC, with memstats read around it to show what it changed."""
    before = await _memstats_or_none(target)
    via = await target.gc()
    return GcRun(via, before, await _memstats_or_none(target))


async def _memstats_or_none(target: Target) -> MemStats | None:
    try:
        return (await target.memstats(every_field=True))[0]
    except GotopError:
        return None


def run_setgc(args: Namespace) -> int:
    percent = parse_gc_percent(args.percent)
    target, change = with_target(args.target, lambda target: target.set_gc_percent(percent))
    if args.json:
        print_json(named(args.target, target), {"gc_percent": change.new, "previous": change.previous})
    else:
        print(f"{target.label}: GC percent set to {_percent(change.new)} (was {_percent(change.previous)})")
    return 0


def _percent(value: int) -> str:
    return "off" if value < 0 else str(value)

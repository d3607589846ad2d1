"""`gotop record TARGET... -o FILE`: record what the TUI would show, headless."""

from __future__ import annotations

import asyncio
import json
from argparse import Namespace

from gotop.commands.common import FailureLines
from gotop.engine.fleet import Fleet, Watched
from gotop.engine.history import TargetState
from gotop.engine.poller import Tiers
from gotop.engine.recording import Recorder, Recording
from gotop.engine.target import Target


def run(args: Namespace) -> int:
    seconds = args.duration
    tiers = Tiers(args.interval, args.slow_every)
    targets = [Target.open(text) for text in args.targets]  # a bad target fails before the file is made
    recorder = Recorder(args.output, interval=tiers.interval, slow_every=tiers.slow_every)
    asyncio.run(_record(targets, tiers, recorder, seconds, args.heap_every))
    if args.json:
        typed = {t.label: text for text, t in zip(args.targets, targets)}  # discovered ones were not typed
        print(json.dumps({"output": args.output, "duration": seconds, "targets": [
            {"target": typed.get(r.label), "pid": r.info["pid"], "label": r.label}
            for r in Recording(args.output).targets
        ]}, indent=2))
        return 0
    print(f"recorded {len(targets) or 'every'} target{'s' if len(targets) != 1 else ''} "
          f"for {seconds:g} s into {args.output}; replay it with: gotop replay {args.output}")
    return 0


async def _record(targets: list[Target], tiers: Tiers, recorder: Recorder, seconds: float,
                  heap_every: float) -> None:
    failure_lines = FailureLines("record")

    def changed(w: Watched) -> None:
        failed = w.history.state is TargetState.FAILED
        failure_lines.show(f"target {id(w)}", f"{w.name}: {w.history.error}" if failed else None)

    fleet = Fleet(changed, tiers, discover=not targets, recorder=recorder)
    for target in targets:
        fleet.add(target)
    discovery = asyncio.create_task(fleet.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        while loop.time() < deadline:
            for w in fleet.watched.values():  # discovered targets too
                w.heap_demand.want(_record, heap_every)
            failure_lines.show("discovery", fleet.discovery_error)
            await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))
    finally:
        discovery.cancel()
        await fleet.aclose()

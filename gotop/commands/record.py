"""`gotop record TARGET... -o FILE`: record what the TUI would show, headless."""

from __future__ import annotations

import asyncio
import json
from argparse import Namespace

from gotop.commands.common import FailureLines, open_targets
from gotop.engine.fleet import Fleet, Watched
from gotop.engine.poller import Tiers
from gotop.engine.recording import Recorder
from gotop.engine.target import Target


def run(args: Namespace) -> int:
    seconds = args.duration
    tiers = Tiers(args.interval, args.slow_every)
    targets = open_targets(args.targets)  # a bad target fails before the file is made
    recorder = Recorder(args.output, interval=tiers.interval, slow_every=tiers.slow_every)
    recorded = asyncio.run(_record(targets, tiers, recorder, seconds, args.heap_every))
    if args.json:
        typed = {t.label: text for text, t in zip(args.targets, targets)}
        print(json.dumps({"output": args.output, "duration": seconds, "targets": [
            # A discovered target is named as a user would name it: by its pid.
            {"target": typed.get(label, str(pid)), "pid": pid, "label": label} for pid, label in recorded
        ]}, indent=2))
        return 0
    print(f"recorded {len(targets) or 'every'} target{'s' if len(targets) != 1 else ''} "
          f"for {seconds:g} s into {args.output}; replay it with: gotop replay {args.output}")
    return 0


async def _record(targets: list[Target], tiers: Tiers, recorder: Recorder, seconds: float,
                  heap_every: float) -> list[tuple[int | None, str]]:
    """Record for `seconds`; returns (pid, label) of every target recorded, in the
    recording's order (discovered ones that exited and left the fleet too). Only
    that is kept of a target that leaves: a host's processes come and go."""
    failure_lines = FailureLines("record")
    recorded: dict[int, tuple[int | None, str]] = {}  # by recording id

    def changed(w: Watched) -> None:  # called when discovery adds a target, and after each of its polls
        if w.recording_id is not None:
            recorded.setdefault(w.recording_id, (w.pid, w.name))
        failure_lines.target(w)

    fleet = Fleet(changed, tiers, discover=not targets, recorder=recorder)
    for target in targets:
        changed(fleet.add(target))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    async with fleet.running():
        while loop.time() < deadline:
            for w in fleet.watched.values():  # discovered targets too
                w.heap_demand.want(_record, heap_every)
            failure_lines.show("discovery", fleet.discovery_error)
            await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))
    return list(recorded.values())

"""`gotop stack TARGET [--groups]`: the goroutine dump, or its groups: by start function
and creation site read from memory (nothing asked of the process), else by stack (pprof)."""

from __future__ import annotations

from argparse import Namespace
from dataclasses import asdict

from gotop.commands.common import named, print_json, with_target
from gotop.engine.target import Target
from gotop.model.goroutines import Goroutine, GoroutineGroup, GoroutineProfile
from gotop.textsafe import plain, plain_lines


def run(args: Namespace) -> int:
    if args.groups:
        target, profile = with_target(args.target, _groups, only=args.source)
        if args.json:
            print_json(named(args.target, target), groups_json(profile))
        else:
            print(format_groups(profile))
    elif args.json:
        target, dump = with_target(args.target, Target.goroutine_dump, only=args.source)
        print_json(named(args.target, target), {"goroutines": [goroutine_json(g) for g in dump.goroutines],
                                                "truncated": dump.truncated})
    else:
        _, text = with_target(args.target, Target.goroutine_dump_text, only=args.source)
        print(plain_lines(text), end="")
    return 0


async def _groups(target: Target) -> GoroutineProfile:
    # Grouped goroutines are cheap (memory, pprof); else only the agent's full dump exists.
    if target.has_goroutine_groups:
        return await target.goroutine_profile()
    return (await target.goroutine_dump()).profile()


def goroutine_json(g: Goroutine) -> dict:
    """Every field of the dump's goroutine; frames leaf first."""
    return asdict(g) | {"labels": dict(g.labels)}


def groups_json(profile: GoroutineProfile) -> dict:
    return {"total": profile.total, "truncated": profile.truncated,
            "groups": [_group_json(g) for g in profile.groups]}


def _group_json(g: GoroutineGroup) -> dict:
    return {
        "count": g.count, "label": g.label, "top_function": g.top_function, "states": dict(g.states),
        "leaked": g.leaked,
        "max_wait_minutes": g.max_wait_minutes, "created_by": g.created_by,
        "labels": [{"labels": dict(labels), "count": n} for labels, n in g.labels.items()],
        "frames": [asdict(f) for f in g.frames], "goroutine_ids": list(g.goroutine_ids),
    }


def format_groups(profile: GoroutineProfile) -> str:
    lines = [f"{profile.total:,} goroutines in {len(profile.groups):,} groups"
             + (" (dump cut short)" if profile.truncated else "")]
    for group in profile.groups:
        states = ", ".join(f"{state} x{n}" if len(group.states) > 1 else state
                           for state, n in group.states.most_common())
        head = f"\n{group.count:>7,}  {plain(group.label) or '(no stack beyond the runtime)'}"
        if states:
            head += f"  [{plain(states)}]"
        if group.leaked:
            head += f"  ({group.leaked} proven leaked)"
        lines.append(head)
        for frame in group.frames:
            lines.append(f"         {plain(frame.function)}")
            lines.append(f"             {plain(frame.file)}:{frame.line}")
        if group.created_by:
            lines.append(f"         created by {plain(group.created_by)}")
    return "\n".join(lines)

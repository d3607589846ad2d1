"""`gotop stack TARGET [--groups]`: the goroutine dump, or its groups by stack."""

from __future__ import annotations

from argparse import Namespace

from gotop.commands.common import with_target
from gotop.engine.target import Target
from gotop.model.goroutines import GoroutineProfile
from gotop.textsafe import plain, plain_lines


def run(args: Namespace) -> int:
    if args.groups:
        print(format_groups(with_target(args.target, _groups)))
    else:
        print(plain_lines(with_target(args.target, Target.goroutine_dump_text)), end="")
    return 0


async def _groups(target: Target) -> GoroutineProfile:
    # The grouped profile is cheap; without HTTP only the agent's full dump exists.
    if target.http:
        return await target.goroutine_profile()
    return (await target.goroutine_dump()).profile()


def format_groups(profile: GoroutineProfile) -> str:
    lines = [f"{profile.total:,} goroutines in {len(profile.groups):,} groups"
             + (" (dump cut short)" if profile.truncated else "")]
    for group in profile.groups:
        states = ", ".join(f"{state} x{n}" if len(group.states) > 1 else state
                           for state, n in group.states.most_common())
        head = f"\n{group.count:>7,}  {plain(group.top_function) or '(no stack beyond the runtime)'}"
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

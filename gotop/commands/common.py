"""What the one-shot commands that talk to a target share."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from gotop.sources.progress import CaptureProgress
from gotop.textsafe import plain

if TYPE_CHECKING:  # loaded when a target is opened: `gotop top FILE` does without the transports
    from gotop.engine.fleet import Watched
    from gotop.engine.target import Target

T = TypeVar("T")


def with_target(text: str, action: Callable[[Target], Awaitable[T]], only: str | None = None) -> tuple[Target, T]:
    """Open the target named on the command line (through the source `only`, if
    given), run `action` on it, close it: the target (its label and pid) and
    what `action` returned."""
    from gotop.engine.target import Target

    async def run() -> tuple[Target, T]:
        async with Target.open(text, only=only) as target:
            return target, await action(target)

    return asyncio.run(run())


def open_targets(texts: list[str]) -> list[Target]:
    """Every target named on the command line, or none: when one cannot be
    opened, those opened before it are closed."""
    from gotop.discovery.processes import Scanner
    from gotop.engine.target import Target

    scanner = Scanner()
    targets: list[Target] = []
    try:
        for text in texts:
            targets.append(Target.open(text, scanner=scanner))
    except BaseException:
        asyncio.run(close_targets(targets))
        raise
    return targets


async def close_targets(targets: list[Target]) -> None:
    await asyncio.gather(*(t.aclose() for t in targets), return_exceptions=True)


def named(typed: str, target: Target) -> dict:
    """How a JSON output names its target: as typed on the command line, and by pid."""
    return {"target": typed, "pid": target.pid}


def print_json(origin: dict, data: dict) -> None:
    """A JSON output, what it is about first (`named`, or a profile's file)."""
    print(json.dumps(origin | data, indent=2))


def progress_bar(what: str) -> Callable[[CaptureProgress], None]:
    """A progress line on stderr for long captures (redrawn in place on a terminal)."""
    tty = sys.stderr.isatty()
    announced = False

    def show(p: CaptureProgress) -> None:
        nonlocal announced
        if not tty:
            if not announced:
                print(f"{what}: capturing for {p.duration:g} s...", file=sys.stderr)
                announced = True
            return
        width = 30
        filled = int(p.fraction * width)
        bar = "#" * filled + "." * (width - filled)
        end = "\n" if p.done else ""
        print(f"\r{what} [{bar}] {min(p.elapsed, p.duration):4.0f}/{p.duration:g} s", end=end, file=sys.stderr,
              flush=True)

    return show


class FailureLines:
    """One line on stderr when something a headless command watches starts failing,
    or fails differently; not one per retry."""

    def __init__(self, command: str) -> None:
        self.command = command
        self._shown: dict[str, str] = {}  # what failed -> the line last shown

    def show(self, what: str, line: str | None) -> None:
        """`line` says what failed and how; None: `what` works (again)."""
        if line is None:
            self._shown.pop(what, None)
        elif self._shown.get(what) != line:
            self._shown[what] = line
            print(f"gotop {self.command}: {plain(line)} (retrying)", file=sys.stderr, flush=True)

    def target(self, watched: Watched) -> None:
        """A line when gotop fails to poll a watched target (not when the target is unreachable: that is its state)."""
        from gotop.engine.history import TargetState

        failed = watched.history.state is TargetState.FAILED
        self.show(f"target {id(watched)}", f"{watched.name}: {watched.history.error}" if failed else None)

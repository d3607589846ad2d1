"""A recording played back as if it were live: the screens read the same
histories, rebuilt from the recorded updates as a replay clock moves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from gotop.discovery.processes import GoProcess
from gotop.engine.fleet import Watched, apply_update
from gotop.engine.history import DEFAULT_WINDOW, TargetHistory
from gotop.engine.recording import RecordedTarget, Recording
from gotop.engine.target import Target
from gotop.engine.targetspec import TargetError

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0)


class ReplayedTarget:
    """Stands where a live Target would: the same name and transport marks,
    and every action refused (a recording cannot be asked anything new)."""

    def __init__(self, recorded: RecordedTarget) -> None:
        transports = recorded.info.get("transports", {})
        self.label = recorded.label
        self.pid = recorded.info.get("pid")
        self.gops = transports.get("agent", False)
        self.http = transports.get("pprof", False)
        self.expvar = transports.get("expvar", False)
        self.memory = transports.get("memory", False)
        self.metrics = transports.get("metrics", False)
        self.has_goroutine_groups = self.memory or self.http

    def __getattr__(self, action: str):
        async def refuse(*args, **kwargs):
            raise TargetError(f"{self.label}: this is a recording; {action.replace('_', ' ')} needs the live process")
        return refuse


@dataclass
class Replay:
    """Plays a recording: `watched` holds a history per recorded target."""

    recording: Recording
    on_change: Callable[[Watched], None] = lambda w: None
    window: float = DEFAULT_WINDOW
    speed: float = 1.0
    paused: bool = False
    clock: float = field(init=False)  # recording time shown now
    watched: dict[object, Watched] = field(default_factory=dict)
    skipped: int = 0
    discover: bool = False
    discovery_error: str | None = None  # a recording is not discovered

    def __post_init__(self) -> None:
        self.clock = self.recording.start
        self._by_id: dict[int, Watched] = {}
        updates = [(u.time, target, u) for target, u in self.recording.updates()]
        restarts = [(when, target, None) for target, when, kind, _ in self.recording.events() if kind == "restart"]
        self._timeline = sorted([*updates, *restarts], key=lambda entry: entry[0])  # None: a restart
        self._next = 0  # index of the first entry not applied yet
        self._rebuild()
        self.advance_to(self.recording.start)

    @property
    def interval(self) -> float:
        return self.recording.interval

    async def run(self) -> None:
        """Move the clock in real time (times the speed) unless paused."""
        while True:
            await asyncio.sleep(self.interval)
            if not self.paused and self.clock < self.recording.end:
                self.advance_to(min(self.recording.end, self.clock + self.interval * self.speed))

    def advance_to(self, t: float) -> None:
        if t < self.clock:
            self._rebuild()
        self.clock = t
        while self._next < len(self._timeline) and self._timeline[self._next][0] <= t:
            when, target, update = self._timeline[self._next]
            self._next += 1
            watched = self._by_id.get(target)
            if watched is None:
                continue
            if update is None:
                watched.history.mark_restart(when)
            else:
                apply_update(watched, update)
            self.on_change(watched)

    def step(self) -> None:
        """Pause and show the next recorded poll."""
        self.paused = True
        if self._next < len(self._timeline):
            self.advance_to(self._timeline[self._next][0])

    def seek(self, t: float) -> None:
        self.advance_to(max(self.recording.start, min(self.recording.end, t)))

    def faster(self, steps: int) -> None:
        index = SPEEDS.index(self.speed) if self.speed in SPEEDS else SPEEDS.index(1.0)
        self.speed = SPEEDS[max(0, min(len(SPEEDS) - 1, index + steps))]

    async def aclose(self) -> None:
        self.recording.close()

    def _rebuild(self) -> None:
        """Fresh histories and the whole timeline pending (to seek backwards).

        The Watched objects stay the same: screens hold on to them."""
        for recorded in self.recording.targets:
            watched = self._by_id.get(recorded.id)
            if watched is None:
                process = recorded.info.get("process")
                target = cast(Target, ReplayedTarget(recorded))  # it stands where a live Target would
                watched = Watched(recorded.label, target, self._history(),
                                  GoProcess.from_json(process) if process else None)
                self.watched[recorded.key] = self._by_id[recorded.id] = watched
            else:
                watched.history = self._history()
                watched.findings = ()
                watched.raised.clear()
        self._next = 0
        self.clock = self.recording.start

    def _history(self) -> TargetHistory:
        return TargetHistory(self.interval, self.window)

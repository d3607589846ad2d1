"""Every target gotop watches, kept current by discovery in the background.

Discovery re-runs (in a thread) so that new Go processes appear and exited
ones are marked, then dropped. A followed target (the one on screen) is kept
after it exits, and when a new process of the same executable, or of the same
name in the same working directory, starts -- a rebuild or a restart -- the
target moves to it and its history marks the restart.

Failures never go silent: a scan that fails (in any way) is kept in
`discovery_error` and retried with back-off, and each poller runs under
`keep_polling`, which shows a crash as the target's state and restarts it.
Every task the fleet starts is kept until it ends, and awaited on close.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import psutil

from gotop.discovery.processes import GoProcess, Scanner
from gotop.engine.history import DEFAULT_WINDOW, TargetHistory, TargetState, Update
from gotop.engine.leaks import Finding, LeakKind, find_leaks
from gotop.engine.poller import PollDemand, Poller, ProfileDemand, Tiers, backoff, keep_polling
from gotop.engine.target import Target
from gotop.errors import describe
from gotop.sources.procfs import ProcessGone

if TYPE_CHECKING:  # recording loads sqlite3: only when a recording starts
    from gotop.engine.recording import Recorder

RESCAN_EVERY = 5.0
RESCAN_WHILE_FOLLOWING = 1.0  # a followed target exited: look for its successor often
KEEP_EXITED = 10.0  # seconds an exited target stays listed
MAX_FIRST_POLLS_SPREAD = 1.0  # seconds over which the first polls of one scan's new targets are spread
RECORDING = "recording"  # a recording's wants of polls at the fast tier's pace (PollDemand)


@dataclass
class Watched:
    """One watched target; the object stays the same when it follows a restart."""

    name: str
    target: Target
    history: TargetHistory
    process: GoProcess | None = None  # None for targets named by address
    poller: Poller | None = None
    task: asyncio.Task | None = None
    exited_at: float | None = None
    identity: tuple[str, str, str] | None = None  # (exe, name, cwd) to recognise a successor
    recording_id: int | None = None  # its id in the recording, when recording
    findings: tuple[Finding, ...] = ()  # the leaks the detectors see now
    raised: Counter[LeakKind] = field(default_factory=Counter)  # findings raised so far (see apply_update)
    heap_demand: ProfileDemand = field(default_factory=ProfileDemand)  # its pollers', across restarts
    leak_demand: ProfileDemand = field(default_factory=ProfileDemand)  # goroutineleak profiles: its pollers'
    poll_demand: PollDemand = field(default_factory=PollDemand)  # its pollers', across restarts (see Fleet.view)

    @property
    def pid(self) -> int | None:
        return self.target.pid

    @property
    def followed(self) -> bool:
        return bool(self.poll_demand.closely)

    def follow(self, owner: object) -> None:
        """While `owner` (a screen) follows it, the target stays after it exits and moves to
        its successor (a rebuild or a restart), and its slow tier runs at its own pace (PollDemand.closely)."""
        self.poll_demand.closely.add(owner)

    def unfollow(self, owner: object) -> None:
        self.poll_demand.closely.discard(owner)


@dataclass
class Fleet:
    on_change: Callable[[Watched], None]
    tiers: Tiers = field(default_factory=Tiers)
    window: float = DEFAULT_WINDOW
    discover: bool = True
    scanner: Scanner = field(default_factory=Scanner)
    watched: dict[object, Watched] = field(default_factory=dict)  # key: (pid, start) or address
    skipped: int = 0  # processes discovery could not inspect
    recorder: Recorder | None = None  # every update also goes there
    first_scan: Future | None = None  # a scan started before the loop (gotop starts it early)
    rescan_every: float = RESCAN_EVERY
    discovery_error: str | None = None  # why discovery fails, while it does
    _ending: set[asyncio.Task] = field(default_factory=set, init=False, repr=False)  # old pollers, closing targets

    async def run(self) -> None:
        """Discovery loop; returns at once when discovery is off."""
        failures = 0
        while self.discover:
            try:
                await self._rescan()
                failures, self.discovery_error = 0, None
            except Exception as e:  # any failure: shown, and retried with back-off
                failures += 1
                self.discovery_error = f"discovery failed: {describe(e)}"
            following = any(w.followed and w.exited_at for w in self.watched.values())
            await asyncio.sleep(backoff(self.rescan_every, failures) if failures
                                else RESCAN_WHILE_FOLLOWING if following else self.rescan_every)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Fleet]:
        """Discovery in the background while the block runs; every target closed after it."""
        discovery = asyncio.create_task(self.run())
        try:
            yield self
        finally:
            discovery.cancel()
            await self.aclose()

    def add(self, target: Target, key: object | None = None, process: GoProcess | None = None,
            first_poll_in: float = 0.0) -> Watched:
        """Watch a target (a discovered process, or one named on the command line); its first
        poll after `first_poll_in` seconds, or as soon as it is asked for (PollDemand)."""
        process = process or target.process
        watched = Watched(target.label, target, TargetHistory(self.tiers.interval, self.window), process)
        if process is not None:
            watched.identity = _identity(process)
        key = key if key is not None else target.label
        if self.recorder is not None:
            watched.recording_id = self.recorder.add_target(str(key), target.label, target, process)
            watched.poll_demand.want(RECORDING)
        self.watched[key] = watched
        self._start(watched, first_poll_in)
        return watched

    def start_recording(self, recorder: Recorder) -> None:
        """Record every watched target from now on (and the ones that come), each at the fast tier's pace."""
        self.recorder = recorder
        for key, w in self.watched.items():
            w.recording_id = recorder.add_target(str(key), w.name, w.target, w.process)
            w.poll_demand.want(RECORDING)

    def stop_recording(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
        self.recorder = None
        for w in self.watched.values():
            w.recording_id = None
            w.poll_demand.drop(RECORDING)

    def view(self, owner: object, shown: Iterable[Watched]) -> None:
        """`owner` (a screen) shows these targets now, and none of the others: they are
        polled at the fast tier's interval, the others (with Tiers.unseen_every) less often."""
        ids = {id(w) for w in shown}
        for w in self.watched.values():
            if id(w) in ids:
                w.poll_demand.want(owner)
            else:
                w.poll_demand.drop(owner)

    def replace(self, watched: Watched, target: Target) -> None:
        """Watch `target`, a new process, in place of `watched`'s (a program gotop restarted):
        its history goes on, marking the restart."""
        assert target.process is not None
        old_key = next(key for key, w in self.watched.items() if w is watched)
        self._move(old_key, (target.process.pid, target.process.create_time), target.process, target)

    def find_pid(self, pid: int) -> Watched | None:
        return next((w for w in self.watched.values() if w.pid == pid), None)

    async def aclose(self) -> None:
        self.stop_recording()
        for w in self.watched.values():
            if w.task:
                w.task.cancel()
        await asyncio.gather(*(w.task for w in self.watched.values() if w.task), return_exceptions=True)
        await asyncio.gather(*(w.target.aclose() for w in self.watched.values()), *self._ending,
                             return_exceptions=True)

    # -- internals ------------------------------------------------------------

    async def _rescan(self) -> None:
        first, self.first_scan = self.first_scan, None
        result = await (asyncio.wrap_future(first) if first is not None else asyncio.to_thread(self.scanner.scan))
        self.skipped = len(result.skipped)
        self._reconcile(result.processes)
        self._drop_exited()

    def _start(self, watched: Watched, first_poll_in: float = 0.0) -> None:
        def on_update(update: Update) -> None:
            apply_update(watched, update)
            if self.recorder is not None and watched.recording_id is not None:
                self.recorder.record(watched.recording_id, update)
            if update.state is TargetState.EXITED and watched.exited_at is None:
                watched.exited_at = update.time
            self.on_change(watched)

        if watched.task is not None:  # the poller of the process it followed, if still running
            watched.task.cancel()
            self._keep_until_done(watched.task)
        watched.poller = Poller(watched.target, on_update, self.tiers, watched.heap_demand, watched.poll_demand,
                                watched.leak_demand, first_poll_in)
        watched.task = asyncio.create_task(keep_polling(watched.poller, lambda text: self._crashed(watched, text)))

    def _crashed(self, watched: Watched, text: str) -> None:
        """Handling a poll of `watched` failed: the target shows it until its poller, restarted, polls again."""
        watched.history.apply(Update(time.time(), TargetState.FAILED, error=text))
        self.on_change(watched)

    def _close_later(self, target: Target) -> None:
        """Close a target that is no longer watched."""
        self._keep_until_done(asyncio.create_task(target.aclose()))

    def _keep_until_done(self, task: asyncio.Task) -> None:
        """A task nobody else holds (the loop keeps only a weak reference), awaited on close."""
        if not task.done():
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    def _reconcile(self, processes: tuple[GoProcess, ...]) -> None:
        """Targets for the processes not yet watched. The first polls of those one scan finds
        are spread over one interval (at most MAX_FIRST_POLLS_SPREAD), unless asked for sooner:
        at start-up, a hundred first polls at once delayed the TUI's first frame by 0.4 s
        (bench/tui_cost.py --only startup)."""
        new = [proc for proc in processes if (proc.pid, proc.create_time) not in self.watched]
        spread = min(self.tiers.interval, MAX_FIRST_POLLS_SPREAD)
        first_polls = {proc.pid: i * spread / len(new) for i, proc in enumerate(new)}
        for proc in processes:
            key = (proc.pid, proc.create_time)
            if key in self.watched:
                watched = self.watched[key]
                watched.process = proc
                if watched.target.gain_endpoints(proc):  # it opened them after it was first seen
                    self.on_change(watched)
                continue
            try:
                target = Target.for_process(proc)
            except ProcessGone:  # short-lived (a `go build` step): gone since the scan
                continue
            successor_of = self._waiting_for(proc)
            if successor_of is not None:
                self._move(successor_of, key, proc, target)
            else:
                self.on_change(self.add(target, key, proc, first_poll_in=first_polls[proc.pid]))

    def _waiting_for(self, proc: GoProcess) -> object | None:
        """The key of an exited, followed target that `proc` succeeds."""
        identity = None
        for key, w in self.watched.items():
            if not (w.followed and w.exited_at and w.identity):
                continue
            identity = identity or _identity(proc)
            exe, name, cwd = w.identity
            if identity[0] == exe or (identity[1] == name and identity[2] == cwd):
                return key
        return None

    def _move(self, old_key: object, key: object, proc: GoProcess, target: Target) -> None:
        watched = self.watched.pop(old_key)
        self._close_later(watched.target)
        watched.target = target
        watched.name = watched.target.label
        watched.process = proc
        watched.identity = _identity(proc)
        watched.exited_at = None
        watched.history.mark_restart(time.time())
        if self.recorder is not None and watched.recording_id is not None:
            self.recorder.restart(watched.recording_id, time.time(), target, proc)
        self.watched[key] = watched
        self._start(watched)
        self.on_change(watched)

    def _drop_exited(self) -> None:
        now = time.time()
        for key, w in list(self.watched.items()):
            if w.exited_at and not w.followed and now - w.exited_at > KEEP_EXITED:
                del self.watched[key]
                self._close_later(w.target)
                if self.recorder is not None and w.recording_id is not None:
                    self.recorder.end_target(w.recording_id)
                self.on_change(w)


SUSPECT_HEAP_EVERY = 60.0  # seconds between heap profiles while a heap leak is found
SUSPECT_GOROUTINES_EVERY = 30.0  # seconds between goroutineleak profiles while a goroutine group grows
LEAK_DETECTOR = "leak detector"  # its wants of heap profiles


def apply_update(watched: Watched, update: Update) -> None:
    """Fold one poll into a target's history, and look for leaks again when the
    poll brought slow-tier data (live and in a replay alike). A finding the
    previous look did not have counts as raised."""
    watched.history.apply(update)
    if update.goroutines is None and update.fds is None and update.heap is None and update.leaks is None:
        return
    before = {f.key for f in watched.findings}
    watched.findings = find_leaks(watched.history, update.time)
    watched.raised.update(f.kind for f in watched.findings if f.key not in before)
    for kind, demand, every in ((LeakKind.HEAP, watched.heap_demand, SUSPECT_HEAP_EVERY),
                                (LeakKind.GOROUTINES, watched.leak_demand, SUSPECT_GOROUTINES_EVERY)):
        # Heap profiles name the site that keeps the memory, and keep its figures current; the
        # runtime's goroutineleak profile proves (or not) that a growing group's goroutines leaked.
        if any(f.kind is kind for f in watched.findings):
            demand.want(LEAK_DETECTOR, every)
        else:
            demand.drop(LEAK_DETECTOR)


def _identity(proc: GoProcess) -> tuple[str, str, str]:
    try:
        cwd = psutil.Process(proc.pid).cwd()
    except psutil.Error:
        cwd = ""
    return proc.exe.removesuffix(" (deleted)"), proc.name, cwd

"""One polling loop per target.

Each poll reschedules the next one after it finishes, so polls never overlap
and a slow target is polled less, not piled up. Tiers:

  fast   every interval (1 s):   memstats + goroutine counts + OS figures
  slow   every `slow_every` (5 s): goroutines grouped by stack (protobuf, no stop-the-world)
         and open descriptors by kind; with `steady_every`, each of the two only while its
         count (goroutines, open descriptors: the fast tier reads them) moves, or a screen
         watches the target closely, else every `steady_every` (see Tiers)
  leak   goroutineleak, where the runtime offers it (Go >= 1.26), as often as its most
         frequent want (the goroutine leak detector's, while a group grows: each request
         runs a GC cycle in the target; on Go 1.27 it took an idle service from 0 to 5.9
         GC cycles a minute under `gotop check`, bench/footprint.py)
  heap   as often as its most frequent want (a screen's, the leak detector's: see
         ProfileDemand), or once on request

A target nobody asks for at the fast tier's pace (PollDemand: a screen that shows
it, a recording) is polled every `unseen_every` when the tiers say so (the TUI
does: most of a large fleet is off screen, and the leak detectors need trends,
not 1 s resolution); it is polled at once when it is asked for again.

A failing target is retried with exponential back-off; an exited one ends
the loop. A tier that got an answer too large to take (a gzip bomb) backs off
too. Every outcome, a failure of any kind included, is handed to
`on_update` as an `Update`: nothing but cancellation ends a poll with an
exception. What can still end `run` is a failure of `on_update` itself;
`keep_polling` reports it and runs the poller again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gotop.engine.history import HeapSnapshot, TargetState, Update
from gotop.engine.target import NoSource, Sample, Target
from gotop.errors import GotopError, describe
from gotop.model.memstats import GcPause, GcPauses
from gotop.model.profile import parse_profile
from gotop.sources.errors import ResponseTooLarge
from gotop.sources.gctrace import GcReading
from gotop.sources.procfs import ProcessGone

MAX_BACKOFF = 30.0
MAX_OVERSIZED_BACKOFF = 600.0
MAX_DOUBLINGS = 32  # past the cap for any interval; 2 ** 1024 would not fit in a float


def backoff(interval: float, failures: int, cap: float = MAX_BACKOFF) -> float:
    """The wait before retrying after `failures` failures in a row: doubling, at most `cap`."""
    return min(interval * 2.0 ** min(failures, MAX_DOUBLINGS), cap)


STEADY_EVERY = 30.0  # the TUI's and the exporter's Tiers.steady_every


@dataclass(frozen=True, slots=True)
class Tiers:
    interval: float = 1.0  # fast tier
    slow_every: float = 5.0  # grouped goroutines, descriptors by kind
    unseen_every: float | None = None  # the fast tier of a target nobody asks for (PollDemand); None: interval
    # Grouped goroutines (descriptors by kind) of a target whose goroutine (descriptor) count has
    # not moved since they were last read, and that no screen watches closely: every `steady_every`
    # (None: every `slow_every`). Groups whose total stands still hold no leak the detectors could
    # see, and the census of 10,000 goroutines costs 8 ms where the count costs 0.05 ms.
    steady_every: float | None = None

    @classmethod
    def for_screens(cls, interval: float = 1.0, slow_every: float = 5.0) -> Tiers:
        """The TUI's: a target no screen shows polled at the slow tier's pace (see Poller.interval),
        and the breakdowns of steady counts every STEADY_EVERY."""
        return cls(interval, slow_every, unseen_every=slow_every, steady_every=STEADY_EVERY)


@dataclass
class ProfileDemand:
    """Who wants a profile polled (heap, goroutineleak), and how often. Each owner (a
    screen, a leak detector, a command) says what it wants and withdraws it; the most
    frequent want wins, and with none the profile is fetched only on request."""

    wants: dict[object, float] = field(default_factory=dict)  # owner -> seconds between profiles

    def want(self, owner: object, every: float) -> None:
        self.wants[owner] = every

    def drop(self, owner: object) -> None:
        self.wants.pop(owner, None)

    @property
    def every(self) -> float | None:
        return min(self.wants.values(), default=None)


@dataclass
class PollDemand:
    """Who wants a target polled at the fast tier's interval now: the screens that show
    it, a recording. Each owner says so and withdraws it; without any, its poller polls
    it every `Tiers.unseen_every`, and the first want wakes that poller."""

    wants: set[object] = field(default_factory=set)
    wanted_again: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    # Who watches it closely (a screen that follows it, showing its groups): its slow tier at its own pace.
    closely: set[object] = field(default_factory=set)

    def want(self, owner: object) -> None:
        if not self.wants:
            self.wanted_again.set()
        self.wants.add(owner)

    def drop(self, owner: object) -> None:
        self.wants.discard(owner)

    @property
    def wanted(self) -> bool:
        return bool(self.wants)


@dataclass
class SteadyCount:
    """When a breakdown of a count (goroutines into groups, descriptors into kinds) is due
    again, on a slow tier with Tiers.steady_every: while the count moves, at each run of the
    tier; while it stands still, every `steady_every`."""

    steady_every: float | None
    count: int | None = None  # the count when the breakdown was last read
    read_at: float | None = None  # monotonic time it was

    def due(self, now: float, count: int | None, closely: bool) -> bool:
        return (self.steady_every is None or closely or self.read_at is None or count is None
                or count != self.count or now - self.read_at >= self.steady_every)

    def read(self, now: float, count: int | None) -> None:
        self.count, self.read_at = count, now


class Poller:
    def __init__(self, target: Target, on_update: Callable[[Update], None], tiers: Tiers = Tiers(),
                 heap_demand: ProfileDemand | None = None, poll_demand: PollDemand | None = None,
                 leak_demand: ProfileDemand | None = None, first_poll_in: float = 0.0) -> None:
        self.target = target
        self.first_poll_in = first_poll_in  # seconds to its first poll, unless it is asked for sooner
        self.on_update = on_update
        self.tiers = tiers
        self.heap_demand = heap_demand or ProfileDemand()
        self.leak_demand = leak_demand or ProfileDemand()
        self.poll_demand = poll_demand or PollDemand()
        self._heap_requested = False
        self._waited = False
        self._next_slow = 0.0
        self._next_leak = 0.0
        self._next_heap = 0.0
        self._failures = 0
        self._oversized: dict[str, int] = {}  # tier -> its runs in a row that got a too-large answer
        self._last_num_gc: int | None = None
        self._last_traced_gc: int | None = None
        self._groups = SteadyCount(tiers.steady_every)
        self._fd_kinds = SteadyCount(tiers.steady_every)

    @property
    def heap_every(self) -> float | None:
        """Seconds between heap profiles; None: only on request."""
        return self.heap_demand.every

    @property
    def interval(self) -> float:
        """Seconds from one poll's start to the next's now: the fast tier's, or, while
        nobody asks for the target at that pace, `unseen_every` (when the tiers have one)."""
        unseen = self.tiers.unseen_every
        return self.tiers.interval if unseen is None or self.poll_demand.wanted else max(unseen, self.tiers.interval)

    def request_heap(self) -> None:
        """Fetch a heap profile at the next poll."""
        self._heap_requested = True

    async def run(self) -> None:
        """Poll until the target exits (or the task is cancelled)."""
        await self._wait_for_first_poll()
        while True:
            started = time.monotonic()
            update = await self.poll_once()
            self.on_update(update)
            if update.state is TargetState.EXITED:
                return
            await self._pause(update, started)

    async def _pause(self, update: Update, started: float) -> None:
        """Until the next poll is due; sooner if the target is asked for meanwhile (but
        for a back-off: the target's failures set it, not who asks)."""
        if update.state in (TargetState.UNREACHABLE, TargetState.FAILED):
            await asyncio.sleep(self._delay(update, started))
            return
        while (delay := self._delay(update, started)) > 0:
            self.poll_demand.wanted_again.clear()
            try:
                async with asyncio.timeout(delay):
                    await self.poll_demand.wanted_again.wait()
            except TimeoutError:
                return

    async def _wait_for_first_poll(self) -> None:
        """`first_poll_in`, or until the target is asked for; once (not again when keep_polling restarts it)."""
        if self._waited or self.first_poll_in <= 0 or self.poll_demand.wanted:
            return
        self._waited = True
        self.poll_demand.wanted_again.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.first_poll_in):
                await self.poll_demand.wanted_again.wait()

    async def poll_once(self) -> Update:
        """One poll; a failure of any kind is an update (cancellation still cancels)."""
        try:
            return await self._poll()
        except Exception as e:  # a bug, or an answer nobody foresaw: shown, and retried with back-off
            self._failures += 1
            return Update(time.time(), TargetState.FAILED, error=f"poll failed: {describe(e)}")

    async def _poll(self) -> Update:
        started = time.monotonic()
        try:
            sample = await self.target.sample()
        except ProcessGone as e:  # the cycles its trace printed last are kept
            return Update(time.time(), TargetState.EXITED, error=str(e), gc_readings=self._gc_readings())
        except GotopError as e:
            self._failures += 1
            return Update(time.time(), TargetState.UNREACHABLE, error=str(e))
        self._failures = 0
        asked_from, big_answers = time.time(), self.target.big_answers
        slow, problems = await self._slow_tier(started, sample)
        heap, heap_problem = await self._heap_tier(started)
        profiled = self.target.big_answers > big_answers  # an answer a GC may have marked in flight
        elapsed = round(time.monotonic() - started, 4)
        state = TargetState.SLOW if elapsed > self.tiers.interval else TargetState.UP
        problems = [*sample.problems, *problems, *([heap_problem] if heap_problem else [])]
        readings = self._gc_readings()
        pauses = self._new_pauses(sample) if readings is None else self._traced_pauses(readings)
        return Update(sample.time, state, sample, heap=heap, gc_pauses=pauses.pauses, lost_pauses=pauses.lost,
                      gc_readings=readings, error="; ".join(problems) or None, poll_seconds=elapsed,
                      asked=(asked_from, time.time()) if profiled else None, **slow)

    def _gc_readings(self) -> tuple[GcReading, ...] | None:
        """The cycles of the target's GC trace since the previous poll; None without a trace."""
        return tuple(self.target.gctrace.take_readings()) if self.target.gctrace else None

    def _traced_pauses(self, readings: tuple[GcReading, ...]) -> GcPauses:
        """Every GC pause since the previous poll, from the GC trace: a cycle whose line was
        lost (mixed with the program's own) is a gap in the numbers."""
        lost = 0
        for r in readings:
            if self._last_traced_gc is not None and r.cycle.num > self._last_traced_gc + 1:
                lost += r.cycle.num - self._last_traced_gc - 1
            self._last_traced_gc = r.cycle.num
        return GcPauses(tuple(GcPause(r.cycle.num, r.cycle.pause_ns, int(r.time * 1e9)) for r in readings), lost)

    def _new_pauses(self, sample: Sample) -> GcPauses:
        """The GC pauses since the previous poll (from the PauseNs ring when expvar gives it)."""
        m = sample.memstats
        if m is None or m.num_gc is None:
            return GcPauses((), 0)
        previous, self._last_num_gc = self._last_num_gc, m.num_gc
        return m.new_pauses(previous) if previous is not None else GcPauses((), 0)

    async def _slow_tier(self, now: float, sample: Sample) -> tuple[dict, list[str]]:
        """Grouped goroutines, descriptors by kind (each while its count moves, see
        SteadyCount) and (less often) proven leaks."""
        at = self._horizon(now)
        if at < self._next_slow:
            return {}, []
        closely = bool(self.poll_demand.closely)
        goroutines = sample.stats.goroutines
        fds = sample.os.open_fds if sample.os else None
        fetches: dict[str, Callable[[], Awaitable[object]]] = {}
        if self.target.has_goroutine_groups and self._groups.due(at, goroutines, closely):
            fetches["goroutines"] = self.target.goroutine_profile
        if self._fd_kinds.due(at, fds, closely):
            fetches["fds"] = self.target.fd_kinds
        leak_every = self.leak_demand.every
        if self.target.http and leak_every is not None and at >= self._next_leak:
            self._next_leak = now + leak_every
            fetches["leaks"] = self.target.goroutine_leaks
        results = await asyncio.gather(*(fetch() for fetch in fetches.values()), return_exceptions=True)
        self._next_slow = now + self._backed_off("slow", self.tiers.slow_every, results)
        found, problems = {}, []
        for name, result in zip(fetches, results):
            if isinstance(result, Exception):  # one fetch failing costs only itself
                problems.append(describe(result))
            elif isinstance(result, BaseException):
                raise result
            else:
                found[name] = result
        if "goroutines" in found:
            self._groups.read(now, goroutines)
        if "fds" in found:
            self._fd_kinds.read(now, fds)
        return found, problems

    async def _heap_tier(self, now: float) -> tuple[HeapSnapshot | None, str | None]:
        due = self.heap_every is not None and self._horizon(now) >= self._next_heap
        if not (due or self._heap_requested):
            return None, None
        self._heap_requested = False
        try:
            raw = await self.target.heap_profile()
            profile = await asyncio.to_thread(parse_profile, raw)
        except Exception as e:  # the poll goes on without it
            self._next_heap = now + self._backed_off("heap", self.heap_every or 0, [e])
            return None, describe(e)
        self._next_heap = now + self._backed_off("heap", self.heap_every or 0, [])
        return HeapSnapshot(time.time(), raw, profile), None

    def _horizon(self, now: float) -> float:
        """What a poll started at `now` counts as its time when it asks whether a tier is due: polls
        start a little after their tick (next_tick), and a tier due 2 s after the previous run would
        otherwise wait for the tick after (every 3 s instead of 2)."""
        return now + self.interval / 2

    def _backed_off(self, tier: str, period: float, results: list) -> float:
        """`period`; after an answer too large to take (a gzip bomb), twice as long
        for each run of `tier` in a row that got one, up to MAX_OVERSIZED_BACKOFF."""
        if not any(map(_too_large, results)):
            self._oversized.pop(tier, None)
            return period
        runs = self._oversized[tier] = self._oversized.get(tier, 0) + 1
        return max(period, backoff(period, runs, MAX_OVERSIZED_BACKOFF))  # a period beyond the cap stays

    def _delay(self, update: Update, started: float) -> float:
        """Seconds until the next poll of a poll that started at `started` (monotonic)."""
        if update.state in (TargetState.UNREACHABLE, TargetState.FAILED):
            return backoff(self.tiers.interval, self._failures)
        return max(0.0, next_tick(started + self.interval / 2, self.interval) - time.monotonic())


def next_tick(after: float, period: float) -> float:
    """The first multiple of `period` seconds of the monotonic clock after `after`. Polls fall on
    these ticks, the same for every poller: the polls of a fleet then share the event loop's
    wake-ups (spread over the interval, the polls of 20 processes cost 2.6 times the CPU)."""
    return (after // period + 1) * period


def _too_large(result: object) -> bool:
    """An answer too large to take, from the one source asked or any of several."""
    return isinstance(result, ResponseTooLarge) or (
        isinstance(result, NoSource) and any(map(_too_large, result.errors)))


async def keep_polling(poller: Poller, on_crash: Callable[[str], None]) -> None:
    """Run `poller` until its target exits. Its polls never fail it (see `poll_once`); a failure
    in handling an update (the owner's `on_update`) goes to `on_crash` as one line, and the
    poller runs again after a back-off."""
    crashes = 0
    while True:
        try:
            return await poller.run()
        except Exception as e:
            crashes += 1
            with contextlib.suppress(Exception):  # the report may fail as the update did: poll again all the same
                on_crash(f"poller crashed: {describe(e)}")
            await asyncio.sleep(backoff(poller.tiers.interval, crashes))

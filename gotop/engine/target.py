"""One monitored Go process, whatever transports it offers.

A target is named by a PID (discovery finds its gops agent and pprof/expvar/
/metrics endpoints, and whether its runtime can be read from its memory), by
`host:port` (a gops agent) or by `http://host:port` (a net/http/pprof base).
When several transports exist, each figure is asked of the cheapest and least
intrusive source first and of the others on failure. The memory source costs
the target nothing (no request, no allocation, no stop), so it comes first for
the counts, and for the memstats of a poll: expvar, asked every second, cost a
small service 25 KB of allocation and a stop of the world each time, and etcd
far more (bench/footprint.py). A one-shot reading (`every_field`) asks expvar
and the agent first, which give every MemStats field (the memory has no malloc
counts, stack and off-heap figures). For groups, pprof gives whole stacks, which
the goroutine view shows and the runtime's leak proofs (the goroutineleak
profile) are keyed by: where they exist they come first.
Prometheus /metrics comes after the memory and the agent: a scrape runs every
collector of the target's registry and may be megabytes to parse (see
sources/metrics.py); one scrape answers both memstats and counts of a poll.
A program gotop started itself (`gotop run`, `gotop check -- CMD`) has its GC
trace too (sources/gctrace.py): every GC cycle's heap after GC, goal, pause and
CPU times, whatever else it offers; its cycles go to the history as they come
(the poller takes them), and its last cycle stands in for memstats where nothing
better answers.

  memstats     memory (fewer fields: no malloc counts) > expvar (carries the GC pause rings) >
               agent memstats > GC trace (GC figures only) > /metrics (no pause rings) >
               heap?debug=1 trailer; with every_field, expvar > agent > memory > ...
  goroutines   memory > agent stats (with threads, GOMAXPROCS) > /metrics > pprof index counts
               > GC trace (GOMAXPROCS only)
  groups       pprof goroutine profile (by stack, no stop-the-world) > memory (by start function
               and creation site); the agent only has full dumps
  heap / CPU   HTTP (does not block the agent)  > agent
  GC           agent > heap?gc=1
  GC percent   agent only

Grouped goroutines are asked as text (debug=1), which costs the target a
fraction of the protobuf (no profile builder, no gzip writer: 39 KB and 0.6 ms
against 1.29 MB and 1.7 ms at 100 goroutines, bench/footprint.py). The text
hides the runtime frames at the top of each stack, which name the wait
(runtime.chanrecv: "chan receive"); the protobuf is asked first, and again when
the text hides an address not sought before (a goroutine that reached a wait
site none had reached yet: at most every RELEARN_RUNTIME_EVERY seconds, and
once per such address), and its runtime frames put the hidden ones back: the
groups are the protobuf's.

A poll (`sample`) has one deadline, the longest timeout of the target's
transports: a fallback gets what is left of it, so a frozen (SIGSTOPped)
process is unreachable after that long, not after every source's timeout
in turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TypeVar
from urllib.parse import urlsplit

from gotop.discovery.probes import METRICS_PATH
from gotop.discovery.processes import GoProcess, Scanner
from gotop.discovery.sockets import own_listener, socket_owner
from gotop.discovery.unixsockets import bound_at, dial_path
from gotop.engine.targetspec import SOURCES, TargetError, TargetSpec, parse_target
from gotop.errors import GotopError
from gotop.model.goroutines import (
    Frame,
    GoroutineDump,
    GoroutineProfile,
    parse_goroutine_dump,
    parse_goroutine_profile_text,
    profile_from_pprof,
    runtime_frames,
)
from gotop.model.memstats import (
    MemStats,
    Stats,
    parse_expvar,
    parse_gops_memstats,
    parse_gops_stats,
    parse_heap_debug1_memstats,
)
from gotop.model.profile import parse_profile
from gotop.model.prometheus import MAX_INT64
from gotop.sources.errors import TransportError
from gotop.sources.gctrace import ProgramOutput
from gotop.sources.gops import GCPercentChange, GopsClient
from gotop.sources.http import PprofClient, is_loopback, normalize_base
from gotop.sources.memory import MemoryReader, MemoryReading, MemoryUnavailable
from gotop.sources.metrics import MetricsClient
from gotop.sources.procfs import OsFigures, OsSampler, fd_kinds
from gotop.sources.progress import ProgressCallback
from gotop.textsafe import plain
from gotop.unixconnect import UNIX_PREFIX

T = TypeVar("T")

POLL_GRACE = 0.5  # seconds past a poll's budget, so that a transport's own timeout (which says more) comes first
# A memory reading (3 system calls, ~55 us of CPU) is made on the event loop: handing it
# to a worker thread cost ~250 us of CPU more per poll (sample(): 469 -> 218 us, one
# target on a busy 2-core machine). After a reading that took INLINE_READING_LIMIT
# (its pages brought back from swap, or the loop preempted on a busy machine), the
# target's next THREAD_READINGS readings are made in a worker thread.
INLINE_READING_LIMIT = 0.002  # seconds
THREAD_READINGS = 30
MEMORY_BUDGET = 2.0  # seconds a memory reading may take (a worker thread; 100,000 goroutines take about 0.2 s)
# Seconds: a protobuf goroutine profile at most this often, to learn new runtime frames. A leak whose
# goroutines reach their wait after the first profile (a send after a sleep) shows its state 10 s later.
RELEARN_RUNTIME_EVERY = 10.0
MAX_RUNTIME_FRAMES = 10_000  # addresses learnt; past it, the table starts again from the latest profile


class NoSource(TargetError):
    """No transport of the target could give a figure."""

    def __init__(self, label: str, what: str, detail: str, errors: tuple[GotopError, ...] = ()) -> None:
        super().__init__(f"{label}: no {what}: {detail}")
        self.what = what
        self.detail = detail
        self.errors = errors  # each source's failure


@dataclass(frozen=True)
class Sample:
    """One reading of a target's runtime and OS figures."""

    time: float  # unix seconds
    memstats: MemStats | None
    stats: Stats
    os: OsFigures | None
    sources: dict[str, str]  # figure -> the transport that answered, e.g. {"memstats": "expvar"}
    problems: tuple[str, ...] = ()  # sources that failed while another answered

    def to_json(self) -> dict:
        return {
            "time": self.time,
            "memstats": self.memstats.to_json() if self.memstats else None,
            "goroutines": self.stats.goroutines,
            "os_threads": self.stats.os_threads,
            "gomaxprocs": self.stats.gomaxprocs,
            "num_cpu": self.stats.num_cpu,
            "process": self.os.to_json() if self.os else None,
            "source": self.sources,
            "problems": list(self.problems),
        }


class Target:
    def __init__(
        self, label: str, *, gops: GopsClient | None = None, http: PprofClient | None = None,
        vars_client: PprofClient | None = None, metrics: MetricsClient | None = None, pid: int | None = None,
        process: GoProcess | None = None, only: str | None = None, gctrace: ProgramOutput | None = None,
    ) -> None:
        if only is not None and only not in SOURCES:
            raise TargetError(f"unknown source {only!r}: one of {', '.join(SOURCES)}")
        self.label = label
        self.only = only  # read through this source alone (`--source`), to compare sources
        self.gops = gops if self._allows("agent") else None
        self.http = http if self._allows("pprof") else None  # net/http/pprof
        # expvar's /debug/vars; the same client as `http` when one server has both
        self.vars = vars_client if self._allows("expvar") else None
        self.metrics = metrics if self._allows("metrics") else None  # Prometheus /metrics
        self.pid = pid
        self.process = process
        self.gctrace = gctrace  # the output of a program gotop started, with its GC trace
        self._os = OsSampler(pid) if pid is not None else None
        self._offers_leak_profile: bool | None = None  # known after the first look at the index
        readable = process is not None and process.memory and self._allows("memory")
        self._memory: MemoryReader | MemoryUnavailable | None = None if readable else MemoryUnavailable(
            f"{label}: {process.memory_note if process else 'not a local process'}")
        self._reading: asyncio.Future[MemoryReading] | None = None
        self._thread_readings = 0  # readings left to make in a worker thread (INLINE_READING_LIMIT)
        self._runtime_frames: dict[int, tuple[Frame, ...]] = {}  # what the text goroutine profile hides
        self._runtime_learnt: float | None = None  # monotonic time of the last protobuf goroutine profile
        self._runtime_sought: frozenset[int] = frozenset()  # hidden addresses a protobuf was asked for
        # Profiles asked whose answer the target builds in its heap: a protobuf (goroutines, heap) holds
        # about 1 MiB of gzip buffers, which a GC ending meanwhile marks live; the text form's 39 KB is not.
        self.big_answers = 0

    def _allows(self, source: str) -> bool:
        return self.only is None or self.only == source

    @classmethod
    def open(cls, spec: TargetSpec | str, *, scanner: Scanner | None = None, only: str | None = None) -> Target:
        """Resolve a target; a PID goes through discovery. `only` names the one source to read through."""
        if isinstance(spec, str):
            spec = parse_target(spec)
        if spec.pid is not None:
            return cls.for_process((scanner or Scanner()).inspect(spec.pid), only=only)
        if spec.agent is not None:
            host, port = spec.agent
            return cls(spec.text, gops=GopsClient(host, port), pid=_local_pid(host, port), only=only)
        if spec.unix is not None:
            http = PprofClient(spec.unix)
            return cls(spec.text, http=http, vars_client=http, pid=_unix_socket_owner(spec.unix), only=only)
        assert spec.http_base is not None
        http = PprofClient(spec.http_base)
        url = urlsplit(http.base_url)
        return cls(spec.text, http=http, vars_client=http, pid=_local_pid(url.hostname, url.port or 80), only=only)

    @classmethod
    def for_process(cls, proc: GoProcess, *, only: str | None = None, gctrace: ProgramOutput | None = None) -> Target:
        """A discovered process, asked only what its endpoints serve: one that
        serves expvar and /metrics alone (etcd without --enable-pprof) gets no pprof client.
        `gctrace`: the output of the program, when gotop started it."""
        agent = proc.agent if proc.agent and proc.agent.reachable else None
        servers: dict[str, PprofClient] = {}  # one client, one connection pool, per server

        def server(url: str | None) -> PprofClient | None:
            if url is None:
                return None
            base = normalize_base(url)
            if base not in servers:
                socket = base.removeprefix(UNIX_PREFIX) if base.startswith(UNIX_PREFIX) else None
                servers[base] = PprofClient(base, dial=dial_path(proc.pid, socket) if socket else None)
            return servers[base]

        metrics_server = server(proc.metrics.removesuffix(METRICS_PATH) if proc.metrics else None)
        return cls(
            f"pid {proc.pid} ({plain(proc.name)})",  # a name may hold anything; the label is shown and stored
            gops=GopsClient(agent.host, agent.port) if agent else None,
            http=server(proc.pprof), vars_client=server(proc.expvar),
            metrics=MetricsClient(metrics_server, METRICS_PATH) if metrics_server else None,
            pid=proc.pid, process=proc, only=only, gctrace=gctrace,
        )

    @property
    def has_endpoints(self) -> bool:
        """Whether it is read through any endpoint (the agent, HTTP or /metrics), not only
        its memory, GC trace and /proc."""
        return bool(self.gops or self.http or self.vars or self.metrics)

    def gain_endpoints(self, proc: GoProcess) -> bool:
        """A target with no endpoint takes those a later look at its process found (a
        program opens its listeners after it starts): True if it took any."""
        if self.has_endpoints or proc.pid != self.pid or not (
                (proc.agent and proc.agent.reachable) or proc.pprof or proc.expvar or proc.metrics):
            return False
        found = Target.for_process(proc, only=self.only, gctrace=self.gctrace)
        self.gops, self.http, self.vars, self.metrics = found.gops, found.http, found.vars, found.metrics
        self.process = proc
        return True

    @property
    def expvar(self) -> bool:
        """Whether the target serves /debug/vars."""
        return self.vars is not None

    @property
    def memory(self) -> bool:
        """Whether the target's runtime is read from its memory (as far as known: a
        binary whose runtime cannot be mapped is known after the first reading)."""
        return not isinstance(self._memory, MemoryUnavailable)

    @property
    def has_goroutine_groups(self) -> bool:
        return self.memory or self.http is not None

    @property
    def has_heap_profiles(self) -> bool:
        return self.http is not None or self.gops is not None

    async def aclose(self) -> None:
        clients = (self.http, self.vars, self.metrics.http if self.metrics else None)
        for client in {id(c): c for c in clients if c is not None}.values():  # each server's once
            await client.aclose()

    async def __aenter__(self) -> Target:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- figures --------------------------------------------------------------

    @property
    def poll_budget(self) -> float:
        """Seconds one poll may take, all sources and fallbacks together."""
        budgets = [client.timeout for client in (self.gops, self.http, self.vars, self.metrics) if client]
        return max([*budgets, MEMORY_BUDGET] if self.memory else budgets, default=0.0)

    async def memstats(self, deadline: float | None = None, *, every_field: bool = False) -> tuple[MemStats, str]:
        """From the least intrusive source; with `every_field`, from expvar or the agent first."""
        sources: list[tuple[str, Callable[[], Awaitable[MemStats]]]] = []
        if self.memory and not every_field:
            sources.append(("memory", self._memory_memstats))
        if self.vars:
            sources.append(("expvar", self._expvar_memstats))
        if self.gops:
            sources.append(("agent", self._agent_memstats))
        if self.memory and every_field:
            sources.append(("memory", self._memory_memstats))
        if self.gctrace:
            sources.append(("gctrace", self._trace_memstats))
        if self.metrics:
            sources.append(("metrics", partial(self._metrics_memstats, deadline)))
        if self.http:
            sources.append(("heap?debug=1", self._heap_text_memstats))
        return await self._first("memstats", sources, deadline)

    async def stats(self, deadline: float | None = None) -> tuple[Stats, str]:
        sources: list[tuple[str, Callable[[], Awaitable[Stats]]]] = []
        if self.memory:
            sources.append(("memory", self._memory_stats))
        if self.gops:
            sources.append(("agent", self._agent_stats))
        if self.metrics:
            sources.append(("metrics", partial(self._metrics_stats, deadline)))
        if self.http:
            sources.append(("pprof index", self._index_stats))
        if self.gctrace:
            sources.append(("gctrace", self._trace_stats))
        return await self._first("goroutine count", sources, deadline)

    async def sample(self, *, every_field: bool = False) -> Sample:
        """Memstats, goroutine counts and OS figures, asked concurrently, within one deadline.
        `every_field`: memstats from expvar or the agent first (a one-shot reading)."""
        deadline = asyncio.get_running_loop().time() + self.poll_budget + POLL_GRACE
        results = await asyncio.gather(self.memstats(deadline, every_field=every_field), self.stats(deadline),
                                       return_exceptions=True)
        os_figures = self._os.sample() if self._os else None  # raises ProcessGone
        sources: dict[str, str] = {}
        values: list = []
        failed: dict[str, list[str]] = {}  # failure -> the figures it cost
        for name, result in zip(("memstats", "stats"), results):
            if isinstance(result, NoSource):
                failed.setdefault(result.detail, []).append(result.what)
                values.append(None)
            elif isinstance(result, BaseException):
                raise result
            else:
                values.append(result[0])
                sources[name] = result[1]
        problems = tuple(f"{detail} (no {', no '.join(whats)})" for detail, whats in failed.items())
        if not sources and (self.gops or self.http or self.metrics or self.memory or os_figures is None):
            raise TargetError(f"{self.label}: {'; '.join(problems)}")
        if os_figures is not None:
            sources["process"] = "procfs"
        memstats = self._with_live_heap(values[0]) if values[0] is not None else None
        return Sample(round(time.time(), 3), memstats, values[1] or Stats(), os_figures, sources, problems)

    def _with_live_heap(self, memstats: MemStats) -> MemStats:
        """Memstats from a source that has no live heap (expvar, the agent, /metrics), with the one the
        memory read in this poll (the counts ask it first) when both saw the same GC cycle: the heap
        the last GC marked live is what the leak detector judges the heap by."""
        reading = self._reading
        if memstats.heap_marked is not None or reading is None or not reading.done() or reading.cancelled():
            return memstats
        if reading.exception() is not None or reading.result().memstats.num_gc != memstats.num_gc:
            return memstats  # the memory failed this time, or a GC ended between the two readings
        return replace(memstats, heap_marked=reading.result().memstats.heap_marked)

    async def goroutine_profile(self) -> GoroutineProfile:
        """Grouped goroutines: from the protobuf profile by stack (no stop-the-world,
        and its runtime frames tell each group's wait state), else from memory by
        start function and creation site (with their wait reasons)."""
        sources: list[tuple[str, Callable[[], Awaitable[GoroutineProfile]]]] = []
        if self.http:
            sources.append(("pprof", self._pprof_groups))
        if self.memory:
            sources.append(("memory", self._memory_groups))
        if not sources:
            raise TargetError(
                f"{self.label}: grouped goroutines need net/http/pprof or a readable memory "
                "(the gops agent only has the full dump, which stops the world)"
            )
        return (await self._first("goroutine groups", sources))[0]

    async def _pprof_groups(self) -> GoroutineProfile:
        """The text profile with its hidden runtime frames put back; the protobuf when
        they were never learnt, or when the text hides new ones (see the module doc)."""
        assert self.http
        learnt = self._runtime_learnt
        if learnt is None:
            return await self._learn_runtime_frames()
        text = await self.http.profile_text("goroutine")
        frames = self._runtime_frames
        profile = await self._parsed("goroutine profile", lambda: parse_goroutine_profile_text(text, frames))
        if profile.unresolved - self._runtime_sought and time.monotonic() - learnt >= RELEARN_RUNTIME_EVERY:
            sought = self._runtime_sought if len(self._runtime_sought) < MAX_RUNTIME_FRAMES else frozenset()
            self._runtime_sought = sought | profile.unresolved
            return await self._learn_runtime_frames()
        return profile

    async def _learn_runtime_frames(self) -> GoroutineProfile:
        assert self.http
        self.big_answers += 1
        data = await self.http.profile("goroutine")

        def parse() -> tuple[GoroutineProfile, dict[int, tuple[Frame, ...]]]:
            decoded = parse_profile(data)
            return profile_from_pprof(decoded), runtime_frames(decoded)

        profile, learnt = await self._parsed("goroutine profile", parse)
        # A new table, not one changed in place: a text profile may be parsing with the old one.
        kept = self._runtime_frames if len(self._runtime_frames) + len(learnt) <= MAX_RUNTIME_FRAMES else {}
        self._runtime_frames = {**kept, **learnt}
        self._runtime_learnt = time.monotonic()
        return profile

    async def goroutine_leaks(self) -> GoroutineProfile | None:
        """The runtime's own goroutineleak profile (goroutines proven leaked by a
        GC-based check, Go >= 1.26), or None when the target does not offer it.

        Each request runs a leak-detecting GC cycle in the target: ask sparingly. Asked
        as text, as the goroutine profile is (the runtime frames learnt from it put back
        what the text hides), it costs the target no gzip writer.
        """
        if not self.http:
            return None
        if self._offers_leak_profile is None:
            self._offers_leak_profile = "goroutineleak" in await self.http.index()
        if not self._offers_leak_profile:
            return None
        text = await self.http.profile_text("goroutineleak")
        frames = self._runtime_frames
        return await self._parsed("goroutineleak profile", lambda: parse_goroutine_profile_text(text, frames))

    async def fd_kinds(self) -> dict[str, int] | None:
        """Open descriptors by kind, for a local process."""
        return fd_kinds(self.pid) if self.pid is not None else None

    async def goroutine_dump_text(self) -> str:
        """Every goroutine's stack as text (debug=2). Stops the world: on request only."""
        return (await self._first("goroutine dump", [
            *([("pprof", self.http.full_goroutine_dump)] if self.http else []),
            *([("agent", self.gops.stack)] if self.gops else []),
        ]))[0]

    async def goroutine_dump(self) -> GoroutineDump:
        """Every goroutine with its state and wait time. Stops the world: on request only."""
        text = await self.goroutine_dump_text()
        return await self._parsed("goroutine dump", lambda: parse_goroutine_dump(text))

    async def heap_profile(self) -> bytes:
        """The heap profile, gzipped protobuf as Go writes it."""
        self.big_answers += 1
        sources: list[tuple[str, Callable[[], Awaitable[bytes]]]] = []
        if self.http:
            sources.append(("pprof", partial(self.http.profile, "heap")))
        if self.gops:
            sources.append(("agent", self.gops.heap_profile))
        return (await self._first("heap profile", sources))[0]

    async def goroutine_profile_proto(self) -> bytes:
        """The goroutine profile as gzipped protobuf (as `go tool pprof` reads it)."""
        if not self.http:
            raise TargetError(f"{self.label}: the goroutine profile needs net/http/pprof")
        return await self.http.profile("goroutine")

    async def cpu_profile(self, seconds: int, progress: ProgressCallback | None = None) -> bytes:
        if self.http:
            return await self.http.cpu_profile(seconds, progress=progress)
        if self.gops:
            if seconds != 30:
                raise TargetError(f"{self.label}: the gops agent profiles the CPU for 30 s only")
            return await self.gops.cpu_profile(progress=progress)
        raise self._nothing("CPU profile")

    async def trace(self, seconds: float, progress: ProgressCallback | None = None) -> bytes:
        if self.http:
            return await self.http.trace(seconds, progress=progress)
        if self.gops:
            if seconds != 5:
                raise TargetError(f"{self.label}: the gops agent traces for 5 s only")
            return await self.gops.trace(progress=progress)
        raise self._nothing("execution trace")

    # -- actions --------------------------------------------------------------

    async def gc(self) -> str:
        """Run a garbage collection; returns which transport did it."""
        if self.gops:
            await self.gops.gc()
            return "agent"
        if self.http:
            await self.http.profile("heap", gc=True)  # heap?gc=1 runs runtime.GC() first
            return "pprof heap?gc=1"
        raise self._nothing("garbage collection")

    async def set_gc_percent(self, percent: int | None) -> GCPercentChange:
        """debug.SetGCPercent; None turns the GC off (-1)."""
        if not self.gops:
            raise TargetError(f"{self.label}: setting the GC percent needs the gops agent")
        return await self.gops.set_gc_percent(percent)

    # -- sources --------------------------------------------------------------

    async def _memory_reader(self) -> MemoryReader:
        """The reader of the runtime in memory, made (in a worker thread) at the first reading."""
        if self._memory is None:
            assert self.process is not None
            try:
                self._memory = await asyncio.to_thread(MemoryReader, self.process.pid, self.process.go_version)
            except MemoryUnavailable as e:
                self._memory = e
        if isinstance(self._memory, MemoryUnavailable):
            raise self._memory
        return self._memory

    async def _memory_reading(self) -> MemoryReading:
        """A reading of the runtime in memory; figures asked while one is under way (a
        poll's memstats and counts) share it."""
        reader = await self._memory_reader()
        if self._reading is None or self._reading.done():
            self._reading = self._read_inline_or_in_thread(reader)
        return await asyncio.shield(self._reading)

    def _read_inline_or_in_thread(self, reader: MemoryReader) -> asyncio.Future[MemoryReading]:
        """On the event loop while readings are quick and the reader is free (INLINE_READING_LIMIT),
        else in a worker thread."""
        if self._thread_readings == 0:
            done: asyncio.Future[MemoryReading] = asyncio.get_running_loop().create_future()
            started = time.perf_counter()
            try:
                reading = reader.read_now()
            except Exception as e:  # raised where the reading is awaited, as from a worker thread
                done.set_exception(e)
                return done
            finally:
                if time.perf_counter() - started >= INLINE_READING_LIMIT:
                    self._thread_readings = THREAD_READINGS
            if reading is not None:
                done.set_result(reading)
                return done
        else:
            self._thread_readings -= 1
        return asyncio.ensure_future(asyncio.to_thread(reader.read))

    async def _memory_memstats(self) -> MemStats:
        return (await self._memory_reading()).memstats

    async def _memory_stats(self) -> Stats:
        return (await self._memory_reading()).stats

    async def _memory_groups(self) -> GoroutineProfile:
        reader = await self._memory_reader()
        return (await asyncio.to_thread(reader.census)).profile

    async def _metrics_memstats(self, poll: float | None) -> MemStats:
        """/metrics' memstats, with GOGC and GOMEMLIMIT where it serves them (client_golang v1.20+)."""
        assert self.metrics
        reading = await self.metrics.reading(poll)
        if reading.memstats == MemStats():
            raise TargetError(f"{self.label}: {self.metrics.url} serves no Go memory series")
        limit = reading.memory_limit
        return replace(reading.memstats, gc_percent=reading.gogc_percent,
                       memory_limit=None if limit == MAX_INT64 else limit)

    async def _metrics_stats(self, poll: float | None) -> Stats:
        assert self.metrics
        stats = (await self.metrics.reading(poll)).stats
        if stats.goroutines is None:
            raise TargetError(f"{self.label}: {self.metrics.url} serves no goroutine count")
        return stats

    async def _expvar_memstats(self) -> MemStats:
        assert self.vars
        memstats = parse_expvar(await self.vars.vars_raw()).memstats
        if memstats is None:
            raise TargetError(f"{self.label}: /debug/vars publishes no memstats")
        return memstats

    async def _agent_memstats(self) -> MemStats:
        assert self.gops
        return parse_gops_memstats(await self.gops.memstats())

    async def _heap_text_memstats(self) -> MemStats:
        assert self.http
        text = await self.http.profile_text("heap")
        return await asyncio.to_thread(parse_heap_debug1_memstats, text)

    async def _trace_memstats(self) -> MemStats:
        assert self.gctrace
        memstats = self.gctrace.memstats()
        if memstats is None:
            raise TargetError(f"{self.label}: no GC cycle in its GC trace yet")
        return memstats

    async def _trace_stats(self) -> Stats:
        assert self.gctrace
        latest = self.gctrace.latest
        if latest is None:
            raise TargetError(f"{self.label}: no GC cycle in its GC trace yet")
        return Stats(gomaxprocs=latest.cycle.gomaxprocs)

    async def _agent_stats(self) -> Stats:
        assert self.gops
        return parse_gops_stats(await self.gops.stats())

    async def _index_stats(self) -> Stats:
        assert self.http
        index = await self.http.index()
        return Stats(goroutines=index.count("goroutine"), os_threads=index.count("threadcreate"))

    async def _first(self, what: str, sources: list[tuple[str, Callable[[], Awaitable[T]]]],
                     deadline: float | None = None) -> tuple[T, str]:
        """The first source that answers (by the loop-time `deadline`, if given), with its name;
        NoSource naming all failures."""
        if not sources:
            raise self._nothing(what)
        failures, errors = [], []
        for name, fetch in sources:
            try:
                async with asyncio.timeout_at(deadline):
                    return await fetch(), name
            except GotopError as e:  # transport or parse error: try the next source
                failures.append(f"{name}: {_detail(e)}")
                errors.append(e)
            except TimeoutError:  # the deadline: the sources left get no time either
                failures.append(f"{name}: the poll's {self.poll_budget:g} s ran out")
        raise NoSource(self.label, what, "; ".join(failures), tuple(errors))

    async def _parsed(self, what: str, parse: Callable[[], T]) -> T:
        """`parse()` off the event loop; its error names the target and what was parsed."""
        try:
            return await asyncio.to_thread(parse)
        except GotopError as e:
            raise TargetError(f"{self.label}: {what}: {e}") from None

    def _nothing(self, what: str) -> NoSource:
        if self.only:
            return NoSource(self.label, what, f"the {self.only} source does not give it, or the target has none")
        served = [name for name, present in (("expvar", self.vars), ("/metrics", self.metrics)) if present]
        only = f", and it serves only {' and '.join(served)}" if served else ""
        return NoSource(self.label, what, f"needs the gops agent or net/http/pprof{only}")


def _detail(error: GotopError) -> str:
    return error.detail if isinstance(error, TransportError) else str(error)


def _local_pid(host: str | None, port: int | None) -> int | None:
    """The local process listening on a loopback host:port, for its OS figures:
    the owner of that listening socket in gotop's own network namespace, found
    in /proc without a word to any process."""
    if not host or not port or not is_loopback(host):
        return None
    listener = own_listener(host, port)
    return socket_owner(listener.inode) if listener is not None else None


def _unix_socket_owner(name: str) -> int | None:
    """The local process listening on the UNIX socket "unix:PATH", for its OS figures."""
    listener = bound_at(name.removeprefix(UNIX_PREFIX))
    return socket_owner(listener.inode) if listener is not None else None

"""A running program's heap allocation sites, ranked, with why each is on the heap.

The program's source is its main module's directory on this host, found
(first that answers) from:
  - the directory the user names (--source);
  - the heap profile's file names: a `main.` function's file proves its module
    (engine/sourcefiles.py);
  - the binary's pclntab: the file of main.main, under a go.mod of the build
    info's main module;
  - the process's working directory (/proc/PID/cwd), at or under a go.mod of
    the build info's main module (`go run .` runs there).
That module is analysed (sources/escapes.py, cached) and joined to the heap
profile's allocating lines (model/escape_sites.py), for `gotop escapes`; and
for the TUI's function screen, found from its profile alone.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass

from gotop.discovery.processes import GoProcess
from gotop.engine.sourcefiles import SourceFiles, nearest_module
from gotop.engine.target import Target
from gotop.errors import GotopError
from gotop.model.escape_sites import EscapeIndex, Site, allocation_sites
from gotop.model.profile import Profile, parse_profile
from gotop.sources.escapes import EscapeAnalysis, EscapeError, analyse


@dataclass(frozen=True)
class RankedSites:
    analysis: EscapeAnalysis
    found_by: str  # how the source was found, in words
    sites: list[Site]  # the most live bytes first
    seconds: float  # the rate's window
    since_start: bool  # the rate is since the process started (else between two profiles)


async def rank_sites(target: Target, source: str | None = None, over: float | None = None) -> RankedSites:
    """The target's allocation sites and their escapes. The rate is over `over`
    seconds between two heap profiles, else since the process started."""
    started = target.process.create_time if target.process else None
    if over is None and started is None:
        raise EscapeError(f"{target.label}: its start time is unknown (not a local process): "
                          "give --for DURATION to measure the allocation rate between two heap profiles")
    base: Profile | None = None
    first_at = time.monotonic()
    profile = await _heap(target)
    if over is not None:
        await asyncio.sleep(over)
        base, second_at = profile, time.monotonic()
        profile = await _heap(target)
        seconds = second_at - first_at
    else:
        assert started is not None
        seconds = max(time.time() - started, 1e-3)
    try:
        directory, found_by = (os.path.abspath(source), "--source") if source is not None \
            else await asyncio.to_thread(find_source, profile, target.process)
    except EscapeError as e:
        raise EscapeError(f"{e}: give --source DIR") from None
    analysis = await asyncio.to_thread(analyse, directory)
    sites = await asyncio.to_thread(allocation_sites, profile, analysis.allocations, analysis.module,
                                    base=base, seconds=seconds)
    return RankedSites(analysis, found_by, sites, seconds, since_start=base is None)


async def _heap(target: Target) -> Profile:
    data = await target.heap_profile()
    try:
        return await asyncio.to_thread(parse_profile, data)
    except GotopError as e:
        raise EscapeError(f"{target.label}: heap profile: {e}") from None


def find_source(profile: Profile, process: GoProcess | None) -> tuple[str, str]:
    """The directory of the program's main module on this host, and how it was
    found (see the module doc); EscapeError saying where it looked."""
    files = SourceFiles.of(profile)
    mains = sorted({f.filename for f in profile.functions.values()
                    if (f.system_name or f.name).startswith("main.") and os.path.isabs(f.filename)})
    for file in mains:
        if (root := files.root_of(file)) is not None:
            return root, "the heap profile's file names"
    looked = ["the heap profile names no file of package main on this host"]
    if process is not None:
        module = process.build.main.path if process.build.main else process.build.path
        for where, directory, unknown in (
                ("the binary's main.main", _main_directory(process.pid), "is in no file on this host"),
                ("the working directory", _cwd(process.pid), "is unknown")):
            found = nearest_module(directory) if directory else None
            if found is not None and found[1] == module:
                return found[0], where
            looked.append(f"{where} {unknown}" if directory is None else f"{where} is not in module {module or '?'}")
    raise EscapeError(f"the program's source is not on this host ({'; '.join(looked)})")


def _main_directory(pid: int) -> str | None:
    """The directory of main.main's file, as the binary's pclntab names it, if it is on this host."""
    from gotop.sources.gobinary import GoBinary  # only here: reading a binary loads pyelftools

    try:
        table = GoBinary.open(f"/proc/{pid}/exe").pclntab
        main = table.func_named("main.main")
        where = table.line_of(main.entry) if main else None
    except (GotopError, OSError):
        return None
    return os.path.dirname(where[0]) if where and os.path.isabs(where[0]) and os.path.isfile(where[0]) else None


def _cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


_one_analysis = threading.Lock()  # the TUI's analyses one at a time: the next one finds the cache the first filled


async def escape_index(profile: Profile) -> EscapeIndex:
    """The compiler's escape reasons for the profiled program, when its main
    module is on this host (found by the profile's file names); EscapeError why
    not. A build runs on a daemon thread: gotop's exit does not wait for it
    (sources/escapes kills it)."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[EscapeIndex] = loop.create_future()

    def work() -> None:
        try:
            with _one_analysis:
                directory, _ = find_source(profile, None)
                analysis = analyse(directory)
            result: EscapeIndex | BaseException = EscapeIndex(analysis.allocations, analysis.module)
        except BaseException as e:  # handed to the waiting screen
            result = e
        try:
            loop.call_soon_threadsafe(_settle, answer, result)
        except RuntimeError:  # the loop is closed: nobody waits
            pass

    threading.Thread(target=work, name="escape-analysis", daemon=True).start()
    return await answer


def _settle(answer: asyncio.Future[EscapeIndex], result: EscapeIndex | BaseException) -> None:
    if answer.done():  # the screen left
        return
    if isinstance(result, BaseException):
        answer.set_exception(result)
    else:
        answer.set_result(result)

"""What each allocation site holds in a Go heap profile: bytes in use, bytes allocated.

A site is the allocating code: the first frame of the stack outside the runtime
(runtime.malg, mallocgc, map growth are charged to their caller). Per site the
figures are what `go tool pprof -sample_index=inuse_space` and `alloc_space`
show summed by that frame, less the monitoring requests' own stacks (gotop's
profile fetches: a gzip writer's buffers once read as a site keeping memory).
Pure: a decoded profile in, a summary out, so that a history keeps one small
summary per heap profile rather than the profile.

The runtime publishes a heap profile as of the GC cycle before its latest one
(runtime/mprof.go): two profiles between which no cycle ended are the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from gotop.errors import GotopError
from gotop.model.goroutines import Frame, stack_key
from gotop.model.monitoring import monitoring_samples
from gotop.model.profile import Profile


@dataclass(frozen=True)
class HeapSites:
    """One heap profile, by allocation site."""

    time: float  # unix time it was fetched
    bytes: dict[Frame, tuple[int, int]]  # site -> (bytes in use, bytes allocated ever)

    @property
    def allocated(self) -> int:
        """Bytes allocated ever by all sites: the same in two profiles of the same GC cycle."""
        return sum(allocated for _, allocated in self.bytes.values())


def heap_sites(time: float, profile: Profile) -> HeapSites:
    """The profile's bytes by allocation site; none for a profile that is not a Go heap profile."""
    try:
        inuse_column = profile.samples.values[profile.sample_index("inuse_space")]
        alloc_column = profile.samples.values[profile.sample_index("alloc_space")]
    except GotopError:
        return HeapSites(time, {})
    site_of: dict[str, Frame] = {}
    totals: dict[Frame, tuple[int, int]] = {}
    samples = zip(profile.samples.stacks, inuse_column, alloc_column, monitoring_samples(profile))
    for stack, inuse, allocated, monitoring in samples:
        if monitoring:
            continue
        site = site_of.get(stack)
        if site is None:
            site = site_of[stack] = _allocating_frame(profile, stack)
        inuse0, allocated0 = totals.get(site, (0, 0))
        totals[site] = (inuse0 + inuse, allocated0 + allocated)
    return HeapSites(time, totals)


def _allocating_frame(profile: Profile, stack: str) -> Frame:
    frames = [Frame(line.function.name, line.function.filename, line.line)
              for code in stack for line in profile.locations[profile.samples.location_ids[code]].lines]
    key = stack_key(frames)
    return key[0] if key else frames[0] if frames else Frame("", "", 0)

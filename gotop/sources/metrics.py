"""The Prometheus source: a Go program's /metrics, as client_golang's collectors serve it.

A scrape costs the target more than the other cheap sources: its registry runs
every collector it has, not only the Go one (which reads runtime/metrics, or,
with client_golang before v1.12 on Go before 1.17, calls runtime.ReadMemStats,
which stops the world), and writes an answer that for a big service is
megabytes (Debian's etcd: 146 KB idle), which gotop parses at ~0.2 s/MiB. So
one scrape answers everything a poll asks of it (memstats and counts share it,
even a fallback asked after it ended), and an answer refused (too large, not
Prometheus text, no Go collector) is not asked for again before REFUSED_PAUSE:
the refusal stands meanwhile; so does a timeout, for TIMED_OUT_PAUSE. client_golang keeps nothing between scrapes: it
reads runtime/metrics (or MemStats) at each one, and its older collector falls
back to the previous MemStats only when ReadMemStats takes over a second; so its
figures change as often as the poll asks, and a poll asks once.

The answer is read through the target's HTTP client (sources/http.py: timeout,
same-origin redirects, no proxies), in the text format (model/prometheus.py says
why), capped at MAX_METRICS_BYTES, and parsed in a worker thread.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gotop.model.prometheus import MAX_METRICS_BYTES, TEXT_ACCEPT, MetricsParseError, MetricsReading, parse_metrics
from gotop.sources.errors import ProtocolError, ResponseTooLarge, TransportTimeout
from gotop.sources.http import PprofClient

REFUSED_PAUSE = 60.0  # seconds an answer refused for what it is stands before /metrics is asked again
# Seconds a scrape that timed out stands: each costs a poll the whole timeout, which its other
# sources then lack; a service slow once (a loaded host) is asked again soon.
TIMED_OUT_PAUSE = 15.0


class NotGoMetrics(ProtocolError):
    """/metrics answered, but not with client_golang's Go collector in Prometheus text."""


@dataclass
class _Scrape:
    poll: object  # the poll that asked for it (None: outside a poll)
    started: float  # loop time
    reading: asyncio.Future[MetricsReading]

    def shared(self, poll: object, now: float) -> bool:
        """Whether it answers `poll` asking at `now`."""
        if not self.reading.done() or (poll is not None and poll == self.poll):
            return True  # under way, or this poll's
        if _refused(self.reading):
            return now < self.started + REFUSED_PAUSE
        return _timed_out(self.reading) and now < self.started + TIMED_OUT_PAUSE


class MetricsClient:
    """/metrics at `path` of the server `http` speaks to (shared with its pprof and expvar)."""

    def __init__(self, http: PprofClient, path: str) -> None:
        self.http = http
        self.path = path
        self._last: _Scrape | None = None

    @property
    def url(self) -> str:
        return self.http.base_url + self.path

    @property
    def timeout(self) -> float:
        return self.http.timeout

    async def reading(self, poll: object = None) -> MetricsReading:
        """What /metrics says: a scrape under way, the one of this `poll` (any key
        the figures of one poll share), or a refusal still standing, is shared;
        else a new one is made."""
        now = asyncio.get_running_loop().time()
        if self._last is None or not self._last.shared(poll, now):
            self._last = _Scrape(poll, now, asyncio.ensure_future(self._scrape()))
        return await asyncio.shield(self._last.reading)

    async def _scrape(self) -> MetricsReading:
        answer = await self.http.get(self.path, max_bytes=MAX_METRICS_BYTES, headers={"Accept": TEXT_ACCEPT})
        try:
            reading = await asyncio.to_thread(parse_metrics, answer.body, answer.content_type)
        except MetricsParseError as e:
            raise NotGoMetrics(answer.url, str(e).removeprefix("/metrics: ")) from None
        if not reading.has_go_collector:
            raise NotGoMetrics(answer.url, f"no Go collector series (go_*) in {reading.families_seen} metric families")
        return reading


def _timed_out(scrape: asyncio.Future[MetricsReading]) -> bool:
    return not scrape.cancelled() and isinstance(scrape.exception(), TransportTimeout)


def _refused(scrape: asyncio.Future[MetricsReading]) -> bool:
    """Whether a finished scrape's answer was refused for what it is (not a timeout or a lost connection)."""
    return not scrape.cancelled() and isinstance(scrape.exception(), ResponseTooLarge | NotGoMetrics)

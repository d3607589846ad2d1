"""Progress reports for long captures (CPU profile, execution trace).

A target answers a capture only when it ends (30 s for the gops CPU profile),
so progress is mostly the clock: the ticker reports elapsed time against the
announced duration, plus the bytes received so far, at a fixed interval.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

PROGRESS_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class CaptureProgress:
    elapsed: float  # seconds since the request was sent
    duration: float  # seconds the target captures for before it answers
    received: int  # bytes of the answer received so far
    done: bool = False  # the last report: the answer is complete

    @property
    def fraction(self) -> float:
        """0..1 for a progress bar (time-based; 1.0 once done)."""
        if self.done:
            return 1.0
        return min(1.0, self.elapsed / self.duration) if self.duration > 0 else 0.0


ProgressCallback = Callable[[CaptureProgress], None]


class ProgressTicker:
    """`async with ProgressTicker(cb, duration) as t:` reports every interval
    until the block ends; the reader updates `t.received`. No-op without a
    callback. A final `done=True` report follows a successful block."""

    def __init__(
        self, callback: ProgressCallback | None, duration: float,
        interval: float = PROGRESS_INTERVAL,
    ) -> None:
        self._callback = callback
        self._duration = duration
        self._interval = interval
        self._started = 0.0
        self._task: asyncio.Task[None] | None = None
        self.received = 0

    def _report(self, done: bool = False) -> None:
        assert self._callback is not None
        elapsed = time.monotonic() - self._started
        self._callback(CaptureProgress(elapsed, self._duration, self.received, done))

    async def _tick(self) -> None:
        while True:
            self._report()
            await asyncio.sleep(self._interval)

    async def __aenter__(self) -> ProgressTicker:
        self._started = time.monotonic()
        if self._callback is not None:
            self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task  # re-raises a callback's own error
        except asyncio.CancelledError:
            pass
        if exc_type is None:
            self._report(done=True)

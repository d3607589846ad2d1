"""Fixed-capacity time series: the last N readings of one figure."""

from __future__ import annotations

from array import array
from collections.abc import Iterator

# A series holds up to capacity // _SLACK points more than its capacity before it drops its
# oldest ones at once: one memmove every capacity // _SLACK appends, not one per append.
_SLACK = 4


class Series:
    """(time, value) pairs, oldest dropped once `capacity` is reached.

    Times are unix seconds. Values are floats; a figure that could not be read
    is simply not appended, so gaps show as missing points, not zeros.

    Stored as two arrays of doubles: a series of 600 points takes 10 kB where two
    deques of floats took 40 kB, an empty one 185 bytes where they took 1.6 kB (a
    host's watch keeps some 25 series per process and one per goroutine group).
    """

    __slots__ = ("_capacity", "_times", "_values")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._times = array("d")
        self._values = array("d")

    def append(self, t: float, value: float) -> None:
        self._times.append(t)
        self._values.append(value)
        if len(self._values) > self._capacity + self._capacity // _SLACK:
            del self._times[:-self._capacity]
            del self._values[:-self._capacity]

    def __len__(self) -> int:
        return min(len(self._values), self._capacity)

    def __iter__(self) -> Iterator[tuple[float, float]]:
        return zip(self._times[-self._capacity:], self._values[-self._capacity:])

    @property
    def values(self) -> list[float]:
        return self._values[-self._capacity:].tolist()

    @property
    def times(self) -> list[float]:
        return self._times[-self._capacity:].tolist()

    @property
    def last(self) -> float | None:
        return self._values[-1] if self._values else None

    @property
    def min(self) -> float | None:
        return min(self._values[-self._capacity:]) if self._values else None

    @property
    def max(self) -> float | None:
        return max(self._values[-self._capacity:]) if self._values else None

    def since(self, t: float) -> list[tuple[float, float]]:
        """The points at or after time `t`."""
        return [(ts, v) for ts, v in self if ts >= t]

    def slope_per_minute(self, window: float | None = None) -> float | None:
        """Least-squares slope over the last `window` seconds (all points if None), per minute."""
        points = self.since(self._times[-1] - window) if window and self._times else list(self)
        if len(points) < 2:
            return None
        n = len(points)
        mean_t = sum(t for t, _ in points) / n
        mean_v = sum(v for _, v in points) / n
        var_t = sum((t - mean_t) ** 2 for t, _ in points)
        if var_t == 0:
            return None
        cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
        return cov / var_t * 60

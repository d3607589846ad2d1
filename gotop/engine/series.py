"""Fixed-capacity time series: the last N readings of one figure."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator


class Series:
    """(time, value) pairs, oldest dropped once `capacity` is reached.

    Times are unix seconds. Values are floats; a figure that could not be read
    is simply not appended, so gaps show as missing points, not zeros.
    """

    __slots__ = ("_times", "_values")

    def __init__(self, capacity: int) -> None:
        self._times: deque[float] = deque(maxlen=capacity)
        self._values: deque[float] = deque(maxlen=capacity)

    def append(self, t: float, value: float) -> None:
        self._times.append(t)
        self._values.append(value)

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[tuple[float, float]]:
        return zip(self._times, self._values)

    @property
    def values(self) -> list[float]:
        return list(self._values)

    @property
    def times(self) -> list[float]:
        return list(self._times)

    @property
    def last(self) -> float | None:
        return self._values[-1] if self._values else None

    @property
    def min(self) -> float | None:
        return min(self._values) if self._values else None

    @property
    def max(self) -> float | None:
        return max(self._values) if self._values else None

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

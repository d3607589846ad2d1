"""Trends in readings over time: what the leak detectors judge a figure by.

Pure functions over (unix time, value) points, oldest first. Two kinds of
figure:

  a count     goroutines in a stack group, open descriptors of a kind: exact,
              read every few seconds, and a leak makes it rise in steps that
              never fall back (`steady_rise`);
  a level     the live heap, read once per GC cycle: the noise on it only adds
              (what was in flight when the GC marked, more of it when a busy
              machine stretches the marking), so its low readings are the ones
              to trust (`floor_rise` for the heap each GC marked, `rising_level`
              for the noisier heap in use after GC); or each reading is off by
              about as much (`median_rise`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Point = tuple[float, float]  # (unix time, value)

# A trend is judged on enough readings over enough time: with fewer, a pool
# still filling up at start-up looks just like a leak.
MIN_POINTS = 5  # readings of a count
MIN_SPAN = 8.0  # seconds they cover
# A leak only rises: the falls on the way may add up to this share of the
# rises (a few leaked-looking goroutines do finish, a connection closes).
# Goroutines or descriptors that come and go fall about as much as they rise.
MAX_FALL_SHARE = 0.1
# A rise made of one jump is a burst (a pool started at once), not a leak: it
# takes this many new highs. (Under load, CI saw a pool's idle workers read
# 86, 96, 95, 96, 96: one jump and a wobble, not two steps.) Nor is one jump
# followed by new highs that add less than the jump and less than the gain
# wanted: a program started by `gotop check -- CMD` opened its 100 connections
# in its first 2 s, then wobbled: 151 -> 198 -> 199 sockets.
MIN_STEPS = 2
# A leak is still rising at the end: over the recent part of the rise, its pace
# must be at least this share of its overall pace. A pool or cache that filled
# up and then stayed flat fails this. The recent part is the last third of the
# rise, or the time of two steps when they come slowly (one goroutine leaked
# every ten seconds).
MIN_RECENT_PACE = 0.5
# A level whose noise only adds: its noise is the distance above the line
# under it that most readings stay within; a reading within a quarter of it
# (or a tenth of the rise) of the line touches it.
NOISE_QUANTILE = 0.9
FLOOR_NEAR_NOISE = 0.25
FLOOR_NEAR_GAIN = 0.1
# ... and the bulk of its readings rises with the line: a steady rise lifts the
# median of the last third above that of the first by two thirds of the gain,
# and this wants half of that. A program that builds a 3 MiB working set and
# drops it is marked at 3 MiB in most cycles and at 0 in a few: a line from
# early dips to late ordinary readings is not a rise (under load, one healthy
# check in 8 took one for a finding).
FLOOR_BULK_SHARE = 1 / 3
# median_rise: the confidence its slope is above 0 must have (z of 95 %, one
# tail 2.5 %), and the readings it takes at most (their pairs: a few thousand).
CONFIDENCE_Z = 1.96
MAX_MEDIAN_POINTS = 100


@dataclass(frozen=True, slots=True)
class Rise:
    points: tuple[Point, ...]  # the readings from the start of the rise
    gained: float
    rate_per_min: float
    base: float  # the level it rose from
    still_rising: bool = True  # in the recent part too
    noise: float = 0.0  # of a level: how far above its line the readings stray (floor_rise)

    @property
    def start(self) -> float:
        return self.points[0][0]

    @property
    def span(self) -> float:
        return self.points[-1][0] - self.points[0][0]

    @property
    def pace(self) -> float:
        """Growth per minute as a share of the level it rose from (1.0: it doubles in a minute)."""
        return self.rate_per_min / max(self.base, 1.0)


def steady_rise(points: Sequence[Point], min_gain: float) -> Rise | None:
    """The rise of a count that only grows, or None.

    The rise starts at the last lowest reading (older ups and downs are not
    part of it), covers MIN_POINTS readings over MIN_SPAN seconds, gains
    `min_gain` in MIN_STEPS new highs or more, falls back by at most MAX_FALL_SHARE
    of its rises on the way, ends `min_gain` above every reading before it
    too, and is still rising in its recent part. (The idle workers of a pool
    wander: CI saw 95 -> 97 over 30 s after readings of 96 and 97, a dip and
    its recovery; a leak makes new highs.)

    Its rate is that between its first and its last new high: a count read every
    few seconds that rises once every ten has the pace of its steps, whatever
    the phase of the readings.
    """
    if not points:
        return None
    low = min(v for _, v in points)
    start = max(i for i, (_, v) in enumerate(points) if v == low)
    rise = tuple(points[start:])
    if len(rise) < MIN_POINTS:
        return None
    (t0, v0), (t1, v1) = rise[0], rise[-1]
    span, gained = t1 - t0, v1 - v0
    if span < MIN_SPAN or gained < min_gain:
        return None
    if start and v1 - max(v for _, v in points[:start]) < min_gain:
        return None  # a dip and its recovery: a leak makes new highs
    deltas = [b - a for (_, a), (_, b) in zip(rise, rise[1:])]
    if -sum(d for d in deltas if d < 0) > MAX_FALL_SHARE * sum(d for d in deltas if d > 0):
        return None
    highs = _new_highs(rise)
    if len(highs) < MIN_STEPS:
        return None
    (ta, va), (tb, vb) = rise[highs[0]], rise[highs[-1]]
    if vb - va < min(min_gain, va - v0):
        return None  # one jump, then a wobble (MIN_STEPS)
    recent = max(span / 3, 2 * (tb - ta) / (len(highs) - 1))
    tr, vr = _last_at_or_before(rise, t1 - recent)
    if (v1 - vr) / (t1 - tr) < MIN_RECENT_PACE * gained / span:
        return None
    return Rise(rise, gained, (vb - va) / (tb - ta) * 60, v0)


def _new_highs(points: Sequence[Point]) -> list[int]:
    """The indexes of the readings above every reading before them."""
    highs, top = [], points[0][1]
    for i, (_, v) in enumerate(points[1:], 1):
        if v > top:
            highs.append(i)
            top = v
    return highs


def rising_level(points: Sequence[Point], min_gain: float, quantile: float, per_third: int) -> Rise | None:
    """The rise of a noisy level read once per GC cycle, or None.

    Each third of the readings (`per_third` at least) is represented by its
    reading at `quantile` (not its lowest: a lone low reading must not stand
    for a whole third). The level of the last third must be `min_gain` above
    that of the first; it is still rising if it is above that of the middle
    third by MIN_RECENT_PACE of half of it (a steady rise gains half of it
    there). The rate is that between the first and the last third's levels.
    """
    n = len(points)
    if n < 3 * per_third or points[-1][0] - points[0][0] < MIN_SPAN:
        return None
    first, middle, last = (_at_quantile(third, quantile) for third in _thirds(points))
    gained = last[1] - first[1]
    if gained < min_gain or last[0] <= first[0]:
        return None
    return Rise(tuple(p for p in points if p[0] >= first[0]), gained, gained / (last[0] - first[0]) * 60,
                first[1], still_rising=last[1] - middle[1] >= MIN_RECENT_PACE * gained / 2)


def floor_rise(points: Sequence[Point], min_gain: float) -> Rise | None:
    """The rise of a level whose noise only adds, or None: the line under the
    readings (`lower_line`) gains `min_gain`, and more than the noise above it
    (the readings' NOISE_QUANTILE distance from it: the Rise's `noise`), and
    readings touch it in every third of the span, the last one too (a level
    that rose and then stayed, or noise that came late in the window, leaves a
    third without one), and the median reading of the last third is above that
    of the first by FLOOR_BULK_SHARE of the gain. The rate is that of the line."""
    if len(points) < 3 or points[-1][0] - points[0][0] < MIN_SPAN:
        return None
    slope, (ta, va) = lower_line(points)
    (t0, _), (t1, _) = points[0], points[-1]
    span, gained = t1 - t0, slope * (t1 - t0)
    residuals = [v - va - slope * (t - ta) for t, v in points]
    noise = sorted(residuals)[int((len(residuals) - 1) * NOISE_QUANTILE)]
    if gained < max(min_gain, noise):
        return None
    near = max(noise * FLOOR_NEAR_NOISE, gained * FLOOR_NEAR_GAIN)
    for third in range(3):
        lo, hi = t0 + span * third / 3, t0 + span * (third + 1) / 3
        if not any(lo <= t <= hi and r <= near for (t, _), r in zip(points, residuals)):
            return None
    first, _, last = _thirds(points)
    if _at_quantile(last, 0.5)[1] - _at_quantile(first, 0.5)[1] < FLOOR_BULK_SHARE * gained:
        return None
    return Rise(tuple(points), gained, slope * 60, va - slope * (ta - t0), noise=noise)


def _thirds(points: Sequence[Point]) -> tuple[Sequence[Point], Sequence[Point], Sequence[Point]]:
    n = len(points)
    return points[:n // 3], points[n // 3:n - n // 3], points[n - n // 3:]


def _at_quantile(points: Sequence[Point], quantile: float) -> Point:
    """The reading whose value is at `quantile` of theirs (the lower one between two)."""
    return sorted(points, key=lambda p: p[1])[int((len(points) - 1) * quantile)]


def median_rise(points: Sequence[Point], min_gain: float) -> Rise | None:
    """The rise of a level each reading of which is off by about as much as the
    others, some more, some less (a GC that marked gotop's answer in flight: more
    or less of it, by when in the answer it ended), or None.

    Its slope is the median of the slopes between every two readings (Theil-Sen:
    a few readings far off do not move it); the lower end of its 95 % confidence
    interval must be above 0, the rise over the span gain `min_gain`, and the
    last half of the readings rise at MIN_RECENT_PACE of that slope. Its noise is
    how far the readings stray from that line, the NOISE_QUANTILE of them.
    """
    points = _thinned(points, MAX_MEDIAN_POINTS)
    if len(points) < 2 * MIN_POINTS or points[-1][0] - points[0][0] < MIN_SPAN:
        return None
    slopes = _slopes(points)
    slope = slopes[len(slopes) // 2]
    n = len(points)
    spread = CONFIDENCE_Z * math.sqrt(n * (n - 1) * (2 * n + 5) / 18)  # of Kendall's S, with no ties
    low = slopes[max(0, int((len(slopes) - spread) / 2))]
    (t0, _), (t1, _) = points[0], points[-1]
    if low <= 0 or slope * (t1 - t0) < min_gain:
        return None
    recent = _slopes(points[n // 2:])
    if recent[len(recent) // 2] < MIN_RECENT_PACE * slope:
        return None
    offsets = sorted(v - slope * (t - t0) for t, v in points)
    base = offsets[len(offsets) // 2]
    noise = sorted(abs(o - base) for o in offsets)[int((n - 1) * NOISE_QUANTILE)]
    return Rise(tuple(points), slope * (t1 - t0), slope * 60, base, noise=noise)


def _slopes(points: Sequence[Point]) -> list[float]:
    """The slopes between every two readings, sorted."""
    return sorted((b[1] - a[1]) / (b[0] - a[0]) for i, a in enumerate(points) for b in points[i + 1:] if b[0] > a[0])


def _thinned(points: Sequence[Point], most: int) -> Sequence[Point]:
    """At most `most` of the points, spread evenly, the first and the last kept."""
    if len(points) <= most:
        return points
    step = (len(points) - 1) / (most - 1)
    return [points[round(i * step)] for i in range(most)]


def lower_line(points: Sequence[Point]) -> tuple[float, Point]:
    """The line under every point that is highest at their mean time (an edge
    of their lower convex hull): its slope per second, and a point of it.

    For a level whose noise only adds (the live heap a GC marks, raised by
    whatever was in flight), this line runs along the readings the noise left
    alone, and its slope is the level's own growth.
    """
    lowest: dict[float, float] = {}
    for t, v in points:
        lowest[t] = min(v, lowest.get(t, v))
    hull: list[Point] = []
    for p in sorted(lowest.items()):
        while len(hull) >= 2 and _turn(hull[-2], hull[-1], p) <= 0:
            hull.pop()
        hull.append(p)
    if len(hull) < 2:
        return 0.0, hull[0]
    mean = sum(t for t, _ in points) / len(points)
    a, b = next(((a, b) for a, b in zip(hull, hull[1:]) if b[0] >= mean), (hull[-2], hull[-1]))
    return (b[1] - a[1]) / (b[0] - a[0]), a


def _turn(a: Point, b: Point, c: Point) -> float:
    """Positive when a -> b -> c turns left (counter-clockwise): b lies below the segment a-c."""
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _last_at_or_before(points: Sequence[Point], t: float) -> Point:
    return next((p for p in reversed(points) if p[0] <= t), points[0])

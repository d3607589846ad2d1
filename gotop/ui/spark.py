"""Tiny inline trend glyphs for table cells.

Textual's Sparkline scales to the data's own range, so noise of 0.1 % fills
its height. These trends have a floor: changes smaller than `min_span` of the
latest value draw flat, so a steady figure looks steady.
"""

from __future__ import annotations

from collections.abc import Sequence

BARS = "▁▂▃▄▅▆▇█"


def mini_spark(values: Sequence[float], width: int = 8, min_span: float = 0.02) -> str:
    """The last `width` buckets of `values` as block glyphs (max per bucket)."""
    if not values:
        return ""
    buckets = _buckets(values, width)
    lo, hi = min(buckets), max(buckets)
    span = max(hi - lo, abs(hi) * min_span, 1e-9)
    if hi - lo < abs(hi) * min_span:
        return BARS[3] * len(buckets)
    return "".join(BARS[min(len(BARS) - 1, int((v - lo) / span * len(BARS)))] for v in buckets)


def _buckets(values: Sequence[float], width: int) -> list[float]:
    if len(values) <= width:
        return list(values)
    size = len(values) / width
    return [max(values[int(i * size): max(int((i + 1) * size), int(i * size) + 1)]) for i in range(width)]

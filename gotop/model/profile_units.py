"""pprof's value formatting (internal/measurement): unit scaling, ScaledLabel and
Percentage, and the -unit=minimum choice of one unit for a whole report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Unit:
    name: str
    aliases: tuple[str, ...]
    factor: float


@dataclass(frozen=True, slots=True)
class _UnitType:
    units: tuple[_Unit, ...]
    default: _Unit

    def sniff(self, unit: str) -> _Unit | None:
        unit = unit.lower()
        if len(unit) > 2:
            unit = unit.removesuffix("s")
        return next((u for u in self.units if unit in u.aliases), None)

    def auto_scale(self, value: float) -> tuple[float, str] | None:
        factor, name = 0.0, ""
        for u in self.units:
            if u.factor >= factor and value / u.factor >= 1.0:
                factor, name = u.factor, u.name
        return (value / factor, name) if factor else None

    def convert(self, value: int, from_unit: str, to_unit: str) -> tuple[float, str] | None:
        source = self.sniff(from_unit)
        if source is None:
            return None
        scaled = float(value) * source.factor
        if to_unit in ("minimum", "auto"):
            return self.auto_scale(scaled) or (scaled / self.default.factor, self.default.name)
        target = self.sniff(to_unit) or self.default
        return scaled / target.factor, target.name


_B = _Unit("B", ("b", "byte"), 1)
_S = _Unit("s", ("s", "sec", "second"), 1e9)
_GCU = _Unit("GCU", ("gcu",), 1)
_UNIT_TYPES = (
    _UnitType((
        _B,
        _Unit("kB", ("kb", "kbyte", "kilobyte"), float(1 << 10)),
        _Unit("MB", ("mb", "mbyte", "megabyte"), float(1 << 20)),
        _Unit("GB", ("gb", "gbyte", "gigabyte"), float(1 << 30)),
        _Unit("TB", ("tb", "tbyte", "terabyte"), float(1 << 40)),
        _Unit("PB", ("pb", "pbyte", "petabyte"), float(1 << 50)),
    ), _B),
    _UnitType((
        _Unit("ns", ("ns", "nanosecond"), 1),
        _Unit("us", ("μs", "us", "microsecond"), 1e3),
        _Unit("ms", ("ms", "millisecond"), 1e6),
        _S,
        _Unit("hrs", ("hour", "hr"), 3600e9),
    ), _Unit("s", (), 1e9)),
    _UnitType((
        _Unit("n*GCU", ("nanogcu",), 1e-9),
        _Unit("u*GCU", ("microgcu",), 1e-6),
        _Unit("m*GCU", ("milligcu",), 1e-3),
        _GCU,
        _Unit("k*GCU", ("kilogcu",), 1e3),
        _Unit("M*GCU", ("megagcu",), 1e6),
        _Unit("G*GCU", ("gigagcu",), 1e9),
        _Unit("T*GCU", ("teragcu",), 1e12),
        _Unit("P*GCU", ("petagcu",), 1e15),
    ), _Unit("GCU", (), 1.0)),
)


def scale(value: int, from_unit: str, to_unit: str) -> tuple[float, str]:
    """measurement.Scale: `value` in `from_unit` expressed in `to_unit`
    ('minimum'/'auto' pick the largest unit that keeps it >= 1)."""
    if value < 0:
        scaled, unit = scale(-value, from_unit, to_unit)
        return -scaled, unit
    for unit_type in _UNIT_TYPES:
        converted = unit_type.convert(value, from_unit, to_unit)
        if converted is not None:
            return converted
    if to_unit in ("count", "sample", "unit", "minimum", "auto"):
        return float(value), ""
    return float(value), to_unit


def scaled_label(value: int, from_unit: str, to_unit: str) -> str:
    """measurement.ScaledLabel: '72.19MB', '1.50s', '50', '0'."""
    scaled, unit = scale(value, from_unit, to_unit)
    text = f"{scaled:.2f}".removesuffix(".00")
    if text in ("0", "-0"):
        return "0"
    return text + unit


def percentage(value: int, total: int) -> str:
    """measurement.Percentage: '  100%', '63.56%', ' 0.02%', '1.2e-05%'."""
    ratio = abs(float(value) / float(total)) * 100 if total else 0.0
    if 99.95 <= ratio <= 100.05:
        return "  100%"
    if ratio >= 1.0:
        return f"{ratio:5.2f}%"
    return f"{ratio:5.2g}%"


def output_unit(node_values: Iterable[tuple[int, int]], total: int, sample_unit: str) -> str:
    """pprof's -unit=minimum: one unit for the report, from its smallest non-zero
    node value (flat, else cum), moved up when it is < 1% of the total.
    With no nodes it stays 'minimum': every value then picks its own unit."""
    values = [abs(flat) or abs(cum) for flat, cum in node_values]
    if not values:
        return "minimum"
    smallest = min(filter(None, values), default=0) or total
    _, min_unit = scale(smallest, sample_unit, "minimum")
    _, max_unit = scale(total, sample_unit, "minimum")
    unit = min_unit
    if min_unit != max_unit and smallest * 100 < total:
        _, unit = scale(100 * smallest, sample_unit, "minimum")
    return unit or sample_unit

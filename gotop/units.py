"""Human-readable figures for the terminal (IEC byte units, short durations)."""

from __future__ import annotations

import re

from gotop.errors import GotopError

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def fmt_bytes(n: float | None) -> str:
    """1536 -> '1.5 KiB'; None -> '-'."""
    if n is None:
        return "-"
    value = float(n)
    for unit in _BYTE_UNITS:
        if abs(value) < 1024 or unit == _BYTE_UNITS[-1]:
            break
        value /= 1024
    if unit == "B":
        return f"{int(value)} B"
    return f"{value:.1f} {unit}" if abs(value) < 100 else f"{value:.0f} {unit}"


def fmt_elapsed(seconds: float) -> str:
    """Like ps etime: [[D-]hh:]mm:ss."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{minutes:02d}:{secs:02d}"
    if hours or days:
        text = f"{hours:02d}:{text}"
    return f"{days}-{text}" if days else text


def fmt_duration_ns(ns: float | None) -> str:
    """45000 -> '45 µs', 1.5e9 -> '1.50 s'."""
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            value = ns / scale
            digits = 2 if value < 10 else 1 if value < 100 else 0
            return f"{value:.{digits}f} {unit}"
    return f"{int(ns)} ns"


def fmt_bytes_short(n: float | None) -> str:
    """1536 -> '1.5K', 2_000_000_000 -> '1.9G': for tight columns."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("", "K", "M", "G", "T", "P"):
        if abs(value) < 1024 or unit == "P":
            break
        value /= 1024
    if not unit:
        return f"{int(value)}B"
    return f"{value:.1f}{unit}" if abs(value) < 10 else f"{value:.0f}{unit}"


def fmt_count(n: float | None) -> str:
    """12345 -> '12,345'; 2_500_000 -> '2.5M'."""
    if n is None:
        return "-"
    if abs(n) >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    return f"{n:,.0f}"


def fmt_signed(value: float, digits: int = 0) -> str:
    """3.2 -> '+3', -2 -> '-2'; whatever rounds to zero is '0' (never '-0')."""
    text = f"{value:+.{digits}f}"
    return text[1:] if float(text) == 0 else text


_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(rf"({_NUMBER})({'|'.join(_DURATION_UNITS)})")  # "ms" is tried before "m"
DURATION_SYNTAX = "500ms, 30s, 10m, 1m30s, 1h; a bare number is seconds"


def parse_duration(text: str) -> float:
    """Go's duration syntax ('500ms', '10m', '1m30s', '1.5h') or a bare number of
    seconds ('90', '1.5') -> seconds, >= 0; GotopError for anything else."""
    spec = text.strip()
    if re.fullmatch(_NUMBER, spec):
        return float(spec)
    if not re.fullmatch(f"(?:{_DURATION_PART.pattern})+", spec):
        raise GotopError(f"{text!r} is not a duration: use e.g. {DURATION_SYNTAX}")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(spec))

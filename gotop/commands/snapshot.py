"""`gotop snapshot TARGET`: one reading of memstats, goroutines, GC and OS figures."""

from __future__ import annotations

import asyncio
from argparse import Namespace
from collections.abc import Callable
from datetime import datetime

from gotop.commands.common import named, print_json, with_target
from gotop.engine.target import Sample, Target
from gotop.textsafe import plain
from gotop.units import fmt_bytes, fmt_duration_ns

# CPU percent is measured over this window (the target is opened, then sampled).
CPU_WINDOW = 0.25


async def take(target: Target) -> Sample:
    await asyncio.sleep(CPU_WINDOW)
    return await target.sample(every_field=True)


def run(args: Namespace) -> int:
    target, sample = with_target(args.target, take, only=args.source)
    if args.json:
        print_json(named(args.target, target), sample.to_json())
    else:
        print(format_sample(target.label, sample))
    return 0


def format_sample(label: str, s: Sample) -> str:
    lines = [f"{label}  (" + ", ".join(f"{k} via {v}" for k, v in s.sources.items()) + ")"]
    st = s.stats
    if st.goroutines is not None:
        lines.append(f"goroutines  {st.goroutines:,}" + "".join(
            f"   {name} {value}" for name, value in
            (("OS threads created", st.os_threads), ("GOMAXPROCS", st.gomaxprocs), ("CPUs", st.num_cpu))
            if value is not None
        ))
    m = s.memstats
    if m is not None:
        gogc = None if m.gc_percent is None else "off" if m.gc_percent < 0 else str(m.gc_percent)
        lines.append("heap        " + _figures(
            ("alloc", fmt_bytes(m.heap_alloc)), ("in use", fmt_bytes(m.heap_inuse)), ("sys", fmt_bytes(m.heap_sys)),
            ("objects", _given(m.heap_objects, "{:,}".format)), ("live after GC", _given(m.heap_marked)),
            ("next GC", fmt_bytes(m.next_gc))))
        lines.append("memory      " + _figures(
            ("total sys", _given(m.sys)), ("stacks", _given(m.stack_inuse)),
            ("allocated since start", _given(m.total_alloc)), ("GOGC", gogc),
            ("GOMEMLIMIT", _given(m.memory_limit))))
        gc = f"gc          {m.num_gc:,} cycles"
        if m.num_forced_gc is not None:
            gc += f" ({m.num_forced_gc} forced)"
        if m.last_pause_ns is not None:
            gc += f"   last pause {fmt_duration_ns(m.last_pause_ns)}"
        if m.last_gc:
            gc += f" at {datetime.fromtimestamp(m.last_gc / 1e9):%H:%M:%S}"
        if m.pause_total_ns is not None:
            gc += f"   total pause {fmt_duration_ns(m.pause_total_ns)}"
        if m.gc_cpu_fraction is not None:
            gc += f"   GC CPU {m.gc_cpu_fraction:.2%}"
        lines.append(gc)
    if s.os is not None:
        cpu = "-" if s.os.cpu_percent is None else f"{s.os.cpu_percent:.1f}%"
        fds = "?" if s.os.open_fds is None else f"{s.os.open_fds:,}"
        lines.append(f"process     RSS {fmt_bytes(s.os.rss)}   CPU {cpu}   threads {s.os.threads}   fds {fds}")
    lines += [f"problem     {plain(p)}" for p in s.problems]
    return "\n".join(lines)



def _given(value: int | None, fmt: Callable[[int], str] = fmt_bytes) -> str | None:
    return None if value is None else fmt(value)


def _figures(*pairs: tuple[str, str | None]) -> str:
    """`name value` pairs, three spaces apart; a figure the source does not give is left out."""
    return "   ".join(f"{name} {value}" for name, value in pairs if value is not None)

"""gotop's C extension (_profile_speedups.c) where the install built it, else None.

A module of its own, so that the modules using it can be imported without what
the others load: profile_graph is imported by the TUI before its first frame,
profile_samples loads protobuf (20 ms, 3.3 MB)."""

from __future__ import annotations

try:
    from gotop.model import _profile_speedups as speedups
except ImportError:  # built without a C compiler: the Python paths alone
    speedups = None  # type: ignore[assignment]  # mypy checks the calls against _profile_speedups.pyi

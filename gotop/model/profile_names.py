"""The function names `go tool pprof` shows, from the names a profile holds.

pprof's symbolizer runs on every profile it reads (internal/symbolizer, Demangle
in its default mode). A name it cannot demangle as C++ or Rust but that looks
demangled already (it holds `<>[]` or `::`) loses its parenthesised and angled
parts. Go generics hit that rule: `f[go.shape.func(int)]` is shown as
`f[go.shape.func]`; Go methods of generic types (`pkg.(*T[...]).M`) are spared.
Mangled C++ and Rust symbols (`_Z...`, `_R...`), which pprof would demangle,
are shown as they are: Go's profiles name Go functions.
"""

from __future__ import annotations

import re

_PARENS_AND_ANGLES = {"(": re.compile(r"[()]"), "<": re.compile(r"[<>]")}


def pprof_function_name(name: str, system_name: str) -> str:
    """The name pprof shows for a function whose profile entry has these names."""
    if name and system_name != name:
        return name  # demangled by whoever wrote the profile: pprof keeps it
    if _looks_like_demangled_cplusplus(system_name):
        return _remove_matching(_remove_matching(system_name, "("), "<")
    return system_name


def _looks_like_demangled_cplusplus(name: str) -> bool:
    if ".<" in name or "])." in name:  # Java `class.<init>`; Go `pkg.(*T[...]).M`
        return False
    return any(c in name for c in "<>[]") or "::" in name


def _remove_matching(name: str, opening: str) -> str:
    """`name` without its outermost opening...closing runs, nested ones included.

    An unmatched closing character stops the removal there, as in pprof."""
    brackets = _PARENS_AND_ANGLES[opening]
    nesting = first = 0
    current = 0
    while match := brackets.search(name, current):
        current = match.start()
        if name[current] == opening:
            nesting += 1
            if nesting == 1:
                first = current
        else:
            nesting -= 1
            if nesting < 0:
                return name
            if nesting == 0:
                name = name[:first] + name[current + 1:]
                current = first - 1
        current += 1
    return name

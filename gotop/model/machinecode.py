"""Finding runtime variables from the machine code that loads them.

Only the type the layout tables share with it lives here for now: part A of
issue 10 (branch h-binary) writes this module in full; at the merge its
version replaces this one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RefSignature:
    """How to find a variable in a binary without a symbol table: the function
    `function` refers, as its `ordinal`-th distinct data address in code order,
    to the variable's start plus `delta` (a field inside it)."""

    function: str  # e.g. "runtime.gcount"
    ordinal: int
    delta: int

"""Runtime variables found through the machine code that uses them (no I/O).

A stripped Go binary has no symbol table, but its pclntab still names every function, and
the code of a function refers to the variables it uses by address: on amd64 a
RIP-relative operand (`mov rax, [rip + disp]`, `lea`), on arm64 an ADRP of the page then an
ADD or a load/store of the offset in it. A signature (function, ordinal, delta) says: the
`ordinal`-th distinct data address that function refers to, minus `delta`, is the variable.
derive_signatures finds them in a binary that has a symbol table (for the layout tables of
each release); resolve_globals applies them to a stripped binary, where the signatures of
a variable in two functions or more must agree: one that lands elsewhere (the function
changed) makes the variable left out, never guessed.

Functions are decoded with capstone's lite mode (the operand text, no detail objects): a
tenth of the cost, and the one operand form wanted is plain in the text. The direct calls
of a `go f(x)` wrapper (call_targets) are read without it: see there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gotop.model.pclntab import Func, Pclntab

if TYPE_CHECKING:
    import capstone

ARCHES = ("amd64", "arm64")
# Closures, go and defer wrappers are numbered in order of appearance: the same name can
# be another function in another release. Signatures are not taken from them.
_NUMBERED = re.compile(r"\.(func|gowrap|deferwrap)\d")
_MAX_CODE = 16 << 10  # bytes of one function looked at: the short ones are the stable ones
SIGNATURES_PER_VARIABLE = 4

_RIP_OPERAND = re.compile(r"\[rip(?: ([+-]) (0x[0-9a-f]+|\d+))?\]")
# arm64: "adrp x27, #0x3d6000", then "add x27, x27, #0xb20" or "ldr x1, [x27, #0xb20]" or "ldp x1, x2, [x27]"
_ADRP = re.compile(r"(x\d+), #(0x[0-9a-f]+|\d+)$")
_ADD_IMM = re.compile(r"([xw]\d+), (x\d+), #(0x[0-9a-f]+|\d+)$")
_BASE_OFFSET = re.compile(r"\[(x\d+)(?:, #(-?0x[0-9a-f]+|-?\d+))?\]")
_AMD64_CALL_REL32 = 0xE8
_ARM64_BL = 0b100101  # the top 6 bits of BL imm26


@dataclass(frozen=True, slots=True)
class RefSignature:
    """The `ordinal`-th distinct data address `function` refers to is the variable's start plus `delta`."""

    function: str  # e.g. "runtime.forEachG"
    ordinal: int
    delta: int


def data_references(code: bytes, address: int, arch: str) -> list[int]:
    """The distinct data addresses the code at `address` refers to, in code order.
    Decoding stops at the first byte that is no instruction."""
    decoder = _decoder(arch)
    if arch == "amd64":
        found = _amd64_references(decoder, code, address)
    else:
        found = _arm64_references(decoder, code, address)
    return list(dict.fromkeys(found))


def derive_signatures(pclntab: Pclntab, symbols: Mapping[str, tuple[int, int]], read_code: Callable[[Func], bytes],
                      arch: str, wanted: Iterable[str]) -> dict[str, list[RefSignature]]:
    """For each wanted variable of a binary with a symbol table (name -> (address, size)),
    up to SIGNATURES_PER_VARIABLE signatures, each from another function, the best of each:
    references to the variable's start before those inside it (a field's offset changes
    between releases), then the earliest reference, then the shortest function.
    `read_code(func)` gives a function's bytes. A variable fewer than two functions refer
    to is left out: resolve_globals needs two (runtime.buildVersion: runtime.schedinit alone)."""
    extents = {name: symbols[name] for name in wanted if name in symbols}
    packages = tuple({name.rpartition(".")[0] + "." for name in extents})
    candidates: dict[str, list[tuple[tuple, RefSignature]]] = {name: [] for name in extents}
    seen = set()
    for func in pclntab.funcs():
        size = func.end - func.entry
        # Of functions that share a name, resolve_globals finds the first (Pclntab.func_named).
        if func.name in seen or not func.name.startswith(packages) or _NUMBERED.search(func.name) or size > _MAX_CODE:
            continue
        seen.add(func.name)
        for ordinal, ref in enumerate(data_references(read_code(func), func.entry, arch)):
            for name, (start, length) in extents.items():
                if start <= ref < start + max(length, 1):
                    rank = (ref != start, ordinal, size, func.name)
                    candidates[name].append((rank, RefSignature(func.name, ordinal, ref - start)))
    return {name: picked for name, found in candidates.items() if len(picked := _pick(found)) >= 2}


def _pick(found: list[tuple[tuple, RefSignature]]) -> list[RefSignature]:
    """The best signature of each function, the best functions first."""
    best: dict[str, RefSignature] = {}
    for _rank, signature in sorted(found, key=lambda item: item[0]):
        best.setdefault(signature.function, signature)
    return list(best.values())[:SIGNATURES_PER_VARIABLE]


def resolve_globals(pclntab: Pclntab, read_code: Callable[[Func], bytes], arch: str,
                    signatures: Mapping[str, Sequence[RefSignature]]) -> dict[str, int]:
    """Each variable's address from its signatures, in a binary without a symbol table.

    A variable is resolved when the signatures that find something all give the same
    address and come from two functions or more; otherwise it is left out. One function's
    votes are one: its references change together (where another release's schedinit
    loads another string, both of runtime.buildVersion's votes in it agree on that string).
    Functions are decoded once each."""
    references: dict[str, list[int]] = {}

    def referenced(function: str) -> list[int]:
        if function not in references:
            func = pclntab.func_named(function)
            references[function] = []
            if func is not None and func.end - func.entry <= _MAX_CODE:
                references[function] = data_references(read_code(func), func.entry, arch)
        return references[function]

    resolved = {}
    for name, signs in signatures.items():
        votes = [(s.function, refs[s.ordinal] - s.delta)
                 for s in signs if s.ordinal < len(refs := referenced(s.function))]
        addresses = {address for _, address in votes}
        if len(addresses) == 1 and len({function for function, _ in votes}) >= 2:
            resolved[name] = addresses.pop()
    return resolved


def call_targets(code: bytes, address: int, arch: str) -> list[int]:
    """Where the code at `address` may call directly, in code order: arm64 `bl` (each aligned
    word decoded), amd64 `call rel32` read at every E8 byte. Not decoded with capstone:
    importing it costs gotop 12 MB of RSS (10 MB anonymous; measured after gotop's own
    imports), a quarter of the TUI's, and every Go program that starts goroutines with
    arguments has wrappers to look through. On amd64 an E8 inside another instruction gives
    a stray address: the caller keeps only exact function entries, which no stray one hit in
    the 34,469 wrappers of 11 binaries compared with capstone's decoding."""
    if arch == "arm64":
        words = range(0, len(code) - 3, 4)
        return [address + at + 4 * _signed(word & 0x3FFFFFF, 26) for at in words
                if ((word := int.from_bytes(code[at:at + 4], "little")) >> 26) == _ARM64_BL]
    return [address + at + 5 + int.from_bytes(code[at + 1:at + 5], "little", signed=True)
            for at in range(len(code) - 4) if code[at] == _AMD64_CALL_REL32]


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def _decoder(arch: str) -> capstone.Cs:
    import capstone  # here: 12 MB of gotop's RSS, paid for only by a gotop that reads a stripped binary

    if arch == "amd64":
        return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    if arch == "arm64":
        return capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    raise ValueError(f"no machine code decoder for {arch} (only {', '.join(ARCHES)})")


def _amd64_references(decoder: capstone.Cs, code: bytes, address: int) -> Iterable[int]:
    # Go's amd64 code addresses every global RIP-relative (no absolute operands, even
    # outside PIEs); the displacement counts from the next instruction.
    for at, size, _mnemonic, operands in decoder.disasm_lite(code, address):
        if match := _RIP_OPERAND.search(operands):
            displacement = int(match[2] or "0", 0)
            yield at + size + (-displacement if match[1] == "-" else displacement)


def _arm64_references(decoder: capstone.Cs, code: bytes, address: int) -> Iterable[int]:
    # Go's arm64 code loads a global's address in two instructions: an ADRP of its 4 KiB
    # page into a register, then at once an ADD of the offset in the page to that register,
    # or a load/store with that register as the base and the offset as the immediate.
    page: tuple[str, int] | None = None
    for _at, _size, mnemonic, operands in decoder.disasm_lite(code, address):
        if page is not None:
            register, base = page
            if mnemonic == "add" and (match := _ADD_IMM.match(operands)) and match[2] == register:
                yield base + int(match[3], 0)
            elif (match := _BASE_OFFSET.search(operands)) and match[1] == register:
                yield base + int(match[2] or "0", 0)
        match = _ADRP.match(operands) if mnemonic == "adrp" else None
        page = (match[1], int(match[2], 0)) if match else None

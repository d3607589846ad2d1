"""The Go 1.18+ pclntab (`.gopclntab`): function names, entries and file:line (no I/O).

Layout (runtime/symtab.go, cmd/link/internal/ld/pcln.go): a pcHeader

    magic u32, 0, 0, minLC u8, ptrSize u8, nfunc, nfiles, textStart,
    then the offsets (from the header) of funcnametab, cutab, filetab, pctab, pclntab

(every field after ptrSize is ptrSize bytes), then those five tables in that order. The
pclntab starts with the functab, nfunc pairs (entryOff u32, funcOff u32) sorted by entry
and one last entryOff (the end of the last function); funcOff locates the function's
_func record in the pclntab, whose fields read here are

    entryOff u32, nameOff i32 (into funcnametab), args, deferreturn, pcsp,
    pcfile u32, pcln u32 (into pctab), npcdata, cuOffset u32 (into cutab, in 4-byte units)

Entries are offsets from the start of the text (runtime.text): the header's textStart
says where it is until Go 1.26, which writes 0 there (as the file of a PIE does too: a
dynamic relocation fills it), so the caller may give it. A pc-value table is a sequence
of (value delta, pc delta) varint pairs, the value delta zigzag-encoded, the pc delta in
units of minLC, ending at a zero value delta after the first pair.

Everything read is untrusted: every offset and count is checked against the data before
use, every loop is bounded by the bytes it consumes, and a table that does not hold
together is a PclntabError, never an IndexError, a hang or a huge allocation.
"""

from __future__ import annotations

import mmap
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import le
from typing import Literal

from gotop.errors import GotopError

Buffer = bytes | mmap.mmap  # what a pclntab is read from: indexed, sliced (to bytes) and searched (find)
MAGICS = {0xFFFFFFF0: "1.18", 0xFFFFFFF1: "1.20"}  # the header layouts of Go 1.18-1.19 and 1.20+
_OLD_MAGICS = {0xFFFFFFFB: "1.2-1.15", 0xFFFFFFFA: "1.16-1.17"}
_HEADER_WORDS = 8  # nfunc, nfiles, textStart and the five table offsets
_FUNC_FIELDS = 9  # u32 fields of _func up to cuOffset
# Then, since Go 1.20, startLine (4 bytes); then the byte funcID (abi.FuncID: runtime.main, wrapper, ...).
_FUNC_ID_AT = {"1.18": 4 * _FUNC_FIELDS, "1.20": 4 * _FUNC_FIELDS + 4}
_NO_FILE = 0xFFFFFFFF  # a cutab slot of a file the compilation unit does not use
_PCDATA_INLTREE = 2  # abi.PCDATA_InlTreeIndex: which inlined call a pc is in (-1: none)
_FUNCDATA_INLTREE = 3  # abi.FUNCDATA_InlTree: the inlined calls, an offset into go:func.*
_NO_FUNCDATA = 0xFFFFFFFF
# runtime.inlinedCall: (its size, where its function name offset is, where its parentPc is)
_INLINED_CALL = {"1.18": (20, 12, 16), "1.20": (16, 4, 8)}
_MAX_INLINE_DEPTH = 100
_MAX_VARINT_BYTES = 5  # a uint32


class PclntabError(GotopError):
    """The bytes are not a Go 1.18+ pclntab, or a part of it is corrupt (one line)."""


@dataclass(frozen=True, slots=True)
class Func:
    """A function of the binary: its name and its code [entry, end), link-time addresses."""

    name: str
    entry: int
    end: int
    func_id: int = 0  # abi.FuncID: which runtime function or compiler wrapper it is; 0 for the others


class Pclntab:
    """A parsed pclntab. It keeps `data` (bytes, or the file mapped: see sources/gobinary.py)
    and reads it on demand."""

    def __init__(self, data: Buffer, magic_version: str, byteorder: Literal["little", "big"], ptr_size: int,
                 quantum: int, text_start: int, tables: tuple[int, int, int, int, int],
                 entries: array, funcoffs: array) -> None:
        self._data = data
        self.magic_version = magic_version
        self.ptr_size = ptr_size
        self.text_start = text_start
        self._byteorder = byteorder
        self._quantum = quantum
        self._funcnametab, self._cutab, self._filetab, self._pctab, self._pclntab = tables
        self._entries = entries  # nfunc + 1 offsets from text_start: each function's entry, then the last end
        self._funcoffs = funcoffs  # nfunc offsets of the _func records, from the pclntab

    @classmethod
    def parse(cls, data: Buffer, *, base: int = 0, text_start: int | None = None) -> Pclntab:
        """Parse the `.gopclntab` section's bytes: `data` from `base` on. `text_start` (the address
        of runtime.text) replaces the header's textStart, which is 0 in Go 1.26+ and in the file of a PIE."""
        size = len(data) - base
        if size < 8:
            raise PclntabError(f"pclntab too short ({size} bytes)")
        byteorder: Literal["little", "big"]
        for byteorder in ("little", "big"):
            magic = int.from_bytes(data[base:base + 4], byteorder)
            if magic in MAGICS:
                break
            if magic in _OLD_MAGICS:
                raise PclntabError(f"a Go {_OLD_MAGICS[magic]} pclntab: only Go 1.18 and later are read")
        else:
            raise PclntabError(f"not a Go pclntab (magic {data[base:base + 4].hex()})")
        pad1, pad2, quantum, ptr_size = data[base + 4:base + 8]
        if pad1 or pad2 or quantum not in (1, 2, 4) or ptr_size not in (4, 8):
            raise PclntabError(f"bad pclntab header (pc quantum {quantum}, pointer size {ptr_size})")
        header_size = 8 + _HEADER_WORDS * ptr_size
        if size < header_size:
            raise PclntabError(f"pclntab too short ({size} bytes) for its header")
        words = [int.from_bytes(data[base + at:base + at + ptr_size], byteorder)
                 for at in range(8, header_size, ptr_size)]
        nfunc, _nfiles, header_text_start, funcnametab, cutab, filetab, pctab, pclntab = words
        if not header_size <= funcnametab <= cutab <= filetab <= pctab <= pclntab <= size:
            raise PclntabError("pclntab table offsets out of order or past its end")
        # The tables' offsets from here on count from the start of `data`.
        funcnametab, cutab, filetab, pctab, pclntab = (base + t for t in (funcnametab, cutab, filetab, pctab, pclntab))
        tables = (funcnametab, cutab, filetab, pctab, pclntab)
        start = header_text_start if text_start is None else text_start
        if start == 0:
            raise PclntabError("the pclntab does not say where the text starts (Go 1.26+ or a PIE): "
                               "text_start is needed")
        functab_size = (2 * nfunc + 1) * 4
        if functab_size > len(data) - pclntab:
            raise PclntabError(f"pclntab too short for its {nfunc} functions")
        functab = array("I", data[pclntab:pclntab + functab_size])  # "I" is 4 bytes on every platform Python runs on
        if byteorder != sys.byteorder:
            functab.byteswap()
        entries, funcoffs = functab[0::2], functab[1::2]
        if not all(map(le, entries, entries[1:])):
            raise PclntabError("pclntab functions are not sorted by address")
        if nfunc and max(funcoffs) > len(data) - pclntab - _FUNC_ID_AT[MAGICS[magic]] - 1:
            raise PclntabError("a pclntab function record lies past the table's end")
        return cls(data, MAGICS[magic], byteorder, ptr_size, quantum, start, tables, entries, funcoffs)

    def __len__(self) -> int:
        return len(self._funcoffs)

    def funcs(self) -> Iterator[Func]:
        """Every function, in address order."""
        for index in range(len(self)):
            yield self._func(index)

    def func_named(self, name: str) -> Func | None:
        """The function of that name; None if there is none. Where several share it (an
        assembly function and its ABI wrapper), the first in address order.

        Looks the name up in the name table, then for the _func records that point at it,
        both with bytes.find: no pass over every function in Python (a big binary has 100k+).
        Each compilation unit writes the names it uses: a name can be there more than once."""
        needle = name.encode() + b"\0"
        found = []
        at = self._funcnametab - 1
        while (at := self._data.find(needle, at + 1, self._cutab)) >= 0:
            if at == self._funcnametab or self._data[at - 1] == 0:  # a name, not the tail of a longer one
                index = self._first_record_named(at - self._funcnametab, name)
                if index is not None:
                    found.append(index)
        return self._func(min(found)) if found else None

    def _first_record_named(self, name_offset: int, name: str) -> int | None:
        """The index of the first function whose _func points at that name. The records
        lie in functab order (the linker writes them so): a bisection finds the function a
        hit in the pclntab would be, and the name read back confirms it. Inlined functions
        have a name but no record."""
        key = name_offset.to_bytes(4, self._byteorder)
        hit = self._pclntab
        while (hit := self._data.find(key, hit + 1)) >= 0:
            record = hit - 4 - self._pclntab
            index = bisect_left(self._funcoffs, record)
            if index < len(self) and self._funcoffs[index] == record and self._func(index).name == name:
                return index
        return None

    def func_at(self, pc: int) -> Func | None:
        """The function whose code holds `pc`; None outside every function."""
        index = self._index_at(pc)
        return None if index is None else self._func(index)

    def outermost_inlined(self, pc: int, read_gofunc: Callable[[int, int], bytes]) -> str | None:
        """The name of the function inlined into `pc`'s function that holds `pc`, the
        outermost one where inlined calls nest (as a traceback names the frame the
        function's own body called); None where `pc` is the function's own code.

        `read_gofunc(offset, size)` reads the binary's go:func.* data, where the
        inline trees are (funcdata offsets count from its start)."""
        index = self._index_at(pc)
        if index is None or (tables := self._inline_tables(index)) is None:
            return None
        return self._outermost(index, *tables, pc, read_gofunc)

    def first_inlined(self, func: Func, read_gofunc: Callable[[int, int], bytes]) -> tuple[str, int] | None:
        """The outermost function inlined into `func` at the first pc of `func` that is inlined
        code, and that pc; None if `func` has no inlined code. The pc-value table of the inline
        tree says where each inlined stretch starts: no instruction needs decoding."""
        index = self._index_at(func.entry)
        if index is None or (tables := self._inline_tables(index)) is None:
            return None
        start = func.entry
        for node, end in self._pc_steps(tables[0], func.entry, func.end - 1):
            if node >= 0:
                name = self._outermost(index, *tables, start, read_gofunc)
                return None if name is None else (name, start)
            start = end
        return None

    def _inline_tables(self, index: int) -> tuple[int, int] | None:
        """Function `index`'s inline-tree pc-value table (an offset in pctab) and its inline
        tree (an offset in go:func.*); None if it has none."""
        at = self._pclntab + self._funcoffs[index] + _FUNC_ID_AT[self.magic_version] + 4
        npcdata, nfuncdata = self._fields(index)[7], self._data[at - 1]
        if npcdata <= _PCDATA_INLTREE or nfuncdata <= _FUNCDATA_INLTREE:
            return None
        if at + 4 * (npcdata + nfuncdata) > len(self._data):
            raise PclntabError(f"pclntab function {index}: its pcdata run past the table's end")
        table, tree = self._u32(at + 4 * _PCDATA_INLTREE), self._u32(at + 4 * (npcdata + _FUNCDATA_INLTREE))
        return None if table == 0 or tree == _NO_FUNCDATA else (table, tree)

    def _outermost(self, index: int, table: int, tree: int, pc: int, read_gofunc: Callable[[int, int], bytes]
                   ) -> str | None:
        entry, end = self.text_start + self._entries[index], self.text_start + self._entries[index + 1]
        size, name_at, parent_at = _INLINED_CALL[self.magic_version]
        node = self._pc_value(table, entry, pc)
        for _ in range(_MAX_INLINE_DEPTH):
            if node is None or node < 0:
                return None
            call = read_gofunc(tree + node * size, size)
            parent_pc = entry + int.from_bytes(call[parent_at:parent_at + 4], self._byteorder, signed=True)
            parent = self._pc_value(table, entry, parent_pc) if entry <= parent_pc < end else None
            if parent is None or parent < 0:
                name_offset = int.from_bytes(call[name_at:name_at + 4], self._byteorder, signed=True)
                if not 0 <= name_offset < self._cutab - self._funcnametab:
                    raise PclntabError(f"an inline tree of pclntab function {index} names nothing")
                return self._string(self._funcnametab, name_offset, self._cutab)
            node = parent
        raise PclntabError(f"the inline tree of pclntab function {index} nests without end")

    def line_of(self, pc: int) -> tuple[str, int] | None:
        """The source file and line of the code at `pc` (of the inlined function where it
        was inlined, as the runtime's tracebacks say); None if the table does not say."""
        index = self._index_at(pc)
        if index is None:
            return None
        fields = self._fields(index)
        entry = self.text_start + self._entries[index]
        file_number = self._pc_value(fields[5], entry, pc)
        line = self._pc_value(fields[6], entry, pc)
        if file_number is None or line is None or file_number < 0 or line < 0:
            return None
        slot = self._cutab + (fields[8] + file_number) * 4
        if slot + 4 > self._filetab:
            raise PclntabError(f"file number {file_number} past the pclntab's cutab")
        file_offset = self._u32(slot)
        if file_offset == _NO_FILE:
            return None
        return self._string(self._filetab, file_offset, self._pctab), line

    # -- reading ----------------------------------------------------------------

    def _index_at(self, pc: int) -> int | None:
        offset = pc - self.text_start
        if not self._entries or not self._entries[0] <= offset < self._entries[-1]:
            return None
        return bisect_right(self._entries, offset, 0, len(self)) - 1

    def _func(self, index: int) -> Func:
        fields = self._fields(index)
        if fields[0] != self._entries[index]:
            raise PclntabError(f"pclntab function {index}: entry {fields[0]:#x} differs from the functab's")
        name = self._string(self._funcnametab, fields[1], self._cutab)
        func_id = self._data[self._pclntab + self._funcoffs[index] + _FUNC_ID_AT[self.magic_version]]
        return Func(name, self.text_start + self._entries[index], self.text_start + self._entries[index + 1], func_id)

    def _fields(self, index: int) -> tuple[int, ...]:
        """The first u32 fields of a function's _func record (parse checked it is in the data)."""
        at = self._pclntab + self._funcoffs[index]
        return tuple(self._u32(at + 4 * i) for i in range(_FUNC_FIELDS))

    def _u32(self, at: int) -> int:
        return int.from_bytes(self._data[at:at + 4], self._byteorder)

    def _string(self, table: int, offset: int, table_end: int) -> str:
        """The NUL-terminated string at `offset` in the table [table, table_end)."""
        start = table + offset
        end = self._data.find(b"\0", start, table_end) if offset < table_end - table else -1
        if end < 0:
            raise PclntabError(f"pclntab string at {offset:#x} runs past its table")
        return self._data[start:end].decode("utf-8", "replace")

    def _pc_value(self, table_offset: int, entry: int, pc: int) -> int | None:
        """The value of a pc-value table (at `table_offset` in pctab) at `pc`; None where
        the table has no value (offset 0: no table, or past its end)."""
        if table_offset == 0:
            return None
        for value, end in self._pc_steps(table_offset, entry, pc):
            if pc < end:
                return value
        return None

    def _pc_steps(self, table_offset: int, entry: int, until: int) -> Iterator[tuple[int, int]]:
        """Each step of a pc-value table from the function's `entry` on: its value and the pc
        where it ends, up to the step that holds pc `until` or the table's end. Every step
        but the first moves the pc on, so a table that takes more steps to reach `until` is corrupt."""
        at = self._pctab + table_offset
        value, current = -1, entry
        for step_number in range((until - entry) // self._quantum + 2):
            if at >= self._pclntab:
                raise PclntabError(f"pc-value table at {table_offset:#x} runs past the pctab")
            delta, at = self._varint(at)
            if delta == 0 and step_number:
                return  # the table's end
            value += -((delta + 1) >> 1) if delta & 1 else delta >> 1
            step, at = self._varint(at)
            current += step * self._quantum
            yield value, current
            if until < current:
                return
        raise PclntabError(f"pc-value table at {table_offset:#x} does not move the pc on")

    def _varint(self, at: int) -> tuple[int, int]:
        """A uint32 varint in pctab at `at`; returns it and where the next one starts."""
        value = 0
        for i in range(_MAX_VARINT_BYTES):
            if at + i >= self._pclntab:
                break
            byte = self._data[at + i]
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                return value & 0xFFFFFFFF, at + i + 1
        raise PclntabError(f"bad varint at {at - self._pctab:#x} in the pctab")


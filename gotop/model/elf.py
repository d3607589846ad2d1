"""An ELF file's headers, read by hand: class, byte order, type, machine, program
headers and named section headers.

Discovery reads every process's executable with it (is it Go, which release), and the
memory source a Go binary's segments, sections and symbol table. pyelftools reads
headers too, but importing it cost the TUI 2.5 MB of RSS (tracemalloc and /proc, 20
processes watched, against a goal of 60 MB in all): it is imported for DWARF alone,
which is read only where no layout table fits the binary's Go release.

Everything read is untrusted: each table has a cap, and only the byte ranges needed
are read (seek + read), so a hostile file can make us neither read nor allocate much.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

MAX_PROGRAM_HEADERS = 256
MAX_SECTION_HEADERS = 4096
MAX_SECTION_NAMES = 64 << 10  # bytes of the section name table read

ET_DYN = 3  # a shared object or a PIE
PT_LOAD = 1
PT_NOTE = 4
PF_X = 0x1
PF_W = 0x2
SHT_NOBITS = 8  # a section with no bytes in the file (.bss)
SHF_WRITE = 0x1
SHF_ALLOC = 0x2


class ElfError(Exception):
    """The file starts as ELF but its headers are corrupt; the message says why (one line)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A program header."""

    type: int
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int
    align: int

    @property
    def end(self) -> int:
        """End of the segment in memory; past `filesz` it is zero-filled (.bss)."""
        return self.vaddr + max(self.filesz, self.memsz)


@dataclass(frozen=True, slots=True)
class Section:
    """A section header, with its name."""

    name: str
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int


@dataclass(frozen=True, slots=True)
class ElfHeaders:
    is64: bool
    order: str  # struct's byte order: "<" or ">"
    type: int  # e_type (ET_DYN: a PIE)
    machine: int  # e_machine
    segments: tuple[Segment, ...]
    sections: tuple[Section, ...]  # () when there are none, or no section name table
    file_size: int

    def section(self, name: str) -> Section | None:
        return next((section for section in self.sections if section.name == name), None)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Struct formats of one ELF class and byte order."""

    header: struct.Struct  # e_type .. e_shstrndx, after the 16-byte e_ident
    phdr: struct.Struct
    shdr: struct.Struct
    is64: bool

    @classmethod
    def of(cls, is64: bool, order: str) -> _Layout:
        if is64:
            return cls(struct.Struct(order + "HHIQQQIHHHHHH"), struct.Struct(order + "IIQQQQQQ"),
                       struct.Struct(order + "IIQQQQIIQQ"), True)
        return cls(struct.Struct(order + "HHIIIIIHHHHHH"), struct.Struct(order + "IIIIIIII"),
                   struct.Struct(order + "IIIIIIIIII"), False)

    def segment(self, raw: bytes) -> Segment:
        if self.is64:
            p_type, flags, offset, vaddr, _paddr, filesz, memsz, align = self.phdr.unpack(raw)
        else:
            p_type, offset, vaddr, _paddr, filesz, memsz, flags, align = self.phdr.unpack(raw)
        return Segment(p_type, flags, offset, vaddr, filesz, memsz, align)


def read_headers(file: BinaryIO) -> ElfHeaders | None:
    """The headers of an ELF file; None if it is not one, ElfError if they are corrupt.
    OSError from the file propagates."""
    size = file.seek(0, os.SEEK_END)
    ident = read_at(file, size, 0, 16)
    if not ident.startswith(b"\x7fELF"):
        return None
    if len(ident) < 16:
        raise ElfError("truncated ELF header")
    if ident[4] not in (1, 2):
        raise ElfError(f"unknown ELF class {ident[4]}")
    if ident[5] not in (1, 2):
        raise ElfError(f"unknown ELF byte order {ident[5]}")
    order = "<" if ident[5] == 1 else ">"
    layout = _Layout.of(ident[4] == 2, order)
    raw = _read_exact(file, size, 16, layout.header.size, "ELF header")
    (e_type, machine, _version, _entry, phoff, shoff, _flags, _ehsize,
     phentsize, phnum, shentsize, shnum, shstrndx) = layout.header.unpack(raw)
    segments = tuple(layout.segment(entry) for entry in
                     _table(file, size, phoff, phentsize, phnum, layout.phdr.size, MAX_PROGRAM_HEADERS, "program"))
    raw_sections = _table(file, size, shoff, shentsize, shnum, layout.shdr.size, MAX_SECTION_HEADERS, "section")
    sections = _named_sections(file, size, layout, raw_sections, shstrndx) if raw_sections and shstrndx else ()
    return ElfHeaders(layout.is64, order, e_type, machine, segments, sections, size)


def read_at(file: BinaryIO, file_size: int, offset: int, size: int) -> bytes:
    """Up to `size` bytes at `offset` (fewer at the end of the file)."""
    size = min(size, file_size - offset)
    if offset < 0 or size <= 0:
        return b""
    file.seek(offset)
    chunks = []
    while size > 0:
        chunk = file.read(size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_exact(file: BinaryIO, file_size: int, offset: int, size: int, what: str) -> bytes:
    data = read_at(file, file_size, offset, size)
    if len(data) < size:
        raise ElfError(f"{what} lies beyond the end of the file")
    return data


def _table(file: BinaryIO, file_size: int, offset: int, entsize: int, count: int,
           want_entsize: int, max_count: int, kind: str) -> list[bytes]:
    """The entries of the program or section header table."""
    if count == 0 or offset == 0:
        return []
    if entsize != want_entsize:
        raise ElfError(f"ELF {kind} header size is {entsize}, expected {want_entsize}")
    if count > max_count:
        raise ElfError(f"ELF file has too many {kind} headers ({count})")
    raw = _read_exact(file, file_size, offset, entsize * count, f"ELF {kind} header table")
    return [raw[i:i + entsize] for i in range(0, len(raw), entsize)]


def _named_sections(file: BinaryIO, file_size: int, layout: _Layout, raw: list[bytes],
                    names_index: int) -> tuple[Section, ...]:
    if names_index >= len(raw):
        raise ElfError(f"ELF section name table index {names_index} is out of range")
    names_header = layout.shdr.unpack(raw[names_index])
    names = _read_exact(file, file_size, names_header[4], min(names_header[5], MAX_SECTION_NAMES),
                        "ELF section name table")
    sections = []
    for entry in raw:
        name_at, kind, flags, addr, offset, size, link = layout.shdr.unpack(entry)[:7]
        end = names.find(b"\0", name_at)
        name = names[name_at:end].decode("utf-8", "replace") if 0 <= end else ""
        sections.append(Section(name, kind, flags, addr, offset, size, link))
    return tuple(sections)

"""ELF surgery on real binaries for the build info tests.

Finds the byte ranges a build info reader depends on (ELF header, program and
section header tables, the build info blob and the strings it points at) and
patches header fields. Written independently of gotop.discovery.buildinfo on
purpose: the tests use it to aim mutations, not to compute expected results.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = b"\xff Go buildinf:"
BLOB_WINDOW = 4096  # the blob header plus its inline strings, for the targets built here


@dataclass(frozen=True)
class Elf:
    """Header fields of an ELF image and where they live."""

    data: bytes
    is64: bool
    order: str  # struct byte order: "<" or ">"

    @classmethod
    def of(cls, data: bytes) -> Elf:
        assert data[:4] == b"\x7fELF", "not an ELF file"
        return cls(data, data[4] == 2, "<" if data[5] == 1 else ">")

    # (offset, struct format) of the header fields the tests touch
    def field(self, name: str) -> tuple[int, str]:
        if self.is64:
            table = {"phoff": (32, "Q"), "shoff": (40, "Q"), "phentsize": (54, "H"), "phnum": (56, "H"),
                     "shentsize": (58, "H"), "shnum": (60, "H"), "shstrndx": (62, "H")}
        else:
            table = {"phoff": (28, "I"), "shoff": (32, "I"), "phentsize": (42, "H"), "phnum": (44, "H"),
                     "shentsize": (46, "H"), "shnum": (48, "H"), "shstrndx": (50, "H")}
        return table[name]

    def get(self, name: str) -> int:
        offset, fmt = self.field(name)
        return struct.unpack_from(self.order + fmt, self.data, offset)[0]

    @property
    def header_size(self) -> int:
        return 64 if self.is64 else 52

    def segments(self) -> list[tuple[int, int, int, int]]:
        """(p_type, p_offset, p_vaddr, p_filesz) of every program header."""
        out = []
        for i in range(self.get("phnum")):
            at = self.get("phoff") + i * self.get("phentsize")
            if self.is64:
                p_type, _flags, offset, vaddr, _paddr, filesz = struct.unpack_from(self.order + "IIQQQQ", self.data, at)
            else:
                p_type, offset, vaddr, _paddr, filesz = struct.unpack_from(self.order + "IIIII", self.data, at)
            out.append((p_type, offset, vaddr, filesz))
        return out

    def file_offset(self, vaddr: int) -> int:
        for p_type, offset, start, filesz in self.segments():
            if p_type == 1 and start <= vaddr < start + filesz:
                return offset + vaddr - start
        raise LookupError(f"vaddr {vaddr:#x} is not in the file")

    def section(self, name: str) -> tuple[int, int, int]:
        """(offset of its section header, sh_offset, sh_size) of a named section."""
        fmt = self.order + ("IIQQQQ" if self.is64 else "IIIIII")
        entsize, base = self.get("shentsize"), self.get("shoff")
        names_offset = struct.unpack_from(fmt, self.data, base + self.get("shstrndx") * entsize)[4]
        for i in range(self.get("shnum")):
            at = base + i * entsize
            name_at, _type, _flags, _addr, offset, size = struct.unpack_from(fmt, self.data, at)
            start = names_offset + name_at
            if self.data[start:self.data.index(b"\x00", start)] == name.encode():
                return at, offset, size
        raise LookupError(f"no section {name}")

    def blob_offset(self) -> int:
        """File offset of the build info blob (its first 16-aligned magic)."""
        at = self.data.find(MAGIC)
        while at % 16:
            at = self.data.find(MAGIC, at + 1)
        assert at >= 0, "no build info blob"
        return at

    def pointer_layout_strings(self) -> list[tuple[int, int]]:
        """(offset, length) of the string headers and strings of a Go 1.13-1.17
        blob that lie in the file (a header in .bss is not in the file)."""
        blob = self.blob_offset()
        ptr_size, flags = self.data[blob + 14], self.data[blob + 15]
        word = (">" if flags & 1 else "<") + ("I" if ptr_size == 4 else "Q")
        out = []
        for slot in (16, 16 + ptr_size):
            try:
                header_at = self.file_offset(struct.unpack_from(word, self.data, blob + slot)[0])
            except LookupError:
                continue
            out.append((header_at, 2 * ptr_size))
            data_ptr, length = struct.unpack_from(word, self.data, header_at)[0], \
                struct.unpack_from(word, self.data, header_at + ptr_size)[0]
            if length:
                out.append((self.file_offset(data_ptr), length))
        return out

    def regions(self) -> list[tuple[int, int]]:
        """(offset, length) of every byte range the build info depends on."""
        blob = self.blob_offset()
        out = [
            (0, self.header_size),
            (self.get("phoff"), self.get("phnum") * self.get("phentsize")),
            (self.get("shoff"), self.get("shnum") * self.get("shentsize")),
            (blob, min(BLOB_WINDOW, len(self.data) - blob)),
        ]
        if not self.data[blob + 15] & 2:
            out += self.pointer_layout_strings()
        return out


def patched(data: bytes, elf: Elf, **fields: int) -> bytes:
    """A copy of `data` with ELF header fields set, e.g. patched(d, e, shnum=0)."""
    out = bytearray(data)
    for name, value in fields.items():
        offset, fmt = elf.field(name)
        struct.pack_into(elf.order + fmt, out, offset, value)
    return bytes(out)


def without_section_headers(data: bytes) -> bytes:
    """What sstrip does: the section header table is gone, the segments stay."""
    return patched(data, Elf.of(data), shoff=0, shnum=0, shstrndx=0)


def without_go_note(data: bytes) -> bytes:
    """`data` with the name of the Go build ID note changed in every PT_NOTE segment."""
    out = bytearray(data)
    for p_type, offset, _vaddr, filesz in Elf.of(data).segments():
        if p_type == 4:
            out[offset:offset + filesz] = out[offset:offset + filesz].replace(b"Go\x00\x00", b"Xx\x00\x00")
    return bytes(out)


def overwrite(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new):]

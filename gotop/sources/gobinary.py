"""Open a Go ELF binary (a path, or /proc/PID/exe): what reading its runtime needs.

GoBinary.open reads the headers (gotop.model.elf) and keeps only what is used later: the
pclntab (function names, files and lines: every Go binary has it, stripped or not), the
data symbols where there is a symbol table, the PT_LOAD segments (to turn an address
into a file offset) and whether there is DWARF. Code and DWARF are read from the file
again when asked, so a 150 MB binary does not stay in memory; the file is checked to be
the one opened (a binary replaced meanwhile is an error, not other bytes).

The pclntab is mapped from the file, not read: it is 6-14 MB in Debian's etcd,
containerd, prometheus and caddy, of which a reading touches a few pages (the functions
it names), and the pages are the page cache's, shared with the process that runs the
binary. Read into memory, every distinct binary on the host cost gotop that much RSS for
as long as it ran. (A mapped file truncated in place would fault where read, as it would
in the process that runs it; installers and build tools write a new file and rename it.)

Where the pclntab is: its section (.gopclntab; .data.rel.ro.gopclntab in the PIEs of Go
1.18-1.25); else between the symbols runtime.pclntab and runtime.epclntab; else, stripped,
where its header's magic is and the moduledata points (a C linker merges a PIE's
.data.rel.ro.gopclntab into .data.rel.ro).

Where the text starts (the pclntab's entries are offsets from runtime.text): the symbol
runtime.text; else the `text` field of the runtime's moduledata, found in the writable
data by its first two words (the pclntab's address and that of its name table); else the
.text section's address. The pclntab header's textStart is not used: Go 1.26+ leaves it
0, as does the file of a PIE. The moduledata matters when an external linker put C
start-up code before the Go text (cgo builds): the .text section starts before
runtime.text there, and the -s -w builds have no runtime.text symbol.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Literal

from gotop.errors import GotopError
from gotop.model.elf import (
    ET_DYN,
    PF_W,
    PF_X,
    PT_LOAD,
    SHF_ALLOC,
    SHF_WRITE,
    SHT_NOBITS,
    ElfError,
    ElfHeaders,
    Section,
    Segment,
    read_headers,
)
from gotop.model.machinecode import (
    ARCHES,
    RefSignature,
    call_targets,
    derive_signatures,
    resolve_globals,
)
from gotop.model.pclntab import MAGICS, Func, Pclntab, PclntabError

if TYPE_CHECKING:  # pyelftools is loaded for DWARF alone (see gotop.model.elf)
    from elftools.dwarf.dwarfinfo import DWARFInfo

# e_machine -> GOARCH: EM_X86_64, EM_AARCH64, EM_386, EM_ARM, EM_RISCV, EM_S390, EM_PPC64, EM_MIPS, EM_LOONGARCH
_ARCHES = {62: "amd64", 183: "arm64", 3: "386", 40: "arm", 243: "riscv64", 22: "s390x", 21: "ppc64", 8: "mips",
           258: "loong64"}
_PCLNTAB_SECTIONS = (".gopclntab", ".data.rel.ro.gopclntab")  # the second in PIEs of Go 1.18-1.25
_MAX_PCLNTAB = 1 << 30  # the biggest binaries seen have 40 MB
_MAX_SYMTAB = 256 << 20
_SCAN_CHUNK = 16 << 20  # data searched for the moduledata or the pclntab a chunk at a time
_MAX_FUNCTION = 1 << 20  # bytes of one function's code read
# The runtime's moduledata (Go 1.16-1.27): pcHeader, 6 slices (funcnametab, cutab, filetab,
# pctab, pclntable, ftab), findfunctab, minpc, maxpc, text, etext.
_MODULEDATA_WORDS = 24
_PCLNTABLE_WORD = 13
_TEXT_WORD = 22
_GOFUNC_SYMBOLS = ("go:func.*", "go.func.*")  # Go 1.20+, before
_STT_OBJECT = 1
_STT_FUNC = 2


class BinaryError(GotopError):
    """The file cannot be read as a Go binary; the message says why, in one line."""


@dataclass(frozen=True)
class GoBinary:
    """A Go ELF binary: its pclntab, data symbols and segments (link-time addresses)."""

    path: str
    arch: str  # GOARCH: "amd64", "arm64", ...
    ptr_size: int
    pie: bool  # ET_DYN: addresses are link-time, the process adds its load bias
    symbols: Mapping[str, tuple[int, int]]  # data symbols (STT_OBJECT): name -> (address, size); {} if stripped
    pclntab: Pclntab
    has_dwarf: bool
    segments: tuple[Segment, ...]  # the PT_LOAD ones: `filesz` bytes at `offset` in the file are mapped at `vaddr`
    gofunc: int  # where go:func.* starts (the inline trees are there): its symbol; 0 if stripped
    moduledata: int  # where runtime.firstmoduledata is (it says where go:func.* is); 0 if not found
    _identity: tuple[int, ...] = field(repr=False, compare=False)  # (st_dev, st_ino, st_size, st_mtime_ns)

    @classmethod
    def open(cls, path: str) -> GoBinary:
        """Read a Go ELF binary's headers, symbols and pclntab; BinaryError if it is not one."""
        with _opened(path, None) as (file, identity):
            try:
                return cls._read(path, file, identity)
            except (ElfError, struct.error, ValueError) as exc:
                raise BinaryError(f"{path}: corrupt or truncated ELF file ({_first_line(exc)})") from None

    @property
    def dwarf(self) -> DWARFInfo | None:
        """The DWARF (pyelftools; compressed sections too), read from the file at each use:
        keep it only while needed. None when the binary has none (built with -w or -s)."""
        if not self.has_dwarf:
            return None
        from elftools.common.exceptions import ELFError
        from elftools.construct import ConstructError
        from elftools.elf.elffile import ELFFile

        with _opened(self.path, self._identity) as (file, _):
            try:
                return ELFFile(file).get_dwarf_info()
            except (ELFError, ConstructError, struct.error, ValueError) as exc:
                raise BinaryError(f"{self.path}: corrupt DWARF ({_first_line(exc)})") from None

    def global_address(self, name: str, signatures: Sequence[RefSignature]) -> tuple[int, str] | None:
        """Where the variable `name` is, and how that was found: "symbol table", or
        "machine code" (its signatures, in a stripped binary). None when neither says."""
        if name in self.symbols:
            return self.symbols[name][0], "symbol table"
        if not signatures or self.arch not in ARCHES:
            return None
        with self._code_reader() as read_code:
            address = resolve_globals(self.pclntab, read_code, self.arch, {name: signatures}).get(name)
        if address is None or not self._in_data(address):
            return None
        return address, "machine code"

    def derive_signatures(self, wanted: Sequence[str]) -> dict[str, list[RefSignature]]:
        """Signatures of the wanted variables, from this binary's symbols and code (see
        machinecode.derive_signatures); {} without a symbol table or a known arch."""
        if not self.symbols or self.arch not in ARCHES:
            return {}
        with self._code_reader() as read_code:
            return derive_signatures(self.pclntab, self.symbols, read_code, self.arch, wanted)

    def gofunc_at(self, gofunc_offset: int) -> int:
        """Where go:func.* starts: its symbol, else the moduledata's word at `gofunc_offset`
        (the release's layout says where it is); 0 when neither is found."""
        if self.gofunc or not self.moduledata:
            return self.gofunc
        try:
            address = int.from_bytes(self.read(self.moduledata + gofunc_offset, self.ptr_size), "little")
        except BinaryError:
            return 0
        with _opened(self.path, self._identity) as (file, _):
            try:
                headers = read_headers(file)
            except ElfError as exc:
                raise BinaryError(f"{self.path}: corrupt or truncated ELF file ({exc})") from None
            return address if headers and _in_read_only_data(headers, address) else 0

    def wrapped_function(self, wrapper: Func, gofunc: int) -> tuple[str, int] | None:
        """The function a compiler-made wrapper calls (`go f(x)` starts f through a wrapper,
        which tracebacks hide), and a pc to take its file and line from: f inlined into
        the wrapper (the pclntab's inline tree says), else the wrapper's first direct call
        outside the runtime (which it calls to grow its stack or check for races).
        None when neither is found, or for another arch. `gofunc`: see gofunc_at; 0 (not
        found) is None too: without the inline tree, the first call may be one that the
        inlined f makes (a WaitGroup's Done), and a wrong name is worse than the wrapper's."""
        if self.arch not in ARCHES or not gofunc:
            return None
        with _opened(self.path, self._identity) as (file, _):
            def read_gofunc(offset: int, size: int) -> bytes:
                return self._read_at(file, gofunc + offset, size)
            if (inlined := self.pclntab.first_inlined(wrapper, read_gofunc)) is not None:
                return inlined
            code = self._read_at(file, wrapper.entry, min(wrapper.end - wrapper.entry, _MAX_FUNCTION))
        for target in call_targets(code, wrapper.entry, self.arch):
            func = self.pclntab.func_at(target)
            if func is not None and func.entry == target and not func.name.startswith("runtime."):
                return func.name, func.entry
        return None

    def read(self, address: int, size: int) -> bytes:
        """`size` bytes of the file mapped at link-time `address` (BinaryError if not all are)."""
        with _opened(self.path, self._identity) as (file, _):
            return self._read_at(file, address, size)

    # -- reading ----------------------------------------------------------------

    @classmethod
    def _read(cls, path: str, file: BinaryIO, identity: tuple[int, ...]) -> GoBinary:
        elf = read_headers(file)
        if elf is None:
            raise BinaryError(f"{path}: not an ELF file")
        if not elf.sections:
            raise BinaryError(f"{path}: no section headers (stripped by sstrip?): its pclntab cannot be found")
        names = {section.name for section in elf.sections}
        segments = tuple(segment for segment in elf.segments if segment.type == PT_LOAD)
        end = max([seg.offset + seg.filesz for seg in segments] + [
            section.offset + section.size for section in elf.sections if section.type != SHT_NOBITS], default=0)
        if end > identity[2]:
            raise BinaryError(f"{path}: truncated ({identity[2]} bytes, its sections end at {end})")
        symbols, text_symbol = _symbols(path, file, elf)
        word = struct.Struct(elf.order + ("Q" if elf.is64 else "I"))
        pclntab_address, offset, size = _pclntab_place(path, file, elf, names, symbols, segments, word)
        data, base = _map(file, offset, size)
        text = elf.section(".text")
        if text is None:
            raise BinaryError(f"{path}: no .text section")
        text_start = text_symbol
        moduledata_address = symbols.get("runtime.firstmoduledata", (0, 0))[0]
        header = data[base:base + 8 + 8 * word.size]
        if text_start is None and (found := _moduledata(file, segments, word, pclntab_address, header)):
            address, moduledata = found
            if text.addr <= moduledata[_TEXT_WORD] < text.addr + text.size:
                text_start, moduledata_address = moduledata[_TEXT_WORD], address
        gofunc = next((symbols[name][0] for name in _GOFUNC_SYMBOLS if name in symbols), 0)
        try:
            pclntab = Pclntab.parse(data, base=base, text_start=text_start or text.addr)
        except PclntabError as exc:
            raise BinaryError(f"{path}: {exc}") from None
        arch = _ARCHES.get(elf.machine, f"ELF machine {elf.machine}")
        return cls(
            path=path,
            arch=arch + "le" if arch == "ppc64" and elf.order == "<" else arch,
            ptr_size=8 if elf.is64 else 4,
            pie=elf.type == ET_DYN,
            symbols=symbols,
            pclntab=pclntab,
            has_dwarf=bool(names & {".debug_info", ".zdebug_info"}),
            segments=segments,
            gofunc=gofunc,
            moduledata=moduledata_address,
            _identity=identity,
        )

    @contextmanager
    def _code_reader(self) -> Iterator[Callable[[Func], bytes]]:
        """A function's code, read from the file (opened once for all the reads)."""
        with _opened(self.path, self._identity) as (file, _):
            yield lambda func: self._read_at(file, func.entry, min(func.end - func.entry, _MAX_FUNCTION))

    def _read_at(self, file: BinaryIO, address: int, size: int) -> bytes:
        data = _read_mapped(file, self.segments, address, size)
        if data is None:
            raise BinaryError(f"{self.path}: {size} bytes at {address:#x} are not in the file")
        return data

    def _in_data(self, address: int) -> bool:
        """In a segment of data (not code): where a variable can be."""
        return any(s.vaddr <= address < s.vaddr + s.memsz and not s.flags & PF_X for s in self.segments)


@contextmanager
def _opened(path: str, identity: tuple[int, ...] | None) -> Iterator[tuple[BinaryIO, tuple[int, ...]]]:
    """The regular file at `path` and its identity; BinaryError if it cannot be read, or
    is no longer the file of that identity (replaced since it was opened)."""
    try:
        # O_NONBLOCK: a FIFO given by mistake must not hang the open.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise BinaryError(f"{path}: cannot open ({exc.strerror or exc})") from None
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        raise BinaryError(f"{path}: not a regular file")
    with open(fd, "rb") as file:
        now = (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)
        if identity is not None and now != identity:
            raise BinaryError(f"{path}: the file changed since it was opened")
        try:
            yield file, now
        except OSError as exc:
            raise BinaryError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _pclntab_place(path: str, file: BinaryIO, elf: ElfHeaders, names: set[str], symbols: Mapping[str, tuple[int, int]],
                   segments: Sequence[Segment], word: struct.Struct) -> tuple[int, int, int]:
    """The pclntab's address, offset in the file and size: its section, else where the
    symbols runtime.pclntab and runtime.epclntab say, else where its header and the
    moduledata are (a C linker merges the .data.rel.ro.gopclntab of a PIE into .data.rel.ro)."""
    section = next((elf.section(name) for name in _PCLNTAB_SECTIONS if name in names), None)
    if section is not None:
        if section.type == SHT_NOBITS or section.size > _MAX_PCLNTAB:
            raise BinaryError(f"{path}: section {section.name} has no bytes in the file or is too big "
                              f"({section.size} bytes)")
        return section.addr, section.offset, section.size  # in the file: checked against its size
    if "runtime.pclntab" in symbols and "runtime.epclntab" in symbols:
        start, end = symbols["runtime.pclntab"][0], symbols["runtime.epclntab"][0]
        offset = _file_offset(segments, start, end - start) if 0 < end - start <= _MAX_PCLNTAB else None
        if offset is None:
            raise BinaryError(f"{path}: truncated (its pclntab is not in the file)")
        return start, offset, end - start
    if ".go.buildinfo" not in names and ".note.go.buildid" not in names:
        raise BinaryError(f"{path}: not a Go binary (no .gopclntab section)")
    found = _pclntab_by_header(file, segments, word, "little" if elf.order == "<" else "big")
    if found is None:
        raise BinaryError(f"{path}: a Go binary without a .gopclntab section, and no Go 1.18+ pclntab found in it")
    return found


def _read_mapped(file: BinaryIO, segments: Sequence[Segment], address: int, size: int) -> bytes | None:
    """The `size` bytes of the file mapped at `address`; None unless all are in one segment."""
    offset = _file_offset(segments, address, size)
    if offset is None:
        return None
    file.seek(offset)
    data = file.read(size)
    return data if len(data) == size else None


def _file_offset(segments: Sequence[Segment], address: int, size: int) -> int | None:
    """Where in the file the `size` bytes mapped at `address` are; None unless all are in one segment."""
    for segment in segments:
        if segment.vaddr <= address and address + size <= segment.vaddr + segment.filesz:
            return segment.offset + address - segment.vaddr
    return None


def _map(file: BinaryIO, offset: int, size: int) -> tuple[mmap.mmap, int]:
    """The file's bytes [offset, offset + size) mapped read-only (see the module's doc), and where
    they start in the mapping (which starts at a page boundary)."""
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    try:
        return mmap.mmap(file.fileno(), offset + size - start, offset=start, access=mmap.ACCESS_READ), offset - start
    except (OSError, ValueError) as exc:  # past the end of the file (truncated meanwhile), or empty
        raise BinaryError(f"{getattr(file, 'name', 'binary')}: cannot map its pclntab ({exc})") from None


def _section_bytes(path: str, file: BinaryIO, section: Section, limit: int) -> bytes:
    offset, size = section.offset, section.size
    if section.type == SHT_NOBITS or size > limit:
        raise BinaryError(f"{path}: section {section.name} has no bytes in the file or is too big ({size} bytes)")
    file.seek(offset)
    data = file.read(size)
    if len(data) != size:
        raise BinaryError(f"{path}: truncated (section {section.name} ends past the end of the file)")
    return data


def _symbols(path: str, file: BinaryIO, elf: ElfHeaders) -> tuple[dict[str, tuple[int, int]], int | None]:
    """The data symbols of .symtab, name -> (address, size), and runtime.text's address.
    Unpacked here, not through pyelftools' per-symbol objects: 50 times faster (50k symbols)."""
    symtab = elf.section(".symtab")
    if symtab is None or symtab.link >= len(elf.sections):
        return {}, None
    entries = _section_bytes(path, file, symtab, _MAX_SYMTAB)
    strings = _section_bytes(path, file, elf.sections[symtab.link], _MAX_SYMTAB)
    # Elf64_Sym: name, info, other, shndx, value, size; Elf32_Sym: name, value, size, info, other, shndx
    layout = struct.Struct(elf.order + ("IBBHQQ" if elf.is64 else "IIIBBH"))
    symbols: dict[str, tuple[int, int]] = {}
    text_start = None
    for entry in layout.iter_unpack(entries[:len(entries) - len(entries) % layout.size]):
        if elf.is64:
            name_at, info, _other, _shndx, value, size = entry
        else:
            name_at, value, size, info, _other, _shndx = entry
        kind = info & 0xF
        if kind == _STT_OBJECT:
            end = strings.find(b"\0", name_at)
            name = strings[name_at:end if end >= 0 else len(strings)].decode("utf-8", "replace")
            symbols.setdefault(name, (value, size))
        elif kind == _STT_FUNC and strings.startswith(b"runtime.text\0", name_at):
            text_start = value
    return symbols, text_start


def _moduledata(file: BinaryIO, segments: Sequence[Segment], word: struct.Struct, pclntab_address: int,
                pclntab_header: bytes) -> tuple[int, list[int]] | None:
    """The address and first words of the runtime's moduledata, or None if it is not found. It starts
    with the pcHeader's address then its funcnametab's (the header's fourth word after its
    8 fixed bytes), and lies in writable data (.go.module since Go 1.26, .noptrdata before,
    .data.rel.ro in some PIEs): two words found nowhere else."""
    if len(pclntab_header) < 8 + 4 * word.size:
        return None
    funcnametab = pclntab_address + word.unpack_from(pclntab_header, 8 + 3 * word.size)[0]
    if funcnametab >= 1 << (8 * word.size):
        return None
    needle = word.pack(pclntab_address) + word.pack(funcnametab)
    for segment in segments:
        if segment.flags & PF_W:
            for at in _find_aligned(file, segment, needle, word.size):
                raw = _read_mapped(file, segments, at, _MODULEDATA_WORDS * word.size)
                if raw is not None:
                    return at, [word.unpack_from(raw, i * word.size)[0] for i in range(_MODULEDATA_WORDS)]
    return None


def _pclntab_by_header(file: BinaryIO, segments: Sequence[Segment], word: struct.Struct,
                       byteorder: Literal["little", "big"]) -> tuple[int, int, int] | None:
    """The pclntab found by its header's magic in the data, confirmed by the moduledata
    that points at it, whose pclntable slice says where the pclntab ends: the way to it
    in a stripped binary whose C linker merged .gopclntab into another section."""
    for magic in MAGICS:
        needle = magic.to_bytes(4, byteorder) + b"\0\0"
        for segment in segments:
            if segment.flags & PF_X:
                continue
            for at in _find_aligned(file, segment, needle, word.size):
                header = _read_mapped(file, segments, at, 8 + 8 * word.size) or b""
                found = _moduledata(file, segments, word, at, header)
                if found is None:
                    continue
                moduledata = found[1]
                end = moduledata[_PCLNTABLE_WORD] + moduledata[_PCLNTABLE_WORD + 1]  # its address, its length
                offset = _file_offset(segments, at, end - at) if at < end <= at + _MAX_PCLNTAB else None
                if offset is not None:
                    return at, offset, end - at
    return None


def _find_aligned(file: BinaryIO, segment: Segment, needle: bytes, align: int) -> Iterator[int]:
    """The `align`-aligned addresses where `needle` is in the segment's bytes in the file,
    read a chunk at a time (the file may be read elsewhere between two)."""
    for done in range(0, segment.filesz, _SCAN_CHUNK):
        file.seek(segment.offset + done)
        chunk = file.read(min(_SCAN_CHUNK + len(needle) - 1, segment.filesz - done))
        at = chunk.find(needle)
        while 0 <= at < _SCAN_CHUNK:  # one past the chunk is the next one's
            if (segment.vaddr + done + at) % align == 0:
                yield segment.vaddr + done + at
            at = chunk.find(needle, at + 1)


def _in_read_only_data(elf: ElfHeaders, address: int) -> bool:
    return any(s.flags & (SHF_ALLOC | SHF_WRITE) == SHF_ALLOC and s.addr <= address < s.addr + s.size
               for s in elf.sections)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__

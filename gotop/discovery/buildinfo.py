"""Read the build information the Go linker embeds in an ELF binary.

`read_build_info(path_or_file)` answers "is this a Go program, and how was it
built?" the way `go version -m` does, without a Go toolchain:

- The linker writes a blob that starts with the 16-aligned magic
  ``"\\xff Go buildinf:"`` into the `.go.buildinfo` section (which, when
  section headers are stripped, we look for in the writable, non-executable
  PT_LOAD segments). Go >= 1.18 stores the version and module strings
  inline, each prefixed by a uvarint length; Go 1.13-1.17 stores two pointers
  to Go string headers, which we follow through the PT_LOAD segments.
- Binaries without the blob (Go < 1.13) still carry a `Go` ELF note (type 4,
  the Go build ID); they count as Go with an unknown version ("").

Everything read from the file is untrusted: every table, scan and string has a
size cap, and only the byte ranges needed are read (seek + read), so a hostile
file can neither make us read much nor allocate much. Apart from OSError from
the file itself, the only outcomes are a GoBuildInfo, None (not a Go ELF
binary) or BuildInfoError (an ELF file whose structure or build info is corrupt).
"""

from __future__ import annotations

import os
import stat
import string
import struct
from dataclasses import dataclass, replace
from typing import BinaryIO

from gotop.errors import GotopError
from gotop.model.elf import PF_W, PF_X, PT_LOAD, PT_NOTE, ElfError, ElfHeaders, read_at, read_headers

# Caps on what one read of a binary may cost. Real Go binaries need a few KiB.
MAX_BLOB_SCAN = 1 << 20  # bytes searched for the blob's magic (it is near the start of the data)
MAX_NOTE_BYTES = 64 << 10  # bytes of PT_NOTE segments searched for the Go note
MAX_VERSION_LEN = 4 << 10
MAX_MODINFO_LEN = 1 << 20

_MAGIC = b"\xff Go buildinf:"
_BLOB_ALIGN = 16
_BLOB_HEADER_SIZE = 32
_SCAN_CHUNK = 64 << 10
_FLAG_BIG_ENDIAN = 0x1
_FLAG_INLINE_STRINGS = 0x2
_MAX_VARINT_LEN = 10
# cmd/go frames the module info with two 16-byte sentinels; Go's reader only
# checks that the byte before the end sentinel is the last line's newline.
_SENTINEL_LEN = 16

_GO_NOTE_NAME = b"Go\x00\x00"
_GO_NOTE_BUILDID = 4


class BuildInfoError(GotopError):
    """The file is an ELF binary, but its structure or Go build info is corrupt."""


@dataclass(frozen=True, slots=True)
class Module:
    """A Go module as recorded in build info (`mod`, `dep` and `=>` lines)."""

    path: str
    version: str
    sum: str = ""
    replace: Module | None = None

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "version": self.version,
            "sum": self.sum,
            "replace": self.replace.to_json() if self.replace else None,
        }

    @classmethod
    def from_json(cls, data: dict) -> Module:
        replace = data.get("replace")
        return cls(data["path"], data["version"], data.get("sum", ""), cls.from_json(replace) if replace else None)


@dataclass(frozen=True, slots=True)
class GoBuildInfo:
    """What a Go binary says about its build. Empty fields mean "not recorded"
    (no module info in GOPATH builds; no version at all before Go 1.13)."""

    go_version: str
    path: str = ""
    main: Module | None = None
    deps: tuple[Module, ...] = ()
    settings: tuple[tuple[str, str], ...] = ()  # in the order the go command wrote them

    def setting(self, key: str) -> str | None:
        return next((value for k, value in self.settings if k == key), None)

    def to_json(self) -> dict:
        return {
            "go_version": self.go_version,
            "path": self.path,
            "main": self.main.to_json() if self.main else None,
            "deps": [dep.to_json() for dep in self.deps],
            "settings": dict(self.settings),
        }

    @classmethod
    def from_json(cls, data: dict) -> GoBuildInfo:
        main = data.get("main")
        return cls(
            data["go_version"], data.get("path", ""), Module.from_json(main) if main else None,
            tuple(Module.from_json(d) for d in data.get("deps", ())), tuple(data.get("settings", {}).items()),
        )


def read_build_info(source: str | os.PathLike | BinaryIO) -> GoBuildInfo | None:
    """Build info of a Go ELF binary; None when `source` is not one.

    `source` is a path (anything but a regular file is "not Go") or a seekable
    binary file object. OSError from opening or reading the file propagates.
    """
    if not isinstance(source, (str, os.PathLike)):
        return _read(source)
    # O_NONBLOCK: opening a FIFO by mistake must not hang discovery.
    fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with open(fd, "rb", buffering=0, closefd=False) as file:
            return _read(file)
    finally:
        os.close(fd)


def _read(file: BinaryIO) -> GoBuildInfo | None:
    elf = _Elf.load(file)
    if elf is None:
        return None
    blob = elf.find_blob()
    if blob is None:
        return GoBuildInfo(go_version="") if elf.has_go_note() else None
    version, modinfo = elf.read_blob(*blob)
    return _parse_modinfo(_text(version), _text(_strip_sentinels(modinfo)))


# -- ELF ------------------------------------------------------------------------


class _Elf:
    """The parts of an ELF file the build info lives in, read on demand."""

    def __init__(self, file: BinaryIO, headers: ElfHeaders) -> None:
        self.file = file
        self.size = headers.file_size
        self.order = headers.order
        self.segments = headers.segments
        self.has_sections = bool(headers.sections)  # with readable names
        section = headers.section(".go.buildinfo")
        self.buildinfo_section = (section.addr, section.size) if section else None

    @classmethod
    def load(cls, file: BinaryIO) -> _Elf | None:
        try:
            headers = read_headers(file)
        except ElfError as e:
            raise BuildInfoError(str(e)) from None
        return cls(file, headers) if headers is not None else None

    def read_vaddr(self, addr: int, size: int) -> bytes:
        """Up to `size` bytes of the loaded image at virtual address `addr`
        (fewer at the end of its segment or of the file, none if unmapped)."""
        for seg in self.segments:
            if seg.type == PT_LOAD and seg.vaddr <= addr < seg.end:
                size = min(size, seg.end - addr)
                in_file = min(size, max(0, seg.vaddr + seg.filesz - addr))
                data = read_at(self.file, self.size, seg.offset + addr - seg.vaddr, in_file)
                return data + bytes(size - in_file) if len(data) == in_file else data
        return b""

    def find_blob(self) -> tuple[int, bytes] | None:
        """Virtual address and 32-byte header of the build info blob, if any.

        It is in the `.go.buildinfo` section (every Go linker since 1.13 names
        it so: a section table without it means no blob, and non-Go binaries
        cost no scan). Without section headers (sstrip), it is near the start
        of a writable data segment; PIE binaries have a read-only-after-
        relocation one first. At most MAX_BLOB_SCAN bytes are searched in all.
        """
        if self.buildinfo_section is not None:
            regions = [self.buildinfo_section]
        elif self.has_sections:
            return None
        else:
            regions = [(s.vaddr, s.end - s.vaddr) for s in self.segments
                       if s.type == PT_LOAD and s.flags & (PF_W | PF_X) == PF_W]
        budget = MAX_BLOB_SCAN
        for start, size in regions:
            found, scanned = self._search_magic(start, start + size, budget)
            if found is not None:
                return found
            budget -= scanned
            if budget <= 0:
                break
        return None

    def _search_magic(self, start: int, end: int, budget: int) -> tuple[tuple[int, bytes] | None, int]:
        """Search [start, end) for the 16-aligned magic, reading at most `budget`
        bytes: (blob address and header or None, bytes read)."""
        # The blob is 16-aligned, so with aligned chunks the magic never straddles two.
        start = _align_up(start, _BLOB_ALIGN)
        scanned = 0
        for chunk_addr in range(start, min(end, start + budget), _SCAN_CHUNK):
            wanted = min(_SCAN_CHUNK, end - chunk_addr, start + budget - chunk_addr)
            chunk = self.read_vaddr(chunk_addr, wanted)
            scanned += len(chunk)
            at = chunk.find(_MAGIC)
            while at >= 0 and at % _BLOB_ALIGN:
                at = chunk.find(_MAGIC, at + 1)
            if at >= 0:
                header = self.read_vaddr(chunk_addr + at, _BLOB_HEADER_SIZE)
                return ((chunk_addr + at, header) if len(header) == _BLOB_HEADER_SIZE else None), scanned
            if len(chunk) < wanted:  # the segment or the file ended
                break
        return None, scanned

    def read_blob(self, addr: int, header: bytes) -> tuple[bytes, bytes]:
        """(Go version, framed module info) from the blob at `addr`."""
        ptr_size, flags = header[14], header[15]
        if flags & _FLAG_INLINE_STRINGS:
            version, end = self._inline_string(addr + _BLOB_HEADER_SIZE, MAX_VERSION_LEN, "Go version")
            modinfo, _ = self._inline_string(end, MAX_MODINFO_LEN, "module info")
            return version, modinfo
        if ptr_size not in (4, 8):
            raise BuildInfoError(f"build info has an invalid pointer size {ptr_size}")
        word = struct.Struct((">" if flags & _FLAG_BIG_ENDIAN else "<") + ("I" if ptr_size == 4 else "Q"))
        version_ptr = word.unpack_from(header, 16)[0]
        modinfo_ptr = word.unpack_from(header, 16 + ptr_size)[0]
        return (self._pointed_string(version_ptr, word, MAX_VERSION_LEN, "Go version"),
                self._pointed_string(modinfo_ptr, word, MAX_MODINFO_LEN, "module info"))

    def _inline_string(self, addr: int, limit: int, what: str) -> tuple[bytes, int]:
        """A uvarint-length-prefixed string at `addr`, and the address after it."""
        length, n = _uvarint(self.read_vaddr(addr, _MAX_VARINT_LEN), what)
        if length > limit:
            raise BuildInfoError(f"build info {what} is too long ({length} bytes)")
        data = self.read_vaddr(addr + n, length)
        if len(data) < length:
            raise BuildInfoError(f"build info {what} is truncated")
        return data, addr + n + length

    def _pointed_string(self, addr: int, word: struct.Struct, limit: int, what: str) -> bytes:
        """The Go string whose header {data, len} is at `addr` (Go 1.13-1.17 layout).

        A zero pointer is an address the dynamic loader fills in (position-
        independent binaries); Go's own reader cannot follow it either, so the
        value is unknown rather than corrupt.
        """
        if addr == 0:
            return b""
        header = self.read_vaddr(addr, 2 * word.size)
        if len(header) < 2 * word.size:
            raise BuildInfoError(f"build info {what} points outside the file")
        data_addr, length = word.unpack_from(header, 0)[0], word.unpack_from(header, word.size)[0]
        if length > limit:
            raise BuildInfoError(f"build info {what} is too long ({length} bytes)")
        if length == 0 or data_addr == 0:
            return b""
        data = self.read_vaddr(data_addr, length)
        if len(data) < length:
            raise BuildInfoError(f"build info {what} points outside the file")
        return data

    def has_go_note(self) -> bool:
        """Whether a PT_NOTE segment holds the Go build ID note (all Go versions write it)."""
        budget = MAX_NOTE_BYTES
        for seg in self.segments:
            if seg.type != PT_NOTE or budget <= 0:
                continue
            data = read_at(self.file, self.size, seg.offset, min(seg.filesz, budget))
            budget -= len(data)
            if _notes_have_go_buildid(data, self.order, 8 if seg.align == 8 else 4):
                return True
        return False


def _notes_have_go_buildid(data: bytes, order: str, align: int) -> bool:
    header = struct.Struct(order + "III")
    pos = 0
    while pos + header.size <= len(data):
        namesz, descsz, note_type = header.unpack_from(data, pos)
        name_at = pos + header.size
        if namesz == len(_GO_NOTE_NAME) and note_type == _GO_NOTE_BUILDID \
                and data[name_at:name_at + namesz] == _GO_NOTE_NAME:
            return True
        pos = name_at + _align_up(namesz, align) + _align_up(descsz, align)
    return False


def _align_up(n: int, align: int) -> int:
    return (n + align - 1) & -align


def _uvarint(data: bytes, what: str) -> tuple[int, int]:
    """Decode an unsigned LEB128 varint (Go's binary.Uvarint): (value, bytes used)."""
    value = 0
    for i, byte in enumerate(data[:_MAX_VARINT_LEN]):
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            return value, i + 1
    raise BuildInfoError(f"build info {what} has a bad length")


# -- module info text ----------------------------------------------------------


def _strip_sentinels(modinfo: bytes) -> bytes:
    if len(modinfo) >= 2 * _SENTINEL_LEN + 1 and modinfo[-_SENTINEL_LEN - 1] == ord("\n"):
        return modinfo[_SENTINEL_LEN:-_SENTINEL_LEN]
    return b""  # no module info (GOPATH build)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _parse_modinfo(go_version: str, text: str) -> GoBuildInfo:
    """Parse module info text as Go's debug.ParseBuildInfo does: `path`, `mod`,
    `dep`, `=>` (replaces the module on the line before) and `build` lines;
    other lines, and an unterminated last line, are ignored."""
    path, main, deps, settings = "", None, [], []
    replaceable = None  # "main" or "dep": what a `=>` line may replace
    for number, line in enumerate(text.split("\n")[:-1], start=1):
        keyword, tab, rest = line.partition("\t")
        try:
            if not tab:
                continue
            if keyword == "path":
                path = rest
            elif keyword == "mod":
                main, replaceable = _module(rest, (2, 3)), "main"
            elif keyword == "dep":
                deps.append(_module(rest, (2, 3)))
                replaceable = "dep"
            elif keyword == "=>":
                substitute = _module(rest, (3,))
                if replaceable == "main":
                    assert main is not None  # replaceable is "main" once a `mod` line set it
                    main = replace(main, replace=substitute)
                elif replaceable == "dep":
                    deps[-1] = replace(deps[-1], replace=substitute)
                else:
                    raise BuildInfoError("replacement with no module on the line before")
                replaceable = None
            elif keyword == "build":
                settings.append(_setting(rest))
        except BuildInfoError as e:
            raise BuildInfoError(f"malformed Go build info, line {number}: {e}") from None
    return GoBuildInfo(go_version, path, main, tuple(deps), tuple(settings))


def _module(columns: str, allowed: tuple[int, ...]) -> Module:
    fields = columns.split("\t")
    if len(fields) not in allowed:
        raise BuildInfoError(f"module line has {len(fields)} columns")
    return Module(fields[0], fields[1], fields[2] if len(fields) == 3 else "")


# Keys and values containing these are written Go-quoted (debug.BuildInfo.String).
_KEY_NEEDS_QUOTES = frozenset('= \t\r\n"`')
_VALUE_NEEDS_QUOTES = frozenset(' \t\r\n"`')


def _setting(pair: str) -> tuple[str, str]:
    """One `build` line after the keyword: key=value, either side maybe quoted."""
    if not pair or pair[0] == "=":
        raise BuildInfoError("build setting without a key")
    if pair[0] in '"`':
        key, end = _go_unquote_prefix(pair)
        if pair[end:end + 1] != "=":
            raise BuildInfoError("quoted build setting key is not followed by '='")
        raw_value = pair[end + 1:]
    else:
        key, equals, raw_value = pair.partition("=")
        if not equals or not _KEY_NEEDS_QUOTES.isdisjoint(key):
            raise BuildInfoError(f"bad build setting key {_excerpt(key)}")
    if raw_value[:1] in ('"', "`"):
        value, end = _go_unquote_prefix(raw_value)
        if end != len(raw_value):
            raise BuildInfoError("text after a quoted build setting value")
        return key, value
    if not _VALUE_NEEDS_QUOTES.isdisjoint(raw_value):
        raise BuildInfoError(f"build setting value {_excerpt(raw_value)} should be quoted")
    return key, raw_value


def _excerpt(text: str, limit: int = 40) -> str:
    """`text` for an error message: quoted, escaped and short."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


_SIMPLE_ESCAPES = {"a": 0x07, "b": 0x08, "f": 0x0C, "n": 0x0A, "r": 0x0D, "t": 0x09, "v": 0x0B,
                   "\\": 0x5C, '"': 0x22}
_HEX_ESCAPE_DIGITS = {"x": 2, "u": 4, "U": 8}
_HEX = frozenset(string.hexdigits)
_OCTAL = frozenset(string.octdigits)


def _go_unquote_prefix(text: str) -> tuple[str, int]:
    """Unquote the Go string literal ("..." or `...`) that starts `text`, by
    Go's strconv rules: (value, length of the literal)."""
    if text[0] == "`":
        end = text.find("`", 1)
        if end < 0:
            raise BuildInfoError("unterminated raw string")
        return text[1:end].replace("\r", ""), end + 1
    out = bytearray()  # \x and octal escapes are bytes, not characters
    i = 1
    while i < len(text):
        char = text[i]
        if char == '"':
            return _text(bytes(out)), i + 1
        if char == "\n":
            raise BuildInfoError("newline in a quoted string")
        if char != "\\":
            out += char.encode()
            i += 1
            continue
        escape = text[i + 1:i + 2]
        if escape in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[escape])
            i += 2
        elif escape in _HEX_ESCAPE_DIGITS:
            digits = text[i + 2:i + 2 + _HEX_ESCAPE_DIGITS[escape]]
            if len(digits) < _HEX_ESCAPE_DIGITS[escape] or not _HEX.issuperset(digits):
                raise BuildInfoError(f"bad \\{escape} escape in a quoted string")
            code = int(digits, 16)
            if escape == "x":
                out.append(code)
            elif code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise BuildInfoError(f"invalid code point \\{escape}{digits} in a quoted string")
            else:
                out += chr(code).encode()
            i += 2 + len(digits)
        elif escape and escape in _OCTAL:
            digits = text[i + 1:i + 4]
            if len(digits) < 3 or not _OCTAL.issuperset(digits) or int(digits, 8) > 0xFF:
                raise BuildInfoError("bad octal escape in a quoted string")
            out.append(int(digits, 8))
            i += 4
        else:
            raise BuildInfoError("bad escape in a quoted string")
    raise BuildInfoError("unterminated quoted string")

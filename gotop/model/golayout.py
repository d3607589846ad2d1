"""Struct layouts of the Go runtime: where each field the memory reader needs lies.

A binary built with DWARF describes its own runtime types (`layout_from_dwarf`);
for the usual stripped binary, per-release tables stand in (`layout_table`):
gotop/model/golayouts/go1.NN-ARCH.json (linux amd64 and arm64: arm64 pads some
runtime structs to its 128-byte cache lines), written by tests/gen_layouts.py
from the DWARF of a probe program built with each release, and checked against
the DWARF of fresh builds by tests/test_golayout.py. A release without a table
is one clear line, never a guess.

A layout holds, for the runtime types in TYPES, every field flattened to a dotted
path ("sched.pc", "gFree.n") down to scalars and arrays of scalars (arrays of
structs are left out); the runtime's atomic wrappers (atomic.Uint32, atomic.Int64,
...) count as the scalar they hold, and each field says how to decode it (kind).
It also holds the byte sizes of those types, the DWARF type of the variables in
GLOBALS, the goroutine and P status constants, the wait reason strings
(runtime.waitReasonStrings, read from the binary's data) and, in tables, how to
find the variables in a binary without symbols.

A table is written from the last patch release of its minor release. Patch
releases do change runtime types now and then (go1.23.x and go1.24.x grew
runtime.m, go1.23.x workType and a wait reason at the end, go1.18.x the tail of
mstats), but what the reader needs (READER_NEEDS, READER_SIZES, READER_CONSTANTS)
was the same in the .0 release of every minor release as in its table
(`tests/gen_layouts.py --compare go1.23.0 ...`); other fields are exact only for
the release the table names.

Pure: DWARF objects (pyelftools) and bytes in, dataclasses out; the only file it
reads is its own package data (the tables).
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from gotop.errors import GotopError, describe
from gotop.model.machinecode import RefSignature

# The runtime types whose fields are recorded.
TYPES = (
    "runtime.g",
    "runtime.m",
    "runtime.p",
    "runtime.schedt",
    "runtime.mstats",
    "runtime.gcControllerState",
    "runtime.mheap",
    "runtime.workType",
    "runtime.gcWork",
    "runtime.moduledata",  # where its gofunc word is: the inline trees of a stripped binary are found through it
)
# Types whose byte size alone is recorded, besides those of TYPES.
SIZED = ("string", "runtime.slice")
# Types found through a variable where they have no name: go1.18's `work` is a struct literal.
TYPE_OF_VARIABLE = {"runtime.workType": "runtime.work"}
# The runtime variables the memory reader reads (their DWARF types are recorded;
# tables also say how to find them without a symbol table).
GLOBALS = (
    "runtime.allgs",
    "runtime.allglen",
    "runtime.allp",
    "runtime.buildVersion",
    "runtime.gcController",
    "runtime.gomaxprocs",
    "runtime.memstats",
    "runtime.mheap_",
    "runtime.ncpu",  # numCPUStartup since go1.25
    "runtime.numCPUStartup",
    "runtime.sched",
    "runtime.waitReasonStrings",
    "runtime.work",
)
WAIT_REASONS_VAR = "runtime.waitReasonStrings"
# The constants recorded: goroutine and P statuses (_Gdead, _Gscan, go1.26's _Gdeadextra, _Pidle, ...),
# and the function ID the pclntab gives the compiler's wrappers (go statements' among them), which
# tracebacks hide: runtime.funcID_wrapper up to go1.20, then internal/abi.FuncIDWrapper.
CONSTANTS = re.compile(r"runtime\._[GP][a-z]+(_unused)?|runtime\.funcID_wrapper|internal/abi\.FuncIDWrapper")
CONSTANT_UNITS = ("runtime", "internal/abi")  # the units holding them

MAX_DEPTH = 4  # path components of a recorded field: "gFree.stack.head" is 3
MAX_TYPEDEF_CHAIN = 16  # a damaged DWARF could make typedefs refer to each other
MAX_ATOMIC_NESTING = 4  # atomic.Pointer[T] holds an atomic.UnsafePointer that holds the value
MAX_UNIT_CHILDREN = 1 << 20  # a runtime unit has about 3000; a looping DWARF must not loop us
MAX_WAIT_REASONS = 256  # waitReason is a uint8
MAX_WAIT_REASON_LEN = 256

# DW_ATE_* encodings of base types -> how a reader decodes the bytes.
_ENCODING_KINDS = {2: "bool", 3: "complex", 4: "float", 5: "int", 6: "int", 7: "uint", 8: "uint"}
_ATOMIC_PACKAGES = ("runtime/internal/atomic.", "internal/runtime/atomic.")
_ATOMIC_FILLERS = {"noCopy", "_", "align"}
_DW_OP_ADDR = 0x03

TABLES_PACKAGE = "gotop.model"
TABLES_DIR = "golayouts"
TABLE_FORMAT = 1


class LayoutUnavailable(GotopError):
    """No trustworthy layout of a binary's runtime (no table, damaged DWARF, absent field)."""


@dataclass(frozen=True, slots=True)
class FieldLayout:
    """Where a scalar (or an array of scalars) lies inside a runtime type."""

    offset: int  # from the start of the outer type, through nested structs
    size: int  # of the scalar leaf (of one element for an array)
    count: int = 1  # elements, for arrays of scalars (mstats.pause_ns: 256)
    kind: str = "uint"  # "int" | "uint" | "float" | "bool" | "ptr" | "complex": how to decode it


@dataclass(frozen=True, slots=True)
class GlobalLayout:
    """The DWARF type of a runtime variable."""

    type_name: str  # "[]*runtime.g", "int32", "runtime.mstats"
    size: int


@dataclass(frozen=True, slots=True)
class Need:
    """A field the memory reader needs: one of `paths` (alternative names across
    releases) in `type_name`, in the releases from go1.`since` to go1.`until`."""

    type_name: str
    paths: tuple[str, ...]
    since: int = 18
    until: int | None = None

    def applies(self, minor: int | None) -> bool:
        """Whether it applies to go1.`minor` (to every release when that is unknown)."""
        return minor is None or (self.since <= minor and (self.until is None or minor <= self.until))

    def describe(self) -> str:
        return f"{self.type_name}.{'|'.join(self.paths)}"


# What the memory reader (gotop/model/goruntime.py) reads: every table must have
# these (tests/test_golayout.py), and `RuntimeLayout.missing` names those absent.
READER_NEEDS = (
    Need("runtime.g", ("atomicstatus",)),
    Need("runtime.g", ("goid",)),
    Need("runtime.g", ("gopc",)),
    Need("runtime.g", ("startpc",)),
    Need("runtime.g", ("waitreason",)),
    Need("runtime.g", ("waitsince",)),
    Need("runtime.g", ("parentGoid",), since=21),
    Need("runtime.g", ("sched.pc",)),
    Need("runtime.g", ("sched.sp",)),
    Need("runtime.g", ("stack.lo",)),
    Need("runtime.g", ("stack.hi",)),
    Need("runtime.g", ("m",)),
    Need("runtime.mstats", ("numgc",)),
    Need("runtime.mstats", ("numforcedgc",)),
    Need("runtime.mstats", ("pause_total_ns",)),
    Need("runtime.mstats", ("pause_ns",)),
    Need("runtime.mstats", ("pause_end",)),
    Need("runtime.mstats", ("last_gc_unix",)),
    Need("runtime.mstats", ("last_gc_nanotime",)),
    Need("runtime.mstats", ("enablegc",)),
    Need("runtime.mstats", ("heap_inuse",), until=18),  # the controller's heapInUse since go1.19
    Need("runtime.gcControllerState", ("gcPercent",)),
    Need("runtime.gcControllerState", ("memoryLimit",), since=19),
    Need("runtime.gcControllerState", ("heapMarked",)),
    Need("runtime.gcControllerState", ("heapLive",)),
    Need("runtime.gcControllerState", ("gcPercentHeapGoal", "heapGoal")),
    Need("runtime.gcControllerState", ("heapMinimum",)),
    Need("runtime.gcControllerState", ("lastHeapGoal",)),
    Need("runtime.gcControllerState", ("sweepDistMinTrigger",), since=19),
    Need("runtime.gcControllerState", ("heapInUse",), since=19),
    Need("runtime.gcControllerState", ("triggered",), since=19),  # go1.18 had trigger (a goal, not a reading)
    Need("runtime.mheap", ("pagesInUse",)),
    Need("runtime.mheap", ("pagesSwept",)),
    Need("runtime.schedt", ("gFree.n",), until=24),  # go1.25 counts each list: gFree.stack.size, noStack.size
    Need("runtime.schedt", ("gFree.stack.size",), since=25),
    Need("runtime.schedt", ("gFree.noStack.size",), since=25),
    Need("runtime.schedt", ("ngsys",)),
    Need("runtime.schedt", ("nmspinning",)),
    Need("runtime.schedt", ("npidle",)),
    Need("runtime.p", ("status",)),
    Need("runtime.p", ("gFree.n", "gFree.size")),  # gFree.size since go1.25
    Need("runtime.moduledata", ("gofunc",)),
)
READER_SIZES = ("runtime.g", "runtime.p", "string", "runtime.slice")
READER_CONSTANTS = ("runtime._Gidle", "runtime._Grunnable", "runtime._Grunning", "runtime._Gsyscall",
                    "runtime._Gwaiting", "runtime._Gdead", "runtime._Gscan")


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class RuntimeLayout:
    """The runtime's layouts in one binary (origin "DWARF") or one release ("table go1.22.12")."""

    go: str  # "go1.26"; "unknown" for a DWARF that does not say
    origin: str  # "DWARF" | "table go1.26.8"
    ptr_size: int
    fields: Mapping[str, Mapping[str, FieldLayout]]  # "runtime.g" -> {"atomicstatus": .., "sched.pc": ..}
    sizes: Mapping[str, int]  # type name -> byte size
    wait_reasons: tuple[str, ...]  # runtime.waitReasonStrings, index = waitReason value
    signatures: Mapping[str, tuple[RefSignature, ...]]  # tables only; {} from DWARF
    globals: Mapping[str, GlobalLayout] = field(default_factory=lambda: _frozen({}))
    constants: Mapping[str, int] = field(default_factory=lambda: _frozen({}))  # "runtime._Gdead" -> 6

    def field(self, type_name: str, path: str) -> FieldLayout:
        found = self.fields.get(type_name, {}).get(path)
        if found is None:
            raise LayoutUnavailable(f"the runtime layout ({self.origin}) has no field {type_name}.{path}")
        return found

    def has(self, type_name: str, path: str) -> bool:
        return path in self.fields.get(type_name, {})

    def missing(self) -> list[str]:
        """The reader's needs (READER_NEEDS, READER_SIZES, READER_CONSTANTS) this layout lacks."""
        minor = go_minor(self.go)
        absent = [need.describe() for need in READER_NEEDS
                  if need.applies(minor) and not any(self.has(need.type_name, path) for path in need.paths)]
        return (absent + [f"size of {name}" for name in READER_SIZES if name not in self.sizes]
                + [f"constant {name}" for name in READER_CONSTANTS if name not in self.constants]
                + ["constant internal/abi.FuncIDWrapper"] * (self.wrapper_func_id is None))

    @property
    def wrapper_func_id(self) -> int | None:
        """The pclntab function ID of the compiler's wrappers (a `go f(x)` statement's among them)."""
        return self.constants.get("internal/abi.FuncIDWrapper", self.constants.get("runtime.funcID_wrapper"))


def go_minor(go_version: str) -> int | None:
    """19 for "go1.19.8", "go1.19", "go1.19rc1" or "devel go1.19-abc"; None if it names no Go 1 release."""
    match = re.search(r"\bgo1\.(\d+)(?!\d)", go_version)
    return int(match.group(1)) if match else None


# ---- from DWARF


ReadMemory = Callable[[int, int], bytes | None]  # (link-time address, size) -> bytes, None if unmapped


def layout_from_dwarf(dwarf: Any, read: ReadMemory | None = None) -> RuntimeLayout | None:
    """The runtime layout a binary's DWARF (a pyelftools DWARFInfo, or None) describes;
    None if it describes no Go runtime. `read` reads the binary's initialised data at
    link-time addresses: with it the wait reason strings are read too.
    A damaged DWARF is LayoutUnavailable. The caller checks `missing()`: a DWARF may
    lack a field a release renamed, or have been cut short.
    Costs about 1.5 s of CPU for any Go binary (pyelftools parses the runtime's
    units, some 40000 entries)."""
    if dwarf is None or not dwarf.has_debug_info:
        return None
    try:
        return _layout_from_dwarf(dwarf, read)
    except LayoutUnavailable:
        raise
    except Exception as error:  # pyelftools raises whatever damaged bytes lead it to
        raise LayoutUnavailable(f"the binary's DWARF is unreadable: {describe(error)}") from error


def _layout_from_dwarf(dwarf: Any, read: ReadMemory | None) -> RuntimeLayout | None:
    types: dict[str, Any] = {}
    variables: dict[str, Any] = {}
    constants: dict[str, int] = {}
    producer = ""
    ptr_size = 0
    wanted_types = set(TYPES) | set(SIZED)
    wanted_globals = set(GLOBALS)
    for unit in dwarf.iter_CUs():
        top = unit.get_top_DIE()
        unit_name = _name(top)
        if unit_name not in CONSTANT_UNITS:  # the linker puts every type in the runtime's unit
            continue
        if unit_name == "runtime":
            ptr_size = unit["address_size"]
            producer = producer or _text(top, "DW_AT_producer")
        for count, die in enumerate(top.iter_children()):
            if count == MAX_UNIT_CHILDREN:
                raise LayoutUnavailable(f"the binary's DWARF has a {unit_name} unit without end")
            name = _name(die)
            if unit_name != "runtime" and die.tag != "DW_TAG_constant":
                continue
            if die.tag == "DW_TAG_structure_type" and name in wanted_types:
                types.setdefault(name, die)
            elif die.tag == "DW_TAG_variable" and name in wanted_globals:
                variables.setdefault(name, die)
            elif die.tag == "DW_TAG_constant" and CONSTANTS.fullmatch(name):
                value = die.attributes.get("DW_AT_const_value")
                if value is not None and isinstance(value.value, int):
                    constants.setdefault(name, value.value)
    if "runtime.g" not in types:
        return None
    for type_name, variable in TYPE_OF_VARIABLE.items():
        if type_name not in types and variable in variables:
            found = _resolve(variables[variable])
            if found is not None and found.tag == "DW_TAG_structure_type":
                types[type_name] = found
    sizes = {name: _byte_size(die, ptr_size) for name, die in types.items()}
    fields = {name: _frozen(_fields_inside(name, types[name], sizes[name], ptr_size))
              for name in TYPES if name in types}
    globals_ = {name: _global_layout(die, ptr_size) for name, die in variables.items()}
    wait_reasons: tuple[str, ...] = ()
    if read is not None and WAIT_REASONS_VAR in variables:
        wait_reasons = _wait_reasons(variables[WAIT_REASONS_VAR], ptr_size, dwarf.config.little_endian, read)
    minor = go_minor(producer)
    return RuntimeLayout(
        go=f"go1.{minor}" if minor is not None else "unknown",
        origin="DWARF",
        ptr_size=ptr_size,
        fields=_frozen(fields),
        sizes=_frozen(sizes),
        wait_reasons=wait_reasons,
        signatures=_frozen({}),
        globals=_frozen(globals_),
        constants=_frozen(constants),
    )


def _text(die: Any, attribute: str) -> str:
    value = die.attributes.get(attribute)
    if value is None or not isinstance(value.value, bytes):
        return ""
    return value.value.decode("utf-8", "replace")


def _name(die: Any) -> str:
    return _text(die, "DW_AT_name")


def _resolve(die: Any) -> Any:
    """The type a DIE's DW_AT_type names, through typedefs; None if it names none."""
    for _ in range(MAX_TYPEDEF_CHAIN):
        if "DW_AT_type" not in die.attributes:
            return None
        die = die.get_DIE_from_attribute("DW_AT_type")
        if die.tag != "DW_TAG_typedef":
            return die
    raise LayoutUnavailable("the binary's DWARF has a loop of type definitions")


def _byte_size(die: Any, ptr_size: int) -> int:
    if die.tag == "DW_TAG_pointer_type" and "DW_AT_byte_size" not in die.attributes:
        return ptr_size  # unsafe.Pointer has no size of its own
    size = die.attributes.get("DW_AT_byte_size")
    if size is None or not isinstance(size.value, int) or size.value < 0:
        raise LayoutUnavailable(f"the binary's DWARF gives {_name(die) or die.tag} no size")
    return size.value


def _scalar(die: Any, ptr_size: int, nesting: int = 0) -> tuple[int, int, str] | None:
    """(offset inside, size, kind) if the type is read as one scalar, else None."""
    if die.tag in ("DW_TAG_pointer_type", "DW_TAG_subroutine_type"):
        return 0, _byte_size(die, ptr_size), "ptr"
    if die.tag == "DW_TAG_base_type":
        encoding = die.attributes.get("DW_AT_encoding")
        kind = _ENCODING_KINDS.get(encoding.value) if encoding is not None else None
        size = _byte_size(die, ptr_size)
        return (0, size, kind) if kind is not None and size > 0 else None
    if die.tag == "DW_TAG_structure_type" and _name(die).startswith(_ATOMIC_PACKAGES) \
            and nesting < MAX_ATOMIC_NESTING:
        # atomic.Int64 {noCopy; _ align64; value int64}, atomic.Pointer[T] {_ [0]*T; u UnsafePointer}:
        # the one member that is not a filler holds the value
        members = [m for m in die.iter_children()
                   if m.tag == "DW_TAG_member" and _name(m) not in _ATOMIC_FILLERS]
        if len(members) != 1 or (inner_type := _resolve(members[0])) is None:
            return None
        inner = _scalar(inner_type, ptr_size, nesting + 1)
        if inner is None:
            return None
        return _member_offset(members[0]) + inner[0], inner[1], inner[2]
    return None


def _member_offset(member: Any) -> int:
    location = member.attributes.get("DW_AT_data_member_location")
    if location is None or not isinstance(location.value, int) or location.value < 0:
        raise LayoutUnavailable(f"the binary's DWARF gives member {_name(member)} no plain offset")
    return location.value


def _array(die: Any, ptr_size: int) -> tuple[int, int, str, int] | None:
    """(offset inside, element size, kind, count) of an array of scalars, else None."""
    element_type = _resolve(die)
    element = _scalar(element_type, ptr_size) if element_type is not None else None
    if element is None:
        return None
    for child in die.iter_children():
        if child.tag == "DW_TAG_subrange_type":
            count = child.attributes.get("DW_AT_count")
            if count is not None and isinstance(count.value, int) and count.value > 0:
                return element[0], element[1], element[2], count.value
    return None


def _fields_inside(type_name: str, die: Any, size: int, ptr_size: int) -> dict[str, FieldLayout]:
    fields = dict(_flatten(die, ptr_size))
    for path, found in fields.items():
        if found.offset + found.size * found.count > size:
            raise LayoutUnavailable(f"the binary's DWARF puts {type_name}.{path} outside {type_name}")
    return fields


def _flatten(struct_die: Any, ptr_size: int, prefix: str = "", base: int = 0,
             depth: int = 1) -> Iterator[tuple[str, FieldLayout]]:
    """Every scalar and array of scalars inside a struct, by dotted path."""
    for member in struct_die.iter_children():
        name = _name(member)
        if member.tag != "DW_TAG_member" or name in ("", "_"):
            continue
        member_type = _resolve(member)
        if member_type is None:
            continue
        offset = base + _member_offset(member)
        path = prefix + name
        if (scalar := _scalar(member_type, ptr_size)) is not None:
            inside, size, kind = scalar
            yield path, FieldLayout(offset + inside, size, 1, kind)
        elif member_type.tag == "DW_TAG_array_type":
            if (array := _array(member_type, ptr_size)) is not None:
                inside, size, kind, count = array
                yield path, FieldLayout(offset + inside, size, count, kind)
        elif member_type.tag == "DW_TAG_structure_type" and depth < MAX_DEPTH:
            yield from _flatten(member_type, ptr_size, path + ".", offset, depth + 1)


def _global_layout(variable: Any, ptr_size: int) -> GlobalLayout:
    if "DW_AT_type" not in variable.attributes:
        raise LayoutUnavailable(f"the binary's DWARF gives {_name(variable)} no type")
    named = variable.get_DIE_from_attribute("DW_AT_type")
    resolved = named if named.tag != "DW_TAG_typedef" else _resolve(named)
    if resolved is None:
        raise LayoutUnavailable(f"the binary's DWARF gives {_name(variable)} no type")
    type_name = _name(named) or _name(resolved)
    if type_name.startswith("struct {"):  # a struct literal's name spells out every field
        type_name = "struct {...}"
    return GlobalLayout(type_name, _byte_size(resolved, ptr_size))


def _address(variable: Any, ptr_size: int, little_endian: bool) -> int:
    location = variable.attributes.get("DW_AT_location")
    expression = location.value if location is not None else None
    if not isinstance(expression, list) or len(expression) != 1 + ptr_size or expression[0] != _DW_OP_ADDR:
        raise LayoutUnavailable(f"the binary's DWARF gives {_name(variable)} no static address")
    return int.from_bytes(bytes(expression[1:]), "little" if little_endian else "big")


def _wait_reasons(variable: Any, ptr_size: int, little_endian: bool, read: ReadMemory) -> tuple[str, ...]:
    """runtime.waitReasonStrings ([N]string): its string headers, then their bytes."""
    array_type = _resolve(variable)
    if array_type is None or array_type.tag != "DW_TAG_array_type":
        raise LayoutUnavailable(f"{WAIT_REASONS_VAR} is not an array in the binary's DWARF")
    element = _resolve(array_type)
    count = next((c.attributes["DW_AT_count"].value for c in array_type.iter_children()
                  if c.tag == "DW_TAG_subrange_type" and "DW_AT_count" in c.attributes), None)
    if element is None or _name(element) != "string" or not isinstance(count, int) \
            or not 0 < count <= MAX_WAIT_REASONS:
        raise LayoutUnavailable(f"{WAIT_REASONS_VAR} is not an array of strings in the binary's DWARF")
    header = struct.Struct(("<" if little_endian else ">") + ("QQ" if ptr_size == 8 else "II"))
    start = _address(variable, ptr_size, little_endian)
    headers = read(start, count * header.size)
    if headers is None or len(headers) != count * header.size:
        raise LayoutUnavailable(f"{WAIT_REASONS_VAR} at {start:#x} is not in the binary's data")
    reasons = []
    for pointer, length in header.iter_unpack(headers):
        if length == 0:  # waitReasonZero is "", its pointer may be nil
            reasons.append("")
            continue
        text = read(pointer, length) if length <= MAX_WAIT_REASON_LEN else None
        if text is None or len(text) != length:
            raise LayoutUnavailable(f"a string of {WAIT_REASONS_VAR} is not in the binary's data")
        reasons.append(text.decode("utf-8", "replace"))
    return tuple(reasons)


# ---- tables


def layout_table(go_version: str, arch: str = "amd64") -> RuntimeLayout:
    """The table of a Go release on an architecture ("go1.19.8" -> table go1.19 of amd64);
    LayoutUnavailable if there is none."""
    tables = table_keys()
    minors = sorted(minor for minor, table_arch in tables if table_arch == arch)
    if not minors:
        arches = " and ".join(sorted({table_arch for _, table_arch in tables})) or "no architecture"
        raise LayoutUnavailable(f"no runtime layout table for {arch} (tables are for {arches})")
    minor = go_minor(go_version)
    if minor not in minors:
        raise LayoutUnavailable(f"no runtime layout table for {go_version or 'an unknown Go version'}"
                                f" (tables cover go1.{minors[0]} to go1.{minors[-1]})")
    return _load_table(table_name(f"go1.{minor}", arch))


def table_name(go: str, arch: str) -> str:
    """The file of a minor release's table: "go1.22", "amd64" -> "go1.22-amd64.json"."""
    return f"{go}-{arch}.json"


@cache
def table_keys() -> frozenset[tuple[int, str]]:
    """(minor release, architecture) of every table."""
    names = (entry.name for entry in resources.files(TABLES_PACKAGE).joinpath(TABLES_DIR).iterdir())
    matches = (re.fullmatch(r"go1\.(\d+)-(\w+)\.json", name) for name in names)
    return frozenset((int(match.group(1)), match.group(2)) for match in matches if match)


@cache
def _load_table(name: str) -> RuntimeLayout:
    text = resources.files(TABLES_PACKAGE).joinpath(TABLES_DIR, name).read_text("utf-8")
    try:
        return layout_from_json(text)
    except (ValueError, KeyError, TypeError) as error:
        raise LayoutUnavailable(f"the runtime layout table {name} is damaged: {describe(error)}") from error


def layout_from_json(text: str) -> RuntimeLayout:
    """A table's text (layout_to_json's) as a RuntimeLayout."""
    doc = json.loads(text)
    if doc["format"] != TABLE_FORMAT:
        raise ValueError(f"format {doc['format']}, not {TABLE_FORMAT}")
    return RuntimeLayout(
        go=doc["go"],
        origin=doc["origin"],
        ptr_size=doc["ptr_size"],
        fields=_frozen({type_name: _frozen({path: _field_from_json(value) for path, value in paths.items()})
                        for type_name, paths in doc["fields"].items()}),
        sizes=_frozen(doc["sizes"]),
        wait_reasons=tuple(doc["wait_reasons"]),
        signatures=_frozen({name: tuple(RefSignature(function, ordinal, delta) for function, ordinal, delta in refs)
                            for name, refs in doc["signatures"].items()}),
        globals=_frozen({name: GlobalLayout(type_name, size) for name, (type_name, size) in doc["globals"].items()}),
        constants=_frozen(doc["constants"]),
    )


def _field_from_json(value: list) -> FieldLayout:
    offset, size, kind, *count = value  # [offset, size, kind] or [offset, size, kind, count]
    return FieldLayout(offset, size, count[0] if count else 1, kind)


def layout_to_json(layout: RuntimeLayout) -> str:
    """A table's text: sorted keys, one field per line, so that tables diff well."""
    doc = {
        "format": TABLE_FORMAT,
        "go": layout.go,
        "origin": layout.origin,
        "ptr_size": layout.ptr_size,
        "fields": {type_name: {path: [f.offset, f.size, f.kind, *([f.count] if f.count != 1 else [])]
                               for path, f in paths.items()}
                   for type_name, paths in layout.fields.items()},
        "sizes": dict(layout.sizes),
        "globals": {name: [g.type_name, g.size] for name, g in layout.globals.items()},
        "constants": dict(layout.constants),
        "wait_reasons": list(layout.wait_reasons),
        "signatures": {name: [[r.function, r.ordinal, r.delta] for r in refs]
                       for name, refs in layout.signatures.items()},
    }
    return _dump(doc) + "\n"


def _dump(value: Any, indent: int = 0) -> str:
    """JSON with objects one key a line; lists inline, except lists of strings one a line."""
    pad = " " * (indent + 1)
    if isinstance(value, dict) and value:
        items = (f"{pad}{json.dumps(key)}: {_dump(value[key], indent + 1)}" for key in sorted(value))
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return "[\n" + ",\n".join(pad + json.dumps(item) for item in value) + "\n" + " " * indent + "]"
    return json.dumps(value)

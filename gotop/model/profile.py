"""pprof profiles: gzip or raw protobuf bytes in, a frozen Python model out (no I/O).

The model follows pprof's own (github.com/google/pprof/profile): string table
indexes are resolved, locations point at their mapping and functions, and
all-zero samples are dropped as pprof's Merge does.

Samples are stored by column (`SampleTable`), because big heap profiles have
10^5-10^6 of them and a Python object per sample would cost more than the whole
analysis. Each stack is a `str` with one character (a *code*) per location,
leaf first: compact, hashable, and set/slice/search run in C.

The family: profile_pb (the wire schema), profile_samples (bulk sample
decoding), profile_graph (flat/cum per node, edges), profile_report (top, peek,
list, paths), profile_names, profile_units and profile_text (pprof's formatting),
profile_diff (-base).
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from gotop.errors import GotopError
from gotop.model.inflate import GZIP_MAGIC, InflateError, InflatesTooLarge, inflate_member
from gotop.model.profile_names import pprof_function_name
from gotop.units import fmt_bytes

DEFAULT_MAX_SIZE = 512 << 20  # decompressed bytes; a gzip bomb stops here


class ProfileError(GotopError):
    """Bytes that are not a usable pprof profile."""


@dataclass(frozen=True, slots=True)
class ValueType:
    type: str
    unit: str


@dataclass(frozen=True, slots=True)
class Mapping:
    id: int
    memory_start: int
    memory_limit: int
    file_offset: int
    filename: str
    build_id: str
    has_functions: bool
    has_filenames: bool
    has_line_numbers: bool
    has_inline_frames: bool


@dataclass(frozen=True, slots=True)
class Function:
    id: int
    name: str
    system_name: str
    filename: str
    start_line: int


@dataclass(frozen=True, slots=True)
class Line:
    function: Function
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Location:
    id: int
    mapping: Mapping | None
    address: int
    lines: tuple[Line, ...]  # innermost (inlined) first, the physical caller last
    is_folded: bool


@dataclass(frozen=True, slots=True)
class Label:
    """A string label (`value`) or, when `value` is None, a numeric one."""

    key: str
    value: str | None = None
    num: int = 0
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Sample:
    location_ids: tuple[int, ...]  # leaf first
    values: tuple[int, ...]  # one per sample type
    labels: tuple[Label, ...]


@dataclass(frozen=True, slots=True, eq=False)
class SampleTable(Sequence):
    """The samples by column; indexing materializes one `Sample`.

    stacks[i]: sample i's locations, leaf first, one code character each.
    values[t][i]: sample i's value of sample type t.
    label_sets[i]: sample i's labels, as a str of chr(index into label_table).
    location_ids: the location id of each code.
    """

    stacks: tuple[str, ...]
    values: tuple[array, ...]
    label_sets: tuple[str, ...]
    label_table: tuple[Label | None, ...]  # index 0 is unused
    location_ids: MappingProxyType[str, int]

    def __len__(self) -> int:
        return len(self.stacks)

    def __getitem__(self, i: int) -> Sample:  # type: ignore[override]
        return Sample(
            location_ids=tuple(self.location_ids[code] for code in self.stacks[i]),
            values=tuple(column[i] for column in self.values),
            labels=self.labels(i),
        )

    def labels(self, i: int) -> tuple[Label, ...]:
        return self.labels_of(self.label_sets[i])

    def labels_of(self, label_set: str) -> tuple[Label, ...]:
        """The labels a label_sets entry stands for."""
        return tuple(self.label_table[ord(code)] for code in label_set)  # type: ignore[misc]


@dataclass(frozen=True, slots=True, eq=False)
class Profile:
    sample_types: tuple[ValueType, ...]
    default_sample_type: str
    period_type: ValueType  # empty type and unit when the profile has none
    period: int
    time_nanos: int
    duration_nanos: int
    comments: tuple[str, ...]
    doc_url: str
    drop_frames: str
    keep_frames: str
    mappings: tuple[Mapping, ...]
    locations: MappingProxyType[int, Location]  # by id; stacks hold chr(id)
    functions: MappingProxyType[int, Function]  # by id
    samples: SampleTable

    def frames(self, sample: Sample) -> tuple[Line, ...]:
        """A sample's call stack, leaf first, inlined calls expanded (each Line
        gives function, file and line): what a traceback shows."""
        return tuple(line for location_id in sample.location_ids for line in self.locations[location_id].lines)

    def sample_index(self, name: str | int | None = None) -> int:
        """pprof's SampleIndexByName: '' picks default_sample_type, else the last
        type; a number is an index; 'inuse_space' also matches a legacy 'space'."""
        count = len(self.sample_types)  # never 0: parse_profile refuses such a profile
        if name is None or name == "":
            for i, sample_type in enumerate(self.sample_types):
                if self.default_sample_type and sample_type.type == self.default_sample_type:
                    return i
            return count - 1
        if isinstance(name, int) or re.fullmatch(r"[+-]?[0-9]+", name):
            index = int(name)
            if not 0 <= index < count:
                raise ProfileError(f"sample_index {name} is outside the range [0..{count - 1}]")
            return index
        legacy = name.removeprefix("inuse_")
        for i, sample_type in enumerate(self.sample_types):
            if sample_type.type in (name, legacy):
                return i
        names = " ".join(t.type for t in self.sample_types)
        raise ProfileError(f"sample_index {name!r} must be one of: [{names}]")


def parse_profile(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> Profile:
    """Decode a pprof profile, gzipped (magic 1f 8b) or raw protobuf."""
    # The decoder loads protobuf (20 ms and 3.3 MB): here, not in every process that
    # handles the model (`gotop list`, the TUI before its first frame, a fleet read from memory).
    from google.protobuf.message import DecodeError

    from gotop.model import profile_pb
    from gotop.model.profile_samples import LocationCodes, MalformedSamples, compiled_samples, decode_samples

    raw = _gunzip(data, max_size) if data[:2] == GZIP_MAGIC else data
    if not raw:
        raise ProfileError("empty profile")
    if len(raw) > max_size:
        raise ProfileError(f"profile larger than {fmt_bytes(max_size)}")
    view = profile_pb.ProfileView()
    try:
        view.ParseFromString(raw)
    except DecodeError:
        raise ProfileError("not a pprof profile (protobuf does not decode)") from None
    strings = _StringTable(view.string_table)
    sample_types = tuple(strings.value_type(vt) for vt in view.sample_type)
    if not sample_types:  # every report reads one: a profile without any is of no use
        raise ProfileError("malformed profile: no sample types")
    mappings = tuple(_mapping(m, strings) for m in view.mapping)
    functions = _functions(view.function, strings)
    locations = _locations(view.location, mappings, functions)
    labels = _LabelDecoder(strings)
    try:
        codes = LocationCodes.for_ids(locations)
        columns = compiled_samples(raw, len(sample_types), codes, labels)
        del raw  # before the Python path, which reads view.sample: its peak is lower by the inflated bytes
        if columns is None:
            columns = decode_samples(view.sample, len(sample_types), codes, labels)
    except MalformedSamples as e:
        raise ProfileError(f"malformed profile: {e}") from None
    return Profile(
        sample_types=sample_types,
        default_sample_type=strings[view.default_sample_type],
        period_type=strings.value_type(view.period_type),
        period=view.period,
        time_nanos=view.time_nanos,
        duration_nanos=view.duration_nanos,
        comments=tuple(strings[i] for i in view.comment),
        doc_url=strings[view.doc_url],
        drop_frames=strings[view.drop_frames],
        keep_frames=strings[view.keep_frames],
        mappings=mappings,
        locations=MappingProxyType(locations),
        functions=MappingProxyType(functions),
        samples=SampleTable(
            stacks=tuple(columns.stacks),
            values=tuple(columns.values),
            label_sets=tuple(columns.label_sets),
            label_table=columns.label_table,
            location_ids=MappingProxyType({code: i for i, code in codes.of_id.items()}),
        ),
    )


def _gunzip(data: bytes, max_size: int) -> bytearray:
    """All gzip members of `data` (as Go's reader reads them), at most max_size
    bytes, inflated in place: the peak is the cap, not twice it."""
    raw = bytearray()
    start = 0
    while data[start:start + 2] == GZIP_MAGIC:
        try:
            start = inflate_member(data, max_size - len(raw), raw, start)
        except InflatesTooLarge:
            raise ProfileError(f"gzip data inflates beyond {fmt_bytes(max_size)}") from None
        except InflateError as e:
            raise ProfileError(str(e)) from None
    return raw  # trailing bytes that are not gzip are ignored, as by Go


class _StringTable:
    def __init__(self, raw: Iterable[bytes]):
        self._strings = [s.decode("utf-8", "replace") for s in raw]
        if not self._strings or self._strings[0] != "":
            raise ProfileError("not a pprof profile (string table must start with an empty string)")

    def __getitem__(self, index: int) -> str:
        if 0 <= index < len(self._strings):
            return self._strings[index]
        raise ProfileError(f"malformed profile: string index {index} out of range")

    def value_type(self, vt) -> ValueType:
        return ValueType(self[vt.type], self[vt.unit])


def _mapping(m, strings: _StringTable) -> Mapping:
    return Mapping(
        m.id, m.memory_start, m.memory_limit, m.file_offset, strings[m.filename], strings[m.build_id],
        m.has_functions, m.has_filenames, m.has_line_numbers, m.has_inline_frames,
    )


def _functions(raw, strings: _StringTable) -> dict[int, Function]:
    functions: dict[int, Function] = {}
    for f in raw:
        _check_id("function", f.id, functions)
        name, system_name = strings[f.name], strings[f.system_name]
        functions[f.id] = Function(
            f.id, pprof_function_name(name, system_name), system_name, strings[f.filename], f.start_line)
    return functions


def _locations(raw, mappings: tuple[Mapping, ...], functions: dict[int, Function]) -> dict[int, Location]:
    seen_mappings: dict[int, Mapping] = {}
    for m in mappings:
        _check_id("mapping", m.id, seen_mappings)
        seen_mappings[m.id] = m
    locations: dict[int, Location] = {}
    for loc in raw:
        _check_id("location", loc.id, locations)
        lines = []
        for line in loc.line:
            function = functions.get(line.function_id)
            if function is None:
                raise ProfileError(f"malformed profile: location {loc.id} names unknown function {line.function_id}")
            lines.append(Line(function, line.line, line.column))
        mapping = seen_mappings.get(loc.mapping_id)  # pprof allows an unknown mapping: none
        locations[loc.id] = Location(loc.id, mapping, loc.address, tuple(lines), loc.is_folded)
    return locations


def _check_id(kind: str, ident: int, seen: dict) -> None:
    if ident == 0:
        raise ProfileError(f"malformed profile: {kind} with reserved id 0")
    if ident in seen:
        raise ProfileError(f"malformed profile: two {kind}s with id {ident}")


class _LabelDecoder:
    """One Label message -> Label, or None for a label pprof ignores."""

    def __init__(self, strings: _StringTable):
        self._strings = strings

    def __call__(self, blob: bytes) -> Label | None:
        from google.protobuf.message import DecodeError  # loaded by parse_profile already

        from gotop.model import profile_pb

        try:
            raw = profile_pb.LabelMessage.FromString(blob)
        except DecodeError:
            raise ProfileError("malformed profile: a label does not decode") from None
        key = self._strings[raw.key]
        if raw.str:
            return Label(key, value=self._strings[raw.str])
        if raw.num or raw.num_unit:
            return Label(key, num=raw.num, unit=self._strings[raw.num_unit])
        return None

"""Profile differences as `go tool pprof -base` (and -diff_base) computes them:
the base is negated and merged into the profile (pprof's profile.Merge), so a
report of the result shows growth by site; negative values are shrinkage.

Merging follows pprof's keys: mappings by size/offset/build id or file,
functions by (start line, names, file), locations by (mapping, address relative
to the mapping, lines), samples by (locations, labels). Samples that cancel out
are dropped, which changes the report total as it does in pprof.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from types import MappingProxyType

from gotop.model.profile import Function, Label, Line, Location, Mapping, Profile, ProfileError, SampleTable
from gotop.model.profile_samples import dense_code

DIFF_BASE_LABEL = Label("pprof::base", "true")
_U64 = 1 << 64
_MAPPING_ROUNDING = 0x1000


def diff(base: Profile, profile: Profile, *, diff_base: bool = False) -> Profile:
    """`profile` minus `base`, as `go tool pprof -base BASE PROFILE`.

    With `diff_base`, as `-diff_base`: base samples keep a pprof::base label, so
    they never merge with the profile's and percentages are of the base total.
    """
    for name, a, b in (("period types", base.period_type, profile.period_type),
                       ("sample types", base.sample_types, profile.sample_types)):
        if a != b:
            raise ProfileError(f"cannot diff profiles with different {name}: {_show(a)} and {_show(b)}")
    merger = _Merger(profile.sample_types)
    merger.add(profile, sign=1, mark_base=False)
    merger.add(base, sign=-1, mark_base=diff_base)
    return merger.result(_header(profile, base))


def _show(value) -> str:
    types = value if isinstance(value, tuple) else (value,)
    return "[" + " ".join(f"{t.type}/{t.unit}" for t in types) + "]"


def _header(first: Profile, second: Profile) -> dict:
    """pprof's combineHeaders for [first, second]."""
    time_nanos = 0
    for p in (first, second):
        if time_nanos == 0 or p.time_nanos < time_nanos:
            time_nanos = p.time_nanos
    return dict(
        sample_types=first.sample_types,
        default_sample_type=first.default_sample_type or second.default_sample_type,
        period_type=first.period_type,
        period=max(first.period, second.period),
        time_nanos=time_nanos,
        duration_nanos=first.duration_nanos + second.duration_nanos,
        comments=tuple(dict.fromkeys(first.comments + second.comments)),
        doc_url=first.doc_url or second.doc_url,
        drop_frames=first.drop_frames,
        keep_frames=first.keep_frames,
    )


class _Merger:
    """pprof's profileMerger; merged location ids get dense codes (profile_samples.dense_code)."""

    def __init__(self, sample_types: tuple):
        self._value_count = len(sample_types)
        self.mappings: dict[tuple, Mapping] = {}
        self.functions: dict[tuple, Function] = {}
        self.locations: dict[tuple, Location] = {}
        self.labels: dict[Label, str] = {}  # merged label table: label -> code
        self.samples: dict[tuple[str, tuple], list[int]] = {}  # (stack, label key) -> values
        self.label_sets: dict[tuple[str, tuple], str] = {}

    def add(self, profile: Profile, *, sign: int, mark_base: bool) -> None:
        mapping_of: dict[int, tuple[Mapping, int]] = {}  # source mapping id -> merged, address offset
        if not self.mappings and profile.mappings:
            self._map_mapping(profile.mappings[0], mapping_of)  # the main binary stays first
        table = profile.samples
        recode = {
            ord(code): dense_code(self._map_location(profile.locations[location_id], mapping_of))
            for code, location_id in table.location_ids.items()
        }
        label_memo: dict[str, tuple[str, tuple]] = {}
        for stack, label_set, values in zip(table.stacks, table.label_sets, zip(*table.values)):
            if sign < 0:
                values = tuple(_negated(v) for v in values)
            key_labels = label_memo.get(label_set)
            if key_labels is None:
                key_labels = label_memo[label_set] = self._labels(table.labels_of(label_set), mark_base)
            merged_labels, label_key = key_labels
            key = (stack.translate(recode), label_key)
            sums = self.samples.get(key)
            if sums is None:
                self.samples[key] = list(values)
                self.label_sets[key] = merged_labels
            else:
                for t, value in enumerate(values):
                    sums[t] += value

    def _labels(self, labels: tuple[Label, ...], mark_base: bool) -> tuple[str, tuple]:
        if mark_base:
            labels = tuple(label for label in labels if label.key != DIFF_BASE_LABEL.key) + (DIFF_BASE_LABEL,)
        codes = []
        for label in labels:
            code = self.labels.get(label)
            if code is None:
                code = self.labels[label] = dense_code(len(self.labels) + 1)
            codes.append(code)
        return "".join(codes), _label_key(labels)

    def _map_mapping(self, source: Mapping, mapping_of: dict) -> tuple[Mapping, int]:
        if source.id in mapping_of:
            return mapping_of[source.id]
        size = (source.memory_limit - source.memory_start) % _U64
        size = (size + _MAPPING_ROUNDING - 1) % _U64
        key = (size - size % _MAPPING_ROUNDING, source.file_offset, source.build_id or source.filename)
        merged = self.mappings.get(key)
        if merged is None:
            merged = self.mappings[key] = _with_id(source, len(self.mappings) + 1)
            offset = 0
        else:
            offset = merged.memory_start - source.memory_start
        mapping_of[source.id] = (merged, offset)
        return merged, offset

    def _map_location(self, source: Location, mapping_of: dict) -> int:
        mapping, offset = self._map_mapping(source.mapping, mapping_of) if source.mapping else (None, 0)
        address = (source.address + offset) % _U64
        lines = tuple(Line(self._map_function(line.function), line.line, line.column) for line in source.lines)
        key = (
            mapping.id if mapping else 0,
            (address - mapping.memory_start) % _U64 if mapping else address,
            _lines_key(lines),
            source.is_folded,
        )
        merged = self.locations.get(key)
        if merged is None:
            merged = self.locations[key] = Location(len(self.locations) + 1, mapping, address, lines, source.is_folded)
        return merged.id

    def _map_function(self, source: Function) -> Function:
        key = (source.start_line, source.name, source.system_name, source.filename)
        merged = self.functions.get(key)
        if merged is None:
            merged = self.functions[key] = Function(
                len(self.functions) + 1, source.name, source.system_name, source.filename, source.start_line)
        return merged

    def result(self, header: dict) -> Profile:
        kept = [key for key, values in self.samples.items() if any(values)]  # merged to nothing: gone
        label_table: list[Label | None] = [None] * (ord(dense_code(len(self.labels))) + 1 if self.labels else 1)
        for label, code in self.labels.items():
            label_table[ord(code)] = label
        locations = {location.id: location for location in self.locations.values()}
        table = SampleTable(
            stacks=tuple(stack for stack, _ in kept),
            values=tuple(array("q", (self.samples[key][t] for key in kept)) for t in range(self._value_count)),
            label_sets=tuple(self.label_sets[key] for key in kept),
            label_table=tuple(label_table),
            location_ids=MappingProxyType({dense_code(i): i for i in locations}),
        )
        return Profile(
            **header,
            mappings=tuple(self.mappings.values()),
            locations=MappingProxyType(locations),
            functions=MappingProxyType({f.id: f for f in self.functions.values()}),
            samples=table,
        )


def _negated(value: int) -> int:
    """pprof's Scale(-1) of one value: through float64, as ScaleN computes it."""
    return int(-float(value))


def _lines_key(lines: tuple[Line, ...]) -> str:
    """pprof's location key for lines, overlapping slots and all (merge.go)."""
    parts = [""] * (len(lines) * 3)
    for i, line in enumerate(lines):
        parts[i * 2] = format(line.function.id, "x")
        parts[i * 2 + 1] = format(line.line, "x")
        parts[i * 2 + 2] = format(line.column, "x")
    return "|".join(parts)


def _label_key(labels: Iterable[Label]) -> tuple:
    """pprof's sample key for labels: keys sorted, each key's values in order."""
    strings: dict[str, list[str]] = {}
    numbers: dict[str, list[tuple[int, str]]] = {}
    for label in labels:
        if label.value is not None:
            strings.setdefault(label.key, []).append(label.value)
        else:
            numbers.setdefault(label.key, []).append((label.num, label.unit))
    return (
        tuple((key, tuple(strings[key])) for key in sorted(strings)),
        tuple((key, tuple(v for v, _ in numbers[key]),
               tuple(u for _, u in numbers[key]) if any(u for _, u in numbers[key]) else ())
              for key in sorted(numbers)),
    )


def _with_id(mapping: Mapping, new_id: int) -> Mapping:
    return Mapping(new_id, mapping.memory_start, mapping.memory_limit, mapping.file_offset, mapping.filename,
                   mapping.build_id, mapping.has_functions, mapping.has_filenames, mapping.has_line_numbers,
                   mapping.has_inline_frames)

"""Bulk decoding of a profile's samples into columns (used by profile.py).

A big heap profile has 10^5-10^6 samples and 10^6-10^7 frames, so nothing here
touches samples or frames one by one in Python:

1. The raw Sample messages are joined with separator fields and parsed as ONE
   message by upb, so all location ids, values and labels arrive as flat
   columns. The separators (location id 0, a random 62-bit value, a label with
   key -1) are counted where they must be, so a malformed sample cannot shift
   the columns unnoticed.
2. Each stack becomes a `str` with one character per location (its *code*):
   compact, hashable, and set/slice/search run in C. When location ids are
   1..L with L < 16384 (every Go profile but huge ones), the code is chr(id)
   and ids are not even turned into Python ints: the packed varint bytes become
   the characters through byte translations and big-int arithmetic on the whole
   buffer (_varint_text). Otherwise ids go through upb as ints and a lookup table.

Where gotop was built with its C extension (_profile_speedups), the samples of
a profile with such ids are decoded there instead, in one pass over the raw
profile (compiled_samples); the path above decides whatever it declines.
"""

from __future__ import annotations

import os
import re
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import compress, islice

from google.protobuf.message import DecodeError
from google.protobuf.unknown_fields import UnknownFieldSet

from gotop.model import profile_pb
from gotop.model.speedups import speedups

# A Label with key -1 (never valid: keys are string indexes), as a Sample field.
_LABEL_SEPARATOR = b"\x1a\x0b\x08" + b"\xff" * 9 + b"\x01"
_LABEL_SEPARATOR_BLOB = _LABEL_SEPARATOR[2:]
_STACK_SEPARATOR = "\x00"  # between stacks while decoding: no location has code 0

_BATCH = 1 << 16  # samples decoded at a time
_PAIRED_MAX_ID = 1 << 14  # ids below this are 1- or 2-byte varints
_U32 = next(code for code in "IL" if array(code).itemsize == 4)
_UTF32 = "utf-32-le" if sys.byteorder == "little" else "utf-32-be"
_SURROGATES = range(0xD800, 0xE000)
_MAX_CODE = 0x10FFFF

# The packed path turns each varint byte into one UTF-16 unit (see _varint_text):
# tables of what a byte adds to its own unit, or to the next one.
_IS_FIRST = range(0x80, 0x100)  # a 2-byte varint's first byte; its last byte is < 0x80
_OWN_LOW = bytes(0xFF if b in _IS_FIRST else b for b in range(256))
_OWN_HIGH = bytes(0xFF if b in _IS_FIRST else 0 for b in range(256))
_FIRST_BITS = bytes(b & 0x7F if b in _IS_FIRST else 0 for b in range(256))
_FIRST_MARK = bytes(0xFF if b in _IS_FIRST else 0 for b in range(256))
_LAST_LOW = bytes(0 if b in _IS_FIRST else (b * 127) & 0xFF for b in range(256))
_LAST_HIGH = bytes(0 if b in _IS_FIRST else (b * 127) >> 8 for b in range(256))
_GONE = "\uffff"  # the unit of a first byte, removed once its bits moved on
_NONZERO = bytes([0] + [1] * 255)
# _minimal_varints' byte classes, coarser: first bytes 'f', what may not follow one 'b'.
_AFTER_FIRST_CLASSES = bytes(
    ord("f") if chr(b) in "aA" else ord("b") if chr(b) in "zsx" else ord(".") for b in range(256))


class MalformedSamples(Exception):
    """The samples do not decode; the message says why (one line)."""


@dataclass(frozen=True, slots=True)
class SampleColumns:
    stacks: list[str]  # per sample: location codes, leaf first
    values: list[array]  # per sample type: one int64 per sample
    label_sets: list[str]  # per sample: label codes (chr(index into label_table))
    label_table: tuple  # index 0 unused


@dataclass(frozen=True, slots=True)
class LocationCodes:
    """Which character stands for which location id in stacks."""

    of_id: dict[int, str]
    direct: bool  # chr(id) for ids 1..L, L < 16384: the packed varint path applies

    @classmethod
    def for_ids(cls, ids: Iterable[int]) -> LocationCodes:
        ids = list(ids)
        if set(ids) == set(range(1, len(ids) + 1)) and len(ids) < _PAIRED_MAX_ID:
            return cls({i: chr(i) for i in ids}, True)
        if len(ids) > _MAX_CODE - len(_SURROGATES):
            raise MalformedSamples("too many locations")
        return cls(dict(zip(ids, dense_codes())), False)


def dense_code(n: int) -> str:
    """The n-th (from 1) of chr(1), chr(2), ... skipping the surrogates."""
    return chr(n if n < _SURROGATES.start else n + len(_SURROGATES))


def dense_codes() -> Iterator[str]:
    return map(dense_code, range(1, _MAX_CODE - len(_SURROGATES) + 1))


def compiled_samples(profile: bytes | bytearray, value_count: int, codes: LocationCodes,
                     make_label: Callable[[bytes], object | None]) -> SampleColumns | None:
    """decode_samples' columns of the raw Profile message `profile`, from the C extension;
    None where it is not built, or does not apply (codes not chr(id)), or declines."""
    if speedups is None or not codes.direct:
        return None
    decoded = speedups.decode_samples(profile, len(codes.of_id), value_count)
    if decoded is None:
        return None
    stacks, label_sets, raw_values, blobs = decoded
    values = [array("q") for _ in raw_values]
    for column, raw_column in zip(values, raw_values):
        column.frombytes(raw_column)
    labeler = _Labeler(make_label)
    label_codes = labeler.codes(blobs)  # blobs are distinct, in order: dense codes but for ignored labels
    if any(code != dense_code(n) for n, code in enumerate(label_codes, 1)):
        renumbered = {ord(dense_code(n)): code or None for n, code in enumerate(label_codes, 1)}
        label_sets = [label_set.translate(renumbered) for label_set in label_sets]
    return SampleColumns(stacks, values, label_sets, labeler.table())


def decode_samples(
    raw: Sequence[bytes], value_count: int, codes: LocationCodes, make_label: Callable[[bytes], object | None],
) -> SampleColumns:
    """Columns of the raw Sample messages, all-zero samples dropped.

    `make_label(blob)` decodes one Label message (None: a label pprof ignores).
    Samples are decoded in batches, which bounds the memory of the temporaries.
    """
    labeler = _Labeler(make_label)
    stacks: list[str] = []
    values = [array("q") for _ in range(value_count)]
    label_sets: list[str] = []
    for start in range(0, len(raw), _BATCH):
        blobs = list(raw[start:start + _BATCH])
        batch_stacks, batch_values, batch_labels = _decode_batch(blobs, value_count, codes, labeler)
        stacks += batch_stacks
        label_sets += batch_labels
        for column, batch_column in zip(values, batch_values):
            column += batch_column
    _drop_zero_samples(stacks, values, label_sets)
    return SampleColumns(stacks, values, label_sets, labeler.table())


def _drop_zero_samples(stacks: list[str], values: list[array], label_sets: list[str]) -> None:
    """Remove, in place, the samples whose values are all 0 (as pprof's Merge)."""
    kept = _nonzero(values)
    if kept.find(b"\x00") < 0:
        return
    zero = [m.start() for m in re.finditer(b"\x00", kept)]
    if len(zero) < 64:  # the usual: a few samples not yet published by the runtime
        for column in (stacks, label_sets, *values):
            for i in reversed(zero):
                del column[i]
        return
    stacks[:] = compress(stacks, kept)
    label_sets[:] = compress(label_sets, kept)
    for column in values:
        column[:] = array("q", compress(column, kept))


def _nonzero(values: list[array]) -> bytes:
    """Per sample, 1 if any of its values is not 0, else 0; in big-int passes:
    OR the columns' bytes, OR each 8-byte value's bytes into its lowest one."""
    if not values or not values[0]:
        return b""
    any_byte = 0
    for column in values:
        any_byte |= int.from_bytes(column.tobytes(), "little")
    for shift in (8, 16, 32):  # fold the 8 bytes of each value onto its first
        any_byte |= any_byte >> shift
    size = values[0].itemsize
    return any_byte.to_bytes(len(values[0]) * size, "little")[0::size].translate(_NONZERO)


def _decode_batch(blobs: list[bytes], value_count: int, codes: LocationCodes, labeler: _Labeler
                  ) -> tuple[list[str], list[array], list[str]]:
    n = len(blobs)
    marker = _marker()
    batch = _parse(profile_pb.SampleBatchPacked if codes.direct else profile_pb.SampleBatch, blobs, marker)
    values = _values(batch.value, n, value_count, marker)
    label_sets = labeler.sets(batch.label, n)
    if not codes.direct:
        return _typed_stacks(batch.location_id, n, codes), values, label_sets
    stacks = _packed_stacks(batch, blobs, codes)
    if stacks is None:  # the typed view decides
        del batch
        stacks = _typed_stacks(_parse(profile_pb.SampleBatch, blobs, marker).location_id, n, codes)
    return stacks, values, label_sets


def _parse(message_type, blobs: list[bytes], marker: int):
    """All samples as one message, a separator between two samples: a location
    id 0 (in the packed view: an empty packed chunk), the marker value, a label
    with key -1."""
    location = b"\x0a\x00" if message_type is profile_pb.SampleBatchPacked else b"\x08\x00"
    separator = location + b"\x10" + profile_pb.encode_uvarint(marker) + _LABEL_SEPARATOR
    message = message_type()
    try:
        message.ParseFromString(separator.join(blobs))
    except DecodeError:
        raise MalformedSamples("a sample does not decode") from None
    return message


def _packed_stacks(batch, blobs: list[bytes], codes: LocationCodes) -> list[str] | None:
    """Stacks straight from the packed varint bytes (see module doc), or None
    when the typed path must decide (ids not minimal 1-2 byte varints of known
    locations, or mostly unpacked)."""
    n = len(blobs)
    chunks = batch.location_id[:]  # with an empty chunk between samples
    unpacked = sum(field.field_number == 1 for field in UnknownFieldSet(batch))
    if not unpacked and len(chunks) == 2 * n - 1 and not any(chunks[1::2]) and all(chunks[0::2]):
        present = chunks[0::2]  # the usual: one packed chunk per sample
    else:
        present = _regroup(chunks, blobs, unpacked)
        if present is None:
            return None
    del chunks
    joined = b"\x00".join(present)
    del present
    if not _minimal_varints(joined, len(codes.of_id)):
        return None
    stacks = _varint_text(joined).split(_STACK_SEPARATOR)
    if len(stacks) != n:
        raise MalformedSamples("a sample names location id 0")
    return stacks


def _regroup(chunks: list[bytes], blobs: list[bytes], unpacked: int) -> list[bytes] | None:
    """Each sample's packed ids as one chunk: a sample's several chunks joined,
    and for a sample with none, its ids decoded by the typed view and packed
    again (Go writes them unpacked for stacks of 1 or 2 frames). None when most
    samples have none, or the unpacked ids are not all accounted for."""
    chunk_counts = bytes(map(bool, chunks)).split(b"\x00")  # per sample, b"\x01" per chunk
    if len(chunk_counts) != len(blobs):
        return None  # an empty packed field: legal, rare, not worth a path
    present = iter(filter(None, chunks))
    stack_bytes: list[bytes] = []
    missing: list[int] = []
    for i, count in enumerate(chunk_counts):
        if len(count) == 1:
            stack_bytes.append(next(present))
        elif count:
            stack_bytes.append(b"".join(islice(present, len(count))))
        else:
            stack_bytes.append(b"")
            missing.append(i)
    if len(missing) > len(blobs) // 2:
        return None
    found = 0
    for i in missing:
        try:
            ids = profile_pb.SampleBatch.FromString(blobs[i]).location_id
        except DecodeError:
            raise MalformedSamples("a sample does not decode") from None
        stack_bytes[i] = b"".join(map(profile_pb.encode_uvarint, ids))
        found += len(ids)
    if found != unpacked:
        return None  # some sample mixes packed and unpacked ids
    return stack_bytes


def _minimal_varints(joined: bytes, max_id: int) -> bool:
    """Whether `joined` (stacks separated by a 0 byte) holds only minimal 1- and
    2-byte varints of ids 1..max_id. Checked on a map of byte classes, in C."""
    if max_id < 0x80:  # 1-byte varints only: one pass, 4 times faster than the classes (400k stacks)
        return not joined.translate(None, bytes(range(max_id + 1)))
    high, last = max_id >> 7, max_id & 0x7F  # the top id's second byte, and first byte's bits
    single_max = min(max_id, 0x7F)
    classes = bytearray(256)
    for b in range(0x80):
        # A varint's last byte, by what it may end: 'z' 0 (the separator) and
        # 's' a 1-byte varint only, 'p' also a pair below the top row, 'q' also
        # a pair in the top row, 'x' nothing.
        classes[b] = ord("z" if b == 0 else "p" if b < high else "q" if b == high else "s" if b <= single_max else "x")
    for b in range(0x80, 0x100):
        # A 2-byte varint's first byte: 'a' fits the top row, 'A' does not.
        classes[b] = ord("a" if (b & 0x7F) <= last and high else "A")
    shape = joined.translate(bytes(classes))
    if b"x" in shape or b"Aq" in shape or shape[-1:] in (b"a", b"A"):
        return False
    # A first byte must be followed by the last byte of a pair ('p' or 'q').
    follows_first = shape.translate(_AFTER_FIRST_CLASSES)
    return b"fb" not in follows_first and b"ff" not in follows_first


def _varint_text(joined: bytes) -> str:
    """chr(id) for each 1- or 2-byte varint of `joined`, in C-speed passes.

    Each byte becomes a 16-bit unit: a last byte t its value, a first byte a
    marker. Where a first byte (low bits a) precedes t, the unit must become
    a + 128*t: big-int arithmetic adds a (shifted one unit on) and 127*t
    (masked to the units after a first byte). Decoding the units as UTF-16 and
    dropping the markers leaves one character per varint.
    """
    if joined.isascii():
        return joined.decode("ascii")  # all ids < 128: one byte each
    size = len(joined)

    def units(low: bytes, high: bytes | None = None) -> int:
        buffer = bytearray(2 * size)
        buffer[0::2] = joined.translate(low)
        if high is not None:
            buffer[1::2] = joined.translate(high)
        return int.from_bytes(buffer, "little")

    after_first = units(_FIRST_MARK, _FIRST_MARK) << 16
    total = units(_OWN_LOW, _OWN_HIGH) + (units(_FIRST_BITS) << 16) + (units(_LAST_LOW, _LAST_HIGH) & after_first)
    return total.to_bytes(2 * size + 4, "little")[:2 * size].decode("utf-16-le").replace(_GONE, "")


def _typed_stacks(flat_ids, n: int, codes: LocationCodes) -> list[str]:
    """Stacks through upb's ints (location id 0 between samples): any ids,
    packed or not."""
    ids = flat_ids[:]
    try:
        if codes.direct:
            text = array(_U32, ids).tobytes().decode(_UTF32)
            if _beyond(len(codes.of_id)).search(text):
                raise KeyError
        else:
            lookup = {location_id: ord(code) for location_id, code in codes.of_id.items()}
            lookup[0] = ord(_STACK_SEPARATOR)
            text = array(_U32, map(lookup.__getitem__, ids)).tobytes().decode(_UTF32)
    except (KeyError, OverflowError, UnicodeDecodeError):
        raise MalformedSamples("a sample names an unknown location") from None
    stacks = text.split(_STACK_SEPARATOR)
    if len(stacks) != n:
        raise MalformedSamples("a sample names location id 0")
    return stacks


def _beyond(max_id: int) -> re.Pattern[str]:
    """Matches a character that is no location code when codes are chr(1..max_id)
    (or the separator, chr(0))."""
    return re.compile("[^\\x00-" + re.escape(chr(max_id)) + "]")


def _values(flat_values, n: int, k: int, marker: int) -> list[array]:
    """Per sample type, one value per sample, after checking that every sample
    had exactly k values (the marker follows each sample but the last).

    (upb containers slice in C far faster than they iterate.)
    """
    stride = k + 1
    if len(flat_values) != n * stride - 1 or flat_values[k::stride] != [marker] * (n - 1):
        raise MalformedSamples(f"a sample does not have {k} values (one per sample type)")
    columns = [array("q", flat_values[t::stride]) for t in range(k)]
    marker_bytes = array("q", [marker]).tobytes()
    if any(column.tobytes().count(marker_bytes) for column in columns):
        raise MalformedSamples(f"a sample does not have {k} values (one per sample type)")
    return columns


class _Labeler:
    """Gives each distinct label a code, across the batches of one profile."""

    def __init__(self, make_label: Callable[[bytes], object | None]):
        self._make_label = make_label
        self._table: list = [None]
        self._code_of: dict[bytes, str] = {}  # label message -> code ("" for a label pprof ignores)
        self._codes = dense_codes()

    def sets(self, flat_blobs, n: int) -> list[str]:
        """Per sample, its labels as a str of codes (the flat container holds
        the label separator between samples)."""
        separators = n - 1
        if len(flat_blobs) == separators and flat_blobs[:] == [_LABEL_SEPARATOR_BLOB] * separators:
            return [""] * n  # no sample has labels
        if len(flat_blobs) == 2 * n - 1 and flat_blobs[1::2] == [_LABEL_SEPARATOR_BLOB] * separators:
            singles = flat_blobs[0::2]  # one label per sample, as in heap profiles
            if _LABEL_SEPARATOR_BLOB not in singles:
                return self.codes(singles)
        blobs = flat_blobs[:]
        self.codes([blob for blob in dict.fromkeys(blobs) if blob != _LABEL_SEPARATOR_BLOB])
        lookup = {**self._code_of, _LABEL_SEPARATOR_BLOB: "\x00"}
        label_sets = "".join(map(lookup.__getitem__, blobs)).split("\x00")
        if len(label_sets) != n:
            raise MalformedSamples("a sample has a label with key -1")
        return label_sets

    def codes(self, blobs: list[bytes]) -> list[str]:
        """The codes of these label messages ("" for one pprof ignores), new ones decoded first."""
        code_of = self._code_of
        try:
            return list(map(code_of.__getitem__, blobs))
        except KeyError:
            for blob in dict.fromkeys(blobs):
                if blob not in code_of:
                    code_of[blob] = self._code(blob)
            return list(map(code_of.__getitem__, blobs))

    def _code(self, blob: bytes) -> str:
        label = self._make_label(blob)
        if label is None:
            return ""  # pprof ignores a label with neither a value nor a unit
        code = next(self._codes, None)
        if code is None:
            raise MalformedSamples("too many distinct labels")
        self._table.extend([None] * (ord(code) - len(self._table)))
        self._table.append(label)
        return code

    def table(self) -> tuple:
        return tuple(self._table)


def _marker() -> int:
    """A value no real sample holds (2^-62 odds per value), checked anyway."""
    return (int.from_bytes(os.urandom(8), "little") >> 2) | (1 << 62)

"""Gzip inflation against a size cap, in bounded steps (no I/O).

A gzip bomb (1 MB that inflates to 1 GiB) must cost at most the cap: the
output is produced a step at a time and the inflation stops as soon as it
passes the cap, and the input is fed in slices, so zlib never copies the rest
of a big input at each step.
"""

from __future__ import annotations

import zlib

from gotop.units import fmt_bytes

GZIP_MAGIC = b"\x1f\x8b"
_INPUT_STEP = 256 << 10
_OUTPUT_STEP = 1 << 20


class InflateError(Exception):
    """The bytes are not one whole gzip member; the message says why (one line)."""


class InflatesTooLarge(InflateError):
    """The member inflates to more than the cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"gzip data inflates beyond {fmt_bytes(limit)}")
        self.limit = limit


def inflate_member(data: bytes, limit: int, into: bytearray | None = None, start: int = 0) -> int:
    """Inflate the gzip member at `data[start:]`, appending its bytes to
    `into` (or discarding them: a check that the member is whole); returns
    where the member ends in `data`.

    InflatesTooLarge once more than `limit` bytes come out; InflateError for
    corrupt or truncated data. CPU-bound for big inputs: call it off the event loop.
    """
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    view = memoryview(data)
    size = 0
    end = start
    try:
        while not inflater.eof and end < len(view):
            pending: bytes | memoryview = view[end:end + _INPUT_STEP]
            end += len(pending)
            while not inflater.eof:
                out = inflater.decompress(pending, min(_OUTPUT_STEP, limit + 1 - size))
                pending = inflater.unconsumed_tail
                size += len(out)
                if size > limit:
                    raise InflatesTooLarge(limit)
                if into is not None:
                    into += out
                if not out and not pending:
                    break  # zlib needs more input
    except zlib.error as exc:
        raise InflateError(f"corrupt gzip data ({exc})") from None
    if not inflater.eof:
        raise InflateError(f"truncated gzip data (cut short after {len(data) - start} bytes)")
    return end - len(inflater.unused_data)

"""Bounded answers: a size-capped receive buffer and a gzip completeness check.

Neither transport trusts what a target sends: answers are collected only up to
a cap, and a gzip profile is checked to be one whole stream (the gops agent
marks the end of an answer only by closing the connection, so an agent dying
mid-answer looks like a short answer unless the gzip framing says otherwise).
"""

from __future__ import annotations

import zlib

from gotop.sources.errors import ResponseTooLarge, format_size

MiB = 1 << 20
GiB = 1 << 30

GZIP_MAGIC = b"\x1f\x8b"
# A gzip profile is inflated (and the output discarded) only to see that it is
# whole; this bounds the work a gzip bomb can cause.
MAX_INFLATED_PROFILE = 1 * GiB
_INFLATE_STEP = 1 * MiB


class CappedBuffer:
    """Collects an answer in memory and refuses to grow past `limit` bytes."""

    __slots__ = ("_data", "limit", "target")

    def __init__(self, target: str, limit: int) -> None:
        self._data = bytearray()
        self.limit = limit
        self.target = target

    def add(self, chunk: bytes) -> None:
        if len(self._data) + len(chunk) > self.limit:
            raise ResponseTooLarge(self.target, self.limit)
        self._data += chunk

    def __len__(self) -> int:
        return len(self._data)

    def getvalue(self) -> bytes:
        return bytes(self._data)


def gzip_problem(data: bytes, max_inflated: int = MAX_INFLATED_PROFILE) -> str | None:
    """Why `data` is not exactly one complete gzip stream, or None if it is.

    CPU-bound for big inputs: call it through asyncio.to_thread.
    """
    if not data.startswith(GZIP_MAGIC):
        return f"not gzip data (starts with {data[:16]!r})"
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    pending, inflated = data, 0
    try:
        while not inflater.eof:
            out = inflater.decompress(pending, _INFLATE_STEP)
            pending = inflater.unconsumed_tail
            if not out and not pending:
                break
            inflated += len(out)
            if inflated > max_inflated:
                return f"gzip data inflates to more than {format_size(max_inflated)}"
    except zlib.error as exc:
        return f"corrupt gzip data ({exc})"
    if not inflater.eof:
        return f"gzip stream cut short after {len(data)} bytes"
    if inflater.unused_data:
        return f"{len(inflater.unused_data)} unexpected bytes after the gzip stream"
    return None

"""Bounded answers: a size-capped receive buffer and a gzip completeness check.

Neither transport trusts what a target sends: answers are collected only up to
a cap, and a gzip profile is checked to be one whole stream (the gops agent
marks the end of an answer only by closing the connection, so an agent dying
mid-answer looks like a short answer unless the gzip framing says otherwise)
that inflates to no more than its kind of profile may.
"""

from __future__ import annotations

from gotop.model.inflate import GZIP_MAGIC, InflateError, InflatesTooLarge, inflate_member
from gotop.sources.errors import AnswerInflatesTooLarge, ResponseTooLarge

MiB = 1 << 20

# What a profile of each kind may inflate to. Heap profiles are the biggest (a
# sample per allocation stack, four values each); a goroutine profile has a
# sample per distinct stack and label set. A gzip bomb costs no more than this.
_MAX_INFLATED = {
    "heap": 512 * MiB, "allocs": 512 * MiB,
    "cpu": 256 * MiB, "block": 128 * MiB, "mutex": 128 * MiB,
    "goroutine": 128 * MiB, "goroutineleak": 128 * MiB, "threadcreate": 16 * MiB,
}


def max_inflated(kind: str) -> int:
    """The inflated size cap of a profile kind ('cpu' for /profile)."""
    return _MAX_INFLATED.get(kind, 512 * MiB)


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


def gzip_problem(target: str, data: bytes, kind: str) -> str | None:
    """Why `data` is not exactly one complete gzip stream, or None if it is.

    A stream that inflates beyond the cap of its profile kind raises
    AnswerInflatesTooLarge: that is no malformed answer but one too big to take.
    CPU-bound for big inputs: call it through asyncio.to_thread.
    """
    if not data.startswith(GZIP_MAGIC):
        return f"not gzip data (starts with {data[:16]!r})"
    try:
        end = inflate_member(data, max_inflated(kind))
    except InflatesTooLarge as e:
        raise AnswerInflatesTooLarge(target, e.limit, f"the {kind} profile") from None
    except InflateError as e:
        return str(e)
    if end < len(data):
        return f"{len(data) - end} unexpected bytes after the gzip stream"
    return None

"""Source files of a profiled program, read when this host has them (dev builds do)."""

from __future__ import annotations

MAX_SOURCE_BYTES = 4 << 20  # a bigger "source file" is not one worth listing


def read_source(path: str) -> str:
    """The file's text; OSError when it is missing, unreadable or too big."""
    with open(path, "rb") as f:
        data = f.read(MAX_SOURCE_BYTES + 1)
    if len(data) > MAX_SOURCE_BYTES:
        raise OSError(f"{path}: larger than {MAX_SOURCE_BYTES >> 20} MiB")
    return data.decode("utf-8", errors="replace")

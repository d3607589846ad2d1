"""Profiles and traces saved to files, for the CLI and the TUI alike.

Files open with `go tool pprof FILE` (profiles) or `go tool trace FILE`
(traces) and are created with mode 0600: a profile shows a program's insides.
gotop often runs as root, in directories other users can write: a file is
written whole under a fresh name and renamed into place (see save_private).
"""

from __future__ import annotations

import os
import stat
import time

from gotop.engine.target import Target
from gotop.engine.targetspec import TargetError
from gotop.errors import GotopError
from gotop.safefiles import replace_private
from gotop.sources.progress import ProgressCallback

KINDS = ("heap", "cpu", "trace", "goroutine")
DEFAULT_SECONDS = {"cpu": 30, "trace": 5}


async def capture(target: Target, kind: str, seconds: float | None = None,
                  progress: ProgressCallback | None = None) -> bytes:
    """The bytes of one profile or trace, in the format Go writes."""
    if seconds is not None and seconds <= 0:
        raise TargetError(f"a capture lasts a positive number of seconds, not {seconds:g}")
    if kind == "heap":
        return await target.heap_profile()
    if kind == "goroutine":
        return await target.goroutine_profile_proto()
    if kind not in ("cpu", "trace"):
        raise TargetError(f"unknown capture {kind!r}: choose one of {', '.join(KINDS)}")
    seconds = DEFAULT_SECONDS[kind] if seconds is None else seconds
    if kind == "cpu":
        if seconds != int(seconds):
            raise TargetError("a CPU profile lasts a whole number of seconds")
        return await target.cpu_profile(int(seconds), progress)
    return await target.trace(seconds, progress)


def opener(kind: str) -> str:
    return "go tool trace" if kind == "trace" else "go tool pprof"


def default_name(kind: str, target: str) -> str:
    """e.g. 'cpu-1234-20261125-180102.pb.gz' (the target as the user named it, made safe)."""
    safe = "".join(c if c.isalnum() or c in "-." else "_" for c in target.removeprefix("http://"))
    suffix = "trace" if kind == "trace" else "pb.gz"
    return f"{kind}-{safe}-{time.strftime('%Y%m%d-%H%M%S')}.{suffix}"


class SaveError(GotopError):
    """A capture could not be saved where asked; nothing was written there."""


def save_private(path: str, data: bytes) -> None:
    """Write `data` to `path`, readable by its owner only, through a new file
    renamed into place (safefiles.replace_private): a symlink planted at a
    predictable name in a shared directory is never followed, and a reader
    never sees part of a file. An existing `path` is replaced only if it is a
    regular file of ours.
    """
    _check_replaceable(path)
    try:  # checked again before the rename: the directory may have changed meanwhile
        replace_private(path, data, before_rename=lambda: _check_replaceable(path))
    except OSError as e:
        raise SaveError(f"{path}: cannot save: {e.strerror}") from None


def _check_replaceable(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise SaveError(f"{path}: cannot save: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise SaveError(f"{path}: is a symbolic link: not replaced (name another file)")
    if not stat.S_ISREG(st.st_mode):
        raise SaveError(f"{path}: exists and is not a regular file: not replaced")
    if st.st_uid != os.geteuid():
        raise SaveError(f"{path}: belongs to another user (uid {st.st_uid}): not replaced")

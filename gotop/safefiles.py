"""Small files read and written where others may have planted something.

gotop often runs as root, and reads files an untrusted profile names, or its
own files in directories others might write. A file is read only if it is a
regular file, opened without following a symlink and without blocking (a FIFO
swapped in cannot hang the open), within a size cap. A file is written as a new
one of mode 0600 beside the destination, whole, then renamed over it: a symlink
planted at either name is never followed (a rename replaces the link itself),
and a reader never sees part of a file.

gotop's own files (the probe cache, the escape analyses) live in a directory of
the user's (gotop_directory) and are read only while both the directory and
the file are private to the effective user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import stat
from collections.abc import Callable


class Refused(OSError):
    """A file that is there but is not one to read; the message says why, without its name."""


def read_regular(path: str, limit: int, *, expected: os.stat_result | None = None, dir_fd: int | None = None,
                 private: bool = False) -> bytes:
    """The bytes of `path` (relative to `dir_fd`, if given) if it is a regular
    file of at most `limit` bytes. `expected`: the caller's lstat of it, which is
    checked before the file is opened and must be the file opened; `private`:
    it must be ours, with no permission for anyone else. Raises Refused, or the
    OSError of the open or the read."""
    if expected is not None:
        _check_regular(expected, limit)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as f:
        now = os.fstat(fd)
        if expected is not None and (now.st_dev, now.st_ino) != (expected.st_dev, expected.st_ino):
            raise Refused("replaced while being opened")
        _check_regular(now, limit)
        if private and (now.st_uid != os.geteuid() or now.st_mode & 0o077):
            raise Refused("not private to its owner")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise Refused(_too_large(limit))
    return data


def _check_regular(st: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise Refused("not a regular file")
    if st.st_size > limit:
        raise Refused(_too_large(limit))


def _too_large(limit: int) -> str:
    return f"larger than {limit >> 20} MiB"


def replace_private(path: str, data: bytes, *, dir_fd: int | None = None,
                    before_rename: Callable[[], None] | None = None) -> None:
    """Replace `path` (relative to `dir_fd`, if given) by a new file holding
    `data`, mode 0600 (see the module doc). `before_rename` may refuse at the
    last moment by raising. On any failure the new file is removed, if it can
    be, and the error raised."""
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.part")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temporary, flags, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if before_rename is not None:
            before_rename()
        os.rename(temporary, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):  # the failure itself is the error to raise
            os.unlink(temporary, dir_fd=dir_fd)
        raise


# -- gotop's own directory: private files of ours -------------------------------------------------


def gotop_directory() -> str | None:
    """Where gotop keeps its files: $XDG_RUNTIME_DIR/gotop, else
    $XDG_CACHE_HOME/gotop, else the effective user's ~/.cache/gotop (from the
    password database, not $HOME: `sudo` may keep another user's); the first
    whose base is a directory of ours."""
    uid = os.geteuid()
    for base, name in ((os.environ.get("XDG_RUNTIME_DIR"), "gotop"),
                       (os.environ.get("XDG_CACHE_HOME"), "gotop"),
                       (_home(uid), os.path.join(".cache", "gotop"))):
        if base and os.path.isabs(base) and _owned_dir(base, uid):
            return os.path.join(base, name)
    return None


def _home(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_dir
    except KeyError:
        return None


def _owned_dir(path: str, uid: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == uid


def open_private_dir(directory: str, create: bool) -> int | None:
    """A descriptor of `directory` if it is ours and nobody else may write in it
    (made, mode 0700, when `create` and missing); None otherwise."""
    if create:
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError:
            return None
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        os.close(fd)
        return None
    return fd


def read_private(directory: str | None, name: str, limit: int) -> bytes | None:
    """The bytes of `name` in `directory` if both are private to us (see
    open_private_dir, read_regular) and it is within `limit`; else None."""
    dir_fd = open_private_dir(directory, create=False) if directory else None
    if dir_fd is None:
        return None
    try:
        return read_regular(name, limit, dir_fd=dir_fd, private=True)
    except OSError:
        return None
    finally:
        os.close(dir_fd)


def write_private(directory: str, name: str, data: bytes) -> None:
    """Replace `name` in `directory` (made if missing) atomically by a new file of
    mode 0600 holding `data`; on any failure, leave it as it was."""
    dir_fd = open_private_dir(directory, create=True)
    if dir_fd is None:
        return
    try:
        replace_private(name, data, dir_fd=dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)

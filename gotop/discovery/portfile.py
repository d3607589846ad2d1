"""The gops agent's port file, found the way the agent itself wrote it.

The agent writes its TCP port to `<config dir>/<pid>`, where the config dir
and the pid are as the *target* sees them: its environment (GOPS_CONFIG_DIR,
XDG_CONFIG_HOME, HOME), its user's home, its mount namespace and its pid
namespace. gotop reads the file through /proc/PID/root with the in-namespace
pid from NSpid, resolving symlinks inside that root so a container's link
cannot point gotop at a host file. The content is untrusted.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from dataclasses import dataclass

_MAX_PORT_FILE = 16
_MAX_ENVIRON = 1 << 20
_MAX_SYMLINK_HOPS = 40


@dataclass(frozen=True, slots=True)
class PortFile:
    """A well-formed port file: where it is (as the target sees it) and what it says."""

    path: str
    port: int
    mtime: float


class PortFileInvalid(Exception):
    """A port file exists but cannot be trusted (garbage, symlink, wrong owner, ...)."""


def read_environ(pid: int) -> dict[str, str]:
    """The initial environment of a process. Raises OSError when not readable."""
    with open(f"/proc/{pid}/environ", "rb") as f:
        data = f.read(_MAX_ENVIRON)
    env: dict[str, str] = {}
    for entry in data.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def config_dir(environ: dict[str, str], uid: int) -> str | None:
    """The directory the gops agent chose, following gops' internal.ConfigDir."""
    if environ.get("GOPS_CONFIG_DIR"):
        return environ["GOPS_CONFIG_DIR"]
    xdg = environ.get("XDG_CONFIG_HOME", "")
    if xdg.startswith("/"):
        return os.path.join(xdg, "gops")
    home = environ.get("HOME") or _home_of(uid)
    return os.path.join(home, ".config", "gops") if home else None


def _home_of(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_dir
    except KeyError:
        return None


def namespace_pid(pid: int) -> int:
    """The pid as the process sees itself (last NSpid field), for containers."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return pid


def read_port_file(pid: int, directory: str, owner_uid: int) -> PortFile | None:
    """Read `<directory>/<ns pid>` inside the target's root.

    None when there is no port file; PortFileInvalid when one exists but is not
    what a gops agent writes: a small regular file owned by the target's user,
    holding a decimal port in 1..65535.
    """
    path = os.path.join(directory, str(namespace_pid(pid)))
    try:
        fd = _open_in_root(f"/proc/{pid}/root", path)
    except FileNotFoundError:
        return None
    except PermissionError:
        raise
    except OSError as e:  # a symlink where the file should be, a loop, a file for a directory
        raise PortFileInvalid(f"{path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PortFileInvalid(f"{path}: not a regular file")
        if st.st_uid != owner_uid:
            raise PortFileInvalid(f"{path}: owned by uid {st.st_uid}, not the process's uid {owner_uid}")
        content = os.read(fd, _MAX_PORT_FILE + 1)
    finally:
        os.close(fd)
    text = content.strip()
    if len(content) > _MAX_PORT_FILE or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise PortFileInvalid(f"{path}: not a port number: {content[:_MAX_PORT_FILE]!r}")
    return PortFile(path, int(text), st.st_mtime)


def _open_in_root(root: str, path: str) -> int:
    """Open `path` as if `root` were "/": symlinks, absolute or relative, and
    ".." are resolved inside `root` and can never leave it. The last component
    must not be a symlink (gops writes a plain file)."""
    stack = [os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)]  # directories walked so far
    pending = path.split("/")
    hops = 0
    try:
        while pending:
            name = pending.pop(0)
            if name in ("", "."):
                continue
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            if not any(pending):
                return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=stack[-1])
            try:
                stack.append(os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1]))
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                target = os.readlink(name, dir_fd=stack[-1])  # raises if not a symlink either
                hops += 1
                if hops > _MAX_SYMLINK_HOPS:
                    raise OSError(errno.ELOOP, "too many symlinks") from None
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                pending = target.split("/") + pending
        raise IsADirectoryError(errno.EISDIR, "port file path names a directory")
    finally:
        for fd in stack:
            os.close(fd)

"""The UNIX stream sockets a process listens on, and where gotop connects to each.

containerd serves net/http/pprof on its debug socket, dockerd on its API socket
when debug is on, and many daemons keep their admin endpoints off the network
this way. A socket is found the way TCP ones are (sockets.py): the LISTEN
sockets of the process's network namespace, by inode, matched to the inodes
among its descriptors. In gotop's own namespace the kernel lists them (netlink
unix_diag: listeners only, with their path and the inode of their socket file);
in another one, /proc/PID/net/unix (every UNIX socket of that namespace).

A socket is named as the process bound it: "/run/containerd/debug.sock", or
"@name" for an abstract one (a name in the network namespace, no file). gotop
connects to a path in the process's own mount namespace through
/proc/PID/root, so a socket inside a container is reached where the process
sees it (a container's, a chrooted daemon's); an abstract socket only from the
same network namespace.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass, field

from gotop.discovery.sockdiag import attributes, sock_diag
from gotop.unixconnect import socket_address

_MAX_TABLE_BYTES = 64 << 20  # as for TCP: a host with millions of sockets must not make a scan read gigabytes

# unix_diag (linux/unix_diag.h)
_TCPF_LISTEN = 1 << 10
_UDIAG_SHOW_NAME, _UDIAG_SHOW_VFS = 0x1, 0x2
_UNIX_DIAG_NAME, _UNIX_DIAG_VFS = 0, 1
_DIAG_REQUEST = struct.Struct("=BBxxIII8x")  # unix_diag_req: family, protocol, states, inode, show, cookie
_DIAG_MESSAGE = struct.Struct("=BBBxI8x")  # unix_diag_msg: family, type, state, inode, cookie
_VFS = struct.Struct("=II")  # unix_diag_vfs: inode, device (the kernel's own dev_t encoding)
# /proc/net/unix: "Num RefCount Protocol Flags Type St Inode Path"; __SO_ACCEPTCON marks a listener.
_SO_ACCEPTCON = 0x10000


@dataclass(frozen=True, slots=True)
class UnixListener:
    """One listening UNIX stream socket. `path` as the process bound it ("@name":
    abstract); `file`: (st_dev, st_ino) of its socket file where the kernel said
    (netlink); `dial`: where gotop connects to it, once known for its process."""

    path: str
    inode: int
    file: tuple[int, int] | None = field(default=None, compare=False)
    dial: str = field(default="", compare=False)

    @property
    def abstract(self) -> bool:
        return self.path.startswith("@")


def unix_listening_table(pid: int | str) -> dict[int, UnixListener]:
    """All listening UNIX stream sockets of the network namespace `pid` ("self": gotop) lives in, by inode."""
    own = _namespace("self", "net")
    if own is not None and _namespace(pid, "net") == own:
        try:
            return netlink_unix_table()
        except OSError:
            pass  # no unix_diag here: the /proc table
    return proc_unix_table(pid)


def netlink_unix_table() -> dict[int, UnixListener]:
    """The listening UNIX stream sockets of gotop's own network namespace, from
    netlink unix_diag. Raises OSError when the kernel refuses or garbles it."""
    request = _DIAG_REQUEST.pack(socket.AF_UNIX, 0, _TCPF_LISTEN, 0, _UDIAG_SHOW_NAME | _UDIAG_SHOW_VFS)
    table: dict[int, UnixListener] = {}
    for message in sock_diag([request], _MAX_TABLE_BYTES):
        if len(message) < _DIAG_MESSAGE.size:
            raise OSError("unix_diag: short unix_diag_msg")
        _family, kind, _state, inode = _DIAG_MESSAGE.unpack_from(message)
        found = attributes(message, _DIAG_MESSAGE.size)
        name = found.get(_UNIX_DIAG_NAME)
        if kind != socket.SOCK_STREAM or not name:  # unnamed: nothing can connect to it
            continue
        file = None
        if len(vfs := found.get(_UNIX_DIAG_VFS, b"")) >= _VFS.size:
            file_inode, device = _VFS.unpack_from(vfs)
            file = (os.makedev(device >> 20, device & 0xFFFFF), file_inode)  # the kernel's MKDEV -> st_dev
        table[inode] = UnixListener(_shown(name), inode, file)
    return table


def proc_unix_table(pid: int | str) -> dict[int, UnixListener]:
    """The listening UNIX stream sockets of `pid`'s network namespace, from
    /proc/PID/net/unix (which prints a NUL in an abstract name as "@")."""
    try:
        with open(f"/proc/{pid}/net/unix", "rb") as f:
            data = f.read(_MAX_TABLE_BYTES)
    except OSError:
        return {}
    table: dict[int, UnixListener] = {}
    for line in data.splitlines()[1:]:
        fields = line.split(maxsplit=7)
        try:
            listening = int(fields[3], 16) & _SO_ACCEPTCON and int(fields[4], 16) == socket.SOCK_STREAM
            inode = int(fields[6])
        except (IndexError, ValueError):
            continue
        if listening and len(fields) == 8:
            table[inode] = UnixListener(os.fsdecode(fields[7]), inode)
    return table


def _shown(name: bytes) -> str:
    """A bound name as `ss` and /proc show it: a path (up to its NUL), or "@" and
    an abstract name (all its bytes, NULs too)."""
    return "@" + os.fsdecode(name[1:]) if name[:1] == b"\0" else os.fsdecode(name.split(b"\0", 1)[0])


def _namespace(pid: int | str, kind: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def dial_path(pid: int, path: str) -> str | None:
    """Where gotop connects to the socket `pid` bound at `path`: an abstract name
    (a leading NUL) when gotop shares its network namespace, a path where the
    process sees it (through /proc/PID/root when its mount namespace or root
    directory is not gotop's), a relative one from its working directory. None:
    an abstract socket of another network namespace."""
    if path.startswith("@"):
        same = _namespace(pid, "net") in (None, _namespace("self", "net"))
        return socket_address(path) if same else None
    if not path.startswith("/"):
        return f"/proc/{pid}/cwd/{path}"
    return path if _sees_as_gotop(pid) else f"/proc/{pid}/root{path}"


def _sees_as_gotop(pid: int) -> bool:
    """Whether a path means for the process what it means for gotop: the same mount
    namespace and root directory (not a container's, not chrooted). A process
    gotop may not look into (another user's) is taken to: its path is all there is."""
    try:
        same_root = os.path.samestat(os.stat(f"/proc/{pid}/root"), os.stat("/"))
    except OSError:
        return True
    return same_root and _namespace(pid, "mnt") in (None, _namespace("self", "mnt"))


def listening_unix_sockets(pid: int, table: dict[int, UnixListener], owned: set[int]) -> tuple[UnixListener, ...]:
    """The listening UNIX sockets among `owned` (the socket inodes of `pid`'s
    descriptors), by path, each with where gotop dials it (none for an abstract
    socket of another network namespace)."""
    mine = (s for inode, s in table.items() if inode in owned)
    return tuple(sorted((UnixListener(s.path, s.inode, s.file, dial_path(pid, s.path) or "") for s in mine),
                        key=lambda s: s.path))


def bound_at(path: str) -> UnixListener | None:
    """The listening socket of gotop's own network namespace whose socket file is
    `path` ("@name": the abstract socket of that name). Matched by the file's
    device and inode where the kernel says them, so a socket of the same path in
    a container's mount namespace never matches."""
    table = unix_listening_table("self")
    if path.startswith("@"):
        return next((s for s in table.values() if s.path == path), None)
    try:
        st = os.stat(path)
    except OSError:
        return None
    identity = (st.st_dev, st.st_ino)
    for listener in table.values():
        if listener.file == identity or (listener.file is None and listener.path == path):
            return listener
    return None

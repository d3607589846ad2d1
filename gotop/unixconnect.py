"""Connecting to a UNIX socket by a path of any length.

A socket address holds at most 107 bytes of path (sun_path), and the path
gotop dials to a container's socket, /proc/PID/root/..., passes that easily.
A longer path is reached through an O_PATH descriptor of the socket file:
connect() follows /proc/self/fd/N to it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

UNIX_PREFIX = "unix:"  # how gotop names an HTTP server on a UNIX socket: "unix:/run/x.sock", "unix:@name"
_SUN_PATH_MAX = 107  # sun_path's 108 bytes, less the terminating NUL


def socket_address(path: str) -> str:
    """Where to connect to a socket named as gotop shows it: "@name" is the
    abstract socket "\0name", anything else a path."""
    return "\0" + path[1:] if path.startswith("@") else path


@contextmanager
def unix_address(path: str) -> Iterator[str]:
    """An address connect() takes for `path` ("\\0name": abstract), valid inside the block."""
    if path.startswith("\0") or len(os.fsencode(path)) <= _SUN_PATH_MAX:
        yield path
        return
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def connect_unix(path: str, timeout: float) -> socket.socket:
    """A stream socket connected to `path`; raises OSError (PermissionError: not
    ours to connect to) or TimeoutError."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(timeout)
        with unix_address(path) as address:
            sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock

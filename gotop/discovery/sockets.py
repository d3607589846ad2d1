"""The TCP sockets a process listens on, read from /proc in the process's own
network namespace.

psutil reads /proc/net/tcp, i.e. the namespace gotop runs in, so it sees no
sockets of a process in a container. Here the table comes from
/proc/PID/net/tcp{,6} (the target's namespace) and is matched to the
socket inodes among the target's open file descriptors.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

_TCP_LISTEN = "0A"
# A namespace's socket table is read at most this far: a host with millions of
# connections must not make a scan read gigabytes.
_MAX_TABLE_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class ListenSocket:
    """One listening TCP socket: `host` is the bound address ("0.0.0.0", "::", ...)."""

    host: str
    port: int
    inode: int

    @property
    def is_wildcard(self) -> bool:
        return ipaddress.ip_address(self.host).is_unspecified

    def dial_hosts(self) -> tuple[str, ...]:
        """Addresses to connect to from this host: loopback for a wildcard listener."""
        if not self.is_wildcard:
            return (self.host,)
        return ("::1", "127.0.0.1") if ":" in self.host else ("127.0.0.1",)


def netns_id(pid: int | str) -> int | None:
    """Inode of a process's network namespace (`"self"` for gotop's own); None if unreadable."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def listening_table(pid: int) -> dict[int, ListenSocket]:
    """All LISTEN TCP sockets of the network namespace `pid` lives in, by inode."""
    table: dict[int, ListenSocket] = {}
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}", "rb") as f:
                data = f.read(_MAX_TABLE_BYTES)
        except OSError:
            continue
        for line in data.splitlines()[1:]:
            sock = _parse_listen_line(line)
            if sock is not None:
                table[sock.inode] = sock
    return table


def _parse_listen_line(line: bytes) -> ListenSocket | None:
    # "  0: 0100007F:1F90 00000000:0000 0A ... uid timeout inode ..."
    fields = line.split()
    if len(fields) < 10 or fields[3] != _TCP_LISTEN.encode():
        return None
    try:
        addr_hex, port_hex = fields[1].decode().split(":")
        return ListenSocket(_decode_addr(addr_hex), int(port_hex, 16), int(fields[9]))
    except ValueError:
        return None


def _decode_addr(hex_addr: str) -> str:
    # The kernel prints each 32-bit word of the address in host (little-endian) order.
    raw = bytes.fromhex(hex_addr)
    if len(raw) not in (4, 16):
        raise ValueError(hex_addr)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets among a process's file descriptors.

    Raises PermissionError when /proc/PID/fd is not readable (another user's process).
    """
    inodes: set[int] = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(f"{fd_dir}/{fd}")
        except OSError:  # closed meanwhile
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[8:-1]))
    return inodes


def listening_sockets(pid: int, table: dict[int, ListenSocket] | None = None) -> tuple[ListenSocket, ...]:
    """The LISTEN sockets owned by `pid`, sorted by port.

    `table` is its namespace's `listening_table`, when the caller shares one
    read across the processes of a namespace.
    """
    if table is None:
        table = listening_table(pid)
    owned = socket_inodes(pid)
    return tuple(sorted((s for inode, s in table.items() if inode in owned), key=lambda s: (s.port, s.host)))

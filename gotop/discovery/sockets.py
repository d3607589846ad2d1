"""The TCP sockets a process listens on, in the process's own network namespace.

The namespace's LISTEN sockets are matched to the socket inodes among the
target's open file descriptors. In gotop's own namespace the kernel is asked
for LISTEN sockets only (netlink sock_diag): /proc/net/tcp{,6} would list every
connection, and the kernel walks its whole connection table to print them
(milliseconds per few hundred sockets, a second on a busy server), on every
rescan. A netlink socket sees only the namespace it was made in, so for a
process in another one (a container) the table comes from /proc/PID/net/tcp{,6},
which psutil cannot do (it reads gotop's own namespace).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from dataclasses import dataclass

from gotop.discovery.sockdiag import sock_diag
from gotop.hosts import named_addresses
from gotop.procstat import read_proc_stat

_TCP_LISTEN = "0A"
# A namespace's socket table is read at most this far: a host with millions of
# connections must not make a scan read gigabytes.
_MAX_TABLE_BYTES = 64 << 20

# inet_diag (linux/inet_diag.h): a request for one family's LISTEN TCP sockets, and its answers.
_TCPF_LISTEN = 1 << 10
_DIAG_REQUEST = struct.Struct("=BBBxI48x")  # inet_diag_req_v2: family, protocol, ext, states, zero socket id
# inet_diag_msg: family, state, timer, retrans, sport, src, inode
_DIAG_MESSAGE = struct.Struct("=BBBBH2x16s16x4x8x16xI")


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


def listening_table(pid: int | str) -> dict[int, ListenSocket]:
    """All LISTEN TCP sockets of the network namespace `pid` ("self": gotop) lives in, by inode."""
    own_namespace = netns_id("self")
    if own_namespace is not None and netns_id(pid) == own_namespace:
        try:
            return netlink_listening_table()
        except OSError:
            pass  # no sock_diag here (a sandbox, a kernel without inet_diag): the /proc tables
    return proc_listening_table(pid)


def netlink_listening_table() -> dict[int, ListenSocket]:
    """The LISTEN TCP sockets of gotop's own network namespace, by inode, from
    netlink sock_diag. Raises OSError when the kernel refuses or garbles it."""
    requests = [_DIAG_REQUEST.pack(family, socket.IPPROTO_TCP, 0, _TCPF_LISTEN)
                for family in (socket.AF_INET, socket.AF_INET6)]
    listeners = (_diag_listener(message) for message in sock_diag(requests, _MAX_TABLE_BYTES))
    return {listener.inode: listener for listener in listeners}


def _diag_listener(message: bytes) -> ListenSocket:
    if len(message) < _DIAG_MESSAGE.size:
        raise OSError("sock_diag: short inet_diag_msg")
    family, _state, _timer, _retrans, port, address, inode = _DIAG_MESSAGE.unpack_from(message)
    host = ipaddress.IPv4Address(address[:4]) if family == socket.AF_INET else ipaddress.IPv6Address(address)
    return ListenSocket(str(host), socket.ntohs(port), inode)


def proc_listening_table(pid: int | str) -> dict[int, ListenSocket]:
    """The LISTEN TCP sockets of `pid`'s network namespace, by inode, from
    /proc/PID/net/tcp{,6}: any namespace, at the cost of a walk of every connection."""
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


def listening_sockets(pid: int, table: dict[int, ListenSocket] | None = None,
                      owned: set[int] | None = None) -> tuple[ListenSocket, ...]:
    """The LISTEN sockets owned by `pid`, sorted by port.

    `table` is its namespace's `listening_table`, when the caller shares one
    read across the processes of a namespace; `owned`, its `socket_inodes`,
    when the caller has read them.
    """
    if table is None:
        table = listening_table(pid)
    if owned is None:
        owned = socket_inodes(pid)
    return tuple(sorted((s for inode, s in table.items() if inode in owned), key=lambda s: (s.port, s.host)))


def own_listener(host: str, port: int) -> ListenSocket | None:
    """The LISTEN socket of gotop's own network namespace that a connection to
    the loopback address `host` ("localhost" too) and `port` reaches: one bound
    to that address, else a wildcard one. Listeners of other namespaces (a
    container's) never match."""
    on_port = [s for s in listening_table("self").values() if s.port == port]
    for address in named_addresses(host):
        # A dual-stack "::" listener takes IPv4 connections too; "0.0.0.0" takes no IPv6 ones.
        wildcards = ("0.0.0.0", "::") if address.version == 4 else ("::",)
        for bound in (str(address), *wildcards):
            found = next((s for s in on_port if s.host == bound), None)
            if found is not None:
                return found
    return None


def socket_owner(inode: int) -> int | None:
    """The process that holds the socket `inode` among its descriptors, found
    without asking any process anything. A socket passed down (systemd's socket
    activation, a wrapper that forks) is held by parent and child: the child
    serves it."""
    holders = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if inode in socket_inodes(int(entry)):
                    holders.append(int(entry))
            except OSError:  # gone, or not ours to read
                continue
    return next((pid for pid in holders if _parent(pid) in holders), holders[0] if holders else None)


def _parent(pid: int) -> int | None:
    try:
        return read_proc_stat(pid).ppid
    except (OSError, ValueError):
        return None

"""Netlink sock_diag: the kernel lists the sockets of gotop's own network
namespace that a request asks for (LISTEN ones only, say), where /proc/net/*
would print every connection of the host's namespace.

A netlink socket sees only the namespace it was made in.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable, Iterator

# linux/netlink.h, linux/sock_diag.h
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_TIMEOUT = 2.0


def sock_diag(requests: Iterable[bytes], max_bytes: int) -> Iterator[bytes]:
    """The answers (one message each) to dump requests (inet_diag_req_v2,
    unix_diag_req, ...), asked one after the other on one netlink socket.
    Raises OSError when the kernel refuses, garbles or overfills (past `max_bytes`) a dump."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, _NETLINK_SOCK_DIAG) as sock:
        sock.settimeout(_TIMEOUT)
        for sequence, request in enumerate(requests, start=1):
            header = _NLMSG_HEADER.pack(
                _NLMSG_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST | _NLM_F_DUMP, sequence, 0)
            sock.sendto(header + request, (0, 0))
            yield from _dump(sock, sequence, max_bytes)


def _dump(sock: socket.socket, sequence: int, max_bytes: int) -> Iterator[bytes]:
    """The payloads of one dump's messages, until its end (NLMSG_DONE)."""
    received = 0
    while True:
        data = sock.recv(1 << 16)
        received += len(data)
        if not data or received > max_bytes:
            raise OSError("sock_diag: dump cut short")
        offset = 0
        while offset + _NLMSG_HEADER.size <= len(data):
            length, kind, _flags, seq, _port = _NLMSG_HEADER.unpack_from(data, offset)
            if length < _NLMSG_HEADER.size or offset + length > len(data):
                raise OSError("sock_diag: malformed message")
            payload = data[offset + _NLMSG_HEADER.size : offset + length]
            offset += (length + 3) & ~3  # messages are 4-byte aligned
            if seq != sequence:
                continue
            if kind == _NLMSG_DONE:
                return
            if kind == _NLMSG_ERROR:
                code = -struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
                raise OSError(code, f"sock_diag: {os.strerror(code)}")
            if kind == _SOCK_DIAG_BY_FAMILY:
                yield payload


def attributes(payload: bytes, offset: int) -> dict[int, bytes]:
    """The netlink attributes (struct rtattr: length, type, data; 4-byte aligned)
    after a message's fixed part."""
    found: dict[int, bytes] = {}
    while offset + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, offset)
        if length < 4 or offset + length > len(payload):
            raise OSError("sock_diag: malformed attribute")
        found[kind] = payload[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found

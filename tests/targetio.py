"""Plain reads from a running test target for the parser tests.

The parsers are pure; these helpers fetch what they parse the simplest way (a
raw TCP exchange with the gops agent, a GET with urllib), independent of the
real clients in gotop.sources.
"""

from __future__ import annotations

import socket
import urllib.request

READ_LIMIT = 64 * 1024 * 1024
TIMEOUT = 20.0  # a safety net only


def agent_request(port: int, command: bytes) -> bytes:
    """Send one gops agent command to 127.0.0.1:port and read the reply to EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as conn:
        conn.sendall(command)
        chunks, size = [], 0
        while chunk := conn.recv(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > READ_LIMIT:
                raise RuntimeError(f"agent reply over {READ_LIMIT} bytes")
        return b"".join(chunks)


def http_get(addr: str, path: str) -> bytes:
    """GET http://addr/path and return the body (raises on a non-2xx status)."""
    with urllib.request.urlopen(f"http://{addr}{path}", timeout=TIMEOUT) as response:
        return response.read(READ_LIMIT + 1)

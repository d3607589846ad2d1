"""Which listening sockets of a Go process serve net/http/pprof or expvar.

Each socket gets one short HTTP/1.0 GET of `/debug/pprof/` and of
`/debug/vars`; wildcard listeners are dialled on loopback. Answers are read
only up to a small cap. A probe is a few bytes over a plain socket on a
thread: discovery must stay fast to start, and loading an HTTP client library
and an event loop would cost more than the probes themselves.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from gotop.discovery.sockets import ListenSocket
from gotop.model.memstats import MemStatsParseError, parse_expvar

PROBE_TIMEOUT = 0.5
_MAX_PROBE_BYTES = 256 << 10
_MAX_CONCURRENT = 32


@dataclass(frozen=True, slots=True)
class HttpEndpoints:
    pprof: str | None = None  # base URL, e.g. "http://127.0.0.1:6060/debug/pprof/"
    expvar: str | None = None  # e.g. "http://127.0.0.1:6060/debug/vars"


def url_base(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def looks_like_pprof_index(body: bytes) -> bool:
    """net/http/pprof's index page links every profile as `NAME?debug=1`."""
    return b"goroutine?debug=" in body and b"heap?debug=" in body


def looks_like_expvar(body: bytes) -> bool:
    """expvar's JSON with runtime.MemStats, read by the parser the polls use:
    whatever a process sends (JSON nested 5000 deep...) costs only that process."""
    try:
        return parse_expvar(body).memstats is not None
    except MemStatsParseError:
        return False


def http_get(host: str, port: int, path: str, timeout: float) -> tuple[bool, bytes | None]:
    """(whether an HTTP server answered at all, the body of a 200 answer within the cap)."""
    deadline = time.monotonic() + timeout
    request = f"GET {path} HTTP/1.0\r\nHost: {url_base(host, port)[7:]}\r\nUser-Agent: gotop\r\n\r\n"
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request.encode())
            answer = b""
            while len(answer) <= _MAX_PROBE_BYTES:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
            else:
                return True, None  # too big to be what we look for
    except OSError:  # refused, reset, timed out
        return False, None
    head, sep, body = answer.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if not sep or len(status) < 2 or not status[0].startswith(b"HTTP/"):
        return False, None
    return True, body if status[1] == b"200" else None


def _probe_socket(sock: ListenSocket, timeout: float) -> HttpEndpoints:
    for host in sock.dial_hosts():
        reached, index = http_get(host, sock.port, "/debug/pprof/", timeout)
        if not reached:
            continue  # try the next loopback address of a wildcard listener
        _, vars_body = http_get(host, sock.port, "/debug/vars", timeout)
        base = url_base(host, sock.port)
        return HttpEndpoints(
            pprof=base + "/debug/pprof/" if index and looks_like_pprof_index(index) else None,
            expvar=base + "/debug/vars" if vars_body and looks_like_expvar(vars_body) else None,
        )
    return HttpEndpoints()


def probe_all(sockets_by_key: dict[Hashable, Iterable[ListenSocket]], timeout: float = PROBE_TIMEOUT) -> dict:
    """Probe many processes' sockets at once: {key: sockets} -> {key: HttpEndpoints}.

    The first socket (lowest port) serving pprof, and the first serving expvar, win.
    """
    jobs = [(key, sock) for key, socks in sockets_by_key.items() for sock in socks]
    with ThreadPoolExecutor(max_workers=min(_MAX_CONCURRENT, len(jobs) or 1)) as pool:
        found = list(pool.map(lambda job: _probe_socket(job[1], timeout), jobs))
    result: dict = {}
    for (key, _), endpoints in zip(jobs, found):
        before = result.get(key, HttpEndpoints())
        result[key] = HttpEndpoints(before.pprof or endpoints.pprof, before.expvar or endpoints.expvar)
    return result

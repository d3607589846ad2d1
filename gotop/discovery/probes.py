"""Which listening sockets of a Go process serve net/http/pprof or expvar.

Every request lands in the target's logs (a TLS server logs a handshake error,
a protocol multiplexer an unknown protocol), so a socket is asked as little as
tells: first `GET /debug/pprof/cmdline`, pprof's cheapest handler (os.Args, no
profile counted), whose answer must name the process's own argv[0]; then,
only if an HTTP server routed that request (200 or 404), `GET /debug/vars`.
A socket that is not HTTP, or an HTTP server that refuses (a TLS server's
400, a 401), gets the one request. Measured on Go 1.26: pprof's cmdline is a
200 text/plain of ~100 bytes, the index page (asked before) 2.6 KB and
counting every profile; /debug/vars 3.9 KB; a path nobody serves, 404.

Wildcard listeners are dialled on loopback. Answers are read only up to a small
cap. A probe is a few bytes over a plain socket on a thread: discovery must
stay fast to start, and loading an HTTP client library and an event loop would
cost more than the probes themselves.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from gotop.discovery.sockets import ListenSocket
from gotop.model.memstats import MemStatsParseError, parse_expvar

# Per request. A socket is probed once in its process's life, so waiting longer costs only the
# first run; 0.5 s missed real pprof servers on a loaded host (a timeout is not remembered).
PROBE_TIMEOUT = 1.0
_MAX_PROBE_BYTES = 256 << 10
_MAX_CONCURRENT = 32
PPROF_PATH = "/debug/pprof/"
EXPVAR_PATH = "/debug/vars"


@dataclass(frozen=True, slots=True)
class HttpEndpoints:
    pprof: str | None = None  # base URL, e.g. "http://127.0.0.1:6060/debug/pprof/"
    expvar: str | None = None  # e.g. "http://127.0.0.1:6060/debug/vars"


@dataclass(frozen=True, slots=True)
class SocketProbe:
    """What one listening socket serves. `lasting`: the socket answered (or
    plainly is not HTTP), so the finding holds while the socket lives; a socket
    that refused or timed out is asked again by a later gotop run."""

    endpoints: HttpEndpoints = HttpEndpoints()
    lasting: bool = False


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int | None  # None: the peer spoke, or closed, but not HTTP
    body: bytes | None = None  # a 200's body within the cap


def url_base(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def endpoint_urls(sock: ListenSocket, dial_host: str) -> HttpEndpoints:
    """The pprof and expvar URLs of a socket, dialled at one of its addresses."""
    base = url_base(dial_host, sock.port)
    return HttpEndpoints(base + PPROF_PATH, base + EXPVAR_PATH)


def looks_like_expvar(body: bytes) -> bool:
    """expvar's JSON with runtime.MemStats, read by the parser the polls use:
    whatever a process sends (JSON nested 5000 deep...) costs only that process."""
    try:
        return parse_expvar(body).memstats is not None
    except MemStatsParseError:
        return False


def names_argv0(cmdline_body: bytes, argv0: bytes) -> bool:
    """pprof's cmdline is os.Args joined by NULs: its first field is the
    process's argv[0] (a server answering every path with 200 does not echo it,
    and a proxy in front of another process would name that one)."""
    return bool(argv0) and cmdline_body.split(b"\0", 1)[0] == argv0


def http_get(host: str, port: int, path: str, timeout: float) -> _Reply | None:
    """One HTTP/1.0 GET; None when there was no connection or no answer in time."""
    deadline = time.monotonic() + timeout
    request = f"GET {path} HTTP/1.0\r\nHost: {url_base(host, port)[7:]}\r\nUser-Agent: gotop\r\n\r\n"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:  # refused, no route, timed out
        return None
    answer = b""
    with sock:
        try:
            sock.sendall(request.encode())
            while len(answer) <= _MAX_PROBE_BYTES:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except TimeoutError:
            return None  # busy, or waiting for a protocol of its own: ask again another time
        except OSError:  # reset: it read a little and closed, not HTTP
            return _Reply(None)
    head, sep, body = answer.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if not sep or len(status) < 2 or not status[0].startswith(b"HTTP/") or not status[1].isdigit():
        return _Reply(None)
    code = int(status[1])
    return _Reply(code, body if code == 200 and len(answer) <= _MAX_PROBE_BYTES else None)


def probe_socket(sock: ListenSocket, argv0: bytes, timeout: float = PROBE_TIMEOUT) -> SocketProbe:
    for host in sock.dial_hosts():
        cmdline = http_get(host, sock.port, PPROF_PATH + "cmdline", timeout)
        if cmdline is None:
            continue  # the next loopback address of a wildcard listener, or a later run
        if cmdline.status not in (200, 404):
            return SocketProbe(lasting=True)  # not HTTP, or a server that refuses
        urls = endpoint_urls(sock, host)
        pprof = urls.pprof if cmdline.body is not None and names_argv0(cmdline.body, argv0) else None
        vars_reply = http_get(host, sock.port, EXPVAR_PATH, timeout)
        if vars_reply is None:  # pprof is proven; expvar is asked again another time
            return SocketProbe(HttpEndpoints(pprof, None))
        expvar = vars_reply.body is not None and looks_like_expvar(vars_reply.body)
        return SocketProbe(HttpEndpoints(pprof, urls.expvar if expvar else None), True)
    return SocketProbe()


def probe_sockets(jobs: list[tuple[ListenSocket, bytes]], timeout: float = PROBE_TIMEOUT) -> list[SocketProbe]:
    """Probe many (socket, its process's argv[0]) at once, in order."""
    with ThreadPoolExecutor(max_workers=min(_MAX_CONCURRENT, len(jobs) or 1)) as pool:
        return list(pool.map(lambda job: probe_socket(job[0], job[1], timeout), jobs))


def combine(findings: Iterable[HttpEndpoints]) -> HttpEndpoints:
    """A process's endpoints from its sockets' (lowest port first): the first
    serving pprof, and the first serving expvar, win."""
    pprof = expvar = None
    for found in findings:
        pprof, expvar = pprof or found.pprof, expvar or found.expvar
    return HttpEndpoints(pprof, expvar)

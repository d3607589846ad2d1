"""Which listening sockets of a Go process serve net/http/pprof, expvar or Prometheus /metrics.

Every request lands in the target's logs (a TLS server logs a handshake error,
a protocol multiplexer an unknown protocol), so a socket is asked as little as
tells: first `GET /debug/pprof/cmdline`, pprof's cheapest handler (os.Args, no
profile counted), whose answer must name the process's own argv[0]; then,
only if an HTTP server routed that request (200 or 404), `GET /debug/vars`
and `GET /metrics`. A socket that is not HTTP, or an HTTP server that refuses
(a TLS server's 400, a 401), gets the one request. Measured on Go 1.26: pprof's
cmdline is a 200 text/plain of ~100 bytes, the index page (asked before) 2.6 KB
and counting every profile; /debug/vars 3.9 KB; a path nobody serves, 404.

/metrics counts when it holds client_golang's Go collector (see
model/prometheus.py), in the text format, which is asked for: client_golang
sorts families by name, so the Go series come after the service's own `a..f`
ones (35 KB into Debian's etcd's 146 KB, 0.6 KB into caddy's 6 KB) and the
answer is read only until its first `go_goroutines` or `go_info` sample, up to
1 MiB. A service whose own families before `go_` fill more is not recognised.

TCP sockets and UNIX stream sockets are asked the same way (a UNIX socket's
endpoints are named "unix:PATH": the server of that socket, at the standard
paths), but for one thing: a UNIX socket that read the request whole and said
nothing in time is taken for what it plainly is, a server of another protocol
waiting for more, and not asked again in its process's life. Such servers are
many on a host (containerd's ttrpc socket, one per container shim) and some
pay for each word: containerd 1.6's ttrpc keeps a goroutine for every
connection that sent it an HTTP request (+1 goroutine per probe, measured).
Whether the peer read it is the kernel's to say (SIOCOUTQ: bytes still queued),
so a busy HTTP server that did not get to the request yet is asked again.

Wildcard listeners are dialled on loopback. Answers are read only up to a small
cap. A probe is a few bytes over a plain socket on a thread: discovery must
stay fast to start, and loading an HTTP client library and an event loop would
cost more than the probes themselves.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from gotop.discovery.sockets import ListenSocket
from gotop.discovery.unixsockets import UnixListener
from gotop.model.memstats import MemStatsParseError, parse_expvar
from gotop.model.prometheus import TEXT_ACCEPT, MetricsParseError, parse_metrics
from gotop.unixconnect import UNIX_PREFIX, connect_unix

# Per request. A socket is probed once in its process's life, so waiting longer costs only the
# first run; 0.5 s missed real pprof servers on a loaded host (a timeout is not remembered).
PROBE_TIMEOUT = 1.0
_MAX_PROBE_BYTES = 256 << 10
_MAX_METRICS_PROBE_BYTES = 1 << 20
_MAX_CONCURRENT = 32
PPROF_PATH = "/debug/pprof/"
EXPVAR_PATH = "/debug/vars"
METRICS_PATH = "/metrics"
# The first samples of client_golang's Go collector that tell it (its families sorted: go_gc_duration_seconds,
# go_goroutines, go_info, ...): once one has been read whole, the probe has read enough.
_GO_COLLECTOR_LINES = (b"\ngo_goroutines ", b"\ngo_info{")


@dataclass(frozen=True, slots=True)
class HttpEndpoints:
    """Where each is served: a URL, or "unix:" and a socket's path (at the standard path on that socket)."""

    pprof: str | None = None  # e.g. "http://127.0.0.1:6060/debug/pprof/", "unix:/run/containerd/debug.sock"
    expvar: str | None = None  # e.g. "http://127.0.0.1:6060/debug/vars"
    metrics: str | None = None  # e.g. "http://127.0.0.1:6060/metrics"


@dataclass(frozen=True, slots=True)
class SocketProbe:
    """What one listening socket serves. `lasting`: the socket answered (or
    plainly is not HTTP), so the finding holds while the socket lives; a socket
    that refused or timed out is asked again by a later gotop run.
    `metrics_asked`: False for a finding remembered by a gotop that did not ask
    /metrics yet (probecache.py), whose socket is asked that alone.
    `problem`: why gotop could not ask (a UNIX socket not ours to connect to)."""

    endpoints: HttpEndpoints = HttpEndpoints()
    lasting: bool = False
    metrics_asked: bool = True
    problem: str = ""


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int | None  # None: the peer spoke, or closed, but not HTTP
    body: bytes | None = None  # a 200's body within the cap
    whole: bool = True  # False: the body was left unread past what was enough


@dataclass(frozen=True, slots=True)
class Server:
    """One address a listening socket is dialled at: a TCP host and port, or a
    UNIX socket (`unix`: where gotop connects to it). `name` is what its
    endpoints are named by: "http://127.0.0.1:6060", or "unix:/run/x.sock"
    (a socket's endpoints are the standard paths of that one server)."""

    name: str
    host: str = ""
    port: int = 0
    unix: str = ""

    def connect(self, timeout: float) -> socket.socket:
        if self.unix:
            return connect_unix(self.unix, timeout)
        return socket.create_connection((self.host, self.port), timeout=timeout)

    @property
    def host_header(self) -> str:
        return "localhost" if self.unix else self.name.removeprefix("http://")

    def urls(self) -> HttpEndpoints:
        """Its pprof, expvar and /metrics endpoints."""
        if self.name.startswith(UNIX_PREFIX):
            return HttpEndpoints(self.name, self.name, self.name)
        return HttpEndpoints(self.name + PPROF_PATH, self.name + EXPVAR_PATH, self.name + METRICS_PATH)


def url_base(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def servers(sock: ListenSocket | UnixListener) -> list[Server]:
    """The addresses a socket is dialled at, in order: loopback ones for a wildcard TCP listener."""
    if isinstance(sock, UnixListener):
        return [Server(UNIX_PREFIX + sock.path, unix=sock.dial)]
    return [Server(url_base(host, sock.port), host, sock.port) for host in sock.dial_hosts()]


def looks_like_expvar(body: bytes) -> bool:
    """expvar's JSON with runtime.MemStats, read by the parser the polls use:
    whatever a process sends (JSON nested 5000 deep...) costs only that process."""
    try:
        return parse_expvar(body).memstats is not None
    except MemStatsParseError:
        return False


def read_go_collector(answer: bytes) -> bool:
    """Whether a /metrics answer read so far holds a whole Go collector sample that tells it."""
    for line in _GO_COLLECTOR_LINES:
        start = answer.find(line)
        if start >= 0 and answer.find(b"\n", start + len(line)) >= 0:
            return True
    return False


def looks_like_go_metrics(body: bytes, whole: bool) -> bool:
    """A /metrics answer (or its start, cut after a line) that prometheus_client's
    text parser reads as an exposition with client_golang's Go collector."""
    try:
        return parse_metrics(body if whole else body[: body.rfind(b"\n") + 1]).has_go_collector
    except MetricsParseError:
        return False


def names_argv0(cmdline_body: bytes, argv0: bytes) -> bool:
    """pprof's cmdline is os.Args joined by NULs: its first field is the
    process's argv[0] (a server answering every path with 200 does not echo it,
    and a proxy in front of another process would name that one)."""
    return bool(argv0) and cmdline_body.split(b"\0", 1)[0] == argv0


def http_get(server: Server, path: str, timeout: float, *, accept: str | None = None,
             cap: int = _MAX_PROBE_BYTES, enough: Callable[[bytes], bool] | None = None) -> _Reply | None:
    """One HTTP/1.0 GET; None when there was no connection or no answer in time
    (PermissionError: a UNIX socket not ours to connect to). Reading stops at
    `cap` bytes, or once `enough(what was read)` (the body is then not whole)."""
    deadline = time.monotonic() + timeout
    accept_line = f"Accept: {accept}\r\n" if accept else ""
    request = f"GET {path} HTTP/1.0\r\nHost: {server.host_header}\r\nUser-Agent: gotop\r\n{accept_line}\r\n"
    try:
        sock = server.connect(timeout)
    except PermissionError:
        raise
    except OSError:  # refused, no route, timed out, gone
        return None
    answer = b""
    cut = False
    with sock:
        try:
            sock.sendall(request.encode())
            while len(answer) <= cap and not cut:
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
                cut = enough is not None and enough(answer)
        except TimeoutError:
            if server.unix and not answer and _all_read(sock):
                return _Reply(None)  # it read the request and said nothing: not HTTP
            return None  # busy, or waiting for a protocol of its own: ask again another time
        except OSError:  # reset: it read a little and closed, not HTTP
            return _Reply(None)
    head, sep, body = answer.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if not sep or len(status) < 2 or not status[0].startswith(b"HTTP/") or not status[1].isdigit():
        return _Reply(None)
    code = int(status[1])
    return _Reply(code, body if code == 200 and (cut or len(answer) <= cap) else None, whole=not cut)


def _all_read(sock: socket.socket) -> bool:
    """Whether the peer of a UNIX socket has read all that was sent to it (SIOCOUTQ: nothing left queued)."""
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0] == 0
    except OSError:
        return False


def probe_socket(sock: ListenSocket | UnixListener, argv0: bytes, timeout: float = PROBE_TIMEOUT,
                 earlier: SocketProbe | None = None) -> SocketProbe:
    """What a socket serves. `earlier`: a remembered finding that did not ask
    /metrics; where it proved HTTP (pprof or expvar), /metrics alone is asked."""
    try:
        return _probe(sock, argv0, timeout, earlier)
    except PermissionError:
        return SocketProbe(problem="permission denied")


def _probe(sock: ListenSocket | UnixListener, argv0: bytes, timeout: float, earlier: SocketProbe | None) -> SocketProbe:
    if earlier is not None and (url := earlier.endpoints.pprof or earlier.endpoints.expvar):
        server = next(s for s in servers(sock) if url == s.name or url.startswith(s.name + "/"))
        return _with_metrics(server, earlier.endpoints, timeout)
    for server in servers(sock):
        cmdline = http_get(server, PPROF_PATH + "cmdline", timeout)
        if cmdline is None:
            continue  # the next loopback address of a wildcard listener, or a later run
        if cmdline.status not in (200, 404):
            return SocketProbe(lasting=True)  # not HTTP, or a server that refuses
        urls = server.urls()
        pprof = urls.pprof if cmdline.body is not None and names_argv0(cmdline.body, argv0) else None
        vars_reply = http_get(server, EXPVAR_PATH, timeout)
        if vars_reply is None:  # pprof is proven; expvar and /metrics are asked again another time
            return SocketProbe(HttpEndpoints(pprof, None))
        expvar = vars_reply.body is not None and looks_like_expvar(vars_reply.body)
        return _with_metrics(server, HttpEndpoints(pprof, urls.expvar if expvar else None), timeout)
    return SocketProbe()


def _with_metrics(server: Server, found: HttpEndpoints, timeout: float) -> SocketProbe:
    """`found` (a server that routes HTTP) and whether it serves client_golang's /metrics."""
    reply = http_get(server, METRICS_PATH, timeout, accept=TEXT_ACCEPT,
                     cap=_MAX_METRICS_PROBE_BYTES, enough=read_go_collector)
    if reply is None:  # what is proven stands; /metrics is asked again another time
        return SocketProbe(found)
    metrics = reply.body is not None and looks_like_go_metrics(reply.body, reply.whole)
    return SocketProbe(replace(found, metrics=server.urls().metrics if metrics else None), True)


def probe_sockets(jobs: list[tuple[ListenSocket | UnixListener, bytes, SocketProbe | None]],
                  timeout: float = PROBE_TIMEOUT) -> list[SocketProbe]:
    """Probe many (socket, its process's argv[0], an earlier finding) at once, in order."""
    with ThreadPoolExecutor(max_workers=min(_MAX_CONCURRENT, len(jobs) or 1)) as pool:
        return list(pool.map(lambda job: probe_socket(job[0], job[1], timeout, job[2]), jobs))


def combine(findings: Iterable[HttpEndpoints]) -> HttpEndpoints:
    """A process's endpoints from its sockets' (lowest port first): the first
    serving each of pprof, expvar and /metrics wins."""
    pprof = expvar = metrics = None
    for found in findings:
        pprof, expvar, metrics = pprof or found.pprof, expvar or found.expvar, metrics or found.metrics
    return HttpEndpoints(pprof, expvar, metrics)

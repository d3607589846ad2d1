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

Wildcard listeners are dialled on loopback. Answers are read only up to a small
cap. A probe is a few bytes over a plain socket on a thread: discovery must
stay fast to start, and loading an HTTP client library and an event loop would
cost more than the probes themselves.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from gotop.discovery.sockets import ListenSocket
from gotop.model.memstats import MemStatsParseError, parse_expvar

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
    pprof: str | None = None  # base URL, e.g. "http://127.0.0.1:6060/debug/pprof/"
    expvar: str | None = None  # e.g. "http://127.0.0.1:6060/debug/vars"
    metrics: str | None = None  # e.g. "http://127.0.0.1:6060/metrics"


@dataclass(frozen=True, slots=True)
class SocketProbe:
    """What one listening socket serves. `lasting`: the socket answered (or
    plainly is not HTTP), so the finding holds while the socket lives; a socket
    that refused or timed out is asked again by a later gotop run.
    `metrics_asked`: False for a finding remembered by a gotop that did not ask
    /metrics yet (probecache.py), whose socket is asked that alone."""

    endpoints: HttpEndpoints = HttpEndpoints()
    lasting: bool = False
    metrics_asked: bool = True


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int | None  # None: the peer spoke, or closed, but not HTTP
    body: bytes | None = None  # a 200's body within the cap
    whole: bool = True  # False: the body was left unread past what was enough


def url_base(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def endpoint_urls(sock: ListenSocket, dial_host: str) -> HttpEndpoints:
    """The pprof, expvar and /metrics URLs of a socket, dialled at one of its addresses."""
    base = url_base(dial_host, sock.port)
    return HttpEndpoints(base + PPROF_PATH, base + EXPVAR_PATH, base + METRICS_PATH)


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
    from gotop.model.prometheus import MetricsParseError, parse_metrics  # see _with_metrics

    try:
        return parse_metrics(body if whole else body[: body.rfind(b"\n") + 1]).has_go_collector
    except MetricsParseError:
        return False


def names_argv0(cmdline_body: bytes, argv0: bytes) -> bool:
    """pprof's cmdline is os.Args joined by NULs: its first field is the
    process's argv[0] (a server answering every path with 200 does not echo it,
    and a proxy in front of another process would name that one)."""
    return bool(argv0) and cmdline_body.split(b"\0", 1)[0] == argv0


def http_get(host: str, port: int, path: str, timeout: float, *, accept: str | None = None,
             cap: int = _MAX_PROBE_BYTES, enough: Callable[[bytes], bool] | None = None) -> _Reply | None:
    """One HTTP/1.0 GET; None when there was no connection or no answer in time.
    Reading stops at `cap` bytes, or once `enough(what was read)` (the body is then not whole)."""
    deadline = time.monotonic() + timeout
    accept_line = f"Accept: {accept}\r\n" if accept else ""
    request = f"GET {path} HTTP/1.0\r\nHost: {url_base(host, port)[7:]}\r\nUser-Agent: gotop\r\n{accept_line}\r\n"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:  # refused, no route, timed out
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
            return None  # busy, or waiting for a protocol of its own: ask again another time
        except OSError:  # reset: it read a little and closed, not HTTP
            return _Reply(None)
    head, sep, body = answer.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if not sep or len(status) < 2 or not status[0].startswith(b"HTTP/") or not status[1].isdigit():
        return _Reply(None)
    code = int(status[1])
    return _Reply(code, body if code == 200 and (cut or len(answer) <= cap) else None, whole=not cut)


def probe_socket(sock: ListenSocket, argv0: bytes, timeout: float = PROBE_TIMEOUT,
                 earlier: SocketProbe | None = None) -> SocketProbe:
    """What a socket serves. `earlier`: a remembered finding that did not ask
    /metrics; where it proved HTTP (pprof or expvar), /metrics alone is asked."""
    if earlier is not None and (url := earlier.endpoints.pprof or earlier.endpoints.expvar):
        host = next(h for h in sock.dial_hosts() if url.startswith(url_base(h, sock.port) + "/"))
        return _with_metrics(sock, host, earlier.endpoints, timeout)
    for host in sock.dial_hosts():
        cmdline = http_get(host, sock.port, PPROF_PATH + "cmdline", timeout)
        if cmdline is None:
            continue  # the next loopback address of a wildcard listener, or a later run
        if cmdline.status not in (200, 404):
            return SocketProbe(lasting=True)  # not HTTP, or a server that refuses
        urls = endpoint_urls(sock, host)
        pprof = urls.pprof if cmdline.body is not None and names_argv0(cmdline.body, argv0) else None
        vars_reply = http_get(host, sock.port, EXPVAR_PATH, timeout)
        if vars_reply is None:  # pprof is proven; expvar and /metrics are asked again another time
            return SocketProbe(HttpEndpoints(pprof, None))
        expvar = vars_reply.body is not None and looks_like_expvar(vars_reply.body)
        return _with_metrics(sock, host, HttpEndpoints(pprof, urls.expvar if expvar else None), timeout)
    return SocketProbe()


def _with_metrics(sock: ListenSocket, host: str, found: HttpEndpoints, timeout: float) -> SocketProbe:
    """`found` (a socket that routes HTTP) and whether it serves client_golang's /metrics."""
    # prometheus_client (with http.server under it) costs ~40 ms to import: only a socket that routes HTTP needs it.
    from gotop.model.prometheus import TEXT_ACCEPT

    reply = http_get(host, sock.port, METRICS_PATH, timeout, accept=TEXT_ACCEPT,
                     cap=_MAX_METRICS_PROBE_BYTES, enough=read_go_collector)
    if reply is None:  # what is proven stands; /metrics is asked again another time
        return SocketProbe(found)
    metrics = reply.body is not None and looks_like_go_metrics(reply.body, reply.whole)
    return SocketProbe(replace(found, metrics=endpoint_urls(sock, host).metrics if metrics else None), True)


def probe_sockets(jobs: list[tuple[ListenSocket, bytes, SocketProbe | None]],
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

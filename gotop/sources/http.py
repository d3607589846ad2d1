"""Client for a Go program's net/http/pprof (/debug/pprof/*) and expvar (/debug/vars).

One shared httpx.AsyncClient per target with a small connection pool (plain
HTTP goes through gotop's lean transport, sources/transport.py); every
request has a connect timeout and an overall deadline (captures get their
duration on top), answers are streamed into a size-capped buffer, redirects are
followed only on the same origin, and environment proxies are ignored (a
monitor must not send loopback traffic to an HTTP proxy). Answers are checked
for the shape the endpoint promises and returned raw; parsing is the model's.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from dataclasses import dataclass
from typing import Any

import httpx

from gotop.hosts import named_addresses
from gotop.sources.errors import (
    InvalidRequest,
    ProtocolError,
    ResponseTooLarge,
    TransportError,
    TransportTimeout,
    Unreachable,
)
from gotop.sources.payload import CappedBuffer, MiB, gzip_problem
from gotop.sources.progress import ProgressCallback, ProgressTicker
from gotop.sources.transport import PlainHttpTransport
from gotop.unixconnect import UNIX_PREFIX, socket_address

__all__ = [
    "HttpAnswer", "HttpStatusError", "HttpTimeout", "HttpUnreachable", "IndexEntry", "InvalidRequest",
    "NotPprof", "PprofClient", "PprofIndex", "ProfilerBusy", "ResponseTooLarge",
    "is_loopback", "normalize_base", "parse_pprof_index",
]

DEFAULT_TIMEOUT = 5.0
DEFAULT_CONNECT_TIMEOUT = 2.0
# Captures and delta profiles answer after their duration; allow this much more.
CAPTURE_MARGIN = 10.0
SLOW_TIMEOUT = 15.0  # heap profiles and full dumps of big processes take a while
MAX_CONNECTIONS = 4  # a 30 s CPU profile holds one; polling goes on beside it
KEEPALIVE_CONNECTIONS = 2  # a poll asks memstats and goroutine counts at once: both stay open
# Seconds an idle connection is kept: beyond the slowest regular request (a leak-tier
# profile every 30 s, a suspect heap every 60 s). When the memory answers every poll, a
# target is asked something over HTTP only every 5 s: kept 5 s, each of those cost it a
# new connection (an accept, a goroutine, two 4 KiB buffers).
KEEPALIVE_EXPIRY = 120.0
MAX_REDIRECTS = 3
_ERROR_BODY_LIMIT = 4096
_NAME = re.compile(r"[A-Za-z0-9_.-]+\Z")

INDEX_LIMIT = 1 * MiB
PROFILE_LIMIT = 256 * MiB
TEXT_LIMIT = 64 * MiB  # debug=1 texts; Go itself caps the debug=2 dump at 64 MiB
VARS_LIMIT = 16 * MiB
CMDLINE_LIMIT = 1 * MiB


class HttpUnreachable(Unreachable):
    """No connection (refused, no route), or it was lost mid-answer."""


class HttpTimeout(TransportTimeout):
    """No complete answer in time (or every pooled connection stayed busy)."""


class NotPprof(ProtocolError):
    """Something answered, but not net/http/pprof or expvar."""


class HttpStatusError(TransportError):
    """A non-success status. `from_pprof` is set when pprof's own serveError
    sent it (header X-Go-Pprof: 1), e.g. 404 "Unknown profile"."""

    def __init__(self, url: str, status: int, reason: str, *, from_pprof: bool = False) -> None:
        detail = f"HTTP {status}: {reason}" if reason else f"HTTP {status}"
        super().__init__(url, detail)
        self.status = status
        self.reason = reason
        self.from_pprof = from_pprof


class ProfilerBusy(HttpStatusError):
    """500 from /profile or /trace: another CPU profile or trace is running
    in the target (perhaps started through the gops agent or by another tool)."""


@dataclass(frozen=True, slots=True)
class IndexEntry:
    name: str
    count: int  # Profile.Count(): goroutines, threads, records; 0 for endpoints


@dataclass(frozen=True, slots=True)
class PprofIndex:
    """The rows of /debug/pprof/: profiles (and endpoints such as `profile`,
    `trace`, `cmdline`) with their counts."""

    entries: tuple[IndexEntry, ...]

    def __contains__(self, name: object) -> bool:
        return any(entry.name == name for entry in self.entries)

    def count(self, name: str) -> int | None:
        return next((entry.count for entry in self.entries if entry.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(entry.name for entry in self.entries)


# Bounded repeats: the page is untrusted, and `[^>]*` on a page of "<td<td<td..."
# would make the search quadratic.
_INDEX_ROW = re.compile(
    r"<td[^>]{0,80}>\s{0,20}(\d{1,19})\s{0,20}(?:</td>)?\s{0,20}"
    r"<td[^>]{0,80}>\s{0,20}<a href=['\"]([\w.-]{1,100})\?debug=1['\"]",
    re.IGNORECASE,
)


def parse_pprof_index(html: str) -> PprofIndex:
    """Rows of the pprof index page; empty when the page is not that index."""
    return PprofIndex(tuple(IndexEntry(name, int(count)) for count, name in _INDEX_ROW.findall(html)))


def is_loopback(host: str) -> bool:
    """Whether a host name or address stays on this machine (no DNS lookups:
    only 'localhost' and literal addresses count)."""
    addresses = named_addresses(host)
    return bool(addresses) and all(address.is_loopback for address in addresses)


def normalize_base(base: str) -> str:
    """'127.0.0.1:6060', 'http://h:6060/debug/pprof/' -> 'http://h:6060'
    (a path prefix before /debug/ is kept, e.g. behind a reverse proxy);
    'unix:/run/x.sock' (a UNIX socket; 'unix:@name' an abstract one) stays as it is."""
    if base.startswith(UNIX_PREFIX):
        if len(base) == len(UNIX_PREFIX) or "\0" in base.removeprefix(UNIX_PREFIX + "@"):
            raise InvalidRequest(f"invalid UNIX socket {base!r}: need unix:/path/to.sock or unix:@name")
        return base
    text = base.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, ValueError) as exc:
        raise InvalidRequest(f"invalid pprof base URL {base!r}: {exc}") from None
    port_ok = url.port is None or 0 < url.port < 65536
    if url.scheme not in ("http", "https") or not url.host or not port_ok:
        raise InvalidRequest(f"invalid pprof base URL {base!r}: need http(s)://host[:port]")
    if url.userinfo or url.query or url.fragment:
        raise InvalidRequest(f"invalid pprof base URL {base!r}: no credentials, query or fragment")
    path = url.path.rstrip("/")
    for suffix in ("/debug/pprof", "/debug/vars"):
        path = path.removesuffix(suffix)
    return str(url.copy_with(path=path or "/")).rstrip("/")


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A 2xx answer, read whole (within its cap)."""

    url: str
    content_type: str
    body: bytes

    @property
    def is_html(self) -> bool:
        return self.content_type.startswith("text/html") or self.body[:64].lstrip()[:1] == b"<"

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class PprofClient:
    """net/http/pprof and expvar of one target. Use as an async context
    manager, or call aclose(). Takes whatever base it is given: whether a
    remote target may be used is the caller's decision (see is_loopback).

    A base "unix:PATH" speaks HTTP over that UNIX socket; `dial` is where to
    connect to it when that is not PATH itself (a container's socket through
    /proc/PID/root). Messages name it "unix:PATH /debug/pprof/...".
    """

    def __init__(
        self, base: str, *, timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, dial: str | None = None,
    ) -> None:
        self.base_url = normalize_base(base)  # as shown
        socket_path = self.base_url.removeprefix(UNIX_PREFIX) if self.base_url.startswith(UNIX_PREFIX) else None
        # requests are sent to this base: a UNIX socket's server sees "localhost"
        self._request_base = self.base_url if socket_path is None else "http://localhost"
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._origin = _origin(httpx.URL(self._request_base))
        https = self.base_url.startswith("https://")
        if socket_path is not None and dial is None:
            dial = socket_address(socket_path)
        self._client = httpx.AsyncClient(
            trust_env=False,
            # Loading the CA bundle costs each client ~1 MB and 20 ms: plain http needs none.
            verify=https,
            # The same pool bounds for both: `limits` shape httpx's own transport (HTTPS only).
            limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=KEEPALIVE_CONNECTIONS,
                                keepalive_expiry=KEEPALIVE_EXPIRY),
            transport=None if https else PlainHttpTransport(MAX_CONNECTIONS, KEEPALIVE_CONNECTIONS, KEEPALIVE_EXPIRY,
                                                            unix=dial),
            follow_redirects=False,  # followed by hand, same origin only, bodies unread
            headers={"Accept-Encoding": "identity", "User-Agent": "gotop"},
        )

    def __repr__(self) -> str:
        return f"PprofClient({self.base_url})"

    async def __aenter__(self) -> PprofClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- pprof ----------------------------------------------------------------

    async def index(self, *, timeout: float | None = None) -> PprofIndex:
        """The profiles this target offers, with counts (e.g. whether
        `goroutineleak` exists: Go >= 1.26 with the experiment, 1.27)."""
        answer = await self.get("/debug/pprof/", timeout=timeout, max_bytes=INDEX_LIMIT)
        index = parse_pprof_index(answer.text()) if answer.is_html else PprofIndex(())
        if not index.entries:
            raise NotPprof(answer.url, f"not the pprof index page ({_describe(answer)})")
        return index

    async def profile(
        self, name: str, *, seconds: int | None = None, gc: bool = False,
        progress: ProgressCallback | None = None,
        timeout: float | None = None, max_bytes: int | None = None,
    ) -> bytes:
        """A named profile (heap, allocs, goroutine, goroutineleak, block,
        mutex, threadcreate) as gzip protobuf. `seconds`: the delta over that
        many seconds; `gc`: heap only, run a GC first."""
        params: dict[str, str] = {}
        if seconds is not None:
            params["seconds"] = _seconds_param(seconds, integer=True)
        elif timeout is None:
            timeout = max(self.timeout, SLOW_TIMEOUT)
        if gc:
            params["gc"] = "1"
        answer = await self.get(
            f"/debug/pprof/{_profile_name(name)}", params,
            capture_seconds=seconds or 0.0, progress=progress, timeout=timeout,
            max_bytes=max_bytes or PROFILE_LIMIT,
        )
        await _require_gzip(answer, name)
        return answer.body

    async def profile_text(
        self, name: str, *, timeout: float | None = None, max_bytes: int | None = None,
    ) -> str:
        """The legacy text form (debug=1) of a named profile, e.g. goroutines
        grouped by stack, or heap records followed by runtime.MemStats."""
        answer = await self.get(
            f"/debug/pprof/{_profile_name(name)}", {"debug": "1"},
            timeout=timeout if timeout is not None else max(self.timeout, SLOW_TIMEOUT),
            max_bytes=max_bytes or TEXT_LIMIT,
        )
        return _require_text(answer, re.compile(r"\S+ profile: |--- \w+:"))

    async def full_goroutine_dump(
        self, *, timeout: float | None = None, max_bytes: int | None = None,
    ) -> str:
        """goroutine?debug=2: every goroutine with state and wait minutes.
        It STOPS THE WORLD for the whole dump: on demand only, never polled."""
        answer = await self.get(
            "/debug/pprof/goroutine", {"debug": "2"},
            timeout=timeout if timeout is not None else max(self.timeout, SLOW_TIMEOUT),
            max_bytes=max_bytes or TEXT_LIMIT,
        )
        return _require_text(answer, re.compile(r"goroutine \d+ "))

    async def cpu_profile(
        self, seconds: int = 30, *, progress: ProgressCallback | None = None,
        timeout: float | None = None, max_bytes: int | None = None,
    ) -> bytes:
        """A CPU profile over `seconds` (gzip protobuf). Only one CPU profile
        can run in a process: a second one gets ProfilerBusy."""
        answer = await self.get(
            "/debug/pprof/profile", {"seconds": _seconds_param(seconds, integer=True)},
            capture_seconds=seconds, progress=progress, timeout=timeout,
            max_bytes=max_bytes or PROFILE_LIMIT,
        )
        await _require_gzip(answer, "cpu")
        return answer.body

    async def trace(
        self, seconds: float = 5.0, *, progress: ProgressCallback | None = None,
        timeout: float | None = None, max_bytes: int | None = None,
    ) -> bytes:
        """A runtime execution trace over `seconds` (not pprof; `go tool trace`)."""
        answer = await self.get(
            "/debug/pprof/trace", {"seconds": _seconds_param(seconds, integer=False)},
            capture_seconds=seconds, progress=progress, timeout=timeout,
            max_bytes=max_bytes or PROFILE_LIMIT,
        )
        if not re.match(rb"go 1\.\d+ trace\x00", answer.body):
            raise NotPprof(answer.url, f"not a Go execution trace ({_describe(answer)})")
        return answer.body

    async def cmdline(self, *, timeout: float | None = None) -> list[str]:
        """os.Args of the target."""
        answer = await self.get("/debug/pprof/cmdline", timeout=timeout, max_bytes=CMDLINE_LIMIT)
        if answer.is_html or not answer.content_type.startswith("text/plain"):
            raise NotPprof(answer.url, f"not a pprof cmdline ({_describe(answer)})")
        return answer.text().split("\x00")

    # -- expvar ---------------------------------------------------------------

    async def vars_raw(self, *, timeout: float | None = None, max_bytes: int | None = None) -> bytes:
        """/debug/vars as received (JSON with `cmdline` and `memstats`).
        Each request runs ReadMemStats in the target (a short stop of the world)."""
        answer = await self.get("/debug/vars", timeout=timeout, max_bytes=max_bytes or VARS_LIMIT)
        if not answer.body.lstrip().startswith(b"{") or b'"memstats"' not in answer.body:
            raise NotPprof(answer.url, f"not expvar: no JSON object with memstats ({_describe(answer)})")
        return answer.body

    async def vars(self, *, timeout: float | None = None, max_bytes: int | None = None) -> dict[str, Any]:
        """/debug/vars parsed; `memstats` is guaranteed to be an object."""
        body = await self.vars_raw(timeout=timeout, max_bytes=max_bytes)
        try:
            doc = await asyncio.to_thread(json.loads, body)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser goes
            raise NotPprof(self._shown(self._url("/debug/vars")), f"not expvar: invalid JSON ({exc})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("memstats"), dict):
            raise NotPprof(self._shown(self._url("/debug/vars")), "not expvar: no memstats object")
        return doc

    # -- the exchange ---------------------------------------------------------

    async def get(
        self, path: str, params: dict[str, str] | None = None, *,
        timeout: float | None = None, max_bytes: int,
        capture_seconds: float = 0.0, progress: ProgressCallback | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpAnswer:
        """GET base+path (with `headers` besides the client's own): a 2xx answer within
        the deadline and size cap, or a typed error naming the URL. Low level: the
        methods above check shapes."""
        url = self._url(path, params)
        if timeout is None:
            timeout = capture_seconds + max(self.timeout, CAPTURE_MARGIN) if capture_seconds else self.timeout
        try:
            # The ticker starts before the request: a capture's headers come only at its end.
            async with asyncio.timeout(timeout), ProgressTicker(progress, capture_seconds) as ticker:
                return await self._get_following(url, timeout, max_bytes, ticker, headers)
        except TimeoutError:
            raise HttpTimeout(self._shown(url), f"no complete answer within {timeout:.1f} s") from None

    def _url(self, path: str, params: dict[str, str] | None = None) -> str:
        """The URL a request is sent to."""
        if not params:
            return str(_parse_url(self._request_base + path))
        return str(httpx.URL(self._request_base + path, params=params))

    def _shown(self, url: str) -> str:
        """A request URL as messages name it: on a UNIX socket, "unix:PATH /path?query"."""
        if self._request_base == self.base_url:
            return url
        return f"{self.base_url} {url.removeprefix(self._request_base)}"

    async def _get_following(
        self, url: str, timeout: float, limit: int, ticker: ProgressTicker, headers: dict[str, str] | None,
    ) -> HttpAnswer:
        request_timeout = httpx.Timeout(timeout, connect=min(self.connect_timeout, timeout))
        redirects = 0
        while True:
            received_headers = False
            shown = self._shown(url)
            try:
                async with self._client.stream("GET", _parse_url(url), headers=headers,
                                               timeout=request_timeout) as response:
                    received_headers = True
                    if response.is_redirect and response.next_request is not None:
                        url = self._follow(shown, response, redirects)
                        redirects += 1
                        continue  # the redirect's body is never read
                    if not response.is_success:
                        raise await _status_error(shown, response)
                    body = await _read_capped(shown, response, limit, ticker)
                    return HttpAnswer(shown, response.headers.get("content-type", ""), body)
            except httpx.HTTPError as exc:
                raise self._transport_error(shown, exc, received_headers) from None

    def _follow(self, url: str, response: httpx.Response, redirects: int) -> str:
        """The next URL of a redirect: same origin only, a few hops at most."""
        assert response.next_request is not None
        target = response.next_request.url
        if _origin(target) != self._origin:
            raise HttpStatusError(url, response.status_code, f"redirect to another origin not followed: {target}")
        if redirects == MAX_REDIRECTS:
            raise HttpStatusError(url, response.status_code, f"more than {MAX_REDIRECTS} redirects")
        return str(target)

    def _transport_error(self, url: str, exc: httpx.HTTPError, received_headers: bool) -> TransportError:
        why = str(exc) or type(exc).__name__
        if isinstance(exc, httpx.ConnectTimeout):
            return HttpUnreachable(url, f"no connection within {self.connect_timeout:.1f} s")
        if isinstance(exc, httpx.ConnectError):
            return HttpUnreachable(url, f"cannot connect: {why}")
        if isinstance(exc, httpx.PoolTimeout):
            return HttpTimeout(url, f"all {MAX_CONNECTIONS} connections to the target stayed busy")
        if isinstance(exc, httpx.TimeoutException):
            return HttpTimeout(url, f"no complete answer in time ({why})")
        if not received_headers and isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
            return NotPprof(url, f"no HTTP answer ({why}): not an HTTP server?")
        return HttpUnreachable(url, f"connection lost: {why}")


@functools.lru_cache(maxsize=256)
def _parse_url(url: str) -> httpx.URL:
    """Parsing a URL costs a poll more than its exchange: the few a target is asked for are kept."""
    return httpx.URL(url)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _seconds_param(value: float, *, integer: bool) -> str:
    """pprof parses `seconds` with ParseInt (profiles) or ParseFloat (trace)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidRequest(f"capture duration must be a positive number of seconds, not {value!r}")
    if integer and value != int(value):
        raise InvalidRequest(f"capture duration must be whole seconds, not {value!r}")
    return str(int(value)) if integer else f"{value:g}"


def _profile_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidRequest(f"invalid profile name {name!r}")
    return name


async def _read_capped(url: str, response: httpx.Response, limit: int, ticker: ProgressTicker) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ResponseTooLarge(url, limit)
    buffer = CappedBuffer(url, limit)
    # Raw bytes: no transparent decompression of a hostile Content-Encoding.
    async for chunk in response.aiter_raw():
        buffer.add(chunk)
        ticker.received = len(buffer)
    return buffer.getvalue()


async def _status_error(url: str, response: httpx.Response) -> HttpStatusError:
    """The error for a non-2xx answer; its body (bounded) gives the reason,
    e.g. pprof's "Unknown profile" or "cpu profiling already in use"."""
    head = bytearray()
    async for chunk in response.aiter_raw():
        head += chunk
        if len(head) >= _ERROR_BODY_LIMIT:
            break
    lines = head[:_ERROR_BODY_LIMIT].decode("utf-8", errors="replace").strip().splitlines()
    reason = _one_line(lines[0]) if lines else response.reason_phrase
    if response.headers.get("content-type", "").startswith("text/html"):
        reason = response.reason_phrase  # an HTML error page says nothing a line can carry
    from_pprof = response.headers.get("x-go-pprof") == "1"
    busy = response.status_code == 500 and ("already in use" in reason or "already enabled" in reason)
    cls = ProfilerBusy if busy else HttpStatusError
    return cls(url, response.status_code, reason, from_pprof=from_pprof)


async def _require_gzip(answer: HttpAnswer, kind: str) -> None:
    problem = await asyncio.to_thread(gzip_problem, answer.url, answer.body, kind)
    if problem:
        what = "an HTML page" if answer.is_html else problem
        raise NotPprof(answer.url, f"expected a gzip pprof profile, got {what}")


def _require_text(answer: HttpAnswer, start: re.Pattern[str]) -> str:
    text = answer.text()
    if answer.is_html or not start.match(text):
        raise NotPprof(answer.url, f"not a pprof text profile ({_describe(answer)})")
    return text


def _describe(answer: HttpAnswer) -> str:
    kind = answer.content_type.split(";")[0] or "no content type"
    return f"{kind}, {len(answer.body)} bytes, starting {answer.body[:24]!r}"


def _one_line(text: str, limit: int = 200) -> str:
    """Untrusted text for a one-line message: printable, bounded."""
    clean = "".join(ch if ch.isprintable() else "?" for ch in text.strip())
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."

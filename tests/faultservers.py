"""Stand-in fault servers: misbehaving TCP/HTTP peers that stand in for a
broken, hung or lying gops agent or pprof server. They exist only to inject
faults a real Go target will not produce on demand; everything a real target
can show is tested against a real one.

Each server runs in the test's event loop on a free loopback port:

    async with SilentServer() as server:
        client = GopsClient("127.0.0.1", server.port)

`request` says how much of the client's request a server reads before it
misbehaves: "agent" reads the one command byte (as the gops agent does, leaving
any payload unread), "http" reads the request head up to the blank line.
"""

from __future__ import annotations

import asyncio
import socket
import zlib
from dataclasses import dataclass
from typing import Literal

RequestKind = Literal["agent", "http"]
HANDLER_GRACE = 5.0  # seconds a server that stops waits for its connections' handlers to end (a safety net)


class FaultServer:
    """Base of the stand-in fault servers: start/stop, connection tracking."""

    def __init__(self, request: RequestKind = "agent") -> None:
        self.request = request
        self.connections = 0
        self.bytes_sent = 0
        self.port = 0  # set on start
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task] = set()  # one a connection, until it ends
        self._closing = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FaultServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        # Each handler ends at its next send to the aborted connection, or when it stops hanging:
        # let it, rather than leave it to be cancelled with the test's loop (Python 3.11 logs that).
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=HANDLER_GRACE)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            await self._read_request(reader)
            await self.misbehave(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up: that is what most tests wait for
        finally:
            self._writers.discard(writer)
            self._handlers.discard(handler)
            writer.transport.abort()

    async def _read_request(self, reader: asyncio.StreamReader) -> None:
        if self.request == "agent":
            await reader.readexactly(1)
        else:
            await reader.readuntil(b"\r\n\r\n")

    async def send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
        self.bytes_sent += len(data)

    async def hang(self) -> None:
        """Keep the connection open, saying nothing, until the server stops."""
        await self._closing.wait()

    async def trickle(self, writer: asyncio.StreamWriter, interval: float) -> None:
        """Send one byte at a time, `interval` apart, until the client goes away."""
        while True:
            await self.send(writer, b"a")
            await asyncio.sleep(interval)

    async def misbehave(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class SilentServer(FaultServer):
    """Accepts, reads the request, never answers: a hung agent or server."""

    async def misbehave(self, reader, writer) -> None:
        await self.hang()


class CannedAnswerServer(FaultServer):
    """Sends fixed bytes, then closes (or hangs with `then_hang`): garbage,
    an answer cut short, an empty answer, an HTTP response written by hand."""

    def __init__(self, answer: bytes, *, then_hang: bool = False, request: RequestKind = "agent") -> None:
        super().__init__(request)
        self.answer = answer
        self.then_hang = then_hang

    async def misbehave(self, reader, writer) -> None:
        await self.send(writer, self.answer)
        if self.then_hang:
            await self.hang()


class CommandAnswerServer(FaultServer):
    """Answers each agent command byte found in `answers` with its bytes, and
    any other with nothing, then closes: an agent too old for a command."""

    def __init__(self, answers: dict[int, bytes]) -> None:
        super().__init__("agent")
        self.answers = answers

    async def _read_request(self, reader: asyncio.StreamReader) -> None:
        pass  # read by misbehave, which answers the command it reads

    async def misbehave(self, reader, writer) -> None:
        command = (await reader.readexactly(1))[0]
        await self.send(writer, self.answers.get(command, b""))


class EndlessAnswerServer(FaultServer):
    """Sends `prefix`, then streams filler until the client goes away (or
    `limit` bytes, a gigabyte by default): the answer that never ends."""

    def __init__(self, prefix: bytes = b"", *, limit: int = 1 << 30, request: RequestKind = "agent") -> None:
        super().__init__(request)
        self.prefix = prefix
        self.limit = limit

    async def misbehave(self, reader, writer) -> None:
        await self.send(writer, self.prefix)
        filler = b"x" * (64 << 10)
        while self.bytes_sent < self.limit:
            await self.send(writer, filler)


class TrickleServer(FaultServer):
    """Sends `prefix`, then one byte at a time, forever: each read succeeds,
    so only an overall deadline ends the request."""

    def __init__(self, prefix: bytes = b"", *, interval: float = 0.05, request: RequestKind = "agent") -> None:
        super().__init__(request)
        self.prefix = prefix
        self.interval = interval

    async def misbehave(self, reader, writer) -> None:
        await self.send(writer, self.prefix)
        await self.trickle(writer, self.interval)


class DropsKeptConnectionServer(FaultServer):
    """Answers the first request of each connection, keeps it open as HTTP/1.1
    allows, then closes it without answering when the next request comes: a
    server whose idle timeout raced with the client's next request."""

    def __init__(self, answer: bytes) -> None:
        super().__init__("http")
        self.answer = answer

    async def misbehave(self, reader, writer) -> None:
        await self.send(writer, self.answer)
        await self._read_request(reader)


class EchoServer(FaultServer):
    """A plain TCP echo server: whatever protocol the client speaks comes back."""

    async def _read_request(self, reader: asyncio.StreamReader) -> None:
        pass  # echo from the first byte

    async def misbehave(self, reader, writer) -> None:
        while data := await reader.read(65536):
            await self.send(writer, data)


@dataclass(frozen=True)
class Trickled:
    """An answer for InjectingProxy that never ends: `head` at once, then a byte every `interval`."""

    head: bytes
    interval: float = 0.05


class InjectingProxy(FaultServer):
    """Forwards each HTTP request to a real target (`upstream`, host:port), but
    answers the paths in `answers` itself with canned responses (or trickles
    them): a real target that lies about one endpoint, or is slow to answer it.
    One request per connection."""

    def __init__(self, upstream: str, answers: dict[str, bytes | Trickled]) -> None:
        super().__init__("http")
        self.upstream = upstream
        self.answers = answers
        self.injected = 0  # canned answers sent

    async def _read_request(self, reader: asyncio.StreamReader) -> None:
        pass  # read by misbehave, which forwards it

    async def misbehave(self, reader, writer) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1].decode().split("?")[0]
        if path in self.answers:
            self.injected += 1
            answer = self.answers[path]
            if isinstance(answer, Trickled):
                await self.send(writer, answer.head)
                await self.trickle(writer, answer.interval)
            else:
                await self.send(writer, answer)
            return
        host, port = self.upstream.rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        try:
            # Close after the answer, so that reading to EOF reads exactly one answer.
            up_writer.write(head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
            while data := await up_reader.read(65536):
                await self.send(writer, data)
        finally:
            up_writer.close()


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_response(status: str, body: bytes, *, content_type: str = "text/plain", extra: str = "",
                  keep_alive: bool = False) -> bytes:
    """A whole HTTP/1.1 response with Content-Length, for CannedAnswerServer."""
    connection = "" if keep_alive else "Connection: close\r\n"
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"{connection}{extra}\r\n")
    return head.encode() + body


def streamed_response(body: bytes, *, content_type: str) -> bytes:
    """A whole HTTP/1.1 200 without Content-Length: the body ends when the connection does."""
    return f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n".encode() + body


def service_families(count: int) -> bytes:
    """Prometheus text of `count` gauges of a service's own (no Go collector), ~55 bytes each."""
    return "".join(f"# TYPE aaa_service_{i} gauge\naaa_service_{i} {i}\n" for i in range(count)).encode()


def gzip_bomb(inflated: int) -> bytes:
    """A gzip stream of `inflated` zero bytes, about a thousandth of that size."""
    deflate = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = [deflate.compress(block) for _ in range(inflated >> 20)]
    return b"".join([*parts, deflate.compress(bytes(inflated & 0xFFFFF)), deflate.flush()])

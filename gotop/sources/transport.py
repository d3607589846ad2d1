"""A lean httpx transport for plain HTTP/1.1: keep-alive connections on asyncio
streams, with h11 reading and writing the messages.

gotop asks every target for a few small documents each second, over TCP or
a UNIX socket. httpx's default
transport (httpcore on anyio) costs a poll about as much CPU as the rest of
gotop's work on it; this one does the same exchange for a fraction of that
(bench/poll_cost.py). httpx stays the client: redirects, timeouts and errors
keep its types. HTTPS keeps httpx's own transport.

Only what gotop needs: GET without a body, a bounded pool (`max_connections`
in flight, `max_keepalive` idle ones kept for `keepalive_expiry` seconds), a
retry on a fresh connection when the server had closed an idle one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import h11
import httpx

from gotop.unixconnect import unix_address

READ_SIZE = 64 << 10


class _StaleConnection(Exception):
    """A kept-alive connection was closed by the server before it answered."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = time.monotonic()
        self.reused = False  # served an answer before: the server may have closed it since
        self.received = 0  # bytes of the current answer

    @classmethod
    async def open(cls, host: str, port: int, timeout: float | None, unix: str | None = None) -> _Connection:
        """A connection to host:port, or to the UNIX socket `unix` when given."""
        try:
            async with asyncio.timeout(timeout):
                if unix is None:
                    reader, writer = await asyncio.open_connection(host, port, limit=READ_SIZE)
                else:
                    with unix_address(unix) as address:
                        reader, writer = await asyncio.open_unix_connection(address, limit=READ_SIZE)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection within {timeout} s") from None
        except OSError as e:
            raise httpx.ConnectError(e.strerror or str(e)) from None
        return cls(reader, writer)

    def usable(self, now: float, expiry: float) -> bool:
        return now - self.idle_since < expiry and not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()

    async def send(self, request: httpx.Request, timeout: float | None) -> h11.Response:
        """Write the request and read the answer's head; on any failure the
        connection is closed. On a kept-alive connection that the server closed
        meanwhile: _StaleConnection."""
        head = h11.Request(method=request.method, target=request.url.raw_path, headers=request.headers.raw)
        self.received = 0
        try:
            self.writer.write(self.h11.send(head) + self.h11.send(h11.EndOfMessage()))
            while True:
                event = await self.next_event(timeout)
                if isinstance(event, h11.Response):
                    return event
                if isinstance(event, h11.ConnectionClosed):
                    raise httpx.RemoteProtocolError("server disconnected without sending a response")
                # an h11.InformationalResponse (1xx): the real answer follows
        except (httpx.ReadError, httpx.RemoteProtocolError):
            self.close()
            if self.reused and not self.received:
                raise _StaleConnection from None
            raise
        except BaseException:  # a timeout or a cancellation: the connection's state is unknown
            self.close()
            raise

    async def next_event(self, timeout: float | None) -> h11.Event | type[h11.PAUSED]:
        while True:
            try:
                event = self.h11.next_event()
                if isinstance(event, h11.Event) or event is h11.PAUSED:  # anything but NEED_DATA
                    return event
                async with asyncio.timeout(timeout):
                    data = await self.reader.read(READ_SIZE)
            except h11.RemoteProtocolError as e:
                raise httpx.RemoteProtocolError(str(e)) from None
            except TimeoutError:
                raise httpx.ReadTimeout(f"nothing received for {timeout} s") from None
            except OSError as e:
                raise httpx.ReadError(e.strerror or str(e)) from None
            self.received += len(data)
            self.h11.receive_data(data)  # b"" marks the end of the stream


class _Body(httpx.AsyncByteStream):
    """The answer's body; closing it gives the connection back (when the answer
    was read whole) or closes it."""

    def __init__(self, pool: PlainHttpTransport, connection: _Connection, timeout: float | None) -> None:
        self._pool = pool
        self._connection: _Connection | None = connection
        self._timeout = timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        assert self._connection is not None, "the body was closed"
        while True:
            event = await self._connection.next_event(self._timeout)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            elif isinstance(event, h11.ConnectionClosed):
                raise httpx.RemoteProtocolError("server closed the connection mid-answer")

    async def aclose(self) -> None:
        if self._connection is not None:
            self._pool.give_back(self._connection)
            self._connection = None


class PlainHttpTransport(httpx.AsyncBaseTransport):
    """`unix`: every connection goes to this UNIX socket, whatever the URL's host."""

    def __init__(self, max_connections: int, max_keepalive: int, keepalive_expiry: float,
                 unix: str | None = None) -> None:
        self._unix = unix
        self._slots = asyncio.Semaphore(max_connections)
        self._max_keepalive = max_keepalive
        self._expiry = keepalive_expiry
        self._idle: list[_Connection] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"plain HTTP only, not {request.url.scheme}")
        timeouts = request.extensions.get("timeout", {})
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("every connection stayed busy") from None
        try:
            connection, head = await self._exchange(request, timeouts)
        except BaseException:
            self._slots.release()
            raise
        return httpx.Response(
            head.status_code, headers=head.headers, stream=_Body(self, connection, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason},
        )

    async def _exchange(self, request: httpx.Request, timeouts: dict) -> tuple[_Connection, h11.Response]:
        """The request sent and the answer's head read: on an idle kept-alive
        connection if one is still open, else on a new one."""
        connection = self._idle_connection()
        if connection is not None:
            try:
                return connection, await connection.send(request, timeouts.get("read"))
            except _StaleConnection:
                pass
        connection = await _Connection.open(request.url.host, request.url.port or 80, timeouts.get("connect"),
                                            self._unix)
        return connection, await connection.send(request, timeouts.get("read"))

    def give_back(self, connection: _Connection) -> None:
        """An answer's body was closed: keep its connection for the next request
        when the exchange completed cleanly, else close it."""
        self._slots.release()
        state = connection.h11
        if state.our_state is h11.DONE and state.their_state is h11.DONE and len(self._idle) < self._max_keepalive:
            state.start_next_cycle()
            connection.idle_since = time.monotonic()
            connection.reused = True
            self._idle.append(connection)
        else:
            connection.close()

    def _idle_connection(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.usable(now, self._expiry):
                return connection
            connection.close()
        return None

    async def aclose(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

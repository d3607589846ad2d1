"""Client for the gops agent (github.com/google/gops/agent).

The protocol: connect, send one command byte (plus a varint for set-GC-percent),
read until the agent closes the connection. There is no status and no length:
an unknown command gets an empty answer, and on some errors the agent never
closes at all. The agent serves one connection at a time, and a CPU profile
(30 s) or trace (5 s) blocks it for everybody. So every call here has a
timeout and a size cap, requests to one agent are serialised, answers are
checked for the shape the command promises, and no connection is kept idle.

Answers are returned raw (text or bytes); parsing is the model layer's job.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Literal

from gotop.sources.errors import (
    InvalidRequest,
    ProtocolError,
    ResponseTooLarge,
    TransportTimeout,
    Unreachable,
)
from gotop.sources.payload import CappedBuffer, MiB, gzip_problem
from gotop.sources.progress import ProgressCallback, ProgressTicker

__all__ = [
    "AgentCommand", "AgentProtocolError", "AgentTimeout", "AgentUnreachable",
    "CommandNotSupported", "GCPercentChange", "GopsClient", "InvalidRequest", "ResponseTooLarge",
    "encode_varint",
]

DEFAULT_TIMEOUT = 3.0
PROBE_TIMEOUT = 2.0  # asking for the version after an answer that ended too soon
# Long captures: the agent answers after `capture_seconds`; allow this much more.
CAPTURE_MARGIN = 10.0
_READ_CHUNK = 64 * 1024
_MAX_VARINT_LEN = 10  # binary.MaxVarintLen64: the gops CLI always sends 10 bytes


class AgentUnreachable(Unreachable):
    """No connection to the agent (refused, no route, connection lost)."""


class AgentTimeout(TransportTimeout):
    """The agent did not answer in time (busy with a capture, or hung)."""


class AgentProtocolError(ProtocolError):
    """The answer is not what the command promises (wrong port, old agent, lies)."""


class CommandNotSupported(AgentProtocolError):
    """No answer from an agent that answers its version: it does not know the command."""


@dataclass(frozen=True, slots=True)
class AgentCommand:
    """One command of the agent protocol and what its answer must look like."""

    code: int
    name: str  # as the gops CLI calls it
    max_bytes: int  # default size cap of the answer
    answer: re.Pattern[bytes] | None = None  # must match at the start of the answer
    gzip: str = ""  # the answer is one complete gzip stream, a pprof profile of this kind
    capture_seconds: float = 0.0  # the agent records this long before answering
    timeout: float | None = None  # default timeout if longer than the client's


STACK = AgentCommand(0x01, "stack", 64 * MiB, re.compile(rb"goroutine \d+ "), timeout=15.0)
GC = AgentCommand(0x02, "gc", 1 * MiB, re.compile(rb"ok\Z"), timeout=30.0)
MEMSTATS = AgentCommand(0x03, "memstats", 1 * MiB, re.compile(rb"alloc: "))
VERSION = AgentCommand(0x04, "version", 1 * MiB, re.compile(rb"(go\d|devel)[^\n]*\n?\Z"))
HEAP_PROFILE = AgentCommand(0x05, "pprof-heap", 256 * MiB, gzip="heap", timeout=15.0)
CPU_PROFILE = AgentCommand(0x06, "pprof-cpu", 256 * MiB, gzip="cpu", capture_seconds=30.0)
STATS = AgentCommand(0x07, "stats", 1 * MiB, re.compile(rb"goroutines: "))
TRACE = AgentCommand(0x08, "trace", 256 * MiB, re.compile(rb"go 1\.\d+ trace\x00"), capture_seconds=5.0)
BINARY_DUMP = AgentCommand(0x09, "binary-dump", 0, timeout=30.0)  # cap given by the caller
_SETGC_ANSWER = re.compile(rb"New GC percent set to (-?\d+)\. Previous value was (-?\d+)\.\n?\Z")
SET_GC_PERCENT = AgentCommand(0x10, "setgc", 1 * MiB, _SETGC_ANSWER)


@dataclass(frozen=True, slots=True)
class GCPercentChange:
    """The agent's answer to set-GC-percent; -1 means GC off."""

    new: int
    previous: int
    line: str


def encode_varint(n: int) -> bytes:
    """Go's binary.PutVarint: zig-zag, then unsigned LEB128 (int64 range)."""
    if not -(1 << 63) <= n < (1 << 63):
        raise InvalidRequest(f"{n} does not fit in an int64")
    u = (n << 1) ^ (n >> 63)
    out = bytearray()
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


class GopsClient:
    """Talks to one gops agent at host:port. Safe to share between tasks:
    requests wait their turn (the agent is serial anyway), and the time spent
    waiting counts against the request's timeout."""

    def __init__(self, host: str, port: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._lock = asyncio.Lock()
        self._running: AgentCommand | None = None

    def __repr__(self) -> str:
        return f"GopsClient({self.address})"

    @property
    def busy(self) -> bool:
        """A request (possibly a 30 s capture) is in flight on this client."""
        return self._lock.locked()

    # -- commands -------------------------------------------------------------

    async def stack(self, *, timeout: float | None = None, max_bytes: int | None = None) -> str:
        """All goroutine stacks (debug=2 text). Stops the world: on demand only."""
        return _text(await self.request(STACK, timeout=timeout, max_bytes=max_bytes))

    async def gc(self, *, timeout: float | None = None) -> None:
        """Run a blocking runtime.GC() in the target."""
        await self.request(GC, timeout=timeout)

    async def memstats(self, *, timeout: float | None = None, max_bytes: int | None = None) -> str:
        return _text(await self.request(MEMSTATS, timeout=timeout, max_bytes=max_bytes))

    async def version(self, *, timeout: float | None = None) -> str:
        """runtime.Version() of the target, e.g. 'go1.26.8'."""
        return _text(await self.request(VERSION, timeout=timeout)).strip()

    async def stats(self, *, timeout: float | None = None) -> str:
        return _text(await self.request(STATS, timeout=timeout))

    async def heap_profile(self, *, timeout: float | None = None, max_bytes: int | None = None) -> bytes:
        """The heap profile: gzip-compressed pprof protobuf, checked complete."""
        return await self.request(HEAP_PROFILE, timeout=timeout, max_bytes=max_bytes)

    async def cpu_profile(
        self, *, progress: ProgressCallback | None = None,
        timeout: float | None = None, max_bytes: int | None = None,
    ) -> bytes:
        """A 30 s CPU profile (the agent's fixed duration); blocks the agent meanwhile."""
        return await self.request(CPU_PROFILE, timeout=timeout, max_bytes=max_bytes, progress=progress)

    async def trace(
        self, *, progress: ProgressCallback | None = None,
        timeout: float | None = None, max_bytes: int | None = None,
    ) -> bytes:
        """A 5 s runtime execution trace; blocks the agent meanwhile."""
        return await self.request(TRACE, timeout=timeout, max_bytes=max_bytes, progress=progress)

    async def binary_dump(self, *, max_bytes: int, timeout: float | None = None) -> bytes:
        """The target's executable, up to `max_bytes` (e.g. its size on disk)."""
        return await self.request(BINARY_DUMP, timeout=timeout, max_bytes=max_bytes)

    async def set_gc_percent(
        self, percent: int | Literal["off"] | None, *, timeout: float | None = None,
    ) -> GCPercentChange:
        """debug.SetGCPercent in the target; 'off' or None disables GC (-1).

        Agents older than gops v0.3.3 raise CommandNotSupported.
        """
        value = -1 if percent is None or percent == "off" else percent
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequest(f"GC percent must be an integer or 'off', not {percent!r}")
        payload = encode_varint(value).ljust(_MAX_VARINT_LEN, b"\x00")
        answer = await self.request(SET_GC_PERCENT, payload, timeout=timeout)
        match = _SETGC_ANSWER.match(answer)
        assert match is not None  # request() checked the shape
        return GCPercentChange(int(match[1]), int(match[2]), _text(answer).strip())

    # -- the exchange ---------------------------------------------------------

    async def request(
        self, command: AgentCommand, payload: bytes = b"", *,
        timeout: float | None = None, max_bytes: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> bytes:
        """Send one command, read the answer to EOF, check its shape, return it."""
        timeout = timeout if timeout is not None else self._default_timeout(command)
        limit = max_bytes if max_bytes is not None else command.max_bytes
        ahead = self._running  # the request this one queues behind, if any
        phase = "queue"
        try:
            async with asyncio.timeout(timeout), self._lock:
                self._running = command
                try:
                    phase = "connect"
                    reader, writer = await self._connect()
                    phase = "answer"
                    started = time.monotonic()
                    answer = await self._exchange(reader, writer, command, payload, limit, progress)
                    elapsed = time.monotonic() - started
                finally:
                    self._running = None
        except TimeoutError:
            raise self._timeout_error(command, phase, timeout, ahead) from None
        if not answer or elapsed < command.capture_seconds:
            raise await self._ended_early(command, answer, elapsed)
        self._check_shape(command, answer)
        if command.gzip:
            problem = await asyncio.to_thread(gzip_problem, self.address, answer, command.gzip)
            if problem:
                raise AgentProtocolError(self.address, f"{command.name}: {problem}")
        return answer

    def _default_timeout(self, command: AgentCommand) -> float:
        if command.capture_seconds:
            return command.capture_seconds + max(self.timeout, CAPTURE_MARGIN)
        return max(command.timeout or 0.0, self.timeout)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_connection(self.host, self.port)
        except ConnectionRefusedError:
            raise AgentUnreachable(self.address, "connection refused: no agent listening") from None
        except OSError as exc:
            raise AgentUnreachable(self.address, f"cannot connect: {exc.strerror or exc}") from None

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        command: AgentCommand, payload: bytes, limit: int, progress: ProgressCallback | None,
    ) -> bytes:
        """The answer, read to EOF; empty if the peer reset the connection before a byte."""
        buffer = CappedBuffer(self.address, limit)
        try:
            writer.write(bytes([command.code]) + payload)
            # Half-close: an agent needs nothing more, and a server of another
            # protocol waiting for more input answers or closes instead of hanging.
            writer.write_eof()
            async with ProgressTicker(progress, command.capture_seconds) as ticker:
                while chunk := await reader.read(_READ_CHUNK):
                    buffer.add(chunk)
                    ticker.received = len(buffer)
        except ConnectionResetError:
            if buffer:
                raise AgentUnreachable(
                    self.address, f"{command.name}: connection lost after {len(buffer)} bytes") from None
            # e.g. an old agent dropping an unknown command's payload: judged as no answer
        except OSError as exc:
            raise AgentUnreachable(self.address, f"{command.name}: {exc.strerror or exc}") from None
        finally:
            writer.transport.abort()  # the agent closed first, or we give up: nothing to flush
        return buffer.getvalue()

    def _check_shape(self, command: AgentCommand, answer: bytes) -> None:
        if answer.startswith(b"HTTP/"):
            raise AgentProtocolError(self.address, "an HTTP server answered: not a gops agent")
        if command.answer is not None and not command.answer.match(answer):
            raise AgentProtocolError(
                self.address,
                f"unexpected answer to {command.name} ({answer[:40]!r}): not a gops agent?")

    async def _ended_early(
        self, command: AgentCommand, answer: bytes, elapsed: float,
    ) -> AgentUnreachable | AgentProtocolError:
        """Why the connection closed with no answer, or before a capture could
        have ended: asking for the version tells an agent that went away (nothing
        listens), a server that is no agent, and an agent without the command."""
        what = f"the answer ended after {len(answer)} bytes" if answer else "no answer"
        if command.capture_seconds:
            what += f", {elapsed:.1f} s into the {command.capture_seconds:g} s capture"
        found = await self._probe()
        if found == "gone":
            return AgentUnreachable(self.address, f"{command.name}: {what}, and nothing listens any more: "
                                                  "the agent went away (did the target exit?)")
        if found == "stranger":
            return AgentProtocolError(self.address, f"{command.name}: {what}, and no version either: "
                                                    "not a gops agent")
        if answer or command.capture_seconds:
            return AgentProtocolError(self.address, f"{command.name}: {what}: the agent cut it short")
        return CommandNotSupported(
            self.address, f"no answer to {command.name} (command 0x{command.code:02x}): not supported by this agent")

    async def _probe(self) -> Literal["gone", "stranger", "agent"]:
        """Who listens at the address now, asked for its version; an agent busy
        (or slow) past PROBE_TIMEOUT counts as an agent."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT), self._lock:
                reader, writer = await self._connect()
                answer = await self._exchange(reader, writer, VERSION, b"", VERSION.max_bytes, None)
        except AgentUnreachable:
            return "gone"
        except TimeoutError:
            return "agent"
        except ResponseTooLarge:
            return "stranger"
        assert VERSION.answer is not None
        return "agent" if VERSION.answer.match(answer) else "stranger"

    def _timeout_error(
        self, command: AgentCommand, phase: str, timeout: float, ahead: AgentCommand | None,
    ) -> AgentUnreachable | AgentTimeout:
        if phase == "connect":
            return AgentUnreachable(self.address, f"no connection within {timeout:.1f} s")
        if phase == "queue" and ahead is not None:
            return AgentTimeout(
                self.address,
                f"no answer within {timeout:.1f} s: still busy with an earlier {ahead.name}")
        if command.capture_seconds:
            # The agent drops a capture it cannot start without closing the connection.
            return AgentTimeout(
                self.address,
                f"no answer within {timeout:.1f} s: another CPU profile or trace may be running "
                "in the target (e.g. over HTTP), or the agent hung")
        return AgentTimeout(
            self.address,
            f"no answer within {timeout:.1f} s: the agent may be busy with a CPU profile or trace, or hung")


def _text(answer: bytes) -> str:
    return answer.decode("utf-8", errors="replace")

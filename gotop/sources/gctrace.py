"""The output of a program gotop started, and the GC trace in its stderr.

A program started with `GODEBUG=gctrace=1` prints one line per GC cycle on its
stderr, among its own lines. `ProgramOutput` reads its stdout and stderr on a
thread of its own (so the program never blocks on a full pipe, whatever gotop's
event loop is doing), sorts the lines: each GC trace line becomes a `GcReading`
(the cycle, stamped with the time it was read: the runtime prints it as the
cycle ends), every other line is the program's own and is kept whole, in the
order read, in a log file (0600) and in a bounded tail for the screens. The
trace lines go to a file of their own beside the log.

A runtime trace line and a line the program writes at the same moment can mix
(the runtime writes a line in pieces): that line is then kept as the program's
own, and its cycle is missing from the readings (their numbers show the gap).
"""

from __future__ import annotations

import os
import selectors
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from gotop.model.gctrace import TRACE_PREFIXES, GcCycle, is_trace_line, parse_gc_line
from gotop.model.memstats import MemStats

TAIL_LINES = 2000  # lines of the program's own output kept in memory
MAX_LINE = 64 * 1024  # bytes: a longer line is cut into pieces of this size
MAX_PENDING = 10_000  # GC readings kept until taken (a poll takes them each second)
READ_SIZE = 64 * 1024
_TRACE_PREFIXES = tuple(prefix.encode() for prefix in TRACE_PREFIXES)


@dataclass(frozen=True, slots=True)
class GcReading:
    """One GC cycle of the trace, and when it was read (unix seconds)."""

    time: float
    cycle: GcCycle


@dataclass(frozen=True, slots=True)
class OutputLine:
    stream: str  # "stdout" or "stderr"
    text: str  # as written (undecodable bytes replaced), without its newline; not yet made safe to show


class ProgramOutput:
    """Reads a started program's stdout and stderr pipes until both close."""

    def __init__(self, stdout: int, stderr: int, log_path: Path) -> None:
        self.log_path = log_path
        self.trace_path = log_path.with_name(log_path.name + ".gctrace")
        self._fds = {stdout: "stdout", stderr: "stderr"}
        self._lock = threading.Lock()
        self._tail: deque[tuple[str, bytes]] = deque(maxlen=TAIL_LINES)  # (stream, line): decoded when asked
        self._pending: deque[GcReading] = deque(maxlen=MAX_PENDING)
        self._latest: GcReading | None = None
        self._first_num: int | None = None  # the first cycle read
        self._forced = 0
        self._pause_total_ns = 0
        self.lines = 0  # lines of the program's own read so far
        self._closed = threading.Event()
        self._log = _open_private(log_path)
        self._trace = _open_private(self.trace_path)
        self._thread = threading.Thread(target=self._read, name="program-output", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def closed(self) -> bool:
        """Both pipes closed: the program and every child that shared them are gone."""
        return self._closed.is_set()

    def wait_closed(self, timeout: float) -> bool:
        return self._closed.wait(timeout)

    # -- what the readers ask ----------------------------------------------------

    def take_readings(self) -> list[GcReading]:
        """The GC readings since the last call, oldest first."""
        with self._lock:
            taken = list(self._pending)
            self._pending.clear()
        return taken

    @property
    def latest(self) -> GcReading | None:
        return self._latest

    def memstats(self) -> MemStats | None:
        """The GC figures of the last cycle read, as MemStats (the rest unknown); None before
        the first. The CPU fraction is the trace's whole percent; the heap goal it prints is the
        one the cycle ran under, not the next one, so next_gc stays unknown."""
        with self._lock:
            latest = self._latest
            # Totals of the program's life only when every cycle since its first was read.
            forced, pause_total = (self._forced, self._pause_total_ns) if self._first_num == 1 else (None, None)
        if latest is None:
            return None
        c, end_ns = latest.cycle, int(latest.time * 1e9)
        return MemStats(num_gc=c.num, heap_marked=c.heap_live, last_pause_ns=c.pause_ns, last_pause_end=end_ns,
                        last_gc=end_ns, gc_cpu_fraction=c.cpu_percent / 100, num_forced_gc=forced,
                        pause_total_ns=pause_total)

    def since(self, seen: int) -> tuple[list[OutputLine], int]:
        """The lines of the program's own output after the first `seen` (as many as the tail
        still holds), and how many it has written in all."""
        with self._lock:
            new = min(self.lines - seen, len(self._tail))
            lines, total = (list(self._tail)[-new:] if new > 0 else []), self.lines
        return [_output_line(stream, raw) for stream, raw in lines], total

    def last_stderr(self, count: int) -> list[str]:
        """The last `count` lines the program wrote to stderr (trace lines left out)."""
        with self._lock:
            lines = [raw for stream, raw in self._tail if stream == "stderr"][-count:]
        return [_output_line("stderr", raw).text for raw in lines]

    # -- the reading thread ----------------------------------------------------------

    def _read(self) -> None:
        selector = selectors.DefaultSelector()
        partial: dict[int, bytes] = {}
        for fd in self._fds:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
            partial[fd] = b""
        try:
            while selector.get_map():
                for key, _ in selector.select():
                    fd = key.fd
                    try:
                        chunk = os.read(fd, READ_SIZE)
                    except BlockingIOError:
                        continue
                    if not chunk:  # closed: what is left of a line is a line
                        selector.unregister(fd)
                        self._lines(fd, [partial[fd]] if partial[fd] else [])
                        continue
                    *lines, partial[fd] = (partial[fd] + chunk).split(b"\n")
                    while len(partial[fd]) >= MAX_LINE:
                        lines.append(partial[fd][:MAX_LINE])
                        partial[fd] = partial[fd][MAX_LINE:]
                    self._lines(fd, lines)
                    self._log.flush()
                    self._trace.flush()
        finally:
            selector.close()
            for fd in self._fds:
                os.close(fd)
            self._log.close()
            self._trace.close()
            self._closed.set()

    def _lines(self, fd: int, lines: list[bytes]) -> None:
        """Complete lines read from one pipe: the GC trace's become readings, the others are the
        program's own (written and kept a batch at a time: a busy program may write many)."""
        stream = self._fds[fd]
        own = [raw for raw in lines if not (stream == "stderr" and raw.startswith(_TRACE_PREFIXES)
                                            and self._trace_line(raw))]
        if not own:
            return
        self._log.write(b"\n".join(own) + b"\n")
        with self._lock:
            self._tail.extend((stream, raw) for raw in own[-TAIL_LINES:])
            self.lines += len(own)

    def _trace_line(self, raw: bytes) -> bool:
        """Whether the runtime's GC trace printed the line; a cycle becomes a reading."""
        text = raw.decode("utf-8", errors="replace")
        if not is_trace_line(text):
            return False
        self._trace.write(raw + b"\n")
        cycle = parse_gc_line(text)
        if cycle is not None:
            self._add_reading(GcReading(time.time(), cycle))
        return True

    def _add_reading(self, reading: GcReading) -> None:
        with self._lock:
            if self._first_num is None:
                self._first_num = reading.cycle.num
            self._forced += reading.cycle.forced
            self._pause_total_ns += reading.cycle.pause_ns
            self._latest = reading
            self._pending.append(reading)


def _output_line(stream: str, raw: bytes) -> OutputLine:
    return OutputLine(stream, raw.decode("utf-8", errors="replace").removesuffix("\r"))


def _open_private(path: Path):
    """A file of ours, appended to (a restarted program's output follows the last), mode 0600,
    never through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    return os.fdopen(fd, "ab")

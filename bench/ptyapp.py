"""Run a full-screen program in a pseudo-terminal of a fixed size, as a user's terminal would.

The program gets the pty as its controlling terminal (stdin, stdout, stderr)
with TERM=xterm-256color. A reader thread drains its output all the time, so
the program never blocks on a full terminal, and feeds it into a `Screen`; a
watch (a predicate on the screen's lines) records when the screen first
satisfied it.
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Sequence

import psutil
from vtscreen import Screen

Predicate = Callable[[list[str]], bool]


def peak_rss(pid: int) -> int:
    """VmHWM: the high-water mark of the resident set, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/PID/status")


def _take_terminal() -> None:
    """In the child, after setsid: make stdin (the pty) the controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyApp:
    def __init__(self, argv: Sequence[str], cols: int, rows: int, env: dict[str, str] | None = None) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.screen = Screen(cols, rows)
        self.bytes_read = 0
        self._lock = threading.Lock()
        self._watch: tuple[Predicate, threading.Event] | None = None
        self.watch_met_at: float | None = None  # perf_counter time
        self.started = time.perf_counter()
        try:
            self.proc = subprocess.Popen(
                list(argv), stdin=slave, stdout=slave, stderr=slave,
                env={**(env or os.environ), "TERM": "xterm-256color"},
                start_new_session=True, preexec_fn=_take_terminal,
            )
        finally:
            os.close(slave)
        self.ps = psutil.Process(self.proc.pid)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def lines(self) -> list[str]:
        with self._lock:
            return self.screen.lines()

    def wait_for(self, predicate: Predicate, timeout: float) -> float | None:
        """Seconds from launch until the screen first satisfied `predicate`; None on timeout."""
        event = threading.Event()
        with self._lock:
            self.watch_met_at = None
            if predicate(self.screen.lines()):
                self.watch_met_at = time.perf_counter()
                event.set()
            else:
                self._watch = (predicate, event)
        met = event.wait(timeout)
        with self._lock:
            self._watch = None
        return self.watch_met_at - self.started if met and self.watch_met_at else None

    def cpu_seconds(self) -> float:
        """User + system CPU of the program (and of children it has waited for)."""
        t = self.ps.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def peak_rss(self) -> int:
        return peak_rss(self.pid)

    def quit(self, keys: bytes = b"q", timeout: float = 10.0) -> None:
        """Ask the program to leave by typing `keys`; kill it if it does not."""
        if self.proc.poll() is None:
            try:
                os.write(self.master, keys)
                self.proc.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._reader.join(5)
        os.close(self.master)

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the program and its terminal are gone
                return
            if not data:
                return
            with self._lock:
                self.bytes_read += len(data)
                self.screen.feed(data)
                if self._watch and self._watch[0](self.screen.lines()):
                    self.watch_met_at = time.perf_counter()
                    self._watch[1].set()
                    self._watch = None

"""What the OS knows about a process: memory, CPU, threads, descriptors (from /proc)."""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass

import psutil

from gotop.errors import GotopError
from gotop.procstat import CLOCK_TICKS, PAGE_SIZE, ProcStat, read_proc_stat


class ProcessGone(GotopError):
    """The process exited (or its pid now names another process)."""


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    pid: int
    cmdline: tuple[str, ...]
    rss: int
    threads: int
    open_fds: int | None  # None when /proc/PID/fd is not readable

    def to_json(self) -> dict:
        return {"cmdline": list(self.cmdline), "rss": self.rss, "threads": self.threads, "open_fds": self.open_fds}


def process_facts(pid: int) -> ProcessFacts:
    figures = OsSampler(pid).sample()
    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.NoSuchProcess:
        raise ProcessGone(f"pid {pid} has exited") from None
    except psutil.AccessDenied as e:
        raise GotopError(f"pid {pid}: permission denied reading /proc ({e.msg or 'access denied'})") from None
    return ProcessFacts(pid, tuple(cmdline), figures.rss, figures.threads, figures.open_fds)


@dataclass(frozen=True, slots=True)
class OsFigures:
    """One reading of a process's OS figures."""

    time: float  # unix seconds
    rss: int
    cpu_percent: float | None  # percent of one core since the previous reading (or the sampler's start)
    threads: int
    open_fds: int | None
    cpu_seconds: float | None = None  # user + system time since it started (None replayed)

    def to_json(self) -> dict:
        return {"rss": self.rss, "cpu_percent": self.cpu_percent, "threads": self.threads, "open_fds": self.open_fds}


class OsSampler:
    """Reads a process's OS figures; CPU percent is measured between readings.

    Straight from /proc/PID/stat and /proc/PID/fd (a poll's cheapest path, read
    for every target each second); a changed start time means the pid was reused."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._start_ticks: int | None = None
        self._last_cpu: tuple[float, int] | None = None  # (monotonic, CPU ticks)
        try:  # so that the first sample already has a CPU percent
            stat = self._read_stat()
        except ProcessGone:
            raise
        except GotopError:
            return  # unreadable now: the first sample says why
        self._start_ticks = stat.start_ticks
        self._last_cpu = (time.monotonic(), stat.cpu_ticks)

    def sample(self) -> OsFigures:
        stat = self._read_stat()
        if self._start_ticks is None:
            self._start_ticks = stat.start_ticks
        elif stat.start_ticks != self._start_ticks:
            raise ProcessGone(f"pid {self.pid} has exited (the pid now names another process)")
        now = time.monotonic()
        figures = OsFigures(
            time=round(time.time(), 3),
            rss=stat.rss_pages * PAGE_SIZE,
            cpu_percent=self._cpu_percent(now, stat.cpu_ticks),
            threads=stat.threads,
            open_fds=_count_fds(self.pid),
            cpu_seconds=stat.cpu_ticks / CLOCK_TICKS,
        )
        self._last_cpu = (now, stat.cpu_ticks)
        return figures

    def _read_stat(self) -> ProcStat:
        try:
            return read_proc_stat(self.pid)
        except (FileNotFoundError, ProcessLookupError):
            raise ProcessGone(f"pid {self.pid} has exited") from None
        except OSError as e:
            raise GotopError(f"pid {self.pid}: cannot read /proc/{self.pid}/stat ({e.strerror or e})") from None
        except ValueError as e:
            raise GotopError(f"pid {self.pid}: unreadable /proc/{self.pid}/stat ({e})") from None

    def _cpu_percent(self, now: float, cpu_ticks: int) -> float | None:
        if self._last_cpu is None or now <= self._last_cpu[0]:
            return None
        then, ticks_then = self._last_cpu
        return round(max(0.0, (cpu_ticks - ticks_then) / CLOCK_TICKS / (now - then) * 100), 2)


def _count_fds(pid: int) -> int | None:
    """Open descriptors; None when they cannot be counted (another user's process, before Linux 6.2).
    Linux 6.2+ gives their number as the size of /proc/PID/fd: a stat of 3 us, where listing
    the 260 descriptors of a process took 100 us."""
    path = f"/proc/{pid}/fd"
    try:
        if count := os.stat(path).st_size:
            return count
        return len(os.listdir(path))  # an older kernel says 0 (so does a process with no descriptor)
    except PermissionError:
        return None
    except FileNotFoundError:
        raise ProcessGone(f"pid {pid} has exited") from None


FD_KINDS = ("file", "tcp", "udp", "unix", "pipe", "other")
_SOCKET_KINDS = (("TCP", "tcp"), ("MPTCP", "tcp"), ("UDP", "udp"), ("UNIX", "unix"))  # protocol name prefix -> kind


def fd_kinds(pid: int) -> dict[str, int]:
    """Open descriptors by kind: files, TCP/UDP/UNIX sockets, pipes, other.

    A socket's kind is its protocol's name, which sockfs gives as the
    `system.sockprotoname` attribute of /proc/PID/fd/N ("TCP", "TCPv6",
    "UNIX-STREAM"...): no /proc/net tables to read (the kernel walks its whole
    hash tables for those, milliseconds each), and right in any network
    namespace. Raises ProcessGone, or PermissionError for another user's process.
    """
    counts = dict.fromkeys(FD_KINDS, 0)
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        raise ProcessGone(f"pid {pid} has exited") from None
    for fd in fds:
        path = f"/proc/{pid}/fd/{fd}"
        try:
            link = os.readlink(path)
            kind = _socket_kind(path) if link.startswith("socket:[") else \
                "pipe" if link.startswith("pipe:") else "file" if link.startswith("/") else "other"
        except OSError:  # closed meanwhile
            continue
        counts[kind] += 1
    return counts


def _socket_kind(path: str) -> str:
    try:
        protocol = os.getxattr(path, "system.sockprotoname").rstrip(b"\0").decode("ascii", "replace")
    except OSError as e:
        if e.errno == errno.ENOENT:  # closed meanwhile
            raise
        return "other"  # a kernel (or sandbox) without the attribute: a socket of unknown kind
    return next((kind for prefix, kind in _SOCKET_KINDS if protocol.startswith(prefix)), "other")

"""What the OS knows about a process (psutil): memory, CPU, threads, descriptors."""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass

import psutil

from gotop.errors import GotopError


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
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            return ProcessFacts(pid, tuple(proc.cmdline()), proc.memory_info().rss, proc.num_threads(), _num_fds(proc))
    except psutil.NoSuchProcess:
        raise ProcessGone(f"pid {pid} has exited") from None
    except psutil.AccessDenied as e:
        raise GotopError(f"pid {pid}: permission denied reading /proc ({e.msg or 'access denied'})") from None


@dataclass(frozen=True, slots=True)
class OsFigures:
    """One reading of a process's OS figures."""

    time: float  # unix seconds
    rss: int
    cpu_percent: float | None  # percent of one core since the previous reading (or the sampler's start)
    threads: int
    open_fds: int | None

    def to_json(self) -> dict:
        return {"rss": self.rss, "cpu_percent": self.cpu_percent, "threads": self.threads, "open_fds": self.open_fds}


class OsSampler:
    """Reads a process's OS figures; CPU percent is measured between readings."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self._proc = psutil.Process(pid)
        except psutil.NoSuchProcess:
            raise ProcessGone(f"pid {pid} has exited") from None
        self._last_cpu: tuple[float, float] | None = None  # (monotonic, cpu seconds)
        try:  # so that the first sample already has a CPU percent
            times = self._proc.cpu_times()
            self._last_cpu = (time.monotonic(), times.user + times.system)
        except psutil.Error:
            pass

    def sample(self) -> OsFigures:
        try:
            if not self._proc.is_running():  # also catches pid reuse
                raise psutil.NoSuchProcess(self.pid)
            with self._proc.oneshot():
                times = self._proc.cpu_times()
                now = time.monotonic()
                cpu = times.user + times.system
                figures = OsFigures(
                    time=round(time.time(), 3),
                    rss=self._proc.memory_info().rss,
                    cpu_percent=self._cpu_percent(now, cpu),
                    threads=self._proc.num_threads(),
                    open_fds=_num_fds(self._proc),
                )
        except psutil.NoSuchProcess:
            raise ProcessGone(f"pid {self.pid} has exited") from None
        except psutil.AccessDenied as e:
            raise GotopError(f"pid {self.pid}: permission denied reading /proc ({e.msg or 'access denied'})") from None
        self._last_cpu = (now, cpu)
        return figures

    def _cpu_percent(self, now: float, cpu: float) -> float | None:
        if self._last_cpu is None or now <= self._last_cpu[0]:
            return None
        then, cpu_then = self._last_cpu
        return round(max(0.0, (cpu - cpu_then) / (now - then) * 100), 2)


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


def _num_fds(proc: psutil.Process) -> int | None:
    try:
        return proc.num_fds()
    except psutil.AccessDenied:
        return None

"""What the OS knows about a process (psutil): memory, CPU, threads, descriptors."""

from __future__ import annotations

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
_SOCKET_TABLES = (("tcp", 9), ("tcp6", 9), ("udp", 9), ("udp6", 9), ("unix", 6))  # (file, inode column)
_MAX_TABLE_BYTES = 64 << 20


def fd_kinds(pid: int) -> dict[str, int]:
    """Open descriptors by kind: files, TCP/UDP/UNIX sockets, pipes, other.

    Sockets are told apart by their inode in the process's own network
    namespace tables. Raises ProcessGone, or PermissionError for another
    user's process.
    """
    counts = dict.fromkeys(FD_KINDS, 0)
    sockets: list[int] = []
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        raise ProcessGone(f"pid {pid} has exited") from None
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if link.startswith("socket:["):
            sockets.append(int(link[8:-1]))
        elif link.startswith("pipe:"):
            counts["pipe"] += 1
        elif link.startswith("/"):
            counts["file"] += 1
        else:
            counts["other"] += 1
    if sockets:
        kind_of = _socket_kinds(pid)
        for inode in sockets:
            counts[kind_of.get(inode, "other")] += 1
    return counts


SOCKET_TABLES_TTL = 5.0  # seconds one reading of a namespace's socket tables serves
_socket_tables: dict[int, tuple[float, dict[int, str]]] = {}  # netns inode -> (read at, inode -> kind)


def _socket_kinds(pid: int) -> dict[int, str]:
    """Socket inode -> kind in the network namespace of `pid`.

    On a busy host the tables hold thousands of sockets (milliseconds to read,
    and gotop's own polls open sockets in every target all the time), so one
    reading serves every process of the namespace for SOCKET_TABLES_TTL:
    a socket younger than the reading counts as "other" until the next one.
    """
    try:
        netns = os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return _read_socket_kinds(pid)
    now = time.monotonic()
    cached = _socket_tables.get(netns)
    if cached is None or now - cached[0] > SOCKET_TABLES_TTL:
        cached = _socket_tables[netns] = (now, _read_socket_kinds(pid))
    return cached[1]


def _read_socket_kinds(pid: int) -> dict[int, str]:
    kinds: dict[int, str] = {}
    for name, column in _SOCKET_TABLES:
        try:
            with open(f"/proc/{pid}/net/{name}", "rb") as f:
                data = f.read(_MAX_TABLE_BYTES)
        except OSError:
            continue
        kind = name.rstrip("6")
        for line in data.splitlines()[1:]:
            fields = line.split()
            if len(fields) > column and fields[column].isdigit():
                kinds[int(fields[column])] = kind
    return kinds


def _num_fds(proc: psutil.Process) -> int | None:
    try:
        return proc.num_fds()
    except psutil.AccessDenied:
        return None

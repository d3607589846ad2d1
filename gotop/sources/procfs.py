"""What the OS knows about a process (psutil): memory, threads, descriptors."""

from __future__ import annotations

from dataclasses import dataclass

import psutil

from gotop.errors import GotopError


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
            try:
                open_fds: int | None = proc.num_fds()
            except psutil.AccessDenied:
                open_fds = None
            return ProcessFacts(pid, tuple(proc.cmdline()), proc.memory_info().rss, proc.num_threads(), open_fds)
    except psutil.NoSuchProcess:
        raise GotopError(f"pid {pid} has exited") from None
    except psutil.AccessDenied as e:
        raise GotopError(f"pid {pid}: permission denied reading /proc ({e.msg or 'access denied'})") from None

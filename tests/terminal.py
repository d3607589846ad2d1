"""Run a program in a real pseudo-terminal, as a user at a terminal would.

Used to test what only a terminal shows: the TUI starting, keys, and what
happens when the terminal goes away.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path


class Terminal:
    def __init__(self, argv: list[str], size: tuple[int, int] = (100, 30), env: dict | None = None,
                 controlling: bool = True) -> None:
        """`controlling`: the terminal is the program's controlling terminal, so
        closing it sends SIGHUP; without it, closing it sends nothing (the
        program only finds its terminal dead), as an SSH drop can."""
        self.master, slave = os.openpty()
        self.tty_index = int(os.ttyname(slave).rpartition("/")[2])  # /dev/pts/N
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        niceness = _autogroup_niceness()

        def in_the_new_session() -> None:
            # As a shell at a terminal starts a program: with SIGHUP's default action, even when
            # this runs under nohup (SIGHUP ignored, and that is inherited: a SIGHUP that came
            # before gotop set its handler would be lost, and gotop would outlive it).
            signal.signal(signal.SIGHUP, signal.SIG_DFL)
            if niceness:
                _set_autogroup_niceness(niceness)
            if controlling:
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
            env={**os.environ, "TERM": "xterm-256color", **(env or {})},
            preexec_fn=in_the_new_session,
        )
        os.close(slave)
        self.output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.1)
                if ready:
                    data = os.read(self.master, 65536)
                    if not data:
                        return
                    self.output += data
            except OSError:  # the other side is gone
                return

    def expect(self, text: str, timeout: float = 60.0) -> None:
        """Wait until `text` was written to the terminal (a safety timeout, not a timing assertion)."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.output:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; last output: {bytes(self.output[-2000:])!r}")
            if self.proc.poll() is not None:
                raise AssertionError(f"exited ({self.proc.returncode}) before {text!r}: {bytes(self.output[-2000:])!r}")
            time.sleep(0.05)

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def hang_up(self) -> None:
        """Close the terminal, as a dropped SSH session does."""
        os.close(self.master)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the program to exit, and for everything it wrote to be read."""
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def describe_session(self) -> str:
        """What each process of the program's session is doing (state, kernel wait channel and
        system call of each thread, command): for the message of a test whose program would not end."""
        lines = []
        for pid in sorted(int(d) for d in os.listdir("/proc") if d.isdigit()):
            try:
                if os.getsid(pid) != self.proc.pid:
                    continue
                task_dir = Path(f"/proc/{pid}/task")
                threads = [f"{(t / 'comm').read_text().strip()}:{_state(t)}:{(t / 'wchan').read_text() or '-'}"
                           f":{_syscall(t)}" for t in sorted(task_dir.iterdir())]
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:  # gone meanwhile
                continue
            lines.append(f"pid {pid} ({command.strip()}): {', '.join(threads)}")
        # A terminal whose master another process still holds is not hung up by closing ours.
        holders = _master_holders(self.tty_index)
        lines.append(f"its master (/dev/ptmx, pts {self.tty_index}) still open in: {holders or 'no process'}")
        return "\n".join(lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        try:
            os.close(self.master)
        except OSError:
            pass


def _master_holders(tty_index: int) -> list[str]:
    """The processes that hold the master of pts `tty_index` open (/proc/PID/fdinfo says its index)."""
    holders = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) == "/dev/ptmx" and \
                        f"tty-index:\t{tty_index}\n" in (proc / "fdinfo" / fd.name).read_text():
                    holders.append(f"{proc.name} ({(proc / 'comm').read_text().strip()}) fd {fd.name}")
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return holders


def _syscall(task: Path) -> str:
    """The system call a thread is in (its number, as /proc says it), or "running"."""
    try:
        return (task / "syscall").read_text().split()[0]
    except (OSError, IndexError):  # not ours to read
        return "?"


def _state(task: Path) -> str:
    """A thread's state letter (R, S, D, T, Z...) from its stat line, after the command in parentheses."""
    return (task / "stat").read_text().rpartition(")")[2].split()[0]


# Linux schedules each session (autogroup) as one: the program's new session would start at
# niceness 0 beside the tests' own, whose busy Go targets then starve it when the tests run
# at a higher priority (this machine's shell runs at -10: a gotop started under load got
# 0 s of CPU in 87 s). The program's session gets the tests' autogroup niceness.

def _autogroup_niceness() -> int:
    try:
        return int(Path("/proc/self/autogroup").read_text().split("nice")[1])  # "/autogroup-401 nice -10"
    except (OSError, IndexError, ValueError):
        return 0


def _set_autogroup_niceness(niceness: int) -> None:
    try:
        Path("/proc/self/autogroup").write_text(str(niceness))
    except OSError:
        pass

"""A program gotop starts and watches (`gotop run -- CMD`, `gotop check -- CMD`).

The command runs with `GODEBUG=gctrace=1` merged into the GODEBUG it already
has (a gctrace level it asks for itself is kept), stdin from /dev/null, and its
stdout and stderr read by `ProgramOutput` (sources/gctrace.py): the GC trace
becomes readings, the rest is the program's own output, kept in a log file.

The Go program watched is the first process of the command's tree that is a Go
program other than the Go toolchain's own (cmd/go, cmd/compile, ...): the
command itself when it is one, else a child (`go run .`, `sh -c ...`, `make run`).
For `go run`, the go command and the compiler are Go programs too and would
print their own GC trace (the compiler's even replayed from the build cache), so
the go command runs with the GODEBUG it had, without gctrace, and the program
alone gets the merged one, through `go run -exec 'env GODEBUG=...'`.

The command runs in a process group of its own, and the group is what gotop
stops: SIGTERM, then SIGKILL after a grace. A small reaper process (sh) waits on
a pipe that only gotop holds: when gotop ends in any way, SIGKILL and the hard
exit of a lost terminal included, the pipe closes and the reaper ends the
group, so no program gotop started outlives it.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from gotop.discovery.buildinfo import BuildInfoError, read_build_info
from gotop.discovery.processes import GoProcess, Scanner
from gotop.engine.target import Target
from gotop.errors import GotopError
from gotop.sources.gctrace import ProgramOutput

LATE_ENDPOINTS_EVERY = (0.5, 5.0)  # seconds between looks for the endpoints a program opens: first, at most
STOP_GRACE = 3.0  # seconds between SIGTERM and SIGKILL
FIND_TIMEOUT = 300.0  # seconds a command may take to start its Go program (`go run` builds first)
FIND_EVERY = 0.05
STDERR_LINES = 10  # lines of stderr an early exit quotes
# The reaper: a line on its stdin means "stopped already"; end of file means gotop is gone.
# (`kill -SIG -PGID`, without `--`: dash's kill takes no `--`.)
_REAPER = 'read -r _ || { kill -TERM "-$1"; sleep 1; kill -KILL "-$1"; } 2>/dev/null'


class ProgramError(GotopError):
    """A command that cannot be started, or that starts no Go program."""


class ProgramExited(ProgramError):
    """The command ended before gotop could watch its Go program."""

    def __init__(self, program: Program, exit: Exit) -> None:
        super().__init__(f"`{program.command}` {exit.describe()}, before gotop could watch it")
        self.exit = exit
        self.stderr = program.last_stderr()


@dataclass(frozen=True, slots=True)
class Exit:
    """How the command's first process ended."""

    status: int  # its exit status; negative: the signal that killed it
    after: float  # seconds after its start

    def describe(self) -> str:
        if self.status < 0:
            try:
                name = signal.Signals(-self.status).name
            except ValueError:
                name = f"signal {-self.status}"
            return f"was killed by {name} after {self.after:.1f} s"
        return f"exited with status {self.status} after {self.after:.1f} s"


def with_gctrace(godebug: str | None) -> str:
    """GODEBUG with gctrace on: a level the program asks for itself is kept, else gctrace=1."""
    settings = [s for s in (godebug or "").split(",") if s.strip()]
    levels = [s.partition("=")[2] for s in settings if s.partition("=")[0].strip() == "gctrace"]
    if levels and levels[-1].strip().isdigit() and int(levels[-1]) > 0:
        return ",".join(settings)
    return ",".join([*(s for s in settings if s.partition("=")[0].strip() != "gctrace"), "gctrace=1"])


def without_gctrace(godebug: str | None) -> str:
    return ",".join(s for s in (godebug or "").split(",") if s.strip() and s.partition("=")[0].strip() != "gctrace")


def prepare(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment to start `argv` with, its GC trace on."""
    env = dict(environ)
    godebug = with_gctrace(env.get("GODEBUG"))
    run_at = _go_run_index(argv)
    if run_at is None:
        return list(argv), env | {"GODEBUG": godebug}
    if any(a in ("-exec", "--exec") or a.startswith(("-exec=", "--exec=")) for a in argv[run_at + 1:]):
        raise ProgramError("`go run -exec` cannot be used with gotop: gotop gives the program its GODEBUG "
                           "through -exec (an argument of the program named -exec counts too)")
    own = without_gctrace(env.get("GODEBUG"))
    env = {k: v for k, v in env.items() if k != "GODEBUG"} | ({"GODEBUG": own} if own else {})
    return [*argv[:run_at + 1], f"-exec=env {_go_quoted('GODEBUG=' + godebug)}", *argv[run_at + 1:]], env


def _go_run_index(argv: Sequence[str]) -> int | None:
    """Where `run` is in a `go [-C DIR] run ...` command line."""
    if not argv or os.path.basename(argv[0]) != "go":
        return None
    i = 1
    if i < len(argv) and argv[i] in ("-C", "--C"):
        i += 2
    elif i < len(argv) and argv[i].startswith(("-C=", "--C=")):
        i += 1
    return i if i < len(argv) and argv[i] == "run" else None


def _go_quoted(text: str) -> str:
    """`text` as one field of the go command's quoted list (cmd/internal/quoted)."""
    if not re.search(r"[\s'\"]", text):
        return text
    for quote in ("'", '"'):
        if quote not in text:
            return quote + text + quote
    raise ProgramError(f"GODEBUG {text!r} holds both kinds of quote: go run -exec cannot carry it")


def default_log_path(argv: Sequence[str]) -> Path:
    """A fresh private directory for the program's output."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(argv[0])) or "program"
    return Path(tempfile.mkdtemp(prefix="gotop-run-")) / f"{name}.log"


class Program:
    """One command gotop starts, stops and restarts; the log file stays across restarts."""

    def __init__(self, argv: Sequence[str], log_path: Path | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        if not argv:
            raise ProgramError("no command to run: give it after --, e.g. gotop run -- ./server -flag")
        self.argv = list(argv)
        self.command = shlex.join(self.argv)
        self._argv, self._env = prepare(self.argv, os.environ if environ is None else environ)
        self.log_path = log_path or default_log_path(self.argv)
        self.process: subprocess.Popen | None = None
        self.output: ProgramOutput | None = None
        self.runs = 0  # starts so far
        self.stopped = False  # gotop stopped it (it had not ended by itself)
        self._started = 0.0  # monotonic
        self._ended: float | None = None  # when its end was first seen
        self._reaper: subprocess.Popen | None = None
        self._reaper_pipe: int | None = None

    @property
    def environment(self) -> dict[str, str]:
        """What the command is started with (for `go run`, the go command's: see prepare)."""
        return dict(self._env)

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                self._argv, env=self._env, stdin=subprocess.DEVNULL, stdout=out_write, stderr=err_write,
                process_group=0)
        except OSError as e:
            for fd in (out_read, err_read):
                os.close(fd)
            raise ProgramError(f"cannot start `{self.command}`: {e.strerror or e}") from None
        finally:
            os.close(out_write)
            os.close(err_write)
        self._started, self._ended, self.stopped = time.monotonic(), None, False
        self.runs += 1
        threading.Thread(target=self._reap, args=(self.process,), name="program-wait", daemon=True).start()
        self._start_reaper(self.process.pid)
        self.output = ProgramOutput(out_read, err_read, self.log_path)
        self.output.start()

    def _reap(self, process: subprocess.Popen) -> None:
        """Wait for the command's first process: reaped as soon as it ends (a zombie would
        still look alive in /proc to the poller), and when it ended is known."""
        process.wait()
        if process is self.process:
            self._ended = time.monotonic()

    def _start_reaper(self, group: int) -> None:
        read_end, self._reaper_pipe = os.pipe()  # both close-on-exec: the program holds neither
        try:
            self._reaper = subprocess.Popen(
                ["sh", "-c", _REAPER, "gotop-reaper", str(group)], stdin=read_end,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        finally:
            os.close(read_end)

    @property
    def pid(self) -> int | None:
        """The command's first process (its process group)."""
        return self.process.pid if self.process else None

    def exit(self) -> Exit | None:
        """How the command's first process ended; None while it runs."""
        if self.process is None or self.process.poll() is None:
            return None
        if self._ended is None:
            self._ended = time.monotonic()
        return Exit(self.process.returncode, self._ended - self._started)

    def wait(self, timeout: float) -> Exit | None:
        """How the command's first process ended, waiting at most `timeout` seconds for it."""
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.exit()

    def stop(self, grace: float = STOP_GRACE) -> Exit | None:
        """End the command and its process group: SIGTERM, SIGKILL after `grace`."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.stopped = True
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        self._signal(signal.SIGKILL)  # what is left of the group, the command's children too
        self.process.wait()
        exit = self.exit()
        self._release_reaper()
        if self.output is not None:
            self.output.wait_closed(grace)
        return exit

    def kill_now(self) -> None:
        """SIGKILL the process group, without waiting: for a hard exit (any thread)."""
        self._signal(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _signal(self, sig: signal.Signals) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):  # the whole group is gone
            pass

    def _release_reaper(self) -> None:
        """Tell the reaper the group is stopped already, and let it go."""
        if self._reaper_pipe is not None:
            try:
                os.write(self._reaper_pipe, b"\n")
            except OSError:
                pass
            os.close(self._reaper_pipe)
            self._reaper_pipe = None
        if self._reaper is not None:
            try:
                self._reaper.wait(1.0)
            except subprocess.TimeoutExpired:
                pass
            self._reaper = None

    # -- the Go program ------------------------------------------------------------------

    def find_go_process(self, timeout: float = FIND_TIMEOUT) -> GoProcess:
        """The Go program the command started, once it runs (blocks: call it from a thread)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        builds: dict[tuple[int, int, int, int], bool] = {}  # binary -> is it the program
        while True:
            for pid in self._tree():
                if _is_program(pid, builds):
                    try:
                        return Scanner().inspect(pid)
                    except GotopError:  # gone, or not what it was: look again
                        continue
            if self.process.poll() is not None:
                if self.output is not None:
                    self.output.wait_closed(1.0)
                exit = self.exit()
                assert exit is not None
                raise ProgramExited(self, exit)
            if time.monotonic() > deadline:
                raise ProgramError(f"`{self.command}` started no Go program in {timeout:.0f} s (gotop watches "
                                   "the first Go program it starts, other than the Go toolchain's own)")
            time.sleep(FIND_EVERY)

    def _tree(self) -> list[int]:
        """The command's first process and its descendants, parents first."""
        assert self.process is not None
        try:
            leader = psutil.Process(self.process.pid)
            return [leader.pid, *(child.pid for child in leader.children(recursive=True))]
        except psutil.Error:
            return []

    def last_stderr(self, count: int = STDERR_LINES) -> list[str]:
        return self.output.last_stderr(count) if self.output else []


def _is_program(pid: int, builds: dict[tuple[int, int, int, int], bool]) -> bool:
    """Whether `pid` runs a Go program that is not one of the Go toolchain's commands.
    Read afresh each time: a process may exec another binary (`env` the program)."""
    exe = f"/proc/{pid}/exe"
    try:
        st = os.stat(exe)
        binary = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if binary not in builds:
            build = read_build_info(exe)
            builds[binary] = build is not None and not build.path.startswith("cmd/")
    except (OSError, BuildInfoError):
        return False
    return builds[binary]


async def take_late_endpoints(target: Target) -> None:
    """Look at a started program's process again until its target has endpoints: the
    program opens its listeners (pprof, the gops agent, /metrics) after it starts, and
    gotop's first look, as soon as it runs, can come before (it did on a loaded machine).
    Every LATE_ENDPOINTS_EVERY, doubling; ends when it has some, or its process is gone."""
    scanner, (pause, longest) = Scanner(), LATE_ENDPOINTS_EVERY  # one scanner: its probes are cached
    while target.pid is not None and not target.has_endpoints:
        await asyncio.sleep(pause)
        pause = min(2 * pause, longest)
        try:
            process = await asyncio.to_thread(scanner.inspect, target.pid)
        except GotopError:  # gone, or not what it was
            return
        target.gain_endpoints(process)

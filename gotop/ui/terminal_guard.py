"""Ends gotop when its terminal goes away, whatever the event loop is doing.

A dropped SSH session, a closed terminal window or a killed tmux hangs up the
terminal: the kernel sends SIGHUP and SIGCONT, or nothing at all when gotop is
not the terminal's controlling process, and the shell that started gotop exits.
Textual's shutdown can then block for ever: its SIGCONT handler puts the dead
terminal back into application mode, the new writer thread dies on EIO, and
the main thread waits on that writer's full queue. So the watch cannot live on
the event loop. A daemon thread looks a few times a second; when the terminal is
gone it points gotop's standard streams at /dev/null (so that Textual's own
shutdown finishes), asks the app to exit, and if gotop is still there after a short grace it
runs the last clean-ups (stopping the programs gotop started) and leaves with
os._exit. Loss to exit takes at most CHECK_EVERY + GRACE (1.25 s), plus
what a loaded machine adds.

That thread still needs the GIL, and Python: on a loaded machine a long call
that holds the GIL delayed it by 4.8 s, the interpreter's own finalization (where
daemon threads no longer run) took 3.7 s and once 11 s after the app had
returned, and SIGHUP's Python handler waits for the main thread. So a watchdog
process, forked before any thread exists, watches the same terminal from outside:
it sees the hang-up (POLLHUP on its copy of the terminal) and SIGHUP (the
signal's number, written by the C-level handler to the wake-up fd), and if gotop
has not ended HARD_GRACE seconds later it kills it (SIGKILL: the programs gotop
started die with it, see Program's reaper and demo's parent-death signal). It
ends with gotop: gotop alone holds the write end of a pipe the watchdog reads,
and the watchdog sees its end of file. It costs about 9 MB (PSS; 7 MB of it
pages the fork copied as gotop went on changing them).

The hard exit can cut off what the app's shutdown had still to do, such as
closing a recording (`gotop --record FILE`, or R in the TUI): the recording stays valid, every poll
committed to it kept, but with its -wal file beside it (a replay reads both;
only a closed recording is one file).
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from collections.abc import Callable

# Seconds between looks. A hang-up of the terminal (POLLHUP) and SIGHUP wake the guard
# at once; the parent's exit is only seen at the next look.
CHECK_EVERY = 0.25
GRACE = 1.0  # seconds the app has to exit by itself before the hard exit
# Seconds the watchdog process gives gotop after the loss before it kills it: a lost terminal
# ends gotop within 2 s where the machine schedules it (issue 9), the orderly exit
# (CHECK_EVERY + GRACE) first if it can.
HARD_GRACE = 1.5
EXIT_HANGUP = 129  # 128 + SIGHUP, as a shell reports a hung-up job
_GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL


class TerminalGuard:
    """Start it before anything else of the TUI, so that a hang-up during
    start-up is not lost; `ask_exit` is set once the app exists."""

    def __init__(self, fds: tuple[int, ...] = (0, 1)) -> None:
        self.ask_exit: Callable[[], None] | None = None  # the app's own, orderly exit
        self._fds = fds
        self._parent = os.getppid()
        self._hung_up = threading.Event()
        self._wake_read, self._wake_write = os.pipe()  # the SIGHUP handler wakes the guard's poll
        os.set_blocking(self._wake_write, False)
        self._cleanups: list[Callable[[], None]] = []

    def start(self) -> None:
        signal.signal(signal.SIGHUP, self._on_sighup)
        signals_read, signals_write = os.pipe()
        os.set_blocking(signals_write, False)
        signal.set_wakeup_fd(signals_write, warn_on_full_buffer=False)
        _fork_watchdog(self._fds, signals_read)  # before the thread starts: fork copies only the calling thread
        os.close(signals_read)
        threading.Thread(target=self._watch, name="terminal-guard", daemon=True).start()

    def _on_sighup(self, *_: object) -> None:
        # Only a flag and a wake-up: the main thread may be the one that is stuck.
        self._hung_up.set()
        try:
            os.write(self._wake_write, b"!")
        except BlockingIOError:  # woken many times over already
            pass

    def add_cleanup(self, cleanup: Callable[[], None]) -> None:
        """Run `cleanup` before a hard exit (it must be safe to run twice)."""
        self._cleanups.append(cleanup)

    def _watch(self) -> None:
        poller = select.poll()
        for fd in self._fds:
            poller.register(fd, 0)  # hang-up, error and closed are always reported
        poller.register(self._wake_read, select.POLLIN)
        while True:
            terminal_gone = any(events & _GONE for fd, events in poller.poll(CHECK_EVERY * 1000)
                                if fd != self._wake_read)
            if terminal_gone or self._hung_up.is_set() or os.getppid() != self._parent:
                break
        if terminal_gone:
            _detach_from_terminal()
        if self.ask_exit is not None:  # the app is there: give it a chance to close its files
            try:
                self.ask_exit()
            except Exception:  # the app may be half torn down already
                pass
            time.sleep(GRACE)
        for cleanup in self._cleanups:  # still here: the app's shutdown is stuck
            try:
                cleanup()
            except Exception:
                pass
        os._exit(EXIT_HANGUP)


def _fork_watchdog(fds: tuple[int, ...], signals: int) -> None:
    """Fork the watchdog process. gotop keeps the write end of the pipe the watchdog ends
    with open until it ends (close-on-exec: no program gotop starts holds it)."""
    alive_read, alive_write = os.pipe()
    if os.fork() == 0:
        try:
            os.close(alive_write)
            _watch_from_outside(os.getppid(), fds, signals, alive_read)
        finally:
            os._exit(0)
    os.close(alive_read)


def _watch_from_outside(gotop: int, fds: tuple[int, ...], signals: int, alive: int) -> None:
    """The watchdog process: SIGKILL gotop HARD_GRACE seconds after its terminal hung up or
    SIGHUP came, unless it has ended by then. Only system calls: nothing here waits on gotop."""
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGWINCH):
        signal.signal(signum, signal.SIG_IGN)  # the terminal's signals are gotop's to handle
    poller = select.poll()
    for fd in fds:
        poller.register(fd, 0)
    poller.register(signals, select.POLLIN)
    poller.register(alive, select.POLLIN)
    lost = False
    while not lost:
        for fd, events in poller.poll():
            if fd == alive:
                return  # gotop ended
            if fd == signals:
                lost = signal.SIGHUP in os.read(signals, 512)  # one byte per signal gotop caught
            else:
                lost = bool(events & _GONE)
            if lost:
                break
    if not select.select([alive], [], [], HARD_GRACE)[0]:
        os.kill(gotop, signal.SIGKILL)


def _detach_from_terminal() -> None:
    """Point stdin, stdout and stderr at /dev/null: Textual's shutdown then writes
    its last frames and restores nothing, instead of failing on the dead terminal
    and blocking on its writer thread."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)

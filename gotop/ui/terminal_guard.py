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


def _detach_from_terminal() -> None:
    """Point stdin, stdout and stderr at /dev/null: Textual's shutdown then writes
    its last frames and restores nothing, instead of failing on the dead terminal
    and blocking on its writer thread."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)

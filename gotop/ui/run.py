"""Entry points of `gotop [TARGET...]`, `gotop run -- CMD`, `gotop replay FILE` and
`gotop demo`: the only modules that start Textual.

Each one starts the terminal guard first (a replay reads its file's header
before); everything heavier is imported after it, so that a terminal lost
during start-up is noticed at once."""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from pathlib import Path

from gotop.errors import GotopError
from gotop.ui.terminal_guard import EXIT_HANGUP, TerminalGuard


def run(args: Namespace) -> int:
    guard = _guard_terminal()
    from gotop.engine.poller import Tiers
    from gotop.engine.targetspec import parse_target

    specs = [parse_target(spec) for spec in args.targets]  # a bad target is a one-line error before the screen opens
    # Targets named by address turn discovery off: no scan (and no probe of every Go process) for them.
    scanner, first_scan = (None, None) if any(s.pid is None for s in specs) else _discover_early()
    from gotop.ui.app import GotopApp

    tiers = Tiers.for_screens(args.interval, args.slow_every)
    app = GotopApp(args.targets, tiers, args.window, Path(args.save_dir),
                   record=args.record, scanner=scanner, first_scan=first_scan)
    return _run(app, guard, args.mouse)


def run_program(args: Namespace) -> int:
    """`gotop run -- CMD`: start the program, watch it, stop it (and its process group) on the way out."""
    if not args.program:
        raise GotopError("gotop run: give the program to start after --, e.g. gotop run -- ./server -flag")
    guard = _guard_terminal()
    from gotop.engine.poller import Tiers
    from gotop.engine.program import Program

    program = Program(args.program, Path(args.log) if args.log else None)
    program.start()
    guard.add_cleanup(program.kill_now)  # a hard exit too (and the reaper, should gotop be killed)
    try:
        from gotop.ui.app import GotopApp

        app = GotopApp(tiers=Tiers(args.interval, args.slow_every), window=args.window, save_dir=Path(args.save_dir),
                       program=program)
        return _run(app, guard, args.mouse)
    finally:
        ended = program.stop()
        how = "stopped" if program.stopped or ended is None else ended.describe()
        print(f"gotop run: {program.command}: {how}; its output: {program.log_path} "
              f"(GC trace: {program.log_path}.gctrace)", file=sys.stderr)


def _discover_early():
    """Scan for Go processes on a thread while Textual loads (half a second)."""
    import threading
    from concurrent.futures import Future

    from gotop.discovery.processes import Scanner

    scanner, first_scan = Scanner(), Future()

    def scan() -> None:
        try:
            first_scan.set_result(scanner.scan())
        except BaseException as e:  # handed to the fleet, which reports it
            first_scan.set_exception(e)

    threading.Thread(target=scan, name="first-scan", daemon=True).start()
    return scanner, first_scan


def replay(args: Namespace) -> int:
    return _replay(args.file)


def _replay(path: str, guard: TerminalGuard | None = None, *, immutable: bool = False) -> int:
    from gotop.engine.recording import Recording
    from gotop.engine.replay import Replay

    recording = Recording(path, immutable=immutable)  # a bad file is a one-line error, terminal or not
    guard = guard or _guard_terminal()
    from gotop.ui.app import GotopApp

    app = GotopApp(replay=Replay(recording))
    return _run(app, guard, None)


def demo(args: Namespace) -> int:
    from gotop import demo as examples

    guard = _guard_terminal()
    if args.replay:
        return _replay(str(examples.bundled_recording()), guard, immutable=True)  # it may lie in site-packages
    binaries = examples.build(progress=lambda line: print(line, file=sys.stderr, flush=True))
    running = examples.start(binaries)
    guard.add_cleanup(running.stop)
    try:
        from gotop.ui.app import GotopApp

        app = GotopApp(save_dir=Path(args.save_dir), title=f"demo: {len(running.pids)} example programs")
        return _run(app, guard, args.mouse)
    finally:
        running.stop()


def _guard_terminal() -> TerminalGuard:
    """Refuse without a terminal; then watch it, so that gotop ends with it."""
    if not (os.isatty(0) and os.isatty(1)):
        raise GotopError("the TUI needs a terminal on stdin and stdout "
                         "(for a reading in a script: gotop snapshot, gotop list --json, gotop record)")
    guard = TerminalGuard()
    guard.start()
    return guard


def _run(app, guard: TerminalGuard, mouse: bool | None) -> int:
    if mouse is None:
        mouse = not os.environ.get("SSH_CONNECTION")
    guard.ask_exit = lambda: app.exit(return_code=EXIT_HANGUP)
    app.run(mouse=mouse)
    return app.return_code or 0

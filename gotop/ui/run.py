"""Entry points of `gotop [TARGET...]` and `gotop replay FILE`: the only modules that start Textual."""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from pathlib import Path

from gotop.engine.poller import Tiers
from gotop.engine.targetspec import TargetError, parse_target


def run(args: Namespace) -> int:
    for spec in args.targets:
        parse_target(spec)  # a bad target is a one-line error before the screen opens
    if args.interval <= 0 or args.slow_every <= 0 or args.window <= 0:
        raise TargetError("--interval, --slow-every and --window must be positive")
    from gotop.ui.app import GotopApp

    app = GotopApp(args.targets, Tiers(args.interval, args.slow_every), args.window, Path(args.save_dir),
                   record=args.record)
    return _run(app, args.mouse)


def replay(args: Namespace) -> int:
    from gotop.engine.recording import Recording
    from gotop.engine.replay import Replay

    recording = Recording(args.file)  # a bad file is a one-line error before the screen opens
    from gotop.ui.app import GotopApp

    app = GotopApp(replay=Replay(recording))
    return _run(app, None)


def demo(args: Namespace) -> int:
    from gotop import demo as examples

    if args.replay:
        return replay(Namespace(file=str(examples.bundled_recording())))
    binaries = examples.build(progress=lambda line: print(line, file=sys.stderr, flush=True))
    running = examples.start(binaries)
    try:
        from gotop.ui.app import GotopApp

        app = GotopApp(save_dir=Path(args.save_dir), title=f"demo: {len(running.pids)} example programs")
        return _run(app, args.mouse)
    finally:
        running.stop()


def _run(app, mouse: bool | None) -> int:
    if mouse is None:
        mouse = not os.environ.get("SSH_CONNECTION")
    app.run(mouse=mouse)
    return app.return_code or 0

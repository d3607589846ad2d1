"""Entry point of `gotop [TARGET...]`: the only module that starts Textual."""

from __future__ import annotations

import os
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

    mouse = args.mouse if args.mouse is not None else not os.environ.get("SSH_CONNECTION")
    app = GotopApp(args.targets, Tiers(args.interval, args.slow_every), args.window, Path(args.save_dir))
    app.run(mouse=mouse)
    return app.return_code or 0

"""Command line: parses arguments and dispatches to gotop/commands/.

Command modules are imported only when their command runs, so one-shot
commands start fast and never import Textual.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gotop import __version__
from gotop.errors import GotopError

DESCRIPTION = """\
gotop: a live monitor for Go processes.

Finds the Go processes on this host (Go build info read from their binaries),
sees which run the gops agent or serve net/http/pprof and expvar, and reads
their memory, goroutine and GC figures."""

EPILOG = """\
marks in `gotop list`:  A gops agent   P net/http/pprof   E expvar   @ns in another network namespace
exit status: 0 success, 1 the command found a problem, 2 error (bad arguments, unreachable target, ...)"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gotop", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gotop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("list", help="list the Go processes on this host (like gops)")
    p.add_argument("--json", action="store_true", help="print a JSON array, one object per Go process")
    p.set_defaults(run="gotop.commands.listing")

    p = sub.add_parser("info", help="build info and process facts of one Go process")
    p.add_argument("pid", type=int, help="process id")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run="gotop.commands.info")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["list", *(argv or sys.argv[1:])])
    try:
        return importlib.import_module(args.run).run(args)
    except GotopError as e:
        print(f"gotop: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `gotop list | head`
        sys.stderr.close()
        return 0

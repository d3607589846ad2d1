"""Command line: parses arguments and dispatches to gotop/commands/.

Command modules are imported only when their command runs, so one-shot
commands start fast and never import Textual.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping

from gotop import __version__
from gotop.engine.targetspec import SOURCE_HELP, SOURCES, TARGET_HELP
from gotop.errors import GotopError
from gotop.textsafe import plain
from gotop.units import DURATION_SYNTAX, parse_duration

DESCRIPTION = """\
gotop: a live monitor for Go processes.

  gotop [TARGET...]     the live TUI: every Go process on this host, or the named targets
  gotop run -- CMD      start a Go program (a binary, go run .) and watch it, its GC trace too
  gotop COMMAND ...     one of the commands below

Finds the Go processes on this host (Go build info read from their binaries),
sees which can be read from their memory, run the gops agent or serve
net/http/pprof, expvar or Prometheus /metrics (on TCP or UNIX sockets), and
shows their memory, goroutines and GC live, a heap top-N to drill into,
goroutine groups that grow, and the leaks it sees. A TARGET is a PID,
host:port of a gops agent, http://host:port of net/http/pprof, or
unix:/path/to.sock of net/http/pprof on a UNIX socket."""

EPILOG = f"""\
marks in `gotop list`:  M memory   A gops agent   P net/http/pprof   E expvar   R Prometheus /metrics
                        @ns in another network namespace
durations (--interval, --for, ...): {DURATION_SYNTAX}
exit status: 0 success, 1 the command found a problem, 2 error (bad arguments, unreachable target, ...)"""


def duration(text: str) -> float:
    """The type of every time flag: a positive duration, Go's syntax or seconds."""
    try:
        seconds = parse_duration(text)
    except GotopError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration must be positive")
    return seconds


def add_polling_flags(p: argparse.ArgumentParser) -> None:
    """The polling tiers, the same for the TUI and `gotop record`."""
    p.add_argument("--interval", type=duration, default="1s", metavar="DURATION",
                   help="time between polls: 500ms, 2s, ... (default 1s)")
    p.add_argument("--slow-every", type=duration, default="5s", metavar="DURATION",
                   help="time between grouped goroutine profiles (default 5s)")


PROGRAM_COMMANDS = ("run", "check")  # commands that start the program given after --


class Parser(argparse.ArgumentParser):
    """gotop's parser: it knows the parser of each command by name. For `run` and
    `check`, what follows `--` is the program to start (`args.program`, None without `--`)."""

    commands: Mapping[str, argparse.ArgumentParser]

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        program = None
        if args and args[0] in PROGRAM_COMMANDS and "--" in args:
            args, program = args[:args.index("--")], args[args.index("--") + 1:]
        parsed, rest = super().parse_known_args(args, namespace)
        parsed.program = program
        return parsed, rest


def build_parser() -> Parser:
    parser = Parser(
        prog="gotop", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gotop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.commands = sub.choices  # name -> subparser, filled below

    p = sub.add_parser("tui", help="the live monitor (the default: `gotop [TARGET...]`)")
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help=f"open straight on these ({TARGET_HELP}); default: every Go process here")
    add_polling_flags(p)
    p.add_argument("--window", type=duration, default="10m", metavar="DURATION",
                   help="history kept: 10m, 1h, ... (default 10m)")
    p.add_argument("--save-dir", default=".", help="where profiles, traces and recordings are saved (default: here)")
    p.add_argument("--record", metavar="FILE", help="record the session into FILE (the R key starts one too)")
    p.add_argument("--mouse", action=argparse.BooleanOptionalAction, default=None,
                   help="mouse support (default: on, off over SSH)")
    p.set_defaults(run="gotop.ui.run")

    p = sub.add_parser(
        "run", help="start a Go program and watch it live: its GC trace, output, restart (r)",
        usage="gotop run [OPTIONS] -- CMD [ARGS...]",
        description="Start CMD (a Go binary, `go run .`, or a command that starts a Go program) with "
        "GODEBUG=gctrace=1 merged into its GODEBUG, and open the process screen on its Go program: live "
        "GC figures from its GC trace even with nothing else to read, plus whatever discovery finds. Its "
        "own stdout and stderr go to a log file (named on exit; `o` shows them), `r` restarts it, and "
        "it stops with gotop (its whole process group), a lost terminal or a killed gotop included.")
    add_polling_flags(p)
    p.add_argument("--window", type=duration, default="10m", metavar="DURATION",
                   help="history kept: 10m, 1h, ... (default 10m)")
    p.add_argument("--log", metavar="FILE", help="append the program's output to FILE (default: a new "
                   "private directory under $TMPDIR); its GC trace goes to FILE.gctrace")
    p.add_argument("--save-dir", default=".", help="where profiles, traces and recordings are saved (default: here)")
    p.add_argument("--mouse", action=argparse.BooleanOptionalAction, default=None,
                   help="mouse support (default: on, off over SSH)")
    p.set_defaults(run="gotop.ui.run", entry="run_program")

    p = sub.add_parser("demo", help="build and run example Go programs that leak, and watch them")
    p.add_argument("--replay", action="store_true", help="play the bundled recording of the demo instead")
    p.add_argument("--save-dir", default=".", help="where profiles, traces and recordings are saved")
    p.add_argument("--mouse", action=argparse.BooleanOptionalAction, default=None,
                   help="mouse support (default: on, off over SSH)")
    p.set_defaults(run="gotop.ui.run", entry="demo")

    p = sub.add_parser("record", help="record targets headless into a file that `gotop replay` plays")
    p.add_argument("targets", nargs="*", metavar="TARGET", help=f"{TARGET_HELP}; default: every Go process here")
    p.add_argument("-o", "--output", required=True, help="the recording to create (SQLite)")
    p.add_argument("--for", dest="duration", type=duration, default="60s", metavar="DURATION",
                   help="how long: 30s, 5m, 1h (default 60s)")
    add_polling_flags(p)
    p.add_argument("--heap-every", type=duration, default="60s", metavar="DURATION",
                   help="time between heap profiles (default 60s)")
    p.add_argument("--json", action="store_true", help="print what was recorded as JSON")
    p.set_defaults(run="gotop.commands.record")

    p = sub.add_parser("export", help="serve every Go process's figures and leak findings to Prometheus",
                       description="Watch every Go process on this host as the TUI does (discovery, polls, leak "
                       "detectors), headless, and serve the latest figures on /metrics for Prometheus (OpenMetrics "
                       "when asked). A scrape never polls. Runs until SIGINT or SIGTERM.")
    p.add_argument("--listen", default="127.0.0.1:9149", metavar="HOST:PORT",
                   help="where to serve /metrics (default 127.0.0.1:9149: loopback only; 0.0.0.0:9149 for every "
                        "interface; port 0 for any free port, printed on stderr)")
    add_polling_flags(p)
    p.set_defaults(run="gotop.commands.export")

    p = sub.add_parser("replay", help="play a recording in the TUI, with time controls")
    p.add_argument("file", help="a recording made by `gotop record` or the TUI's R key")
    p.set_defaults(run="gotop.ui.run", entry="replay")

    p = sub.add_parser("list", help="list the Go processes on this host (like gops)")
    p.add_argument("--json", action="store_true",
                   help="print JSON: {\"processes\": [one object per Go process], \"skipped\": [{pid, name, reason}]}")
    p.set_defaults(run="gotop.commands.listing")

    p = sub.add_parser("info", help="build info and process facts of one Go process")
    p.add_argument("pid", type=int, help="process id")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run="gotop.commands.info")

    p = sub.add_parser("snapshot", help="one reading: memstats, goroutines, GC, OS figures")
    p.add_argument("target", help=TARGET_HELP)
    p.add_argument("--source", choices=SOURCES, help=SOURCE_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run="gotop.commands.snapshot")

    p = sub.add_parser("stack", help="the goroutine dump (stops the world while the target writes it)")
    p.add_argument("target", help=TARGET_HELP)
    p.add_argument("--groups", action="store_true",
                   help="goroutines grouped, biggest first: by start function and creation site when read "
                        "from memory, by stack through pprof or the agent")
    p.add_argument("--source", choices=SOURCES, help=SOURCE_HELP)
    p.add_argument("--json", action="store_true", help="print the goroutines (or the groups) as JSON")
    p.set_defaults(run="gotop.commands.stack")

    p = sub.add_parser("gc", help="run a garbage collection in the target")
    p.add_argument("target", help=TARGET_HELP)
    p.add_argument("--json", action="store_true", help="print the memstats before and after as JSON")
    p.set_defaults(run="gotop.commands.gc", entry="run_gc")

    p = sub.add_parser("setgc", help="set the target's GC percent (GOGC); needs the gops agent")
    p.add_argument("target", help=TARGET_HELP)
    p.add_argument("percent", help="an integer, or 'off'")
    p.add_argument("--json", action="store_true", help="print the new and previous GC percent as JSON (-1: off)")
    p.set_defaults(run="gotop.commands.gc", entry="run_setgc")

    p = sub.add_parser("profile", help="save a heap, CPU, trace or goroutine profile (mode 0600)")
    p.add_argument("kind", choices=("heap", "cpu", "trace", "goroutine"))
    p.add_argument("target", help=TARGET_HELP)
    p.add_argument("-o", "--output", help="file to write (default: KIND-TARGET-TIME.pb.gz or .trace)")
    p.add_argument("--seconds", type=duration, metavar="DURATION",
                   help="capture length: cpu 30s by default (whole seconds), trace 5s; 500ms, 2m, ...")
    p.add_argument("--json", action="store_true", help="print where the profile was saved as JSON")
    p.set_defaults(run="gotop.commands.profile")

    p = sub.add_parser("top", help="the `go tool pprof -top` table of a profile file or a target's heap")
    p.add_argument("source", metavar="PROFILE_FILE|TARGET", help=f"a pprof file, or {TARGET_HELP}")
    p.add_argument("-n", type=int, metavar="N", help="show the top N rows only")
    p.add_argument("--sample-index", metavar="NAME",
                   help="sample type, e.g. inuse_space, inuse_objects, alloc_space, alloc_objects")
    p.add_argument("--cum", action="store_true", help="sort by cumulative value")
    p.add_argument("--json", action="store_true", help="print the report as JSON (with --peek and --list too)")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--peek", metavar="REGEX", help="callers and callees of matching functions (pprof -peek)")
    shown.add_argument("--list", metavar="REGEX",
                       help="source lines of matching functions with their values (pprof -list)")
    p.add_argument("--source-dir", action="append", metavar="DIR",
                   help="--list may also read source files under DIR (besides the modules the profile proves)")
    p.set_defaults(run="gotop.commands.top")

    p = sub.add_parser("escapes", help="why values are on the heap: the compiler's escape analysis, "
                       "alone (DIR) or joined to a running program's heap profile (TARGET)",
                       description="DIR: build the Go packages under DIR with the compiler's escape diagnostics "
                       "(go build -gcflags=-m=2 into a temporary directory, cached by the sources' hash) and list "
                       "each heap allocation: where, what, and why (returned, captured by a closure, converted to "
                       "an interface, size not constant, too large for the stack, stored in a global or a heap "
                       "object, ...). TARGET: rank the running program's allocation sites by live heap and "
                       "allocation rate (its heap profile), each with why it is on the heap; its source is "
                       "found from the profile's file names, its binary or its working directory, or --source.")
    p.add_argument("target", metavar="DIR|TARGET",
                   help=f"a Go module's directory (or a package's, in a module), or {TARGET_HELP}")
    p.add_argument("--source", metavar="DIR", help="TARGET's main module directory, where it is not found")
    p.add_argument("--for", dest="duration", type=duration, metavar="DURATION",
                   help="TARGET: the allocation rate between two heap profiles DURATION apart "
                        "(default: since the process started)")
    p.add_argument("--rate", action="store_true", help="TARGET: sort by allocation rate (default: by live heap)")
    p.add_argument("-n", type=int, metavar="N", help="TARGET: show the top N sites (default 20)")
    p.add_argument("--flow", action="store_true", help="DIR: the compiler's flow under each allocation")
    p.add_argument("--json", action="store_true", help="print the allocations (or the sites) as JSON")
    p.set_defaults(run="gotop.commands.escapes")

    p = sub.add_parser("check", help="watch targets (or start a program: -- CMD) headless for leaks; exit 1 if "
                       "one leaks (a CI gate)",
                       usage="gotop check [--for DURATION] [--allow-partial] [--json] [--log FILE] "
                       "(TARGET... | -- CMD [ARGS...])",
                       description="Watch targets headless for leaks. Exit status: 1 a leak, 2 blind (no "
                       "goroutine profiles and no GC cycles: nothing of the Go runtime watched) or a target "
                       "not checked, 3 partial (a detector could not watch), 0 every detector watched. With "
                       "-- CMD, start the program (its GC trace on, as gotop run does), watch it, stop it at "
                       "the end; its exit before the end is exit status 2, with its status and last lines "
                       "of stderr.")
    p.add_argument("targets", nargs="*", metavar="TARGET", help=TARGET_HELP)
    p.add_argument("--for", dest="duration", type=duration, default="30s", metavar="DURATION",
                   help="how long to watch: 30s, 2m, 90 (default 30s)")
    p.add_argument("--allow-partial", action="store_true",
                   help="exit 0, not 3, when some detector could not watch (e.g. no net/http/pprof)")
    p.add_argument("--json", action="store_true", help="print the verdict and the findings as JSON")
    p.add_argument("--log", metavar="FILE", help="with -- CMD: append the program's output to FILE "
                   "(default: a new private directory under $TMPDIR)")
    p.set_defaults(run="gotop.commands.check")

    p = sub.add_parser("completion", help="print the shell completion script for bash, zsh or fish")
    p.add_argument("shell", choices=("bash", "zsh", "fish"))
    p.set_defaults(run="gotop.commands.completion", parser=parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    if sys.platform != "linux":
        print(f"gotop: gotop runs on Linux only (it reads /proc); this is {sys.platform}", file=sys.stderr)
        return 2
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv or (argv[0] not in parser.commands and argv[0] not in ("-h", "--help", "--version")):
        argv = ["tui", *argv]  # `gotop`, `gotop PID`, `gotop --interval 2 host:port`
    args = parser.parse_args(argv)
    try:
        module = importlib.import_module(args.run)
        return getattr(module, getattr(args, "entry", "run"))(args)
    except GotopError as e:
        print(f"gotop: {plain(str(e))}", file=sys.stderr)  # errors quote what targets sent
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `gotop list | head`
        sys.stderr.close()
        return 0

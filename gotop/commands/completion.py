"""`gotop completion bash|zsh|fish`: a shell completion script, generated from the parser.

The script is static: the shell completes from it without running gotop, and
shtab, which writes it, is imported by this command only.
"""

from __future__ import annotations

from argparse import ArgumentParser, Namespace
from collections.abc import Mapping

# (command, argument) pairs that name a file or a directory; anything else completes no path.
FILES = {("tui", "record"), ("record", "output"), ("replay", "file"), ("profile", "output"), ("top", "source"),
         ("run", "log"), ("check", "log")}
DIRECTORIES = {("tui", "save_dir"), ("demo", "save_dir"), ("run", "save_dir")}


def run(args: Namespace) -> int:
    print(script(args.parser, args.parser.commands, args.shell).rstrip("\n"))
    return 0


def script(parser: ArgumentParser, commands: Mapping[str, ArgumentParser], shell: str) -> str:
    """The completion script of `parser`, whose subcommands' parsers are `commands` by name."""
    import shtab

    for name, command in commands.items():
        for action in command._actions:  # argparse has no public list of a parser's arguments
            # shtab reads a `complete` attribute that it asks callers to add to argparse's actions
            if (name, action.dest) in FILES:
                action.complete = shtab.FILE  # type: ignore[attr-defined]
            elif (name, action.dest) in DIRECTORIES:
                action.complete = shtab.DIRECTORY  # type: ignore[attr-defined]
    return shtab.complete(parser, shell=shell)

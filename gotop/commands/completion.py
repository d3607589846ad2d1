"""`gotop completion bash|zsh|fish`: a shell completion script, generated from the parser.

The script is static: the shell completes from it without running gotop, and
shtab, which writes it, is imported by this command only.
"""

from __future__ import annotations

from argparse import ArgumentParser, Namespace

# (command, argument) pairs that name a file or a directory; anything else completes no path.
FILES = {("tui", "record"), ("record", "output"), ("replay", "file"), ("profile", "output"), ("top", "source")}
DIRECTORIES = {("tui", "save_dir"), ("demo", "save_dir")}


def run(args: Namespace) -> int:
    print(script(args.parser, args.shell).rstrip("\n"))
    return 0


def script(parser: ArgumentParser, shell: str) -> str:
    import shtab

    for name, command in parser.commands.items():
        for action in command._actions:  # argparse has no public list of a parser's arguments
            if (name, action.dest) in FILES:
                action.complete = shtab.FILE
            elif (name, action.dest) in DIRECTORIES:
                action.complete = shtab.DIRECTORY
    return shtab.complete(parser, shell=shell)

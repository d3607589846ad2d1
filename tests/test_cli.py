"""The command line as a user meets it: help, version, and start-up hygiene."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gotop import __version__
from gotop.cli import main

# Prints the command's output, then whether Textual was imported.
IMPORT_PROBE = """
import sys
from gotop.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("TEXTUAL-IMPORTED" if any(m.split(".")[0] == "textual" for m in sys.modules) else "NO-TEXTUAL")
"""


def run_gotop(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gotop", *args], capture_output=True, text=True, timeout=60)


def test_version():
    result = run_gotop("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"gotop {__version__}"


def test_help_lists_commands_and_marks():
    result = run_gotop("--help")
    assert result.returncode == 0
    for word in ("list", "info", "gops agent", "net/http/pprof", "expvar", "exit status"):
        assert word in result.stdout


def test_bad_arguments_exit_2_without_traceback():
    result = run_gotop("info", "not-a-pid")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["list"], ["list", "--json"], ["info", "1"], ["--help"], ["--version"]])
def test_one_shot_commands_never_import_textual(args):
    result = subprocess.run([sys.executable, "-c", IMPORT_PROBE, *args], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().endswith("NO-TEXTUAL"), result.stdout + result.stderr


@pytest.mark.parametrize("platform", ["darwin", "win32", "freebsd14"])
@pytest.mark.parametrize("args", [[], ["list"], ["--version"]])
def test_other_systems_are_refused_in_one_line(monkeypatch, capsys, platform, args):
    monkeypatch.setattr(sys, "platform", platform)
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"gotop: gotop runs on Linux only (it reads /proc); this is {platform}\n"

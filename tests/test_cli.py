"""The command line as a user meets it: help, version, and start-up hygiene."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gotop import __version__
from gotop.cli import build_parser, main
from gotop.errors import GotopError
from gotop.units import parse_duration

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


@pytest.mark.parametrize("text, seconds", [
    ("500ms", 0.5), ("10m", 600), ("1m30s", 90), ("1h", 3600), ("1.5h", 5400), ("2h45m10.5s", 9910.5),
    ("90", 90), ("1.5", 1.5), (".5s", 0.5), ("250us", 250e-6), ("250µs", 250e-6), ("0", 0), (" 30s ", 30),
])
def test_durations_are_gos_or_seconds(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "1x", "-1s", "s", "1m 30s", "1H", "1.2.3s", "1e3", "ms"])
def test_anything_else_is_not_a_duration(text):
    with pytest.raises(GotopError, match="is not a duration: use e.g. 500ms, 30s, 10m, 1m30s, 1h"):
        parse_duration(text)


# Every time flag, as the command line gives it to its command.
TIME_FLAGS = [
    (["tui"], "--interval", "interval"), (["tui"], "--slow-every", "slow_every"), (["tui"], "--window", "window"),
    (["record", "-o", "x"], "--for", "duration"), (["record", "-o", "x"], "--interval", "interval"),
    (["record", "-o", "x"], "--slow-every", "slow_every"), (["record", "-o", "x"], "--heap-every", "heap_every"),
    (["check", "1"], "--for", "duration"), (["profile", "cpu", "1"], "--seconds", "seconds"),
    (["export"], "--interval", "interval"), (["export"], "--slow-every", "slow_every"),
]


@pytest.mark.parametrize("command, flag, dest", TIME_FLAGS)
def test_every_time_flag_takes_a_duration(command, flag, dest):
    parser = build_parser()
    for text, seconds in (("10m", 600), ("1m30s", 90), ("500ms", 0.5), ("2", 2), ("1.5", 1.5)):
        assert getattr(parser.parse_args([*command, flag, text]), dest) == seconds
    assert flag in parser.commands[command[0]].format_help()


@pytest.mark.parametrize("command, flag, dest", TIME_FLAGS)
@pytest.mark.parametrize("text, error", [
    ("soon", "'soon' is not a duration: use e.g. 500ms, 30s, 10m, 1m30s, 1h; a bare number is seconds"),
    ("0s", "'0s': a duration must be positive"),
])
def test_a_bad_duration_is_a_usage_error(capsys, command, flag, dest, text, error):
    with pytest.raises(SystemExit) as exit:
        main([*command, flag, text])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == f"gotop {command[0]}: error: argument {flag}: {error}"


def test_the_defaults_are_durations_too():
    args = build_parser().parse_args(["tui"])
    assert (args.interval, args.slow_every, args.window) == (1, 5, 600)
    args = build_parser().parse_args(["record", "-o", "x"])
    assert (args.duration, args.interval, args.slow_every, args.heap_every) == (60, 1, 5, 60)
    assert build_parser().parse_args(["check", "1"]).duration == 30

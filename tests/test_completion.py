"""`gotop completion bash|zsh|fish`: the scripts, run by the real shells."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

SHELL_TIMEOUT = 60  # a safety net against a hung shell, never a timing assertion


def completion_script(shell: str) -> str:
    result = subprocess.run([sys.executable, "-m", "gotop", "completion", shell],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def needs(shell: str) -> str:
    path = shutil.which(shell)
    if path is None:
        pytest.skip(f"{shell} is not installed (tests/run installs it when run as root)")
    return path


# What is typed before <TAB>, and what the shell offers.
CASES = [
    ("gotop sn", ["snapshot"]),
    ("gotop s", ["setgc", "snapshot", "stack"]),
    ("gotop snapshot --j", ["--json"]),
    ("gotop profile ", ["cpu", "goroutine", "heap", "trace"]),
    ("gotop completion f", ["fish"]),
    ("gotop record --heap", ["--heap-every"]),
]

BASH_COMPLETE = """
source "$1"
line="$2"
read -ra COMP_WORDS <<< "$line"
[[ "$line" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$line"
COMP_POINT=${#line}
function=$(complete -p gotop | sed -E 's/.* -F ([^ ]+) .*/\\1/')
"$function" gotop "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\\n' "${COMPREPLY[@]}"
"""


@pytest.mark.parametrize("line, offered", CASES)
def test_bash(tmp_path, line, offered):
    script = tmp_path / "gotop.bash"
    script.write_text(completion_script("bash"))
    result = subprocess.run([needs("bash"), "-c", BASH_COMPLETE, "bash", str(script), line],
                            capture_output=True, text=True, timeout=SHELL_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == offered


@pytest.mark.parametrize("line, offered", CASES)
def test_fish(tmp_path, line, offered):
    fish = needs("fish")
    script = tmp_path / "gotop.fish"
    script.write_text(completion_script("fish"))
    assert subprocess.run([fish, "-n", str(script)], capture_output=True, timeout=SHELL_TIMEOUT).returncode == 0
    result = subprocess.run([fish, "--no-config", "-c", f"source {script}; complete -C '{line}'"],
                            capture_output=True, text=True, timeout=SHELL_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert sorted(row.split("\t")[0] for row in result.stdout.splitlines()) == offered


# An interactive zsh on a pseudo-terminal: the completion script is installed the
# usual way (a file _gotop on $fpath), the line is typed with a TAB and Enter, and
# a gotop function prints what the completed line ran with.
ZSH_TYPE = r"""
zmodload zsh/zpty
zpty z 'zsh -f -i'
zpty -w z "PROMPT='READY%# '; fpath=($1 \$fpath); autoload -U compinit; compinit -u -d $1/.zcompdump"
zpty -w z 'gotop() { print -r -- "R""AN:$*:END" }'  # its echo must not match RAN: below
zpty -r -m z out '*READY#*'
zpty -w -n z "$2"$'\t\n'
zpty -r -m z out '*RAN:*:END*'
print -r -- ${${out##*RAN:}%%:END*}
zpty -d z
"""


@pytest.mark.parametrize("line, completed", [("gotop sn", "snapshot"), ("gotop snapshot 1 --j", "snapshot 1 --json"),
                                             ("gotop completion f", "completion fish")])
def test_zsh(tmp_path, line, completed):
    zsh = needs("zsh")
    (tmp_path / "_gotop").write_text(completion_script("zsh"))
    assert subprocess.run([zsh, "-n", str(tmp_path / "_gotop")], timeout=SHELL_TIMEOUT).returncode == 0
    result = subprocess.run([zsh, "-f", "-c", ZSH_TYPE, "zsh", str(tmp_path), line],
                            capture_output=True, text=True, timeout=SHELL_TIMEOUT)
    assert result.stdout.strip() == completed, result.stderr


def test_completion_is_not_loaded_at_start_up():
    probe = ("import sys; from gotop.cli import main; main(['list']); "
             "print('SHTAB' if 'shtab' in sys.modules else 'NO-SHTAB')")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, errors="replace",
                            timeout=60)
    assert result.stdout.strip().endswith("NO-SHTAB"), result.stderr


def test_an_unknown_shell_is_a_usage_error():
    result = subprocess.run([sys.executable, "-m", "gotop", "completion", "tcsh"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "invalid choice: 'tcsh' (choose from 'bash', 'zsh', 'fish')" in result.stderr

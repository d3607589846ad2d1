"""A process whose name is not UTF-8 (a binary named b"\\xff\\xfe\\x80bad"), and
text with C1 control characters from a target: every command prints them as
visible escapes, in any locale, and recordings keep every process."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import sys
import unicodedata

import pytest
from faultservers import CannedAnswerServer, http_response
from gotargets import target_binary
from netns import gotop_in

BAD_NAME = b"\xff\xfe\x80bad"
SHOWN = "\\xff\\xfe\\x80bad"

LOCALES = {
    "C.UTF-8": {"LC_ALL": "C.UTF-8"},
    "C": {"LC_ALL": "C"},
    # A glibc UTF-8 locale such as en_US.UTF-8, where Python writes strictly (this
    # machine has no such locale: PYTHONIOENCODING gives the same stream).
    "strict-utf-8": {"LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8"},
}


def assert_safe_text(data: bytes) -> str:
    """Output a terminal can show: valid UTF-8, no control characters but newlines."""
    text = data.decode("utf-8")  # raises on raw invalid bytes
    assert not [ch for ch in text if ch != "\n" and unicodedata.category(ch) in ("Cc", "Cf", "Cs")], text
    assert "Traceback" not in text, text
    return text


@pytest.fixture
def badly_named(go_target, tmp_path):
    binary = tmp_path / os.fsdecode(BAD_NAME)
    shutil.copy(target_binary("pprofonly"), binary)
    return go_target("pprofonly", binary=binary)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("command", ["list", "info", "snapshot", "check", "profile"])
def test_commands_show_the_name_escaped(badly_named, tmp_path, command, locale):
    pid = str(badly_named.pid)
    args = {
        "list": ["list"], "info": ["info", pid], "snapshot": ["snapshot", pid],
        "check": ["check", pid, "--for", "2s"], "profile": ["profile", "heap", pid, "-o", str(tmp_path / "heap.pb.gz")],
    }[command]
    result = gotop_in((), *args, env=LOCALES[locale], timeout=120, text=False)
    out, err = assert_safe_text(result.stdout), assert_safe_text(result.stderr)
    assert result.returncode == (2 if command == "check" else 0), err  # 2 s is too short to watch: blind
    assert SHOWN in out


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
def test_recordings_keep_the_process_and_every_one_after_it(go_target, private_netns, tmp_path, locale):
    binary = tmp_path / os.fsdecode(BAD_NAME)
    shutil.copy(target_binary("pprofonly"), binary)
    bad = go_target("pprofonly", binary=binary, wrapper=private_netns)
    after = go_target("pprofonly", wrapper=private_netns)  # discovered after it (a higher pid)

    named = tmp_path / "named.gotop"
    result = gotop_in(private_netns, "record", str(bad.pid), "-o", str(named), "--for", "2s", env=LOCALES[locale])
    assert result.returncode == 0, result.stderr
    everything = tmp_path / "all.gotop"
    result = gotop_in(private_netns, "record", "-o", str(everything), "--for", "3s", env=LOCALES[locale])
    assert result.returncode == 0, result.stderr

    assert labels(named) == [f"pid {bad.pid} ({SHOWN})"]
    assert {f"pid {bad.pid} ({SHOWN})", f"pid {after.pid} (pprofonly)"} <= set(labels(everything))


def labels(recording) -> list[str]:
    return [label for (label,) in sqlite3.connect(recording).execute("SELECT label FROM targets")]


async def test_c1_controls_in_an_answer_are_escaped_in_errors():
    # Fault stand-in: a server whose Content-Type holds a C1 control (NEL, 0x85).
    answer = http_response("200 OK", b"not a profile", content_type="text/\x85plain")
    async with CannedAnswerServer(answer, request="http") as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gotop", "stack", server.url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
    assert process.returncode == 2
    text = assert_safe_text(err)
    assert "text/\\x85plain" in text

"""`gotop run -- CMD`: the process screen of the program gotop started (Pilot), its
output, restart and exit, and no program left behind when gotop quits, loses its
terminal (in a real pseudo-terminal) or is killed."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import psutil
import pytest
from elfbytes import without_section_headers
from gotargets import target_binary
from terminal import Terminal
from waiting import eventually

from gotop.engine.history import TargetState
from gotop.engine.poller import Tiers
from gotop.engine.program import Program
from gotop.ui.app import GotopApp
from gotop.ui.program import OutputScreen, ProgramScreen

pytestmark = pytest.mark.go  # every test runs Go targets (gotargets.target_binary)
FAST = Tiers(interval=0.3, slow_every=0.6)


@pytest.fixture(scope="module")
def sstripped(tmp_path_factory) -> Path:
    """The plain target without section headers: its memory cannot be read, it serves nothing:
    all gotop has of its runtime is its GC trace."""
    path = tmp_path_factory.mktemp("sstrip") / "plain"
    path.write_bytes(without_section_headers(target_binary("plain").read_bytes()))
    path.chmod(0o755)
    return path


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def text(screen, selector: str) -> str:
    return str(screen.query_one(selector).render())


async def test_the_run_screen_shows_the_gc_trace_the_output_and_restarts(sstripped, tmp_path):
    program = Program([str(sstripped), "-workload", "chatty", "-n", "20"], tmp_path / "out.log")
    program.start()
    app = GotopApp(tiers=FAST, program=program)
    async with app.run_test(size=(100, 30)) as pilot:
        async def until(condition):
            return await eventually(condition, pause=lambda: pilot.pause(0.1))

        screen = await until(lambda: isinstance(app.screen, ProgramScreen) and app.screen)
        first = program.pid
        await until(lambda: text(screen, "#program").startswith(f"running pid {first}  o output ("))
        # Nothing to read but the GC trace: its figures are there all the same.
        await until(lambda: re.match(r"#\d+ \S+→\S+→\S+ goal \S+ \dP", text(screen, "#trace_text")))
        await until(lambda: "cycles" in text(screen, "#gc_text") and "live" in text(screen, "#heap_text"))
        assert "via gctrace" in text(screen, "#title")
        await until(lambda: "heap after GC MiB" in str(screen.query_one("#plot").render()))
        assert str(screen.query_one("#gc_pauses .value").render()) not in ("", "-")
        await pilot.press("o")
        output = await until(lambda: isinstance(app.screen, OutputScreen) and app.screen)
        log = output.query_one("RichLog")
        await until(lambda: sum("chatty line" in str(line.text) for line in log.lines) >= 3)
        shown = [str(line.text) for line in log.lines if "chatty line" in str(line.text)]
        assert shown[:3] == ["chatty line 1", "chatty line 2", "chatty line 3"]  # no GC trace among them
        await pilot.press("escape")
        await pilot.press("r")
        watched = app.program_watched
        await until(lambda: program.pid != first and watched.pid == program.pid and watched.history.restarts)
        assert gone(first)
        await until(lambda: text(app.screen, "#program").startswith(f"running pid {program.pid}"))
        second = program.pid
        await pilot.press("q")
    assert gone(second) and program.stopped


async def test_an_exit_shows_its_status_keeps_the_figures_and_r_starts_it_again(tmp_path):
    program = Program([str(target_binary("plain")), "-workload", "crash", "-n", "1500"], tmp_path / "out.log")
    program.start()
    app = GotopApp(tiers=FAST, program=program)
    async with app.run_test(size=(100, 30)) as pilot:
        async def until(condition):
            return await eventually(condition, pause=lambda: pilot.pause(0.1))

        screen = await until(lambda: isinstance(app.screen, ProgramScreen) and app.screen)
        watched = app.program_watched
        await until(lambda: watched.history.state is TargetState.EXITED)
        await until(lambda: re.match(r"exited with status 3 after \d+\.\d s", text(screen, "#program")))
        assert len(watched.history.series["goroutines"])  # the data stays
        await pilot.press("o")
        output = await until(lambda: isinstance(app.screen, OutputScreen) and app.screen)
        await until(lambda: any("crash: giving up after 1500 ms" in str(line.text)
                                for line in output.query_one("RichLog").lines))
        await pilot.press("r")
        await until(lambda: text(output, "#program").startswith("running pid"))
        await pilot.press("escape")
        await until(lambda: watched.history.restarts and watched.history.state is not TargetState.EXITED)


async def test_a_command_that_ends_before_its_go_program_runs_shows_why(tmp_path):
    program = Program([str(target_binary("plain")), "-workload", "nope"], tmp_path / "out.log")
    program.start()
    app = GotopApp(tiers=FAST, program=program)
    async with app.run_test(size=(100, 30)) as pilot:
        output = await eventually(lambda: isinstance(app.screen, OutputScreen) and app.screen,
                                  pause=lambda: pilot.pause(0.1))
        await eventually(lambda: any('unknown workload "nope"' in str(line.text)
                                     for line in output.query_one("RichLog").lines), pause=lambda: pilot.pause(0.1))
        assert text(output, "#program").startswith("exited with status 2")


# --- a lost terminal, a killed gotop -----------------------------------------------------------------

GOTOP_RUN = [sys.executable, "-m", "gotop", "run", "--"]


@pytest.mark.parametrize("way", ["hang-up", "hang-up-without-sighup", "sighup", "sigkill"])
async def test_the_program_does_not_outlive_gotop(way):
    binary = target_binary("plain")
    term = Terminal([*GOTOP_RUN, str(binary), "-workload", "churn"], size=(80, 24),
                    controlling=way != "hang-up-without-sighup")
    try:
        term.expect("running pid")
        [program] = [p for p in psutil.Process(term.proc.pid).children() if p.exe() == str(binary)]
        if way == "sighup":
            term.proc.send_signal(signal.SIGHUP)
        elif way == "sigkill":
            term.proc.send_signal(signal.SIGKILL)
        else:
            term.hang_up()
        term.wait()
        await eventually(lambda: gone(program.pid))
    finally:
        term.kill()

"""`gotop run`: the process screen of the program gotop started, and its output.

`ProgramScreen` is the process screen with a line about the program (running,
or how it ended), the last cycle of its GC trace in the GC pane, `o` for its
output and `r` to restart it. `OutputScreen` scrolls the program's own stdout
and stderr (stderr in yellow; the GC trace is not there: it is in the figures).
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Footer, RichLog

from gotop.engine.fleet import Watched
from gotop.engine.program import Program
from gotop.sources.gctrace import TAIL_LINES, ProgramOutput
from gotop.textsafe import plain
from gotop.ui import keys
from gotop.ui.process import ProcessScreen
from gotop.ui.screen import GotopScreen
from gotop.ui.widgets import Line
from gotop.units import fmt_bytes_short, fmt_count


def program_line(program: Program) -> Text:
    """Whether the program runs or how it ended, its output, and its command (last: it may be cut)."""
    text = Text()
    ended = program.exit()
    if ended is None:
        text.append(f"running pid {program.pid}", "bold green")
    else:
        text.append(f"{'stopped: ' if program.stopped else ''}{ended.describe()}", "bold red")
    lines = program.output.lines if program.output else 0
    text.append(f"  o output ({fmt_count(lines)} lines)  r restart  ", "dim")
    text.append(f"$ {plain(program.command)}")
    return text


def trace_line(watched: Watched) -> str:
    """The last cycle of the GC trace: heap at its start, end and marked live, its goal, GOMAXPROCS."""
    if not watched.history.gc_trace:
        return "GC trace: no cycle yet"
    c = watched.history.gc_trace[-1].cycle
    return (f"#{c.num} {fmt_bytes_short(c.heap_start)}→{fmt_bytes_short(c.heap_end)}→"
            f"{fmt_bytes_short(c.heap_live)} goal {fmt_bytes_short(c.heap_goal)} {c.gomaxprocs}P"
            + (" forced" if c.forced else ""))


class ProgramScreen(ProcessScreen):
    BINDINGS = keys.bindings(keys.PROCESS + keys.PROGRAM)

    def __init__(self, watched: Watched, save_dir: Path, program: Program) -> None:
        super().__init__(watched, save_dir)
        self.program = program

    def compose(self) -> ComposeResult:
        yield Line(id="program")
        yield from super().compose()

    def gc_rows(self) -> list[Widget]:
        return [*super().gc_rows(), Line(id="trace_text", classes="text")]

    def refresh_data(self) -> None:
        super().refresh_data()
        self.query_one("#program", Line).update(program_line(self.program))
        self.query_one("#trace_text", Line).update(trace_line(self.watched))

    def action_output(self) -> None:
        self.app.push_screen(OutputScreen(self.program))


class OutputScreen(GotopScreen):
    """The program's own output, live: the tail gotop keeps (the log file has all of it)."""

    BINDINGS = keys.bindings(keys.OUTPUT)

    def __init__(self, program: Program) -> None:
        super().__init__()
        self.program = program
        self._output: ProgramOutput | None = None  # the run whose lines are shown
        self._seen = 0

    def compose(self) -> ComposeResult:
        yield Line(id="program")
        yield RichLog(id="output", max_lines=TAIL_LINES, wrap=False, markup=False, highlight=False)
        yield Line(id="log-path")
        yield Footer()

    def mounted(self) -> None:
        self.refresh_data()

    def refresh_data(self) -> None:
        self.query_one("#program", Line).update(program_line(self.program))
        output = self.program.output
        self.query_one("#log-path", Line).update(
            Text(f"all of it in {self.program.log_path} (GC trace: {self.program.log_path.name}.gctrace)", "dim"))
        if output is None:
            return
        log = self.query_one(RichLog)
        if output is not self._output:  # restarted: the new run's lines
            if self._output is not None:
                log.write(Text(f"--- restarted (run {self.program.runs}) ---", "bold"))
            self._output, self._seen = output, 0
        lines, self._seen = output.since(self._seen)
        for line in lines:
            log.write(Text(plain(line.text, keep="\t"), "yellow" if line.stream == "stderr" else ""))

    def action_back(self) -> None:
        self.app.pop_screen()

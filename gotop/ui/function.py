"""One function of a profile: its callers and callees, the stacks that reach it,
and its source lines with values when the file is readable on this host."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane, TextArea

from gotop.engine.escapes import escape_index
from gotop.engine.sourcefiles import SourceFiles
from gotop.errors import GotopError, describe
from gotop.model.escape_sites import EscapeIndex
from gotop.model.profile import Profile
from gotop.model.profile_graph import NodeInfo
from gotop.model.profile_report import CallPath, PeekEntry, Routine, Scope, list_routines, paths_to, peek, source_lines
from gotop.model.profile_units import percentage, scaled_label
from gotop.textsafe import plain, plain_lines
from gotop.ui import keys
from gotop.ui.widgets import gone


@dataclass(frozen=True)
class Drill:
    """Everything the screen shows about one function (computed off the event loop)."""

    scope: Scope
    entry: PeekEntry
    paths: list[CallPath]
    source: str  # the Source tab: the function's lines, with the file's text where it can be read
    routines: tuple[Routine, ...]
    files: SourceFiles


def analyse(profile: Profile, function: str, sample_index: int | None) -> Drill:
    """Everything the screen shows; reads source files, so run it off the event loop."""
    exact = f"^{re.escape(function)}$"
    report = peek(profile, exact, sample_index)
    try:
        routines = list_routines(profile, exact, sample_index).routines
    except GotopError:  # e.g. no line information
        routines = ()
    files = SourceFiles.of(profile)
    source = source_text(report.scope, routines, files) if routines else "no line information in this profile"
    return Drill(report.scope, report.entries[0], paths_to(profile, function, sample_index, limit=10), source,
                 routines, files)


def source_text(scope: Scope, routines: tuple[Routine, ...], files: SourceFiles, escapes: EscapeIndex | None = None,
                note: str = "") -> str:
    """The Source tab; under each line the compiler allocates on, why it is on the heap (`escapes`), or a `note`."""
    value = _value(scope)
    lines: list[str] = [note] if note else []

    def heap_reasons(routine: Routine, line: int) -> None:
        for a in escapes.at(NodeInfo(routine.function, routine.file, line)) if escapes else ():
            lines.append(f"{'':>10} {'':>10} {'':6}  ↳ {a.what}: {a.why}")
    for routine in routines:
        lines.append(f"ROUTINE {routine.function} in {routine.file or '?'}")
        lines.append(f"{value(routine.flat):>10} {value(routine.cum):>10} (flat, cum) "
                     f"{percentage(routine.cum, scope.total).strip()} of total")
        text, why = files.text_or_why(routine.file) if routine.file else (None, "the profile names no source file")
        if text is None:
            lines.append(f"  {why}; values by line:")
            for cost in routine.lines:
                lines.append(f"{_dot(value, cost.flat):>10} {_dot(value, cost.cum):>10} {cost.line:6}")
                heap_reasons(routine, cost.line)
        else:
            for row in source_lines(routine, text):
                lines.append(f"{_dot(value, row.flat):>10} {_dot(value, row.cum):>10} {row.line:6}: {row.text}")
                heap_reasons(routine, row.line)
        lines.append("")
    return "\n".join(lines)


def stacks_text(drill: Drill) -> str:
    value = _value(drill.scope)
    lines = []
    for path in drill.paths:
        lines.append(f"{value(path.weight)} ({percentage(path.weight, drill.scope.total).strip()})")
        lines += [f"    {frame}" for frame in path.frames]
        lines.append("")
    return "\n".join(lines) or "no stack reaches this function"


def _value(scope: Scope):
    return lambda v: scaled_label(v, scope.sample_type.unit, "auto")


def _dot(value, v: int) -> str:
    return "." if v == 0 else value(v)


class FunctionScreen(Screen):
    BINDINGS = keys.bindings(keys.FUNCTION) + [Binding("escape", "app.pop_screen", show=False)]

    def __init__(self, profile: Profile, function: str, sample_index: int | None) -> None:
        super().__init__()
        self.profile = profile
        self.function = function
        self.sample_index = sample_index
        self._row_functions: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("function", "bold"), f" · {plain(self.function)} · computing..."), id="title")
        with TabbedContent(id="tabs"):
            with TabPane("Callers & callees", id="graph"):
                table: DataTable[str | Text] = DataTable(id="edges", cursor_type="row", zebra_stripes=True)
                table.add_column("", key="dir", width=2)
                table.add_column("value", key="value", width=10)
                table.add_column("share", key="share", width=7)
                table.add_column("function", key="function")
                yield table
            with TabPane("Stacks", id="stacks"):
                yield TextArea(read_only=True, soft_wrap=False, id="stacks_text")
            with TabPane("Source", id="source"):
                yield TextArea(read_only=True, soft_wrap=False, show_line_numbers=False, id="source_text")
        yield Footer()

    def on_mount(self) -> None:
        self._load()

    @work(exclusive=True)
    async def _load(self) -> None:
        try:
            drill = await asyncio.to_thread(analyse, self.profile, self.function, self.sample_index)
        except GotopError as e:
            if not gone(self):  # else left while analysing
                self.query_one("#title", Static).update(Text(f"{plain(self.function)}: {e}", "red"))
            return
        if gone(self):
            return
        self._show(drill)
        if drill.routines:  # the escape reasons beside the lines, once the engine has them (a build, at worst)
            try:
                escapes, note = await escape_index(self.profile), ""
            except Exception as e:  # not on this host, a failed build, ...: said in one line
                escapes, note = None, f"why on the heap: {describe(e)}"
            text = await asyncio.to_thread(source_text, drill.scope, drill.routines, drill.files, escapes, note)
            if not gone(self):
                self.query_one("#source_text", TextArea).load_text(plain_lines(text))

    def _show(self, drill: Drill) -> None:
        value = _value(drill.scope)
        node = drill.entry.node
        title = Text.assemble(("function", "bold"), f" · {plain(node.name)} · flat {value(node.flat)} "
                              f"({percentage(node.flat, drill.scope.total).strip()}) · cum {value(node.cum)} "
                              f"({percentage(node.cum, drill.scope.total).strip()}) · {drill.scope.sample_type.type}")
        self.query_one("#title", Static).update(title)
        table = self.query_one("#edges", DataTable)
        table.clear()
        for direction, edges in (("↑", drill.entry.callers), ("↓", drill.entry.callees)):
            for i, edge in enumerate(edges):
                key = f"{direction}{i}"
                self._row_functions[key] = edge.name
                share = percentage(edge.weight, node.cum).strip() if node.cum else "-"
                table.add_row(direction, value(edge.weight), share, Text(plain(edge.name)), key=key)
            if direction == "↑":
                table.add_row("●", value(node.cum), "100%", Text(plain(node.name), "bold"), key="self")
        self.query_one("#stacks_text", TextArea).load_text(plain_lines(stacks_text(drill)))
        self.query_one("#source_text", TextArea).load_text(plain_lines(drill.source))

    @on(DataTable.RowSelected, "#edges")
    def _selected(self, event: DataTable.RowSelected) -> None:
        name = self._row_functions.get(event.row_key.value or "")
        if name:
            self.app.push_screen(FunctionScreen(self.profile, name, self.sample_index))

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

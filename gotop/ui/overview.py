"""The default screen: one row per Go process, live."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Input, Static

from gotop.engine.fleet import Fleet, Watched
from gotop.engine.history import TargetState
from gotop.textsafe import plain
from gotop.ui import keys
from gotop.ui.screen import GotopScreen
from gotop.ui.spark import mini_spark
from gotop.ui.table import Column, LiveTable, SortableText, cell
from gotop.ui.widgets import Line
from gotop.units import fmt_bytes

if TYPE_CHECKING:
    from gotop.engine.replay import Replay

COLUMNS = (
    Column("pid", "PID", 7),
    Column("name", "NAME", 14, justify="left"),
    Column("go", "GO", 7, min_screen_width=100, justify="left"),
    Column("via", "VIA", 5, justify="left"),
    Column("goroutines", "GOROUTINES", 10),
    Column("g_trend", "", 8, min_screen_width=110, justify="left"),
    Column("heap", "HEAP INUSE", 10),
    Column("h_trend", "", 8, min_screen_width=120, justify="left"),
    Column("rss", "RSS", 8),
    Column("cpu", "CPU", 4),
    Column("gc", "GC/min", 6, min_screen_width=90),
    Column("state", "STATE", 7, justify="left"),
    Column("leak", "LEAK", 18, min_screen_width=140, justify="left"),  # narrower: ● before the name
)
SORTABLE = ("cpu", "heap", "goroutines", "rss", "gc", "pid", "name", "leak")

STATE_STYLE = {
    TargetState.STARTING: "dim",
    TargetState.UP: "",
    TargetState.SLOW: "yellow",
    TargetState.UNREACHABLE: "red",
    TargetState.FAILED: "red",
    TargetState.EXITED: "dim strike",
}

LEGEND = "enter open  M memory  A gops agent  P pprof  E expvar  R /metrics  ns other netns  - no way in  ● leaking"
STATE_TEXT = {
    TargetState.STARTING: "start", TargetState.UP: "up", TargetState.SLOW: "slow",
    TargetState.UNREACHABLE: "unreach", TargetState.FAILED: "failed", TargetState.EXITED: "exited",
}


def marks(w: Watched) -> str:
    t = w.target
    found = [m for m, present in (("M", t.memory), ("A", t.gops), ("P", t.http), ("E", t.expvar), ("R", t.metrics))
             if present]
    if w.process and w.process.other_netns:
        found = [*found[:1], "ns"] if t.memory else ["ns"]
    return "".join(found) or "-"


def row_for(w: Watched, shown: Collection[str]) -> dict[str, SortableText]:
    """The cells of a target's row; the trend glyphs only for the columns `shown` (half of
    a row's cost in a py-spy profile of the TUI, and 80 columns show none)."""
    h = w.history
    s = h.series
    style = STATE_STYLE[h.state]
    name = plain(w.process.name if w.process else w.name)
    go = (w.process.go_version if w.process else "").removeprefix("go")

    def figure(series: str, fmt) -> SortableText:
        last = s[series].last
        return cell(fmt(last) if last is not None else "-", last if last is not None else -1, style)

    def trend(column: str, series: str, style: str) -> SortableText:
        return cell(mini_spark(s[series].values) if column in shown else "", 0, style, justify="left")

    state = STATE_TEXT[h.state] + ("↻" if h.restarts else "")
    leaks = sorted({f.kind.value for f in w.findings})
    return {
        "pid": cell(str(w.pid) if w.pid else "-", w.pid or 0, style),
        "name": cell(("● " if leaks else "") + name, name.lower(), "bold red" if leaks else style, justify="left"),
        "go": cell(go or "?", go, style, justify="left"),
        "via": cell(marks(w), marks(w), style, justify="left"),
        "goroutines": figure("goroutines", lambda v: f"{v:,.0f}"),
        "g_trend": trend("g_trend", "goroutines", "cyan"),
        "heap": figure("heap_inuse", fmt_bytes),
        "h_trend": trend("h_trend", "heap_inuse", "magenta"),
        "rss": figure("rss", fmt_bytes),
        "cpu": figure("cpu", lambda v: f"{v:.0f}%"),
        "gc": cell(_gc_rate(w), h.gc_per_minute() or -1, style),
        "state": cell(state, state, style, justify="left"),
        "leak": cell(" ".join(leaks), " ".join(leaks), "bold red", justify="left"),
    }


def _gc_rate(w: Watched) -> str:
    rate = w.history.gc_per_minute()
    return "-" if rate is None else f"{rate:.0f}"


class OverviewScreen(GotopScreen):
    BINDINGS = keys.bindings(keys.OVERVIEW) + [Binding("escape", "clear_filter", show=False)]

    def __init__(self, fleet: Fleet | Replay, title: str) -> None:
        super().__init__()
        self.fleet = fleet
        self.title_text = title
        self.paused = False
        self.filter_text = ""
        self._before_filter: str | None = None  # the row selected when the filter was opened
        self._rows: dict[str, tuple[tuple, dict[str, SortableText]]] = {}  # key -> (what it was built from, row)

    def compose(self) -> ComposeResult:
        yield Line(id="title")
        table = LiveTable(COLUMNS, id="processes")
        table.sort_column, table.sort_reverse = "cpu", True
        yield table
        with Horizontal(id="filter-bar"):
            yield Static("filter: ", id="filter-label")
            yield Input(placeholder="pid, name or path", id="filter")
        yield Line(LEGEND, id="legend")
        yield Footer()

    def mounted(self) -> None:
        self.query_one("#filter-bar").display = False
        self.refresh_data()

    def shown_targets(self) -> list[Watched]:
        visible = set(self.table.visible_keys())
        return [w for key, w in self.fleet.watched.items() if str(key) in visible]

    @property
    def table(self) -> LiveTable:
        return self.query_one("#processes", LiveTable)

    def refresh_data(self) -> None:
        """Called every tick by the app."""
        self._update_title()
        if self.paused:
            return
        needle = self.filter_text.lower()
        shown = frozenset(c.key for c in self.table.columns_for(self.app.size.width))
        rows = {
            str(key): self._row(str(key), w, shown) for key, w in self.fleet.watched.items()
            if not needle or needle in f"{w.pid} {w.name} {w.process.exe if w.process else ''}".lower()
        }
        self._rows = {key: self._rows[key] for key in rows}  # rows of targets gone go too
        self.table.show(rows)

    def _row(self, key: str, w: Watched, shown: frozenset[str]) -> dict[str, SortableText]:
        """The target's row, built again only once it has news (or the terminal's width
        shows other columns): a target off screen is polled every few seconds, and a row
        cost about 0.27 ms to build."""
        stamp = (w.history.last_update, w.pid, id(w.process), id(w.history), marks(w), shown)
        cached = self._rows.get(key)
        if cached is None or cached[0] != stamp:
            cached = self._rows[key] = (stamp, row_for(w, shown))
        return cached[1]

    def _update_title(self) -> None:
        n = len(self.fleet.watched)
        title = Text.assemble(("gotop", "bold"), f"  {plain(self.title_text)}   {n} Go process{'es' if n != 1 else ''}")
        if self.fleet.skipped:
            title.append(f"   {self.fleet.skipped} not inspectable", "dim")
        if self.fleet.discovery_error:
            title.append(f"   {plain(self.fleet.discovery_error)} (retrying)", "bold red")
        if self.paused:
            title.append("   ")
            title.append(" PAUSED ", "reverse")
        if self.filter_text:
            title.append(f"   filter: {plain(self.filter_text)!r}")
        arrow = " ▼" if self.table.sort_reverse else " ▲"
        title.append(f"   sort: {self.table.sort_column or '-'}{arrow}", "dim")
        self.query_one("#title", Line).update(title)

    # -- actions ----------------------------------------------------------------

    def action_open(self) -> None:
        key = self.table.selected_key()
        watched = next((w for k, w in self.fleet.watched.items() if str(k) == key), None)
        if watched is not None:
            self.app.open_process(watched)

    @on(LiveTable.RowSelected, "#processes")
    def _row_selected(self) -> None:
        self.action_open()

    def action_filter(self) -> None:
        self._before_filter = self.table.selected_key()
        bar = self.query_one("#filter-bar")
        bar.display = True
        self.query_one("#filter", Input).focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if event.value == self.filter_text:
            return  # cleared by escape: already applied
        self.filter_text = event.value
        self.refresh_data()
        # The cursor goes by row index: when its row is filtered out, put it on a match.
        if self._before_filter in self.table.rows:
            self.table.select(self._before_filter)
        else:
            self.table.move_cursor(0)

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one("#filter-bar").display = bool(self.filter_text)
        self.table.focus()

    def action_clear_filter(self) -> None:
        """Escape: no filter, the cursor on the row it is on."""
        selected = self.table.selected_key()
        self.filter_text = ""
        self.query_one("#filter", Input).value = ""
        self.query_one("#filter-bar").display = False
        self.table.focus()
        self.refresh_data()
        self.table.select(selected)

    def action_sort_next(self) -> None:
        current = self.table.sort_column
        nxt = SORTABLE[(SORTABLE.index(current) + 1) % len(SORTABLE)] if current in SORTABLE else SORTABLE[0]
        self.table.sort_by(nxt, reverse=nxt not in ("pid", "name"))
        self._update_title()

    def action_sort_reverse(self) -> None:
        self.table.sort_by(self.table.sort_column or "cpu", not self.table.sort_reverse)
        self._update_title()

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.refresh_data()

    @on(LiveTable.HeaderSelected, "#processes")
    def _header_clicked(self, event: LiveTable.HeaderSelected) -> None:
        column = event.column
        if column in SORTABLE:
            same = column == self.table.sort_column
            self.table.sort_by(column, not self.table.sort_reverse if same else column not in ("pid", "name"))
            self._update_title()

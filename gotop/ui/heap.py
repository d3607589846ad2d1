"""Heap top-N, live: `go tool pprof -top` of the target's heap, with growth since a baseline.

The stacks of monitoring requests (gotop's own: the pprof handler writing the
profile, expvar's, the agent's, promhttp's; gotop.model.monitoring) are the
program's allocations only in name: a function whose bytes are all theirs is
dimmed and marked "(gotop)", and `o` hides them all (the report is then of the
program's own stacks).

`e` marks each function with the compiler's reasons for the heap allocations
on its lines (escape analysis of the program's module, when its source is on
this host: built once with -gcflags=-m=2 and cached, see gotop.engine.escapes).

The rows are computed on a worker thread (a big profile takes most of a second):
the title says "computing…" meanwhile, and a newer request (a new profile, a key)
supersedes one under way, whose result is then dropped.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Input, Static

from gotop.engine.fleet import Watched
from gotop.engine.history import HeapSnapshot
from gotop.engine.leaks import SiteRef
from gotop.errors import describe
from gotop.model.escape_sites import EscapeIndex, escapes_by_function
from gotop.model.escapes import Allocation
from gotop.model.monitoring import split_monitoring
from gotop.model.profile import Profile
from gotop.model.profile_diff import diff
from gotop.model.profile_graph import Costs
from gotop.model.profile_report import TopReport, costs_of, top
from gotop.model.profile_units import percentage, scaled_label
from gotop.textsafe import plain
from gotop.ui import keys
from gotop.ui.names import short_function
from gotop.ui.screen import TargetScreen
from gotop.ui.table import Column, LiveTable, SortableText, cell
from gotop.ui.widgets import Line, gone

HEAP_EVERY = 15.0  # seconds between heap profiles while this screen is open

COLUMNS = (
    Column("flat", "flat", 10),
    Column("flat_pct", "flat%", 6),
    Column("sum_pct", "sum%", 6, min_screen_width=90),
    Column("cum", "cum", 10),
    Column("cum_pct", "cum%", 6),
    Column("delta", "Δ base", 10),
    Column("function", "function", 0, justify="left"),
)


@dataclass(frozen=True)
class HeapView:
    """What the table shows: one sample type, sorted by flat or cum, filtered."""

    sample_index: int = -1  # -1: the profile's default (inuse_space)
    by_cum: bool = False
    pattern: str = ""
    growth: bool = False  # show the growth since the baseline instead of the heap
    hide_own: bool = False  # leave out the stacks of gotop's own requests
    escapes: bool = False  # after each function, the compiler's reasons for its heap allocations


@dataclass(frozen=True, eq=False)
class Request:
    """What the table is asked to show: a heap profile, through a view, against a baseline."""

    snapshot: HeapSnapshot
    view: HeapView
    baseline: HeapSnapshot | None
    pattern: re.Pattern[str] | None
    leaking: frozenset[str]  # functions the detectors blame
    escapes: EscapeIndex | None  # the compiler's reasons to mark the functions with; None: unmarked


@dataclass(frozen=True)
class HeapRows:
    """A request's answer, computed off the event loop."""

    request: Request
    report: TopReport
    rows: dict[str, dict]
    source: Profile  # the profile the rows are of: the heap, or its growth since the baseline
    costs: Costs | None  # of the heap shown and its sample type, for the next request on them
    own: int  # the heap's value (of the sample type) in the stacks of gotop's own requests


def heap_rows(request: Request, costs: Costs | None) -> HeapRows:
    """The table's rows for a request; pprof -base semantics for the growth. `costs`:
    costs_of the heap shown (the request's, or its program's part) and sample type,
    if known (re-sorting then costs no pass over the samples)."""
    view = request.view
    index = view.sample_index if view.sample_index >= 0 else None
    program, own = split_monitoring(request.snapshot.profile)
    profile = program if view.hide_own else request.snapshot.profile
    baseline = request.baseline and (split_monitoring(request.baseline.profile)[0] if view.hide_own
                                     else request.baseline.profile)
    growth = diff(baseline, profile) if baseline else None  # current minus baseline
    if view.growth and growth is not None:
        source, rep = growth, top(growth, index, cum=view.by_cum, node_fraction=0)
    else:
        costs = costs or costs_of(profile, index)
        source, rep = profile, top(profile, index, cum=view.by_cum, node_fraction=0, costs=costs)
    deltas = {n.name: n.flat for n in top(growth, index, node_fraction=0).rows} \
        if growth is not None and not view.growth else {}
    own_rows = {} if view.hide_own or view.growth or not own.samples else \
        {n.name: (n.flat, n.cum) for n in top(own, index, node_fraction=0).rows}
    own_total = sum(own.samples.values[own.sample_index(index)])
    reasons = escapes_by_function(request.snapshot.profile, request.escapes) if request.escapes else {}
    return HeapRows(request, rep, rows_for(rep, deltas, request.pattern, request.leaking, own_rows, reasons), source,
                    costs, own_total)


def rows_for(rep: TopReport, deltas: dict[str, int], pattern: re.Pattern[str] | None,
             leaking: frozenset[str] = frozenset(), own: dict[str, tuple[int, int]] | None = None,
             reasons: dict[str, tuple[Allocation, ...]] | None = None) -> dict[str, dict]:
    """The table rows: growth since the baseline in yellow, sites the detectors blame in red with ●,
    functions whose flat and cum are all in gotop's own requests (`own`: name -> (flat, cum)) dimmed,
    and after a function's name the causes the compiler gives for its heap allocations (`reasons`)."""
    unit, total = rep.scope.sample_type.unit, rep.scope.total
    own = own or {}
    reasons = reasons or {}

    def value(v: int) -> str:
        return scaled_label(v, unit, "auto")

    rows: dict[str, dict[str, SortableText]] = {}
    running = 0
    for node in rep.rows:
        running += node.flat
        if pattern and not pattern.search(node.name):
            continue
        delta = deltas.get(node.name)
        grew = delta is not None and delta > 0
        gotops = own.get(node.name) == (node.flat, node.cum)
        dim = "dim" if gotops else ""
        name_style = "bold red" if node.name in leaking else "bold yellow" if grew else dim
        mark = "● " if node.name in leaking else "(gotop) " if gotops else ""
        function = cell(mark + plain(short_function(node.name) + (f" {node.inline}" if node.inline else "")),
                        node.name, name_style, justify="left")
        if causes := dict.fromkeys(a.cause.value.replace("_", " ") for a in reasons.get(node.name, ())):
            function.append(" ← " + ", ".join(causes), "cyan")
        rows[node.name] = {
            "flat": cell(value(node.flat), node.flat, dim),
            "flat_pct": cell(percentage(node.flat, total).strip(), abs(node.flat), dim),
            "sum_pct": cell(percentage(running, total).strip(), running, dim),
            "cum": cell(value(node.cum), node.cum, dim),
            "cum_pct": cell(percentage(node.cum, total).strip(), abs(node.cum), dim),
            "delta": cell("" if delta is None else ("+" if delta > 0 else "") + value(delta), delta or 0,
                          "bold yellow" if grew else dim),
            "function": function,
        }
    return rows


class HeapScreen(TargetScreen):
    BINDINGS = keys.bindings(keys.HEAP) + [Binding("escape", "back", show=False)]

    def __init__(self, watched: Watched, select: str | None = None) -> None:
        super().__init__()
        self.watched = watched
        self._select = select  # a function to put the cursor on once shown
        self.view = HeapView()
        self.baseline: HeapSnapshot | None = None
        self.frozen = False
        self._wanted: Request | None = None  # the newest request
        self._shown: HeapRows | None = None  # what the table shows
        self._failed: Request | None = None  # a request whose rows could not be computed
        self._computing = False  # a worker is computing rows
        self._costs: tuple[HeapSnapshot, HeapView, Costs] | None = None  # for which snapshot and view
        self._escapes: EscapeIndex | None = None  # the compiler's reasons, once analysed (e)
        self._analysing = False

    def compose(self) -> ComposeResult:
        yield Line(id="title")
        yield LiveTable(COLUMNS, id="heap")
        with Horizontal(id="filter-bar"):
            yield Static("regex: ", id="filter-label")
            yield Input(placeholder="function name regex", id="filter")
        yield Line(id="legend")
        yield Footer()

    def mounted(self) -> None:
        self.query_one("#filter-bar").display = False
        self.watched.heap_demand.want(self, HEAP_EVERY)
        if self.watched.poller is not None:
            self.watched.poller.request_heap()
        self.refresh_data()

    def on_unmount(self) -> None:
        self.watched.heap_demand.drop(self)

    @property
    def table(self) -> LiveTable:
        return self.query_one("#heap", LiveTable)

    @property
    def computing(self) -> bool:
        """Rows asked for are not shown yet (nor failed)."""
        wanted = self._wanted
        return wanted is not None and wanted is not self._failed and \
            (self._shown is None or self._shown.request is not wanted)

    def refresh_data(self) -> None:
        snapshot = self.watched.history.heap
        wanted = self._wanted
        new = wanted is None or snapshot is not wanted.snapshot or self.view != wanted.view \
            or self.baseline is not wanted.baseline
        if snapshot is not None and not self.frozen and new:  # else keep the table (and cursor) as it is
            self._want(snapshot)
        self._title(snapshot)

    def _want(self, snapshot: HeapSnapshot) -> None:
        """Ask for the rows of `snapshot` as the screen now shows it; a worker computes them."""
        try:
            pattern = re.compile(self.view.pattern) if self.view.pattern else None
        except re.error as e:
            self.notify(f"bad regex: {e}", severity="error")
            pattern = None
        leaking = frozenset(f.ref.site.function for f in self.watched.findings
                            if isinstance(f.ref, SiteRef) and f.ref.site)
        self._wanted = Request(snapshot, self.view, self.baseline, pattern, leaking,
                               self._escapes if self.view.escapes else None)
        if not self._computing:
            self._computing = True
            self._compute()

    @work(group="heap-rows")
    async def _compute(self) -> None:
        """Compute the newest request until it is shown: one at a time (a big profile takes
        most of a second of CPU), and a result superseded meanwhile is dropped."""
        try:
            while (request := self._wanted) is not None and self.computing:
                try:
                    rows = await asyncio.to_thread(heap_rows, request, self._costs_for(request))
                except Exception as e:  # a profile the report cannot take: said in one line
                    self._failed = request
                    self.notify(describe(e), severity="error")
                    continue
                if gone(self):
                    return
                if request is self._wanted:
                    self._show(rows)
        finally:
            self._computing = False

    def _show(self, rows: HeapRows) -> None:
        self._shown = rows
        view = rows.request.view
        if rows.costs is not None:
            self._costs = (rows.request.snapshot, view, rows.costs)
        self.table.sort_column, self.table.sort_reverse = ("cum" if view.by_cum else "flat"), True
        self.table.show(rows.rows)
        if self._select and self._select in self.table.rows:
            self.table.select(self._select)
            self._select = None
        self._title(self.watched.history.heap)

    def _costs_for(self, request: Request) -> Costs | None:
        """The costs known for the request's snapshot, sample type and stacks (kept while they
        are shown: re-sorting by flat or cum then costs no pass over the samples)."""
        costs = self._costs
        if costs is None or costs[0] is not request.snapshot:
            return None
        shown, wanted = costs[1], request.view
        same = (shown.sample_index, shown.hide_own) == (wanted.sample_index, wanted.hide_own)
        return costs[2] if same else None

    def _title(self, snapshot: HeapSnapshot | None) -> None:
        title = Text.assemble(("heap", "bold"), f" · {plain(self.watched.name)}")
        if snapshot is None:
            source = "waiting for the first heap profile" if (self.watched.target.http or self.watched.target.gops) \
                else "no heap profile: the process has neither the gops agent nor net/http/pprof"
            self.query_one("#title", Line).update(title.append(f" · {source}"))
            return
        profile = snapshot.profile
        index = profile.sample_index(self.view.sample_index if self.view.sample_index >= 0 else None)
        sample_type = profile.sample_types[index]
        title.append(f" · {sample_type.type}")
        if self._shown is not None:
            title.append(f" · total {scaled_label(self._shown.report.scope.total, sample_type.unit, 'auto')}")
            own = self._shown.own
            if own:
                whole = self._shown.report.scope.total + (own if self._shown.request.view.hide_own else 0)
                title.append(f" · gotop's own requests {scaled_label(own, sample_type.unit, 'auto')}"
                             f" ({percentage(own, whole).strip()})"
                             + (" hidden" if self._shown.request.view.hide_own else ""), "dim")
        title.append(f" · {self.app.now() - snapshot.time:.0f}s ago", "dim")
        if self.baseline:
            title.append(f" · baseline {time.strftime('%H:%M:%S', time.localtime(self.baseline.time))}")
        if self.view.growth:
            title.append(" · GROWTH since baseline", "bold yellow")
        if self.frozen:
            title.append("  ")
            title.append(" FROZEN ", "reverse")
        if self.computing:
            title.append(" · computing…", "italic")
        self.query_one("#title", Line).update(title)
        self.query_one("#legend", Line).update(Text(
            f"sort {'cum' if self.view.by_cum else 'flat'}   "
            f"{'filter ' + repr(self.view.pattern) + '   ' if self.view.pattern else ''}"
            f"{'← why on the heap (compiler), e hides it' if self.view.escapes else 'e why on the heap'}   "
            f"(gotop) dim: gotop's own requests, o {'shows' if self.view.hide_own else 'hides'} them   "
            "enter callers/callees/stacks/source", "dim"))

    def _set_view(self, **changes) -> None:
        self.view = HeapView(**{**self.view.__dict__, **changes})
        self.refresh_data()

    # -- actions ----------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_sort(self) -> None:
        self._set_view(by_cum=not self.view.by_cum)

    def action_sample_type(self) -> None:
        snapshot = self.watched.history.heap
        if snapshot is None:
            return
        count = len(snapshot.profile.sample_types)
        current = snapshot.profile.sample_index(self.view.sample_index if self.view.sample_index >= 0 else None)
        self._set_view(sample_index=(current + 1) % count)

    def action_baseline(self) -> None:
        self.baseline = self.watched.history.heap
        if self.baseline:
            self.notify("baseline marked: the Δ column shows growth since now")
        self.refresh_data()

    def action_growth(self) -> None:
        if self.baseline is None:
            self.notify("mark a baseline first (b)", severity="warning")
            return
        self._set_view(growth=not self.view.growth)

    def action_toggle_own(self) -> None:
        self._set_view(hide_own=not self.view.hide_own)

    def action_escapes(self) -> None:
        if self._escapes is not None:
            self._set_view(escapes=not self.view.escapes)
        elif (snapshot := self.watched.history.heap) is None:
            self.notify("why on the heap: waiting for the first heap profile", severity="warning")
        elif not self._analysing:
            self._analysing = True
            self._analyse(snapshot.profile)

    @work(group="escape-analysis")
    async def _analyse(self, profile: Profile) -> None:
        """The compiler's escape analysis of the program's module (a build, on a thread, cached)."""
        from gotop.engine.escapes import escape_index

        self.notify("why on the heap: the compiler's escape analysis of the program's module…")
        try:
            self._escapes = await escape_index(profile)
        except Exception as e:  # no source on this host, a build that fails: said in one line
            self.notify(f"why on the heap: {describe(e)}", severity="warning")
            return
        finally:
            self._analysing = False
        if not gone(self):
            self._set_view(escapes=True)

    def action_freeze(self) -> None:
        self.frozen = not self.frozen
        self.refresh_data()

    def action_refresh_now(self) -> None:
        if self.watched.poller is not None:
            self.watched.poller.request_heap()
            self.notify("a new heap profile is on its way")

    def action_filter(self) -> None:
        self.query_one("#filter-bar").display = True
        self.query_one("#filter", Input).focus()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self.query_one("#filter-bar").display = False
        self._set_view(pattern=event.value)
        self.table.focus()

    @on(LiveTable.RowSelected, "#heap")
    def action_drill(self) -> None:
        name = self.table.selected_key()
        shown = self._shown
        if name and shown:
            from gotop.ui.function import FunctionScreen

            index = shown.request.view.sample_index
            self.app.push_screen(FunctionScreen(shown.source, name, index if index >= 0 else None))

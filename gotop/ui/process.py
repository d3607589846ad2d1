"""One process, live: heap, goroutines, GC and OS panes, a plot, and actions."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widget import Widget
from textual.widgets import Footer, ProgressBar, Static

from gotop.engine.captures import capture, default_name, opener, save_private
from gotop.engine.fleet import Watched
from gotop.engine.history import TargetHistory, TargetState
from gotop.engine.targetspec import parse_gc_percent
from gotop.errors import GotopError
from gotop.model.monitoring import monitoring_groups
from gotop.sources.progress import CaptureProgress
from gotop.textsafe import plain
from gotop.ui import keys
from gotop.ui.dialogs import AskScreen, ConfirmScreen, TextScreen
from gotop.ui.leaks import summary
from gotop.ui.names import short_label
from gotop.ui.screen import TargetScreen
from gotop.ui.widgets import Line, MetricRow, gone
from gotop.units import fmt_bytes_short, fmt_count, fmt_duration_ns, fmt_signed

PLOT_EVERY = 3  # ticks between redraws of the plot (it costs more than the rest of the screen)

STATE_STYLE = {
    TargetState.STARTING: "dim", TargetState.UP: "green", TargetState.SLOW: "yellow",
    TargetState.UNREACHABLE: "red", TargetState.FAILED: "red", TargetState.EXITED: "red",
}


def header_text(w: Watched) -> Text:
    """Name, pid, Go version, module and revision, GOMAXPROCS, state."""
    text = Text()
    text.append(plain(w.process.name if w.process else w.name), "bold")
    if w.pid:
        text.append(f"  pid {w.pid}")
    build = w.process.build if w.process else None
    if build:
        text.append(f"  {build.go_version}")
        if build.main:
            text.append(f"  {plain(build.main.path)} {plain(build.main.version)}", "dim")
        revision = build.setting("vcs.revision")
        if revision:
            dirty = ", dirty" if build.setting("vcs.modified") == "true" else ""
            text.append(f" ({revision[:7]}{dirty})", "dim")
    sample = w.history.last_sample
    if sample and sample.stats.gomaxprocs:
        text.append(f"  GOMAXPROCS {sample.stats.gomaxprocs}")
    if sample and (ways := sorted({way for figure, way in sample.sources.items() if figure != "process"})):
        text.append(f"  via {', '.join(ways)}", "dim")
    h = w.history
    text.append(f"  {h.state.value.upper()}", STATE_STYLE[h.state])
    if h.restarts:
        text.append(f"  restarted {len(h.restarts)}x", "yellow")
    return text


def pane(title: str, *rows, id: str) -> Vertical:
    box = Vertical(*rows, id=id, classes="pane")
    box.border_title = title
    return box


class ProcessScreen(TargetScreen):
    BINDINGS = keys.bindings(keys.PROCESS)

    def __init__(self, watched: Watched, save_dir: Path) -> None:
        super().__init__()
        self.watched = watched
        self.save_dir = save_dir
        self.capturing: str | None = None
        self._capture_bar = ProgressBar(id="capture", show_eta=False)  # held: progress may come as the screen goes
        self._ticks = 0
        self._lines: dict[str, Text] = {}  # what the wrapping lines show now

    def compose(self) -> ComposeResult:
        yield Line(id="title")
        with Grid(id="panes"):
            yield pane("Heap",
                       MetricRow("in use", fmt_bytes_short, id="heap_inuse"),
                       MetricRow("alloc", fmt_bytes_short, id="heap_alloc"),
                       Line(id="heap_text", classes="text"), id="heap-pane")
            yield pane("Goroutines",
                       MetricRow("count", fmt_count, id="goroutines"),
                       Line(id="goroutine_text", classes="text"),
                       Line(id="group_text", classes="text"), id="goroutine-pane")
            yield pane("GC", *self.gc_rows(), id="gc-pane")
            yield pane("OS",
                       MetricRow("RSS", fmt_bytes_short, id="rss"),
                       MetricRow("CPU %", lambda v: f"{v:.0f}", id="cpu"),
                       MetricRow("fds", fmt_count, id="fds"), id="os-pane")
        from textual_plotext import PlotextPlot  # here: plotext costs 1.6 MB of RSS, paid once a process is opened

        yield PlotextPlot(id="plot")
        yield Static(id="leak-line")
        yield Static(id="message")
        self._capture_bar.display = False
        yield self._capture_bar
        yield Footer()

    def gc_rows(self) -> list[Widget]:
        return [MetricRow("pause", lambda ns: fmt_duration_ns(ns).replace(" ", ""), id="gc_pauses"),
                MetricRow("alloc/s", fmt_bytes_short, id="alloc_rate"),
                Line(id="gc_text", classes="text")]

    def mounted(self) -> None:
        self.watched.follow(self)
        self.refresh_data()

    def on_unmount(self) -> None:
        self.watched.unfollow(self)

    def refresh_data(self) -> None:
        """Called every tick by the app."""
        w = self.watched
        h = w.history
        self.query_one("#title", Line).update(header_text(w))
        for row in self.query(MetricRow):
            row.show(h.gc_pauses if row.figure == "gc_pauses" else h.series[row.figure])
        self._texts(h)
        self._ticks += 1
        if self._ticks % PLOT_EVERY == 1:
            self._plot(h)
        self._set_if_changed("#message", Text(plain(h.error or ""), "yellow"))
        self._leak_line()

    def _set_if_changed(self, selector: str, text: Text) -> None:
        """These lines may wrap to two: changing them costs a layout pass, so only on change."""
        if self._lines.get(selector) != text:
            self._lines[selector] = text
            self.query_one(selector, Static).update(text)

    def _leak_line(self) -> None:
        findings = self.watched.findings
        line = Text()
        if findings:
            line.append(plain(summary(findings[0], self.app.now())), "bold red")
            if len(findings) > 1:
                line.append(f"  (+{len(findings) - 1} more)", "red")
            line.append("  l: leaks", "dim")
        self._set_if_changed("#leak-line", line)

    def _texts(self, h: TargetHistory) -> None:
        s = h.last_sample
        m = s.memstats if s else None
        heap = "no memstats (no memory reading, agent, expvar or /metrics)" if m is None else (
            f"sys {fmt_bytes_short(m.heap_sys)}  next GC {fmt_bytes_short(m.next_gc)}  " + (
                f"{fmt_count(m.heap_objects)} obj" if m.heap_objects is not None
                else f"live {fmt_bytes_short(m.heap_marked)}" if m.heap_marked is not None else ""))
        self.query_one("#heap_text", Line).update(heap)
        slope = h.series["goroutines"].slope_per_minute(60)
        threads = s.os.threads if s and s.os else None
        self.query_one("#goroutine_text", Line).update(
            f"Δ {fmt_signed(slope)}/min  threads {threads}" if slope is not None else f"threads {threads or '-'}")
        self.query_one("#group_text", Line).update(
            Text(self._top_group(h), overflow="ellipsis", no_wrap=True))
        gc_rate = h.gc_per_minute()
        gc = ("" if gc_rate is None else f"{gc_rate:.0f}/min  ") + (
            f"CPU {m.gc_cpu_fraction:.2%}  " if m and m.gc_cpu_fraction is not None else "") + (
            f"cycles {fmt_count(m.num_gc)}" if m and m.num_gc is not None else "")
        if m and m.last_gc:
            gc += f"  last {max(0, self.app.now() - m.last_gc / 1e9):.0f}s ago"
        self.query_one("#gc_text", Line).update(gc or "-")

    @staticmethod
    def _top_group(h: TargetHistory) -> str:
        if not h.goroutines or not h.goroutines.groups:
            return "groups: need net/http/pprof or a readable memory"
        own = monitoring_groups(h.goroutines.groups)  # gotop's own request is never the program's top group
        group = next((g for g in h.goroutines.groups if g.key not in own), h.goroutines.groups[0])
        return f"top: {group.count:,}x {plain(short_label(group.label))}"

    def _plot(self, h: TargetHistory) -> None:
        from textual_plotext import PlotextPlot  # imported by compose already

        plot = self.query_one(PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        now = self.app.now()
        heap = h.series["heap_inuse"]
        goroutines = h.series["goroutines"]
        if len(heap):
            plt.plot([t - now for t in heap.times], [v / 2**20 for v in heap.values],
                     label="heap in use MiB", marker="braille", color="magenta")
        elif h.gc_trace:  # a program gotop started, with nothing to read but its GC trace
            plt.plot([r.time - now for r in h.gc_trace], [r.cycle.heap_live / 2**20 for r in h.gc_trace],
                     label="heap after GC MiB", marker="braille", color="magenta")
        if len(goroutines):
            plt.plot([t - now for t in goroutines.times], goroutines.values,
                     label="goroutines", yside="right", marker="braille", color="cyan")
        for t in h.restarts:
            plt.vline(t - now, "yellow")
        plt.xlabel("seconds ago")
        plot.refresh()

    # -- actions ----------------------------------------------------------------

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_heap(self) -> None:
        self.app.open_heap(self.watched)

    def action_leaks(self) -> None:
        self.app.open_leaks(self.watched)

    def action_goroutines(self) -> None:
        self.app.open_goroutines(self.watched)

    def action_force_gc(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._run_gc()
        self.app.push_screen(ConfirmScreen(f"Run a garbage collection in {plain(self.watched.name)}?"), answered)

    @work(exclusive=True, group="action")
    async def _run_gc(self) -> None:
        try:
            via = await self.watched.target.gc()
            self.notify(f"Garbage collection ran (via {via})")
        except GotopError as e:
            self.notify(str(e), severity="error")

    def action_set_gogc(self) -> None:
        def entered(text: str | None) -> None:
            if text is None:
                return

            def confirmed(yes: bool | None) -> None:
                if yes:
                    self._run_setgc(parse_gc_percent(text))

            question = f"Set the GC percent of {plain(self.watched.name)} to {text}?"
            self.app.push_screen(ConfirmScreen(question), confirmed)

        self.app.push_screen(AskScreen("New GC percent (GOGC): a number such as 50, 100, 200, or 'off'",
                                       check=_gc_percent_problem), entered)

    @work(exclusive=True, group="action")
    async def _run_setgc(self, percent: int | None) -> None:
        try:
            change = await self.watched.target.set_gc_percent(percent)
            self.notify(plain(change.line))
        except GotopError as e:
            self.notify(str(e), severity="error")

    def action_cpu_profile(self) -> None:
        self._capture("cpu")

    def action_trace(self) -> None:
        self._capture("trace")

    def action_heap_profile(self) -> None:
        self._capture("heap")

    def _capture(self, kind: str) -> None:
        if self.capturing:
            self.notify(f"a {self.capturing} capture is running", severity="warning")
            return
        self.capturing = kind
        self._run_capture(kind)

    @work(group="capture")
    async def _run_capture(self, kind: str) -> None:
        bar = self._capture_bar
        bar.update(total=100, progress=0)
        bar.display = kind != "heap"

        def progress(p: CaptureProgress) -> None:
            bar.update(progress=p.fraction * 100)

        try:
            data = await capture(self.watched.target, kind, progress=progress)
            path = self.save_dir / default_name(kind, str(self.watched.pid or self.watched.name))
            save_private(str(path), data)
            self.notify(f"{kind} saved: {path}\nopen with: {opener(kind)} {path}", timeout=10)
        except (GotopError, OSError) as e:
            self.notify(f"{kind}: {e}", severity="error")
        finally:
            bar.display = False
            self.capturing = None

    @work(exclusive=True, group="action")
    async def action_dump(self) -> None:
        self.notify("Taking a goroutine dump...")
        try:
            text = await self.watched.target.goroutine_dump_text()
        except GotopError as e:
            self.notify(str(e), severity="error")
            return
        if gone(self):
            return
        self.app.push_screen(TextScreen(f"goroutine dump of {plain(self.watched.name)}", text))


def _gc_percent_problem(text: str) -> str | None:
    try:
        parse_gc_percent(text)
    except GotopError as e:
        return str(e)
    return None

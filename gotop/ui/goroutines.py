"""Goroutines grouped by stack, biggest growth first; a group's full stack on enter.

gotop's own goroutines (the handler serving its request for this very profile,
and the connection reader net/http starts beside it; gotop.model.monitoring)
are dimmed and marked "(gotop)"; `o` hides them.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.widgets import Footer

from gotop.engine.fleet import Watched
from gotop.engine.history import GroupTrend
from gotop.engine.leaks import Finding, GroupRef
from gotop.errors import GotopError
from gotop.model.goroutines import GoroutineGroup, StackKey
from gotop.model.monitoring import monitoring_groups
from gotop.textsafe import plain
from gotop.ui import keys
from gotop.ui.dialogs import TextScreen
from gotop.ui.names import short_function, short_label
from gotop.ui.screen import TargetScreen
from gotop.ui.spark import mini_spark
from gotop.ui.table import Column, LiveTable, SortableText, cell
from gotop.ui.widgets import Line, gone
from gotop.units import fmt_signed

COLUMNS = (
    Column("count", "COUNT", 8),
    Column("growth", "Δ/min", 7),
    Column("trend", "", 8, min_screen_width=100, justify="left"),
    Column("state", "STATE", 13, justify="left"),
    Column("label", "FUNCTION", 0, justify="left"),
    Column("where", "WHERE", 18, min_screen_width=110, justify="left"),
    Column("entry", "STARTED IN", 24, min_screen_width=130, justify="left"),
)
SORTS = ("growth", "count")


def growth_per_minute(trend: GroupTrend) -> float:
    return trend.counts.slope_per_minute() or 0.0


def row_for(group: GoroutineGroup, trend: GroupTrend | None, finding: Finding | None = None,
            proven: bool = False, own: bool = False) -> dict[str, SortableText]:
    """A group's row: yellow when it grows, red with ● when the detectors call it a leak
    (✔ when the runtime's goroutineleak profile proves it), dimmed when it is gotop's own."""
    growth = growth_per_minute(trend) if trend else 0.0
    dim = "dim" if own else ""
    style = "bold red" if finding or proven else "bold yellow" if growth >= 1 else dim
    mark = "✔ " if proven else "● " if finding else "(gotop) " if own else ""
    label, frame = group.label, group.label_frame
    entry = group.frames[-1].function if group.frames else ""
    return {
        "count": cell(f"{group.count:,}", group.count, style),
        "growth": cell(fmt_signed(growth) if trend and len(trend.counts) > 1 else "-", growth, style),
        "trend": cell(mini_spark(trend.counts.values) if trend else "", 0, dim or "cyan", justify="left"),
        "state": cell(plain(group.state or "-"), group.state or "", dim, justify="left"),
        "label": cell(mark + (plain(short_label(label)) or "(runtime only)"), label, style, justify="left"),
        "where": cell(plain(f"{frame.file.rsplit('/', 1)[-1]}:{frame.line}") if frame else "",
                      "", dim, justify="left"),
        "entry": cell(plain(short_function(entry)), entry, dim, justify="left"),
    }


def stack_text(group: GoroutineGroup, trend: GroupTrend | None) -> str:
    lines = [f"{group.count:,} goroutines"]
    if group.states:
        lines.append("states: " + ", ".join(f"{s} x{n}" for s, n in group.states.most_common()))
    elif group.state:
        lines.append(f"state (from the stack): {group.state}")
    if trend and len(trend.counts) > 1:
        span = trend.counts.times[-1] - trend.counts.times[0]
        lines.append(f"growth: {fmt_signed(growth_per_minute(trend), 1)}/min over {span:.0f} s"
                     f" (min {trend.counts.min:.0f}, max {trend.counts.max:.0f})")
    if group.leaked:
        lines.append(f"proven leaked by the runtime: {group.leaked}")
    if group.max_wait_minutes:
        lines.append(f"longest wait: {group.max_wait_minutes} minutes")
    for labels, n in group.labels.most_common():
        lines.append(f"labels {dict(labels)}: {n}")
    lines.append("")
    for frame in group.frames:
        lines.append(frame.function)
        lines.append(f"\t{frame.file}:{frame.line}")
    if group.created_by:
        lines.append(f"created by {group.created_by}")
    return "\n".join(lines)


class GoroutinesScreen(TargetScreen):
    BINDINGS = keys.bindings(keys.GOROUTINES)

    def __init__(self, watched: Watched, select: StackKey | None = None) -> None:
        super().__init__()
        self.watched = watched
        self._groups: dict[str, StackKey] = {}
        self._select = select  # a group to put the cursor on once shown
        self.hide_own = False  # leave out gotop's own goroutines

    def compose(self) -> ComposeResult:
        yield Line(id="title")
        table = LiveTable(COLUMNS, id="groups")
        table.sort_column, table.sort_reverse = "growth", True
        yield table
        yield Line("", id="legend")
        yield Footer()

    def mounted(self) -> None:
        self.refresh_data()

    @property
    def table(self) -> LiveTable:
        return self.query_one("#groups", LiveTable)

    def refresh_data(self) -> None:
        h = self.watched.history
        profile = h.goroutines
        title = Text.assemble(("goroutines", "bold"), f" · {plain(self.watched.name)}")
        if profile is None:
            reason = "waiting for the first grouped profile" if self.watched.target.has_goroutine_groups else \
                "grouped goroutines need net/http/pprof or a readable memory " \
                "(the agent only has full dumps: press d on the process)"
            self.query_one("#title", Line).update(title.append(f" · {reason}"))
            return
        when = h.groups and max(t.counts.times[-1] for t in h.groups.values())
        own = monitoring_groups(profile.groups)
        title.append(f" · {profile.total:,} in {len(profile.groups):,} groups")
        if own:
            mine = sum(g.count for g in profile.groups if g.key in own)
            title.append(f" · {mine:,} gotop's own" + (" (hidden)" if self.hide_own else ""), "dim")
        title.append(f" · window {h.window / 60:.0f} min · sort {self.table.sort_column}")
        if when:
            title.append(f" · {self.app.now() - when:.0f}s ago", "dim")
        self.query_one("#title", Line).update(title)
        shown = [g for g in profile.groups if not (self.hide_own and g.key in own)]
        self._groups = {str(hash(g.key)): g.key for g in shown}
        leaking = {f.ref.key: f for f in self.watched.findings if isinstance(f.ref, GroupRef)}
        proven = {g.key for g in h.leaks.groups} if h.leaks else set()
        self.table.show({str(hash(g.key)): row_for(g, h.groups.get(g.key), leaking.get(g.key), g.key in proven,
                                                   g.key in own) for g in shown})
        if self._select is not None and str(hash(self._select)) in self._groups:
            self.table.select(str(hash(self._select)))
            self._select = None
        growing = sum(1 for g in profile.groups if (t := h.groups.get(g.key)) and growth_per_minute(t) >= 1)
        self.query_one("#legend", Line).update(
            Text(f"{growing} growing group{'s' if growing != 1 else ''} (yellow)   ● leak  ✔ proven by the runtime   "
                 f"(gotop) dim: gotop's own, o {'shows' if self.hide_own else 'hides'} them   "
                 "enter full stack   w wait times (one full dump)", "dim"))

    def _selected(self) -> GoroutineGroup | None:
        key = self._groups.get(self.table.selected_key() or "")
        profile = self.watched.history.goroutines
        return profile.by_key().get(key) if profile and key is not None else None

    @on(LiveTable.RowSelected, "#groups")
    def action_stack(self) -> None:
        group = self._selected()
        if group:
            trend = self.watched.history.groups.get(group.key)
            self.app.push_screen(TextScreen(f"stack of {group.count:,} goroutines", stack_text(group, trend)))

    def action_sort_next(self) -> None:
        current = self.table.sort_column
        self.table.sort_by(SORTS[(SORTS.index(current) + 1) % len(SORTS)] if current in SORTS else SORTS[0], True)
        self.refresh_data()

    def action_toggle_own(self) -> None:
        self.hide_own = not self.hide_own
        self.refresh_data()

    def action_back(self) -> None:
        self.app.pop_screen()

    @work(exclusive=True, group="dump")
    async def action_wait_times(self) -> None:
        group = self._selected()
        if group is None:
            return
        self.notify("Taking one goroutine dump for the wait times...")
        try:
            dump = await self.watched.target.goroutine_dump()
        except GotopError as e:
            self.notify(str(e), severity="error")
            return
        if gone(self):
            return
        members = [g for g in dump.goroutines if g.key == group.key]
        self.app.push_screen(TextScreen(f"wait times of {short_label(group.label)}",
                                        wait_report(members)))


def wait_report(goroutines) -> str:
    """How long the goroutines of one group have waited, from a full dump."""
    if not goroutines:
        return "The group has no goroutines in the dump (it changed since the profile)."
    by_minutes: dict[int, int] = {}
    for g in goroutines:
        by_minutes[g.wait_minutes] = by_minutes.get(g.wait_minutes, 0) + 1
    states = sorted({g.state for g in goroutines})
    lines = [f"{len(goroutines):,} goroutines; states: {', '.join(states)}", "",
             "waiting for    goroutines"]
    for minutes in sorted(by_minutes, reverse=True):
        label = "< 1 minute" if minutes == 0 else f"{minutes} min"
        lines.append(f"{label:>13}  {by_minutes[minutes]:>10,}")
    oldest = sorted(goroutines, key=lambda g: -g.wait_minutes)[:20]
    lines += ["", "longest waiting: " + ", ".join(f"#{g.id} ({g.wait_minutes} min)" for g in oldest)]
    return "\n".join(lines)

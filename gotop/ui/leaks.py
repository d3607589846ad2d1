"""The leaks gotop sees in one process, each opening the view that shows its evidence."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import Footer, Static

from gotop.engine.fleet import Watched
from gotop.engine.leaks import DescriptorRef, Finding, GroupRef, SiteRef
from gotop.textsafe import plain
from gotop.ui import keys
from gotop.ui.dialogs import TextScreen
from gotop.ui.screen import TargetScreen
from gotop.ui.spark import mini_spark
from gotop.ui.table import Column, LiveTable, cell
from gotop.ui.widgets import Line
from gotop.units import fmt_bytes, fmt_count

COLUMNS = (
    Column("kind", "KIND", 10, justify="left"),
    Column("rate", "RATE/min", 10),
    Column("trend", "", 8, justify="left"),
    Column("since", "FOR", 7),
    Column("confidence", "CONF", 6, justify="left"),
    Column("where", "WHERE", 0, justify="left"),
)


def rate_text(f: Finding) -> str:
    return ("+" + fmt_bytes(f.rate_per_min)) if f.unit == "bytes" else f"{f.rate_per_min:+,.0f}"


def summary(f: Finding, now: float) -> str:
    """One line: what grows, where, how fast, for how long, on what evidence."""
    minutes = max(0.0, now - f.since) / 60
    return (f"● {f.kind.value} grow at {f.where}, {rate_text(f)}/min for {minutes:.0f} min "
            f"({f.basis.value})")


def evidence_text(f: Finding) -> str:
    lines = [f"{f.kind.value} at {f.where}", f"rate {rate_text(f)} {f.unit} per minute, "
             f"confidence {f.confidence.value}", "fails gotop check" if f.fails_gate
             else f"below gotop check's bar: {f.short_of}", ""]
    for evidence in f.evidence:
        lines.append(f"{evidence.basis.value}: {evidence.text}")
        if evidence.series:
            fmt = fmt_bytes if evidence.unit == "bytes" else fmt_count
            values = [v for _, v in evidence.series]
            lines.append(f"  {mini_spark(values, 40)}  {fmt(values[0])} -> {fmt(values[-1])} "
                         f"over {evidence.series[-1][0] - evidence.series[0][0]:.0f} s")
    return "\n".join(lines)


class LeaksScreen(TargetScreen):
    BINDINGS = keys.bindings(keys.LEAKS)

    def __init__(self, watched: Watched) -> None:
        super().__init__()
        self.watched = watched
        self._findings: dict[str, Finding] = {}

    def compose(self) -> ComposeResult:
        yield Line(id="title")
        yield LiveTable(COLUMNS, id="leaks")
        yield Static(Text("enter: the view with the evidence (goroutine group, heap site, descriptors)", "dim"),
                     id="legend")
        yield Footer()

    def mounted(self) -> None:
        self.refresh_data()

    @property
    def table(self) -> LiveTable:
        return self.query_one("#leaks", LiveTable)

    def refresh_data(self) -> None:
        now = self.app.now()
        findings = self.watched.findings
        self._findings = {str(hash(f.key)): f for f in findings}
        title = Text.assemble(("leaks", "bold"), f" · {plain(self.watched.name)} · ")
        title.append(f"{len(findings)} found" if findings else "none seen (yet)", "bold red" if findings else "")
        self.query_one("#title", Line).update(title)
        self.table.show({
            key: {
                "kind": cell(f.kind.value, f.kind.value, "bold red", justify="left"),
                "rate": cell(rate_text(f), f.rate_per_min),
                "trend": cell(mini_spark([v for _, v in f.evidence[0].series]), 0, "red", justify="left"),
                "since": cell(f"{max(0, now - f.since) / 60:.0f} min", f.since),
                "confidence": cell(f.confidence.value, f.confidence.value, justify="left"),
                "where": cell(plain(f"{f.where} — {f.basis.value}"), f.where, justify="left"),
            }
            for key, f in self._findings.items()
        })

    @on(LiveTable.RowSelected, "#leaks")
    def action_evidence(self) -> None:
        finding = self._findings.get(self.table.selected_key() or "")
        if finding is not None:
            open_evidence(self.app, self.watched, finding)


def open_evidence(app, watched: Watched, finding: Finding) -> None:
    """The view that shows what a finding rests on."""
    ref = finding.ref
    if isinstance(ref, GroupRef):
        app.open_goroutines(watched, select=ref.key)
    elif isinstance(ref, SiteRef) and ref.site is not None:
        app.open_heap(watched, select=ref.site.function)
    elif isinstance(ref, (SiteRef, DescriptorRef)):
        app.push_screen(TextScreen(f"evidence: {finding.kind.value} of {plain(watched.name)}", evidence_text(finding)))

"""Small widgets shared by the screens."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Sparkline, Static

from gotop.engine.series import Series

Formatter = Callable[[float], str]


class MetricRow(Horizontal):
    """One figure: its name, current value, a sparkline and its min..max.

    Textual's Sparkline scales to the data's own range, so the numbers beside
    it say what the height means.
    """

    DEFAULT_CSS = """
    MetricRow { height: 1; }
    MetricRow .name { width: 8; color: $text-muted; }
    MetricRow .value { width: 9; text-align: right; text-style: bold; }
    MetricRow Sparkline { width: 1fr; margin: 0 1; min-width: 4; }
    MetricRow .range { width: auto; max-width: 16; color: $text-muted; }
    """

    def __init__(self, name: str, fmt: Formatter, **kwargs) -> None:
        super().__init__(**kwargs)
        self.label = name
        self.fmt = fmt

    def compose(self) -> ComposeResult:
        yield Static(self.label, classes="name")
        yield Static("-", classes="value")
        yield Sparkline([], summary_function=max)
        yield Static("", classes="range")

    def show(self, series: Series, extra: str = "") -> None:
        values = series.values
        self.query_one(".value", Static).update(self.fmt(values[-1]) if values else "-", layout=False)
        self.query_one(Sparkline).data = values[-240:]
        if values:
            text = f"{self.fmt(min(values))}..{self.fmt(max(values))}"
            self.query_one(".range", Static).update(Text(f"{text} {extra}".rstrip()))

"""Small widgets shared by the screens."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Sparkline, Static

from gotop.engine.series import Series

Formatter = Callable[[float], str]


def gone(screen: Screen) -> bool:
    """The screen was popped, or the app is closing: its widgets may be removed already.
    Its mount handler, a worker resuming after an await or a callback can still run then:
    they must check this before they read a widget."""
    return not screen.is_attached or screen not in screen.app.screen_stack  # not attached: the app exits


class Line(Static):
    """One line of text whose size never changes: updates skip the layout pass
    (which would otherwise run for the whole screen on every tick), and the
    line is drawn again only when its text changed."""

    DEFAULT_CSS = "Line { height: 1; }"

    def __init__(self, content="", **kwargs) -> None:
        super().__init__(content, **kwargs)
        self._shown = content

    def update(self, content="", *, layout: bool = False) -> None:
        if _same(content, self._shown):
            return
        self._shown = content
        super().update(content, layout=layout)


def _same(a: object, b: object) -> bool:
    """Whether two contents look the same (rich's Text == leaves its own style out)."""
    if isinstance(a, Text) and isinstance(b, Text):
        return (a.plain, a.spans, a.style, a.justify) == (b.plain, b.spans, b.style, b.justify)
    return type(a) is type(b) and a == b


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

    def __init__(self, name: str, fmt: Formatter, *, id: str, **kwargs) -> None:
        super().__init__(id=id, **kwargs)
        self.label = name
        self.fmt = fmt
        self.figure = id  # the history series it shows: its id names it

    def compose(self) -> ComposeResult:
        yield Line(self.label, classes="name")
        yield Line("-", classes="value")
        yield Sparkline([], summary_function=max)
        yield Line("", classes="range")

    def show(self, series: Series, extra: str = "") -> None:
        values = series.values
        self.query_one(".value", Line).update(self.fmt(values[-1]) if values else "-")
        self.query_one(Sparkline).data = values[-240:]
        if values:
            text = f"{self.fmt(min(values))}..{self.fmt(max(values))}"
            self.query_one(".range", Line).update(Text(f"{text} {extra}".rstrip()))

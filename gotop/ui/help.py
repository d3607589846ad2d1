"""`?`: every key of every screen, from the same table the footer uses."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from gotop.ui import keys

ABOUT = (
    "gotop watches Go processes by reading their runtime from their memory (M), and through the "
    "gops agent (A), net/http/pprof / expvar (P, E) and Prometheus /metrics (R). "
    "Nothing in a target changes unless you confirm an action (GC, GOGC).\n\n"
    "heap in use: spans holding objects (HeapInuse). alloc: live objects (HeapAlloc). "
    "GC pause: stop-the-world time of each cycle. alloc/s: bytes allocated per second. "
    "Δ/min: growth per minute over the window. flat: allocated in the function itself; "
    "cum: in it and everything it calls.\n"
)


def key_table() -> Table:
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for title, screen_keys in keys.SCREENS.items():
        table.add_row(Text(title, "bold underline"), "")
        for key in screen_keys:
            table.add_row(key.display or key.keys, key.help)
        table.add_row("", "")
    return table


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(Text(ABOUT))
            yield Static(key_table())

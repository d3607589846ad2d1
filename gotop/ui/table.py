"""A table for live data: rows keyed, each row drawn only when it changes.

Live tables are refreshed every tick. Textual's DataTable redraws every cell
whenever one changes or the rows are sorted, which made the process list
cost more CPU than polling twenty processes. This widget keeps each row as a
rendered strip, redraws only rows whose cells changed, and keeps the cursor
on its row (by key) when rows are added, removed or re-sorted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


class SortableText(Text):
    """A cell that displays text but sorts by a number (or string)."""

    def __init__(self, text: str, sort_value: float | str, **kwargs) -> None:
        super().__init__(text, **kwargs)
        self.sort_value = sort_value


def cell(text: str, sort_value: float | str | None = None, style: str = "", justify: str = "right") -> SortableText:
    return SortableText(text, sort_value if sort_value is not None else text, style=style, justify=justify)


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int  # 0: whatever the other columns leave of the screen (at least 20)
    min_screen_width: int = 0  # shown only on terminals at least this wide
    justify: str = "right"


Row = dict[str, SortableText]


def _sort_value(cell: SortableText) -> tuple[int, float | str]:
    """Numbers before text, so missing figures ("-") gather at one end."""
    value = cell.sort_value
    return (0, value) if isinstance(value, (int, float)) else (1, value)


class LiveTable(ScrollView, can_focus=True):
    """Rows are {column key: SortableText}, given as a whole to `show` each tick."""

    DEFAULT_CSS = """
    LiveTable { background: $surface; }
    LiveTable > .live-table--header { text-style: bold; background: $panel; }
    LiveTable > .live-table--odd { background: $surface-lighten-1 10%; }
    LiveTable > .live-table--cursor { background: $block-cursor-background; color: $block-cursor-foreground;
                                      text-style: bold; }
    LiveTable:blur > .live-table--cursor { background: $block-cursor-blurred-background; text-style: none; }
    """
    COMPONENT_CLASSES = {"live-table--header", "live-table--odd", "live-table--cursor"}
    BINDINGS = [
        Binding("up", "cursor(-1)", show=False), Binding("down", "cursor(1)", show=False),
        Binding("pageup", "page(-1)", show=False), Binding("pagedown", "page(1)", show=False),
        Binding("home", "cursor(-1000000)", show=False), Binding("end", "cursor(1000000)", show=False),
        Binding("enter", "select_row", show=False),
    ]

    cursor_row: reactive[int] = reactive(0, repaint=False)

    class RowSelected(Message):
        """enter (or a click) on a row."""

        def __init__(self, table: LiveTable, key: str) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> LiveTable:
            return self.table

    class HeaderSelected(Message):
        """A click on a column heading."""

        def __init__(self, table: LiveTable, column: str) -> None:
            super().__init__()
            self.table = table
            self.column = column

        @property
        def control(self) -> LiveTable:
            return self.table

    def __init__(self, columns: Sequence[Column], **kwargs) -> None:
        super().__init__(**kwargs)
        self.all_columns = tuple(columns)
        self.sort_column: str | None = None
        self.sort_reverse = False
        self._rows: dict[str, Row] = {}
        self._order: list[str] = []
        self._strips: dict[str, Strip] = {}  # rendered rows, without cursor or stripes
        self._styles: dict[str | Style, Style] = {}  # a cell's style as the console resolves it
        self._shown: tuple[Column, ...] = ()
        self._widths: tuple[int, ...] = ()

    # -- what screens call --------------------------------------------------------

    @property
    def rows(self) -> dict[str, Row]:
        return self._rows

    @property
    def row_count(self) -> int:
        return len(self._order)

    def get_row(self, key: str) -> list[SortableText]:
        return [self._rows[key][c.key] for c in self._shown]

    def show(self, rows: dict[str, Row]) -> None:
        """Make the table show `rows` (key -> cells), in sort order, cursor kept on its row.
        Only the lines on screen that changed are drawn again: a frame of the whole
        process list cost Textual's compositor about 14 ms, most of the TUI's CPU."""
        selected = self.selected_key()
        shown_before = self._shown
        on_screen = self._screen_lines()
        self._layout_columns()
        for key in list(self._rows):
            if key not in rows:
                del self._rows[key]
                self._strips.pop(key, None)
        for key, cells in rows.items():
            old = self._rows.get(key)
            if old is cells:
                continue  # the screen's cached row: nothing to compare
            if old is None or any(_differs(old[c.key], cells[c.key]) for c in self._shown):
                self._strips.pop(key, None)
            self._rows[key] = cells
        self._order = [k for k in self._order if k in rows] + [k for k in rows if k not in self._order]
        self._sort()
        self.virtual_size = Size(sum(self._widths) + 2 * len(self._widths), len(self._order) + 1)
        top = round(self.scroll_y)
        if selected is not None and selected in self._rows:
            self._place_cursor(self._order.index(selected))
        if self._shown != shown_before or round(self.scroll_y) != top:
            self.refresh()
            return
        for y, (before, now) in enumerate(zip(on_screen, self._screen_lines()), start=1):
            if before != now:
                self.refresh_line(top + y)  # ScrollView's lines count the header too

    def _screen_lines(self) -> list[tuple[str | None, int, bool]]:
        """What each row line on screen shows: (row key, its rendered strip's id, under the
        cursor); a row whose cells changed has lost its strip."""
        top = round(self.scroll_y)
        lines = []
        for index in range(top, top + max(0, self.size.height - 1)):
            key = self._order[index] if index < len(self._order) else None
            lines.append((key, id(self._strips.get(key)) if key is not None else 0, index == self.cursor_row))
        return lines

    def visible_keys(self) -> list[str]:
        """The keys of the rows scrolled into view, top to bottom."""
        top = round(self.scroll_y)
        return self._order[top:top + max(0, self.size.height - 1)]  # the header takes a line

    def selected_key(self) -> str | None:
        return self._order[self.cursor_row] if 0 <= self.cursor_row < len(self._order) else None

    def select(self, key: str | None) -> None:
        if key is not None and key in self._rows:
            self.move_cursor(row=self._order.index(key))

    def move_cursor(self, row: int) -> None:
        self._place_cursor(row)
        self.refresh()

    def _place_cursor(self, row: int) -> None:
        """The cursor on `row`, scrolled into view."""
        self.cursor_row = max(0, min(row, len(self._order) - 1))
        top, height = round(self.scroll_y), self.size.height - 1
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False)
        elif height > 0 and self.cursor_row >= top + height:
            self.scroll_to(y=self.cursor_row - height + 1, animate=False)

    def sort_by(self, column: str, reverse: bool) -> None:
        self.sort_column, self.sort_reverse = column, reverse
        selected = self.selected_key()
        self._sort()
        self.select(selected)
        self.refresh()

    def columns_for(self, width: int) -> tuple[Column, ...]:
        return tuple(c for c in self.all_columns if width >= c.min_screen_width)

    def watch_show_vertical_scrollbar(self, shown: bool) -> None:
        # Textual moves the thumb only while the scrollbar is shown: after the rows
        # shrank (scrolled back to the top, bar hidden) and grew again, it would be
        # drawn where the table was scrolled before.
        if shown:
            self.vertical_scrollbar.position = self.scroll_y

    # -- keys and mouse -----------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        self.move_cursor(self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self.cursor_row + direction * max(1, self.size.height - 2))

    def action_select_row(self) -> None:
        key = self.selected_key()
        if key is not None:
            self.post_message(self.RowSelected(self, key))

    def on_click(self, event: Click) -> None:
        if event.y == 0:
            column = self._column_at(event.x + round(self.scroll_x))
            if column is not None:
                self.post_message(self.HeaderSelected(self, column))
            return
        row = round(self.scroll_y) + event.y - 1
        if 0 <= row < len(self._order):
            self.move_cursor(row)
            if event.chain > 1:
                self.action_select_row()

    # -- drawing ------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        scroll_x = round(self.scroll_x)
        if y == 0:
            style = self.get_component_rich_style("live-table--header")
            header = [cell(c.label, justify=c.justify) for c in self._shown]
            return self._line(header).crop_extend(scroll_x, scroll_x + width, style).apply_style(style)
        index = round(self.scroll_y) + y - 1
        if index >= len(self._order):
            return Strip.blank(width, self.rich_style)
        key = self._order[index]
        strip = self._strips.get(key)
        if strip is None:
            strip = self._strips[key] = self._line(self.get_row(key))
        if index == self.cursor_row:
            style = self.get_component_rich_style("live-table--cursor")
        elif index % 2:
            style = self.get_component_rich_style("live-table--odd")
        else:
            style = self.rich_style
        return strip.crop_extend(scroll_x, scroll_x + width, style).apply_style(style)

    def _line(self, cells: Sequence[Text]) -> Strip:
        segments: list[Segment] = []
        for text, column, width in zip(cells, self._shown, self._widths):
            segments.append(Segment(" "))
            segments.extend(self._cell(text, column.justify, width))
            segments.append(Segment(" "))
        return Strip(segments)

    def _cell(self, text: Text, justify: str, width: int) -> list[Segment]:
        """A cell's segments, `width` cells wide."""
        style = self._styles.get(text.style)
        if style is None:
            # Text.render leaves the text's own style out (the console adds it): add it here.
            style = self._styles[text.style] = self.app.console.get_style(text.style) if text.style else Style()
        if not text.spans and (length := cell_len(text.plain)) <= width:  # one style, fits: most cells
            gap = " " * (width - length)
            return [Segment(gap + text.plain if justify == "right" else text.plain + gap, style)]
        text = text.copy()
        text.truncate(width, overflow="ellipsis")
        if justify == "right":
            text.pad_left(width - text.cell_len)
        else:
            text.pad_right(width - text.cell_len)
        return list(Segment.apply_style(text.render(self.app.console, end=""), style))

    def _layout_columns(self) -> None:
        shown = self.columns_for(self.app.size.width)
        if shown == self._shown:
            return
        # Each column is padded by one cell on both sides; leave room for a scrollbar.
        fixed = sum(c.width + 2 for c in shown if c.width)
        fill = self.app.size.width - fixed - 2 * sum(1 for c in shown if not c.width) - 2
        self._shown = shown
        self._widths = tuple(c.width or max(20, fill) for c in shown)
        self._strips.clear()

    def _column_at(self, x: int) -> str | None:
        start = 0
        for column, width in zip(self._shown, self._widths):
            if start <= x < start + width + 2:
                return column.key
            start += width + 2
        return None

    def _sort(self) -> None:
        if self.sort_column and any(c.key == self.sort_column for c in self._shown):
            column = self.sort_column
            self._order.sort(key=lambda k: _sort_value(self._rows[k][column]), reverse=self.sort_reverse)


def _differs(a: Text, b: Text) -> bool:
    return a.plain != b.plain or a.style != b.style or a.spans != b.spans

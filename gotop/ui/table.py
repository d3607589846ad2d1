"""A DataTable for live data: rows keyed, updated in place, cursor kept on its row.

Live tables are refreshed every tick. Rebuilding them would reset the cursor
and cost CPU, so rows are diffed by key: new rows added, gone rows removed,
and only changed cells updated (never with update_width). After a re-sort
the cursor is moved back to the row it was on, not left at its index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist


class SortableText(Text):
    """A cell that displays text but sorts by a number (or string)."""

    def __init__(self, text: str, sort_value: float | str, **kwargs) -> None:
        super().__init__(text, **kwargs)
        self.sort_value = sort_value


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int  # 0: whatever the other columns leave of the screen (at least 20)
    min_screen_width: int = 0  # shown only on terminals at least this wide
    justify: str = "right"


class LiveTable(DataTable):
    """Rows are dicts {column key: SortableText}; see `show`."""

    def __init__(self, columns: Sequence[Column], **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.all_columns = tuple(columns)
        self.sort_column: str | None = None
        self.sort_reverse = False
        self._rows: dict[str, dict[str, SortableText]] = {}
        self._shown: tuple[Column, ...] = ()

    def columns_for(self, width: int) -> tuple[Column, ...]:
        return tuple(c for c in self.all_columns if width >= c.min_screen_width)

    def show(self, rows: dict[str, dict[str, SortableText]]) -> None:
        """Make the table show `rows` (key -> cells), in sort order, cursor kept."""
        shown = self.columns_for(self.app.size.width)
        if shown != self._shown:
            self._rebuild_columns(shown)
        selected = self.selected_key()
        for key in list(self._rows):
            if key not in rows:
                self.remove_row(key)
                del self._rows[key]
        for key, cells in rows.items():
            old = self._rows.get(key)
            if old is None:
                self.add_row(*(cells[c.key] for c in self._shown), key=key)
            else:
                for c in self._shown:
                    if old[c.key].plain != cells[c.key].plain or old[c.key].style != cells[c.key].style:
                        self.update_cell(key, c.key, cells[c.key])
            self._rows[key] = cells
        self._sort()
        self.select(selected)

    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except CellDoesNotExist:  # cursor outside the rows while they change
            return None

    def select(self, key: str | None) -> None:
        if key is not None and key in self._rows:
            self.move_cursor(row=self.get_row_index(key), animate=False, scroll=False)

    def sort_by(self, column: str, reverse: bool) -> None:
        self.sort_column, self.sort_reverse = column, reverse
        selected = self.selected_key()
        self._sort()
        self.select(selected)

    def _sort(self) -> None:
        """Re-sort only when the order changes: a sort makes the table redraw every cell."""
        if not self.sort_column or not any(c.key == self.sort_column for c in self._shown):
            return
        current = [row.key.value for row in self.ordered_rows]
        wanted = sorted(current, key=lambda k: _sort_value(self._rows[k][self.sort_column]), reverse=self.sort_reverse)
        if wanted != current:
            self.sort(self.sort_column, key=_sort_value, reverse=self.sort_reverse)

    def _rebuild_columns(self, shown: tuple[Column, ...]) -> None:
        self.clear(columns=True)
        self._rows.clear()
        # Each column is padded by one cell on both sides; leave room for a scrollbar.
        fill = self.app.size.width - sum(c.width + 2 for c in shown if c.width) - 2 * sum(1 for c in shown if not c.width) - 2
        for c in shown:
            label = Text(c.label, justify=c.justify)
            self.add_column(label, width=c.width or max(20, fill), key=c.key)
        self._shown = shown


def _sort_value(cell: SortableText) -> tuple[int, float | str]:
    """Numbers before text, so missing figures ("-") gather at one end."""
    value = cell.sort_value
    return (0, value) if isinstance(value, (int, float)) else (1, value)


def cell(text: str, sort_value: float | str | None = None, style: str = "", justify: str = "right") -> SortableText:
    return SortableText(text, sort_value if sort_value is not None else text, style=style, justify=justify)

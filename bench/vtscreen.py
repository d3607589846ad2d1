"""A minimal terminal screen: just enough of xterm to read what a Textual app shows.

Bytes written by the app go to `feed()`; `lines()` is the text on the screen
at that moment. It follows cursor addressing (CUP, CUU/CUD/CUF/CUB, CHA, VPA),
erasing (ED, EL), carriage return, line feed with scrolling, and the alternate
screen; colours, modes and OSC strings are skipped. Lines do not wrap (Textual
turns autowrap off). Wide characters take two cells.
"""

from __future__ import annotations

import codecs
import re
import unicodedata

_SEQUENCE = re.compile(
    r"\x1b\[(?P<params>[0-?]*)[ -/]*(?P<final>[@-~])"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC, ended by BEL or ST
    r"|\x1b[P^_X][^\x1b]*\x1b\\"  # DCS, PM, APC, SOS strings
    r"|\x1b[ -/]*[0-OQ-WYZ\\`a-~]"  # other escapes (charset selection, keypad modes, ...)
    r"|(?P<control>[\x00-\x1a\x1c-\x1f\x7f])"
    r"|(?P<text>[^\x00-\x1f\x7f]+)"
)
_MAX_PENDING = 4096  # an unfinished escape longer than this is garbage: drop it


def _width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


class Screen:
    def __init__(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        self.row = self.col = 0
        self._cells = [[" "] * cols for _ in range(rows)]
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def lines(self) -> list[str]:
        return ["".join(row).rstrip() for row in self._cells]

    def feed(self, data: bytes) -> None:
        text = self._pending + self._decoder.decode(data)
        self._pending = ""
        pos = 0
        while pos < len(text):
            match = _SEQUENCE.match(text, pos)
            if match is None:  # an escape sequence cut at the end of this chunk
                rest = text[pos:]
                if len(rest) < _MAX_PENDING:
                    self._pending = rest
                    return
                pos += 1
                continue
            pos = match.end()
            if match["text"] is not None:
                self._write(match["text"])
            elif match["control"] is not None:
                self._control(match["control"])
            elif match["final"] is not None:
                self._csi(match["params"], match["final"])

    # -- internals ------------------------------------------------------------

    def _write(self, text: str) -> None:
        cells = self._cells[self.row]
        for char in text:
            width = _width(char)
            if width == 0:
                continue
            col = min(self.col, self.cols - width)
            cells[col] = char
            if width == 2:
                cells[col + 1] = ""
            self.col = min(col + width, self.cols)

    def _control(self, char: str) -> None:
        if char == "\r":
            self.col = 0
        elif char == "\n":
            if self.row == self.rows - 1:
                self._cells.pop(0)
                self._cells.append([" "] * self.cols)
            else:
                self.row += 1
        elif char == "\b":
            self.col = max(self.col - 1, 0)
        elif char == "\t":
            self.col = min((self.col // 8 + 1) * 8, self.cols - 1)

    def _csi(self, params: str, final: str) -> None:
        if params.startswith("?"):
            if params in ("?1049", "?47", "?1047") and final in "hl":
                self._erase(0, self.rows)
            return
        numbers = [int(p) if p.isdigit() else 0 for p in params.split(";")] if params else []

        def arg(i: int, default: int) -> int:
            return numbers[i] if len(numbers) > i and numbers[i] else default

        if final in "Hf":
            self._move(arg(0, 1) - 1, arg(1, 1) - 1)
        elif final in "ABCD":
            step = arg(0, 1)
            d_row, d_col = {"A": (-step, 0), "B": (step, 0), "C": (0, step), "D": (0, -step)}[final]
            self._move(self.row + d_row, self.col + d_col)
        elif final == "G":
            self._move(self.row, arg(0, 1) - 1)
        elif final == "d":
            self._move(arg(0, 1) - 1, self.col)
        elif final == "K":
            start, end = {0: (self.col, self.cols), 1: (0, self.col + 1), 2: (0, self.cols)}.get(arg(0, 0), (0, 0))
            self._cells[self.row][start:end] = [" "] * (end - start)
        elif final == "J":
            mode = arg(0, 0)
            if mode == 0:
                self._cells[self.row][self.col:] = [" "] * (self.cols - self.col)
                self._erase(self.row + 1, self.rows)
            elif mode == 1:
                self._erase(0, self.row)
                self._cells[self.row][: self.col + 1] = [" "] * (self.col + 1)
            else:
                self._erase(0, self.rows)

    def _move(self, row: int, col: int) -> None:
        self.row = max(0, min(row, self.rows - 1))
        self.col = max(0, min(col, self.cols - 1))

    def _erase(self, first_row: int, end_row: int) -> None:
        for r in range(first_row, end_row):
            self._cells[r] = [" "] * self.cols

"""Modal questions and the text viewer."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, Label, Static, TextArea

from gotop.textsafe import plain, plain_lines


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no; `y`/`enter` confirm, `n`/`esc` cancel."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.question))
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", id="yes", variant="warning")
                yield Button("No (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class AskScreen(ModalScreen[str | None]):
    """One line of text; dismisses with it, or None on esc. `check` returns why
    an answer is refused (shown under the input), or None to accept it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, check: Callable[[str], str | None] = lambda text: None) -> None:
        super().__init__()
        self.question = question
        self.check = check

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.question))
            yield Input(id="answer")
            yield Static("", id="problem")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        problem = self.check(text)
        if problem is None:
            self.dismiss(text)
        else:
            self.query_one("#problem", Static).update(Text(plain(problem), "red"))

    def action_cancel(self) -> None:
        self.dismiss(None)


class TextScreen(Screen):
    """Read-only text from a target (a goroutine dump), shown as plain text."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.heading = title
        self.text = text

    def compose(self) -> ComposeResult:
        yield Static(Text(self.heading, "bold"), id="title")
        # TextArea renders its content verbatim: no markup, no escapes reach the terminal.
        yield TextArea(plain_lines(self.text), read_only=True, show_line_numbers=True, soft_wrap=False)
        yield Footer()

"""The base of the screens that ask the app for something (the display clock, another
screen), and that do their mount's work only while still shown."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual.screen import Screen

from gotop.ui.widgets import gone

if TYPE_CHECKING:
    from textual import getters

    from gotop.engine.fleet import Watched
    from gotop.ui.app import GotopApp


class GotopScreen(Screen):
    """A screen of GotopApp. `self.app` is typed as that app for the type checker only:
    gotop.ui.app imports the screens, so importing it here at run time would be a circle.

    A subclass does its mount's work in `mounted`, not on_mount: it runs only if the screen
    is still shown (one popped before its mount handler ran, or pushed as the app exits,
    has its widgets removed already)."""

    if TYPE_CHECKING:
        app = getters.app(GotopApp)

    def on_mount(self) -> None:
        if not gone(self):
            self.mounted()

    def mounted(self) -> None:
        """What the screen does once mounted, its widgets in place."""

    def shown_targets(self) -> Iterable[Watched]:
        """The targets whose live figures the screen shows now: the app asks the engine
        to poll them at the fast tier's pace (the others it may poll less often)."""
        return ()


class TargetScreen(GotopScreen):
    """A screen of one target's live figures (`watched`, set by the subclass)."""

    watched: Watched

    def shown_targets(self) -> tuple[Watched]:
        return (self.watched,)

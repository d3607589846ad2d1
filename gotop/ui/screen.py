"""The base of the screens that ask the app for something: the display clock, another screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.screen import Screen

if TYPE_CHECKING:
    from textual import getters

    from gotop.ui.app import GotopApp


class GotopScreen(Screen):
    """A screen of GotopApp. `self.app` is typed as that app for the type checker only:
    gotop.ui.app imports the screens, so importing it here at run time would be a circle."""

    if TYPE_CHECKING:
        app = getters.app(GotopApp)

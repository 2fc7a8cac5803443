"""What every area screen shares: the area bar on top, the key hints below."""

from __future__ import annotations

import gc

from textual.app import ComposeResult
from textual.screen import Screen

from cw_tui.widgets.area_bar import AreaBar
from cw_tui.widgets.key_bar import KeyBar


class AreaScreen(Screen):
    AREA = ""
    # Set when the user comes back to this area from another one; a modal closing over the
    # screen does not reload everything (the action behind the modal reloads what it changed).
    stale = False

    def compose_area(self) -> ComposeResult:
        yield from ()

    def compose(self) -> ComposeResult:
        yield AreaBar(self.AREA)
        yield from self.compose_area()
        yield KeyBar()

    def on_mount(self) -> None:
        # An area's widgets live as long as the app. Moved out of the garbage collector's
        # reach, they no longer make each full collection take 60-80 ms (a visible stall in
        # the middle of a key press); what is created later is collected as usual.
        self.call_after_refresh(gc.freeze)

    def refresh_gating(self) -> None:
        for bar in self.query(AreaBar):
            bar.refresh_gating()

    def on_screen_resume(self) -> None:
        self.refresh_gating()
        if self.stale:
            self.stale = False
            self.refresh_data()

    def refresh_data(self) -> None:
        """Reload what the screen shows (called when it comes back into view)."""

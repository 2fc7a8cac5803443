"""What every area screen shares: the area bar on top, the key hints below, and what happens
when the database refuses a change."""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import Any, TypeVar

from textual import events
from textual.app import ComposeResult
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from cw_tui.store.errors import STORE_ERRORS
from cw_tui.widgets.area_bar import AreaBar
from cw_tui.widgets.key_bar import KeyBar

F = TypeVar("F", bound=Callable[..., Any])


def guarded(method: F) -> F:
    """An action or callback that writes: a locked, read-only or full database is a message
    (SQLite rolled the change back), and the screen goes on. Textual would stop the screen's
    message loop on the exception."""
    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except STORE_ERRORS as error:
            self.app.database_problem(error)
            return None
    return wrapper  # type: ignore[return-value]


class AreaScreen(Screen):
    AREA = ""
    # Set when the user comes back to this area from another one; a modal closing over the
    # screen does not reload everything (the action behind the modal reloads what it changed).
    stale = False
    _painted = False  # shown once: until then its styles are the ones its mount gave it

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
        self.call_after_refresh(self._first_painted)

    def _first_painted(self) -> None:
        self._painted = True

    def guard(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        """`guarded` for a callback (a modal's answer)."""
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return callback(*args, **kwargs)
            except STORE_ERRORS as error:
                self.app.database_problem(error)
                return None
        return wrapper

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that fails on the database says so (a worker's error is otherwise silent)."""
        if event.state is WorkerState.ERROR and isinstance(event.worker.error, STORE_ERRORS):
            self.app.database_problem(event.worker.error)

    def refresh_gating(self) -> None:
        for bar in self.query(AreaBar):
            bar.refresh_gating()

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        if not self._painted:
            # The resumes of a screen's first switch (Textual posts two) would apply every
            # style of every widget again, just after its mount applied them: about a third of
            # a start's styling. Later resumes refresh them as Textual does.
            event.refresh_styles = False
        self.refresh_gating()
        if self.stale:
            self.stale = False
            self.refresh_data()

    def refresh_data(self) -> None:
        """Reload what the screen shows (called when it comes back into view)."""

"""TabbedContent whose underline moves in the same repaint that shows the new tab.

Textual moves the underline after the next refresh (`call_after_refresh`), so every tab
switch cost a second repaint a frame later (~30 ms at 160x45) only to move that bar. The
tabs do not move when one is chosen: where the active one lies is known at once."""

from __future__ import annotations

from textual.css.query import NoMatches
from textual.widgets import TabbedContent
from textual.widgets._tabbed_content import ContentTabs
from textual.widgets._tabs import Underline


class QuickTabbedContent(TabbedContent):
    def _watch_active(self, active: str) -> None:
        super()._watch_active(active)
        try:
            tabs = self.get_child_by_type(ContentTabs)
            tab = tabs.query_one("#tabs-list > Tab.-active")
            underline = tabs.query_one(Underline)
        except NoMatches:
            return
        region = tab.virtual_region.shrink(tab.styles.gutter)
        if region.width:  # laid out already (not the first show): Textual's later move then changes nothing
            underline.highlight_start, underline.highlight_end = region.column_span

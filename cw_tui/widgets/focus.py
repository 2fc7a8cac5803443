"""Where the keys go, plain in dark, light and NO_COLOR.

Textual marks a focused compact Input or Select with a 5% tint (background 234 against 235),
which no one sees, and NO_COLOR turns colours to greys. Every mark here is also a text style
(reverse video, bold, underline) or another border glyph, so it shows without colour. Tiles have
theirs in `tiles.py`."""

FOCUS_CSS = """
Input:focus, Input.-textual-compact:focus { text-style: reverse; }
Select:focus > SelectCurrent { text-style: bold reverse; }
Button:focus, Button.-textual-compact:focus { text-style: bold reverse; }
/* a label's component style cannot be reversed (Textual drops reverse there): underlined */
ToggleButton:focus > .toggle--label { text-style: bold underline; }
Switch:focus { border: round $accent; }
Tabs:focus .-active { text-style: bold reverse; }
DataTable:focus > .datatable--cursor { text-style: bold reverse; }
GridTable:focus > .grid-table--cursor { text-style: bold reverse; }
"""

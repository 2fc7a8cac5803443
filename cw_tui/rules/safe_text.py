"""Text from data (Platform files, ConnectWise, the logs) as a terminal may show it.

Names are untrusted: an ESC starts a terminal command, BEL rings, BS, CR and LF move the
cursor and leave stale text, a bidi control (U+202E) reverses what follows, and any of them
shifts a grid's columns. Each such character becomes one visible glyph, so a value keeps its
length and every other character is shown as it is. Stores, JSON output and CSV files keep
the exact value: only what reaches a terminal goes through here."""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"  # for controls without a control picture

# C0 controls, DEL and C1 controls; the bidi marks, embeddings, overrides and isolates; the
# line and paragraph separators (str.splitlines breaks lines there); lone surrogates (no
# encoding can write them).
_OTHERS = "\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff"
_ONE_LINE = re.compile(f"[\x00-\x1f{_OTHERS}]")
_MULTI_LINE = re.compile(f"[\x00-\x09\x0b-\x1f{_OTHERS}]")  # LF stays a line break


def _glyph(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ … ␟: ␛ for ESC, ␇ for BEL, ␍ for CR, ␊ for LF
    return "\u2421" if code == 0x7F else REPLACEMENT  # ␡ for DEL


def safe_text(value: Any, *, lines: bool = False) -> str:
    """`value` as text to show: every control, bidi control and line separator as one visible
    glyph (None is empty). `lines=True` keeps LF as a line break, for multi-line details."""
    text = "" if value is None else str(value)
    if text.isprintable():  # nearly every value: one pass in C, no copy
        return text
    return (_MULTI_LINE if lines else _ONE_LINE).sub(_glyph, text)

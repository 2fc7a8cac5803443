"""Property tests of the sanitizer of untrusted text (issue 11, part 1): what a terminal is
given holds no control, bidi control or line separator, one visible glyph stands for each,
and every other character is left as it is."""

from __future__ import annotations

import unicodedata

from hypothesis import example, given
from hypothesis import strategies as st
from rich.cells import cell_len

from cw_tui.rules.safe_text import safe_text

BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
HOSTILE = "Evil\x1b[31mRed\x07Bell\x08\x7f\r\nNext\u202eRLO\x9b [link=http://x]y[/link] [bold red]ACME[/]"


def unsafe(char: str) -> bool:
    """Independently of the code under test: what must never reach a terminal as it is."""
    return unicodedata.category(char) in ("Cc", "Zl", "Zp", "Cs") or char in BIDI


# every kind of character: the dangerous ones often, printable text in between
characters = st.one_of(
    st.characters(codec=None),
    st.sampled_from(sorted(BIDI) + [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]] + ["\u2028", "\u2029", "\ud800"]),
)
texts = st.text(characters)


@given(texts)
@example(HOSTILE)
def test_no_control_or_bidi_character_survives_and_each_becomes_one_glyph(text: str) -> None:
    shown = safe_text(text)
    assert not [c for c in shown if unsafe(c)]
    assert len(shown) == len(text)  # one glyph per control: nothing dropped, nothing added
    for before, after in zip(text, shown, strict=False):
        if unsafe(before):
            assert after != before and after.isprintable() and cell_len(after) == 1
        else:
            assert after == before


@given(st.text(st.characters(codec=None).filter(lambda c: not unsafe(c))))
def test_printable_text_is_unchanged(text: str) -> None:
    assert safe_text(text) == text
    assert safe_text(text, lines=True) == text


@given(texts)
def test_lines_keeps_line_feeds_only(text: str) -> None:
    shown = safe_text(text, lines=True)
    assert len(shown) == len(text)
    assert [n for n, c in enumerate(shown) if c == "\n"] == [n for n, c in enumerate(text) if c == "\n"]
    assert not [c for c in shown if unsafe(c) and c != "\n"]


@given(texts)
def test_showing_twice_changes_nothing_more(text: str) -> None:
    assert safe_text(safe_text(text)) == safe_text(text)


def test_the_glyphs_say_which_control_it_was() -> None:
    assert safe_text(HOSTILE) == ("Evil␛[31mRed␇Bell␈␡␍␊Next\ufffdRLO\ufffd [link=http://x]y[/link] [bold red]ACME[/]")
    assert safe_text("a\tb") == "a␉b"
    assert safe_text(None) == "" and safe_text(1250) == "1250"

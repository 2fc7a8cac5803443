from cw_tui.rules.words import plural


def test_counts_read_as_words() -> None:
    assert plural(1, "line") == "1 line"
    assert plural(0, "line") == "0 lines"
    assert plural(1204, "addition") == "1,204 additions"
    assert plural(2, "company") == "2 companies"
    assert plural(3, "child", "children") == "3 children"

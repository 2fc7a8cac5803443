"""Counts in a finance user's words: "1 line", "2 lines", "1,204 additions"."""

from __future__ import annotations

IRREGULAR = {"was": "were", "is": "are", "entry": "entries", "company": "companies", "this": "these"}


def plural(count: int, word: str, many: str | None = None) -> str:
    """`count` and `word`, in the plural unless the count is one; thousands grouped."""
    if count == 1:
        return f"1 {word}"
    return f"{count:,} {many or IRREGULAR.get(word) or word + 's'}"

"""Matching Platform records to ConnectWise records by exact normalised name or identifier
(SPEC §11 `automap`, §15 auto-match). A match is used only when it is unique."""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
C = TypeVar("C")


def normalise(text: str | None) -> str:
    """Case, accents, punctuation and spacing do not matter: "ACME, Inc." == "acme inc"."""
    if not text:
        return ""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().casefold()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", folded).split())


def unique_matches(
    items: Iterable[T],
    candidates: Iterable[C],
    item_keys: Callable[[T], Iterable[str | None]],
    candidate_keys: Callable[[C], Iterable[str | None]],
) -> list[tuple[T, C]]:
    """Pairs (item, candidate) where the item's normalised keys point at exactly one
    candidate. Keys shared by several candidates are ambiguous and never used."""
    index: dict[str, set[int]] = defaultdict(set)
    by_position = list(candidates)
    for position, candidate in enumerate(by_position):
        for key in candidate_keys(candidate):
            if normalised := normalise(key):
                index[normalised].add(position)
    result = []
    for item in items:
        found: set[int] = set()
        for key in item_keys(item):
            normalised = normalise(key)
            if normalised and len(index.get(normalised, ())) == 1:
                found |= index[normalised]
            elif normalised and len(index.get(normalised, ())) > 1:
                found = {-1, -2}  # ambiguous: never guess
                break
        if len(found) == 1:
            result.append((item, by_position[found.pop()]))
    return result

"""Key bindings: every binding has an id; a user's `keymap.toml` in the config folder remaps
them (Textual keymaps), e.g.

    [keymap]
    "app.dashboard" = "f2"
    "grid.sort" = "o"
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from textual.binding import Binding
from textual.keys import format_key

from cw_tui.services.paths import config_dir


def keymap_path() -> Path:
    return config_dir() / "keymap.toml"


def load_keymap(path: Path | None = None) -> tuple[dict[str, str], str | None]:
    """The remappings, and a message if the file could not be used (the app still starts)."""
    path = path or keymap_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, None
    except (OSError, ValueError) as error:
        return {}, f"{path}: not used ({error})"
    table = data.get("keymap", {})
    if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
        return {}, f"{path}: [keymap] must map binding ids to keys"
    return dict(table), None


SPELLED_OUT = {"enter", "delete", "escape", "space", "tab"}  # clearer as words than as Textual's glyphs


def key_display(keys: str) -> str:
    """"question_mark,f1" as "?, f1", "left_square_bracket" as "[", "ctrl+r" as is."""
    shown = []
    for key in keys.split(","):
        *modifiers, name = key.strip().split("+")
        shown.append("+".join([*modifiers, name if name in SPELLED_OUT else format_key(name)]))
    return ", ".join(shown)


def describe(bindings: list[tuple[str, list[Binding]]], keymap: dict[str, str]) -> list[tuple[str, str, str, str]]:
    """(where, keys, what, id) for every binding, as remapped."""
    rows = []
    for where, group in bindings:
        for binding in group:
            keys = keymap.get(binding.id or "", binding.key) if binding.id else binding.key
            label = binding.description or binding.action
            rows.append((where, key_display(keys), label, binding.id or ""))
    return rows

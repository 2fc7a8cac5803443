"""Where cw-tui keeps its files. Environment variables win over the platform defaults."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "cw-tui"


def is_database_url(text: str) -> bool:
    """A PostgreSQL database (postgresql://...) rather than a file."""
    return text.lower().startswith(("postgresql://", "postgres://"))


def default_database_path() -> Path | str:
    """The SQLite file, or the PostgreSQL URL, that CW_TUI_DB names; else the user's data folder."""
    override = os.environ.get("CW_TUI_DB")
    if override:
        return override if is_database_url(override) else Path(override).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "cw-tui.sqlite3"


def config_dir() -> Path:
    override = os.environ.get("CW_TUI_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))

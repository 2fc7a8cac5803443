"""Where cw-tui keeps its files. Environment variables win over the platform defaults."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "cw-tui"


def default_database_path() -> Path:
    override = os.environ.get("CW_TUI_DB")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "cw-tui.sqlite3"


def config_dir() -> Path:
    override = os.environ.get("CW_TUI_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))

"""`cw-tui` alone: the app on the user's database. Apart from the other commands, whose
modules (the ConnectWise client, httpx, pydantic, the sync engine) the app's start does not
need before its first screen is painted."""

from __future__ import annotations

import argparse

from cw_tui.cli.common import EXIT_OK, _store


def cmd_app(args: argparse.Namespace) -> int:
    from cw_tui.app import CwTuiApp

    with _store(args) as store:
        app = CwTuiApp(store)
        app.run()
    return app.return_code or EXIT_OK

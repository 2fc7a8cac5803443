"""The entry point: runs a command and turns every failure into a message and an exit code."""


from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from cw_tui.cli.app_command import cmd_app
from cw_tui.cli.common import (
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    UsageError,
    _database_path,
)
from cw_tui.cli.parser import build_parser
from cw_tui.rules.safe_text import safe_text


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        args.handler = cmd_app  # `cw-tui` alone opens the app
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("cw-tui: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        return _failed(error, args)


def _failed(error: Exception, args: argparse.Namespace) -> int:
    """The message and the exit code of a command that failed. The modules whose errors these
    are (the ConnectWise client with httpx and pydantic, the sync engine) are imported here,
    when something failed, and not before every start of the app."""
    from cw_tui.platform.files import PlatformDataError
    from cw_tui.services import system_log
    from cw_tui.services.connectwise import (
        AuthenticationFailed,
        ConnectWiseError,
        InvalidSettings,
        NotFound,
        PermissionDenied,
        Redirected,
        TLSFailure,
    )
    from cw_tui.services.connectwise_data import CacheShrinkRefused
    from cw_tui.services.credentials import CredentialsError
    from cw_tui.store import DATABASE_ERRORS, StoreError, describe_error
    from cw_tui.sync import SyncNotReady

    if isinstance(error, PlatformDataError):
        print(f"cw-tui: the Platform data was not loaded; nothing was changed. {error.total} problem(s):", file=sys.stderr)
        print(safe_text(str(error), lines=True), file=sys.stderr)  # problems quote the files' cells
        return EXIT_USAGE
    if isinstance(error, ConnectWiseError):
        print(f"cw-tui: ConnectWise: {safe_text(system_log.redact(error.message))}", file=sys.stderr)
        configuration = (AuthenticationFailed, PermissionDenied, NotFound, InvalidSettings, TLSFailure, Redirected)
        return EXIT_USAGE if isinstance(error, configuration) else EXIT_PARTIAL
    if isinstance(error, (UsageError, StoreError, CredentialsError, SyncNotReady, CacheShrinkRefused)):
        print(f"cw-tui: error: {safe_text(system_log.redact(str(error)))}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(error, DATABASE_ERRORS):
        # locked, damaged, read-only or full: the file and the cause, never a bare driver message
        print(f"cw-tui: error: {safe_text(system_log.redact(describe_error(_database_path(args)[0], error)))}",
              file=sys.stderr)
        return EXIT_USAGE
    if isinstance(error, BrokenPipeError):
        # the reader went away (e.g. `| head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    print(f"cw-tui: unexpected error: {safe_text(system_log.redact(type(error).__name__ + ': ' + str(error)))}",
          file=sys.stderr)
    if os.environ.get("CW_TUI_DEBUG"):
        traceback.print_exc()
    else:
        print("cw-tui: set CW_TUI_DEBUG=1 for the details", file=sys.stderr)
    return EXIT_PARTIAL

"""The entry point: runs a command and turns every failure into a message and an exit code."""


from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cw_tui.platform.files import PlatformDataError
from cw_tui.rules.safe_text import safe_text
from cw_tui.services import system_log
from cw_tui.store import (
    DATABASE_ERRORS,
    StoreError,
    describe_error,
)

if TYPE_CHECKING:
    pass

from cw_tui.cli.common import (
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    UsageError,
    _database_path,
)
from cw_tui.cli.parser import build_parser


def _raised(module: str, *names: str) -> tuple[type[BaseException], ...]:
    """These exception classes of `module` if it was imported, else none (`except ()` takes
    nothing): an error of a module a command never imported cannot have been raised, and
    importing it only to catch nothing would cost most of a short command's start-up."""
    loaded = sys.modules.get(module)
    return tuple(getattr(loaded, name) for name in names) if loaded is not None else ()


_CONNECTWISE = "cw_tui.services.connectwise.errors"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        from cw_tui.cli.commands import cmd_app

        args.handler = cmd_app  # `cw-tui` alone opens the app
    try:
        return args.handler(args)
    except PlatformDataError as error:
        print(f"cw-tui: the Platform data was not loaded; nothing was changed. {error.total} problem(s):", file=sys.stderr)
        print(safe_text(str(error), lines=True), file=sys.stderr)  # problems quote the files' cells
        return EXIT_USAGE
    except _raised(_CONNECTWISE, "ConnectWiseError") as error:
        print(f"cw-tui: ConnectWise: {safe_text(system_log.redact(error.message))}", file=sys.stderr)
        configuration = _raised(_CONNECTWISE, "AuthenticationFailed", "PermissionDenied", "NotFound", "InvalidSettings",
                                "TLSFailure", "Redirected")
        return EXIT_USAGE if isinstance(error, configuration) else EXIT_PARTIAL
    except (UsageError, StoreError, *_raised("cw_tui.services.credentials", "CredentialsError"),
            *_raised("cw_tui.sync.errors", "SyncNotReady"),
            *_raised("cw_tui.services.connectwise_data", "CacheShrinkRefused")) as error:
        print(f"cw-tui: error: {safe_text(system_log.redact(str(error)))}", file=sys.stderr)
        return EXIT_USAGE
    except DATABASE_ERRORS as error:
        # locked, damaged, read-only or full: the file and the cause, never a bare driver message
        print(f"cw-tui: error: {safe_text(system_log.redact(describe_error(_database_path(args)[0], error)))}",
              file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("cw-tui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as error:
        print(f"cw-tui: unexpected error: {safe_text(system_log.redact(type(error).__name__ + ': ' + str(error)))}",
              file=sys.stderr)
        if os.environ.get("CW_TUI_DEBUG"):
            traceback.print_exc()
        else:
            print("cw-tui: set CW_TUI_DEBUG=1 for the details", file=sys.stderr)
        return EXIT_PARTIAL

"""One way to run a service from the UI: in a thread worker (the UI never waits, and the
engine never runs on the UI loop), with one error policy. A job's outcome comes back to the
UI thread: `done(result)` on success; on failure the error is logged in the System Logs (in
the job's category, with ConnectWise's details where there are some) and the user is told
"<what> failed: <why>" in plain text. A database that refuses a change is the app's
`database_problem`. `failed(error) -> bool` may take an error over first (e.g. a refused cache
shrink that asks the user); returning False leaves it to the policy.

Workers post their outcome to the UI thread and handlers update the screen (harlequin's
pattern); nothing in a job touches a widget.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from textual.dom import DOMNode
from textual.worker import Worker

from cw_tui.rules.safe_text import safe_text
from cw_tui.services import system_log
from cw_tui.store.errors import STORE_ERRORS


def run_service(node: DOMNode, what: str, job: Callable[[], Any], *, category: system_log.Category,
                done: Callable[[Any], None] | None = None, failed: Callable[[BaseException], bool] | None = None,
                group: str | None = None, exclusive: bool = True) -> Worker:
    """Run `job` (a function, or one returning a coroutine) in a thread worker of `node`."""
    app = node.app

    def body() -> None:
        try:
            result = job()
            if inspect.iscoroutine(result):
                result = asyncio.run(result)
        except Exception as error:
            app.call_from_thread(_fail, app, what, category, error, failed)
            return
        if done is not None:
            app.call_from_thread(done, result)

    return node.run_worker(body, name=what, group=group or what, thread=True, exclusive=exclusive,
                           exit_on_error=False)


def _fail(app: Any, what: str, category: system_log.Category, error: BaseException,
          failed: Callable[[BaseException], bool] | None) -> None:
    if failed is not None and failed(error):
        return
    report_failure(app, what, category, error)


def report_failure(app: Any, what: str, category: system_log.Category, error: BaseException) -> None:
    """The one error policy: log it, then tell the user in plain words (never markup)."""
    if isinstance(error, STORE_ERRORS):
        app.database_problem(error)
        return
    details = error.details() if hasattr(error, "details") else f"{type(error).__name__}: {error}"
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    try:
        system_log.write(app.store, system_log.Level.ERROR, category, f"{what} failed", details)
    except STORE_ERRORS:
        pass  # the message on screen is what is left
    app.notify(f"{what} failed: {safe_text(system_log.redact(message))}", severity="error", timeout=12, markup=False)

"""Typed ConnectWise errors. Each carries what ConnectWise said (status, code, message,
errors[]) and says in one sentence what went wrong and what to do. None holds a secret, and
text from the answer is made harmless first (`harmless`, `body_start`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from cw_tui.services.system_log import redact

BODY_START_CHARS = 200  # how much of an odd answer's body a message shows
# C0 controls (ESC among them), DEL and C1 (CSI): a body could move the cursor or retitle the terminal
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[ \t\r\n]+")


@dataclass(frozen=True)
class FieldError:
    code: str | None
    message: str | None
    resource: str | None = None
    field: str | None = None


class ConnectWiseError(Exception):
    """ConnectWise answered with an error, or could not be reached."""

    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        cw_message: str | None = None,
        errors: list[FieldError] | None = None,
        request_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.cw_message = cw_message
        self.errors = errors or []
        self.request_id = request_id
        self.method = method
        self.path = path

    def details(self) -> str:
        """Everything ConnectWise said, for a log entry or an Error line."""
        parts = [self.message]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(f"code {self.code}")
        if self.cw_message and self.cw_message not in self.message:
            parts.append(f"message: {self.cw_message}")
        for error in self.errors:
            where = "/".join(x for x in (error.resource, error.field) if x)
            parts.append(f"{where + ': ' if where else ''}{error.message or error.code}")
        if self.method and self.path:
            parts.append(f"{self.method} {self.path}")
        if self.request_id:
            parts.append(f"request {self.request_id}")
        return "; ".join(parts)


class AuthenticationFailed(ConnectWiseError):
    kind = "authentication"


class PermissionDenied(ConnectWiseError):
    kind = "permission"


class NotFound(ConnectWiseError):
    kind = "not_found"


class RequestRejected(ConnectWiseError):
    """400 and other final 4xx: the request was understood and refused; do not retry it."""

    kind = "rejected"


class UnsupportedVersion(RequestRejected):
    """ConnectWise does not serve the API version cw-tui pins in `Accept` (API-NOTES §1.4)."""


class Throttled(ConnectWiseError):
    kind = "throttled"


class ServerError(ConnectWiseError):
    kind = "server"


class Outage(ServerError):
    """An HTML error page (a proxy's 403 or 503) in front of the API: ConnectWise itself did
    not answer."""


class BadResponse(ServerError):
    """An answer that cannot be what was asked for: an empty or non-list body on a list, a
    body over the size limit, a list that never ends. Nothing of it is used."""

    kind = "bad_response"


class Redirected(ConnectWiseError):
    """A 3xx answer. It is never followed (it would carry the credentials elsewhere): the API
    URL is most likely wrong."""

    kind = "redirect"


class ConnectionFailed(ConnectWiseError):
    kind = "connection"


class TLSFailure(ConnectionFailed):
    kind = "tls"


class TimedOut(ConnectWiseError):
    kind = "timeout"


class OutcomeUnknown(ConnectWiseError):
    """A write was sent and no answer came back: ConnectWise may or may not have applied it.
    It is never retried blindly; the caller looks the record up first."""

    kind = "outcome_unknown"


class InvalidSettings(ConnectWiseError):
    """The API URL or credentials are not usable as given (nothing was sent)."""

    kind = "settings"


def harmless(text: str, limit: int = BODY_START_CHARS) -> str:
    """Text an answer brought, fit for a message: secrets masked, line breaks as spaces,
    other control characters as U+FFFD, at most `limit` characters (then an ellipsis). The
    masking sees more than is shown, so that no part of a secret across the cut shows."""
    text = _CONTROLS.sub("\ufffd", _SPACES.sub(" ", redact(text[: limit * 8])).strip())
    return text if len(text) <= limit else text[:limit] + "…"


def body_start(content: bytes) -> str:
    """The start of a body, quoted, for a message; `an empty body` when there is none."""
    if not content or content.isspace():
        return "an empty body"
    return f'"{harmless(content[: BODY_START_CHARS * 8].decode("utf-8", "replace"))}"'


def _said(value: Any, limit: int = 500) -> str | None:
    return harmless(str(value), limit) if value not in (None, "") else None


def parse_error_body(content: bytes) -> tuple[str | None, str | None, list[FieldError]]:
    """Both ConnectWise shapes ({code, message, errors} and the 429 {error, message}),
    and anything else (an HTML page from a proxy) without failing. Every text is made
    harmless and cut (an error body can be as large as any other)."""
    try:
        data: Any = json.loads(content)
    except (ValueError, RecursionError):
        text = content[: BODY_START_CHARS * 8].decode("utf-8", "replace").strip()
        return None, (harmless(text) if text and not text.startswith("<") else None), []
    if not isinstance(data, dict):
        return None, None, []
    code = data.get("code") or data.get("error")
    errors = []
    for item in data.get("errors") if isinstance(data.get("errors"), list) else []:
        if isinstance(item, dict):
            errors.append(FieldError(_said(item.get("code")), _said(item.get("message")), _said(item.get("resource")),
                                     _said(item.get("field"))))
    return _said(code) if code else None, _said(data.get("message")), errors

"""Typed ConnectWise errors. Each carries what ConnectWise said (status, code, message,
errors[]) and says in one sentence what went wrong and what to do. None holds a secret."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


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


class Throttled(ConnectWiseError):
    kind = "throttled"


class ServerError(ConnectWiseError):
    kind = "server"


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


def parse_error_body(content: bytes) -> tuple[str | None, str | None, list[FieldError]]:
    """Both ConnectWise shapes ({code, message, errors} and the 429 {error, message}),
    and anything else (an HTML page from a proxy) without failing."""
    try:
        data: Any = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        text = content.decode("utf-8", "replace").strip()
        return None, (text[:200] if text and not text.startswith("<") else None), []
    if not isinstance(data, dict):
        return None, None, []
    code = data.get("code") or data.get("error")
    message = data.get("message")
    errors = []
    for item in data.get("errors") or []:
        if isinstance(item, dict):
            errors.append(FieldError(item.get("code"), item.get("message"), item.get("resource"), item.get("field")))
    return (str(code) if code else None), (str(message) if message else None), errors

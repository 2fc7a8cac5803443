"""Our thin ConnectWise Manage REST client (httpx, lenient pydantic models)."""

from cw_tui.services.connectwise.client import ConnectWiseClient
from cw_tui.services.connectwise.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ConnectWiseError,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    RequestRejected,
    ServerError,
    Throttled,
    TimedOut,
    TLSFailure,
)

__all__ = [
    "AuthenticationFailed",
    "ConnectWiseClient",
    "ConnectWiseError",
    "ConnectionFailed",
    "NotFound",
    "OutcomeUnknown",
    "PermissionDenied",
    "RequestRejected",
    "ServerError",
    "TLSFailure",
    "Throttled",
    "TimedOut",
]

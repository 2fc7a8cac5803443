"""Our thin ConnectWise Manage REST client (httpx, lenient pydantic models)."""

from cw_tui.services.connectwise.client import ConnectWiseClient
from cw_tui.services.connectwise.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ConnectWiseError,
    NotFound,
    Outage,
    OutcomeUnknown,
    PermissionDenied,
    RequestRejected,
    ServerError,
    Throttled,
    TimedOut,
    TLSFailure,
    UnsupportedVersion,
)

__all__ = [
    "AuthenticationFailed",
    "ConnectWiseClient",
    "ConnectWiseError",
    "ConnectionFailed",
    "NotFound",
    "Outage",
    "OutcomeUnknown",
    "PermissionDenied",
    "RequestRejected",
    "ServerError",
    "TLSFailure",
    "Throttled",
    "TimedOut",
    "UnsupportedVersion",
]

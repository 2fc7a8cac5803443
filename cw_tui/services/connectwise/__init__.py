"""Our thin ConnectWise Manage REST client (httpx, lenient pydantic models), and every error
it raises. The errors form one tree:

    ConnectWiseError
      AuthenticationFailed          401
      PermissionDenied              403: a security role is missing
      NotFound                      404
      RequestRejected               400, with ConnectWise's field errors (FieldError)
        UnsupportedVersion          the API version cw-tui asks for is not served
      Throttled                     429
      ServerError                   5xx
        Outage                      an HTML page in front of the API
        BadResponse                 an answer that is not what the API describes
      Redirected                    3xx: never followed with credentials
      ConnectionFailed
        TLSFailure
      TimedOut
      OutcomeUnknown                a write that may have been applied: look before posting again
      InvalidSettings               refused before anything was sent
"""

from cw_tui.services.connectwise.client import ConnectWiseClient
from cw_tui.services.connectwise.errors import (
    AuthenticationFailed,
    BadResponse,
    ConnectionFailed,
    ConnectWiseError,
    FieldError,
    InvalidSettings,
    NotFound,
    Outage,
    OutcomeUnknown,
    PermissionDenied,
    Redirected,
    RequestRejected,
    ServerError,
    Throttled,
    TimedOut,
    TLSFailure,
    UnsupportedVersion,
)

__all__ = ["ConnectWiseClient", "AuthenticationFailed", "BadResponse", "ConnectionFailed", "ConnectWiseError", "FieldError", "InvalidSettings", "NotFound", "Outage", "OutcomeUnknown", "PermissionDenied", "Redirected", "RequestRejected", "ServerError", "Throttled", "TimedOut", "TLSFailure", "UnsupportedVersion"]

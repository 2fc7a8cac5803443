"""ConnectWise credentials: kept outside the database, in a file only the user can read
(mode 0600, in the user config folder); environment variables take precedence.

The private key and the client ID are secrets: they are registered with the System Log
redactor as soon as they are read, and `Credentials.__repr__` masks them.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, fields, replace
from pathlib import Path

from cw_tui.services.paths import config_dir
from cw_tui.services.system_log import MASK, register_secret

ENVIRONMENT = {
    "url": "CW_URL",
    "company_id": "CW_COMPANY_ID",
    "public_key": "CW_PUBLIC_KEY",
    "private_key": "CW_PRIVATE_KEY",
    "client_id": "CW_CLIENT_ID",
}
LABELS = {
    "url": "API URL",
    "company_id": "Company ID",
    "public_key": "Public Key",
    "private_key": "Private Key",
    "client_id": "Client ID",
}


class CredentialsError(Exception):
    pass


@dataclass(frozen=True)
class Credentials:
    url: str = ""
    company_id: str = ""
    public_key: str = ""
    private_key: str = ""
    client_id: str = ""

    def __repr__(self) -> str:
        return (
            f"Credentials(url={self.url!r}, company_id={self.company_id!r}, public_key={self.public_key!r}, "
            f"private_key={MASK if self.private_key else ''!r}, client_id={MASK if self.client_id else ''!r})"
        )

    __str__ = __repr__

    def missing(self) -> list[str]:
        return [LABELS[f.name] for f in fields(self) if not getattr(self, f.name).strip()]

    def complete(self) -> bool:
        return not self.missing()

    def register_secrets(self) -> None:
        register_secret(self.private_key)
        register_secret(self.client_id)


def credentials_path() -> Path:
    return config_dir() / "credentials.json"


def load_saved(path: Path | None = None) -> Credentials | None:
    """The saved credentials, or None. A damaged file is an error, not silently ignored."""
    path = path or credentials_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CredentialsError(f"cannot read {path}: {error.strerror}") from None
    _check_private(path)
    try:
        data = json.loads(text)
        creds = Credentials(**{f.name: str(data.get(f.name, "")) for f in fields(Credentials)})
    except (ValueError, TypeError, AttributeError):
        raise CredentialsError(f"{path} is damaged; run `cw-tui connect` again to replace it") from None
    creds.register_secrets()
    return creds


def _check_private(path: Path) -> None:
    """As ssh refuses a private key others can read: the file holds the private key and the
    client ID, so a copy readable by the group or others (or owned by someone else) is
    refused rather than used."""
    info = path.stat()
    mode = info.st_mode & 0o777
    if mode & 0o077:
        raise CredentialsError(
            f"{path} can be read or changed by other users (mode {mode:04o}); it holds your ConnectWise private key. "
            f"Run `chmod 600 {path}` (and change the key in ConnectWise if others may have read it), then try again"
        )
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise CredentialsError(f"{path} belongs to another user (uid {info.st_uid}); run `cw-tui connect` to save "
                               "your own credentials")


def from_environment(base: Credentials | None = None) -> Credentials:
    """`base` (usually the saved credentials) with every CW_* variable that is set on top."""
    base = base or Credentials()
    overrides = {name: os.environ[var] for name, var in ENVIRONMENT.items() if os.environ.get(var)}
    creds = replace(base, **overrides)
    creds.register_secrets()
    return creds


def current(path: Path | None = None) -> Credentials | None:
    """What cw-tui uses: the saved file with environment variables taking precedence."""
    saved = load_saved(path)
    creds = from_environment(saved)
    return creds if (saved is not None or creds.complete()) else None


def save(creds: Credentials, path: Path | None = None) -> Path:
    """Write atomically, created with mode 0600 (never briefly world-readable)."""
    path = path or credentials_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".credentials-", dir=path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({f.name: getattr(creds, f.name) for f in fields(creds)}, handle)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise CredentialsError(f"cannot save credentials to {path}: {error.strerror}") from None
    creds.register_secrets()
    return path

"""The ConnectWise Manage REST client (API-NOTES §0-§4).

- Basic auth `companyId+publicKey:privateKey`, the `clientId` header, a pinned `Accept`.
- API base derived from the site URL: cloud `api-` host, codebase from
  `/login/companyinfo/{companyId}` (falling back to `v4_6_release`).
- Lists follow every page (`pageSize` 1000, `Link: rel="next"`), keeping the conditions.
- Retries with exponential backoff and jitter: 429 (honouring `Retry-After`) for every
  method; 5xx, timeouts and dropped connections for safe methods (GET, PATCH, DELETE).
  A POST whose outcome is unknown is never retried: it raises `OutcomeUnknown`.
- At most `max_in_flight` requests at once and `requests_per_minute` in any minute.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import ipaddress
import json
import random
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from cw_tui.services.connectwise import models
from cw_tui.services.connectwise.conditions import all_of, condition
from cw_tui.services.connectwise.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ConnectWiseError,
    InvalidSettings,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    RequestRejected,
    ServerError,
    Throttled,
    TimedOut,
    TLSFailure,
    parse_error_body,
)
from cw_tui.services.credentials import Credentials

API_VERSION = "2025.1"
DEFAULT_CODEBASE = "v4_6_release"
CLOUD_SITES = {
    "na.myconnectwise.net", "eu.myconnectwise.net", "au.myconnectwise.net", "aus.myconnectwise.net",
    "za.myconnectwise.net", "staging.connectwisedev.com",
}
PAGE_SIZE = 1000
SAFE_METHODS = {"GET", "HEAD", "PATCH", "PUT", "DELETE"}  # idempotent: a retry cannot duplicate
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
M = TypeVar("M", bound=models.CWModel)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def site_parts(url: str) -> tuple[str, str, str, str]:
    """(scheme, site host[:port] for companyinfo, API host[:port], explicit base path or '')."""
    text = url.strip()
    if not text:
        raise InvalidSettings("the API URL is empty (e.g. https://na.myconnectwise.net)")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        raise InvalidSettings(f"not a web address: {url!r} (e.g. https://na.myconnectwise.net)")
    if scheme == "http" and not is_loopback(host):
        raise InvalidSettings("ConnectWise requires https; plain http is accepted only for a local sandbox (127.0.0.1)")
    port = f":{parts.port}" if parts.port else ""
    if host.startswith("api-") and host[4:] in CLOUD_SITES:
        site, api = host[4:], host
    elif host in CLOUD_SITES:
        site, api = host, "api-" + host
    else:
        site = api = host
    path = parts.path.rstrip("/")
    base_path = path if "/apis/3.0" in path else ""
    return scheme, site + port, api + port, base_path


class _MinuteBudget:
    """At most `limit` request starts in any 60-second window."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.clock = clock
        self.starts: collections.deque[float] = collections.deque()
        self.lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self.lock:
            while True:
                now = self.clock()
                while self.starts and now - self.starts[0] >= 60:
                    self.starts.popleft()
                if len(self.starts) < self.limit:
                    self.starts.append(now)
                    return
                # wake at least once a second: cheap, and robust to clock adjustments
                await asyncio.sleep(min(1.0, 60 - (now - self.starts[0]) + 0.001))


class ConnectWiseClient:
    def __init__(
        self,
        credentials: Credentials,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        max_in_flight: int = 8,
        requests_per_minute: int = 1000,
        retries: int = 5,
        backoff_base: float = 0.25,
        backoff_cap: float = 10.0,
        max_retry_after: float = 60.0,
        api_version: str = API_VERSION,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        missing = credentials.missing()
        if missing:
            raise InvalidSettings(f"missing: {', '.join(missing)}")
        credentials.register_secrets()
        self.credentials = credentials
        self.scheme, self.site, self.api_host, self.base_path = site_parts(credentials.url)
        token = base64.b64encode(
            f"{credentials.company_id}+{credentials.public_key}:{credentials.private_key}".encode()
        ).decode()
        self._headers = {
            "Authorization": f"Basic {token}",
            "clientId": credentials.client_id,
            "Accept": f"application/vnd.connectwise.com+json; version={api_version}",
        }
        self._http = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                                       follow_redirects=False, trust_env=False)
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._budget = _MinuteBudget(requests_per_minute)
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._base: str | None = None
        self._base_lock = asyncio.Lock()
        self.api_calls = 0  # requests sent, retries included
        self.server_version: str | None = None

    async def __aenter__(self) -> "ConnectWiseClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------ base URL

    async def api_base(self) -> str:
        if self._base is None:
            async with self._base_lock:
                if self._base is None:
                    self._base = await self._discover_base()
        return self._base

    async def _discover_base(self) -> str:
        if self.base_path:
            return f"{self.scheme}://{self.api_host}{self.base_path}"
        codebase = DEFAULT_CODEBASE
        url = f"{self.scheme}://{self.site}/login/companyinfo/{self.credentials.company_id}"
        try:
            response = await self._send("GET", url, auth=False)
            info = json.loads(response.content) if response.status_code == 200 else None
            if isinstance(info, dict) and isinstance(info.get("Codebase"), str) and info["Codebase"].strip("/"):
                codebase = info["Codebase"].strip("/")
        except (ConnectWiseError, ValueError) as error:
            if isinstance(error, (ConnectionFailed, TimedOut)):
                raise
        return f"{self.scheme}://{self.api_host}/{codebase}/apis/3.0"

    # ------------------------------------------------------------ transport

    def _backoff(self, attempt: int) -> float:
        # full jitter: uniform in [0, min(cap, base * 2^attempt)]
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * (2**attempt)))

    async def _send(self, method: str, url: str, *, params: dict | None = None, body: Any = None, auth: bool = True) -> httpx.Response:
        """One request with retries. Returns any response that is not retried; raises for
        transport failures."""
        headers = dict(self._headers) if auth else {"Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(models.to_json_number(body)).encode()
        safe = method in SAFE_METHODS
        path = urlsplit(url).path
        attempt = 0
        while True:
            await self._budget.acquire()
            async with self._in_flight:
                self.api_calls += 1
                try:
                    response = await self._http.request(method, url, params=params, content=content, headers=headers)
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
                    # nothing reached the server: a retry is safe for every method
                    failure: ConnectWiseError = _connection_error(error, urlsplit(url).netloc, method, path)
                    response = None
                except (httpx.ReadTimeout, httpx.WriteTimeout) as error:
                    failure = (OutcomeUnknown if not safe else TimedOut)(
                        f"ConnectWise did not answer {method} {path} in time; "
                        + ("it may or may not have applied it" if not safe else "try again later"),
                        method=method, path=path,
                    )
                    del error
                    response = None
                except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as error:
                    failure = (OutcomeUnknown if not safe else ConnectionFailed)(
                        f"the connection to ConnectWise dropped during {method} {path}"
                        + ("; it may or may not have applied it" if not safe else ""),
                        method=method, path=path,
                    )
                    del error
                    response = None
            if response is not None:
                if response.status_code == 429:
                    failure = _error_from(response, method, path)
                    if attempt < self.retries:
                        await self._sleep(self._retry_after(response, attempt))
                        attempt += 1
                        continue
                    raise failure
                if response.status_code >= 500:
                    if not safe:
                        code, message, _ = parse_error_body(response.content)
                        raise OutcomeUnknown(
                            f"ConnectWise failed ({response.status_code}) during {method} {path}; it may or may not have applied it",
                            status=response.status_code, code=code, cw_message=message, method=method, path=path,
                            request_id=response.headers.get("x-cw-request-id"),
                        )
                    failure = _error_from(response, method, path)
                else:
                    return response
            if isinstance(failure, OutcomeUnknown) or attempt >= self.retries:
                raise failure
            if isinstance(failure, (TLSFailure,)):
                raise failure  # a certificate problem does not fix itself
            await self._sleep(self._backoff(attempt))
            attempt += 1

    def _retry_after(self, response: httpx.Response, attempt: int) -> float:
        value = response.headers.get("Retry-After", "")
        try:
            seconds = float(value)
        except ValueError:
            return self._backoff(attempt)
        return max(0.0, min(seconds, self.max_retry_after)) + random.uniform(0, 0.05)

    async def request(self, method: str, path: str, *, params: dict | None = None, body: Any = None) -> Any:
        """A call to `{api base}{path}`; returns the parsed JSON (Decimals for numbers)."""
        base = await self.api_base()
        response = await self._send(method, base + path, params=params, body=body)
        if response.status_code >= 400:
            raise _error_from(response, method, path)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return json.loads(response.content, parse_float=Decimal)
        except ValueError:
            raise ServerError(f"ConnectWise sent a response that is not JSON for {method} {path}",
                              status=response.status_code, method=method, path=path) from None

    async def list_all(self, path: str, *, conditions: str | None = None, fields: str | None = None,
                       order_by: str | None = "id asc", page_size: int = PAGE_SIZE) -> list[dict]:
        """Every row of a list, page by page, conditions kept on every page."""
        base = await self.api_base()
        params: dict[str, Any] = {"page": 1, "pageSize": min(page_size, PAGE_SIZE)}
        if conditions:
            params["conditions"] = conditions
        if fields:
            params["fields"] = fields
        if order_by:
            params["orderBy"] = order_by
        rows: list[dict] = []
        while True:
            response = await self._send("GET", base + path, params=params)
            if response.status_code >= 400:
                raise _error_from(response, "GET", path)
            page = json.loads(response.content, parse_float=Decimal) if response.content else []
            if not isinstance(page, list):
                raise ServerError(f"ConnectWise sent a non-list for GET {path}", method="GET", path=path)
            rows.extend(page)
            link = response.headers.get("Link")
            if link is not None:
                more = bool(_LINK_NEXT.search(link))  # the server says whether a next page exists
            else:
                more = len(page) >= params["pageSize"]  # no Link header: a short page is the last
            if not more or not page:
                return rows
            params = {**params, "page": params["page"] + 1}

    async def count(self, path: str, conditions: str | None = None) -> int:
        data = await self.request("GET", path + "/count", params={"conditions": conditions} if conditions else None)
        return int(data["count"])

    async def _list(self, model: type[M], path: str, conditions: str | None = None, fields: str | None = None) -> list[M]:
        return [model.model_validate(row) for row in await self.list_all(path, conditions=conditions, fields=fields)]

    # ------------------------------------------------------------ operations

    async def system_info(self) -> models.SystemInfo:
        info = models.SystemInfo.model_validate(await self.request("GET", "/system/info"))
        self.server_version = info.version
        return info

    async def companies(self, conditions: str | None = None) -> list[models.Company]:
        return await self._list(models.Company, "/company/companies", conditions,
                                "id,identifier,name,status/id,status/name,deletedFlag,defaultContact/id,defaultContact/name")

    async def company_statuses(self) -> list[models.CompanyStatus]:
        return await self._list(models.CompanyStatus, "/company/companies/statuses")

    async def catalog_items(self, conditions: str | None = None) -> list[models.CatalogItem]:
        return await self._list(models.CatalogItem, "/procurement/catalog", conditions,
                                "id,identifier,description,inactiveFlag,price,cost,subcategory,type,customerDescription")

    async def agreement_types(self) -> list[models.AgreementType]:
        return await self._list(models.AgreementType, "/finance/agreements/types")

    async def agreements(self, *, company_id: int | None = None, type_id: int | None = None,
                         status: str | None = None, conditions: str | None = None) -> list[models.Agreement]:
        where = all_of(
            condition("company/id", "=", company_id) if company_id is not None else None,
            condition("type/id", "=", type_id) if type_id is not None else None,
            condition("agreementStatus", "=", status) if status else None,
            conditions,
        )
        return await self._list(models.Agreement, "/finance/agreements", where)

    async def agreement(self, agreement_id: int) -> models.Agreement:
        return models.Agreement.model_validate(await self.request("GET", f"/finance/agreements/{int(agreement_id)}"))

    async def create_agreement(self, body: dict) -> models.Agreement:
        return models.Agreement.model_validate(await self.request("POST", "/finance/agreements", body=body))

    async def additions(self, agreement_id: int, conditions: str | None = None) -> list[models.Addition]:
        return await self._list(models.Addition, f"/finance/agreements/{int(agreement_id)}/additions", conditions)

    async def create_addition(self, agreement_id: int, body: dict) -> models.Addition:
        data = await self.request("POST", f"/finance/agreements/{int(agreement_id)}/additions", body=body)
        return models.Addition.model_validate(data)

    async def patch_addition(self, agreement_id: int, addition_id: int, changes: dict[str, Any]) -> models.Addition:
        ops = [{"op": "replace", "path": key, "value": value} for key, value in changes.items()]
        data = await self.request("PATCH", f"/finance/agreements/{int(agreement_id)}/additions/{int(addition_id)}", body=ops)
        return models.Addition.model_validate(data)

    async def delete_addition(self, agreement_id: int, addition_id: int) -> None:
        await self.request("DELETE", f"/finance/agreements/{int(agreement_id)}/additions/{int(addition_id)}")


def _causes(error: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    for item in list(chain):  # anyio wraps several attempts in an ExceptionGroup
        chain.extend(getattr(item, "exceptions", ()))
    return chain


def _connection_error(error: Exception, host: str, method: str, path: str) -> ConnectWiseError:
    causes = _causes(error)
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return ConnectionFailed(f"{host} refused the connection; check the API URL and that ConnectWise is reachable",
                                method=method, path=path)
    if any(isinstance(c, socket.gaierror) for c in causes):
        return ConnectionFailed(f"the host {host} is unknown; check the API URL", method=method, path=path)
    if any(isinstance(c, ssl.SSLError) for c in causes):
        return TLSFailure(f"secure connection to {host} failed; check the API URL and the server's certificate",
                          method=method, path=path)
    text = " ".join(str(c) for c in causes)
    lowered = text.lower()
    text = str(error)
    if "ssl" in lowered or "certificate" in lowered or "tls" in lowered:
        return TLSFailure(f"secure connection to {host} failed ({text}); check the API URL and the server's certificate",
                          method=method, path=path)
    if isinstance(error, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        return TimedOut(f"{host} did not accept a connection in time; check the API URL and your network",
                        method=method, path=path)
    if "name or service not known" in lowered or "nodename nor servname" in lowered or "getaddrinfo" in lowered \
            or "temporary failure in name resolution" in lowered or "no address associated" in lowered:
        return ConnectionFailed(f"the host {host} is unknown; check the API URL", method=method, path=path)
    if "refused" in lowered:
        return ConnectionFailed(f"{host} refused the connection; check the API URL and that ConnectWise is reachable",
                                method=method, path=path)
    return ConnectionFailed(f"cannot reach {host} ({text or type(error).__name__}); check the API URL and your network",
                            method=method, path=path)


def _error_from(response: httpx.Response, method: str, path: str) -> ConnectWiseError:
    status = response.status_code
    code, message, errors = parse_error_body(response.content)
    common = dict(status=status, code=code, cw_message=message, errors=errors, method=method, path=path,
                  request_id=response.headers.get("x-cw-request-id"))
    said = f": {message}" if message else ""
    if status == 401:
        return AuthenticationFailed(
            f"ConnectWise refused the credentials (401{said}); check the Company ID, the public and private keys and the Client ID",
            **common)
    if status == 403:
        return PermissionDenied(
            f"the API member's security role does not allow {method} {path} (403{said}); ask your ConnectWise administrator",
            **common)
    if status == 404:
        return NotFound(f"not found (404) at {path}{said}; check the API URL (site and codebase) or the record", **common)
    if status == 429:
        return Throttled(f"ConnectWise is throttling requests (429{said}); try again in a few minutes", **common)
    if status >= 500:
        return ServerError(f"ConnectWise had a server error ({status}{said}); try again in a few minutes", **common)
    detail = "; ".join(e.message or e.code or "" for e in errors if e.message or e.code)
    return RequestRejected(f"ConnectWise rejected {method} {path} ({status}{said}{': ' + detail if detail else ''})", **common)

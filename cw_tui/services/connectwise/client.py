"""The ConnectWise Manage REST client (API-NOTES §0-§4).

- Basic auth `companyId+publicKey:privateKey`, the `clientId` header, a pinned `Accept`.
- API base derived from the site URL: cloud `api-` host, codebase from
  `/login/companyinfo/{companyId}` (falling back to `v4_6_release`).
- Lists follow every page (`pageSize` 1000, `Link: rel="next"`), keeping the conditions;
  a short page or a `Link` without `next` ends a list, and a list is at most
  `max_list_rows` rows (250,000).
- Odd answers are errors, never data: a redirect is not followed (it would carry the
  credentials elsewhere); an empty or non-JSON body, a list endpoint that answers anything
  but a list, and a body over `max_body_bytes` (32 MiB, read streamed) are refused. The
  message gives the status, the content type and the start of the body (made harmless).
  To a POST, a redirect or an unreadable success is `OutcomeUnknown`: it may have been applied.
- Retries with exponential backoff and jitter: 429 (honouring `Retry-After`) for every
  method; 5xx, timeouts and dropped connections for safe methods (GET, PATCH, DELETE).
  A POST whose outcome is unknown is never retried: it raises `OutcomeUnknown`.
- At most `max_in_flight` requests at once and `requests_per_minute` in any minute (set it
  below the tenant's throttle and a run sees no 429); after a 429 every request waits out its
  `Retry-After`, and the throttled one is sent again (up to `throttle_retries` times).
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
from urllib.parse import urljoin, urlsplit

import httpx
import pydantic

from cw_tui.services.connectwise import models
from cw_tui.services.connectwise.conditions import all_of, condition
from cw_tui.services.connectwise.errors import (
    AuthenticationFailed,
    BadResponse,
    ConnectionFailed,
    ConnectWiseError,
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
    body_start,
    harmless,
    parse_error_body,
)
from cw_tui.services.credentials import Credentials
from cw_tui.services.system_log import register_secret

API_VERSION = "2025.1"
DEFAULT_CODEBASE = "v4_6_release"
CLOUD_SITES = {
    "na.myconnectwise.net", "eu.myconnectwise.net", "au.myconnectwise.net", "aus.myconnectwise.net",
    "za.myconnectwise.net", "staging.connectwisedev.com",
}
PAGE_SIZE = 1000
MAX_LIST_ROWS = 250_000  # far above any tenant's companies, products or agreements
_START_BYTES = 512  # of a refused body, read for its message
MAX_BODY_BYTES = 32 * 1024 * 1024  # a full page of full agreement records is a few MB
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


_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
EXAMPLE = "e.g. https://na.myconnectwise.net"


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return all(_LABEL.match(label) for label in ascii_host.removesuffix(".").split("."))


def _host_and_port(netloc: str, shown: str) -> tuple[str, int | None]:
    """Split `host:port` or `[v6]:port` ourselves: urlsplit raises bare ValueErrors for them."""
    if netloc.startswith("["):
        close = netloc.find("]")
        host, rest = (netloc[1:close], netloc[close + 1 :]) if close > 0 else ("", "")
        if close < 0 or (rest and not rest.startswith(":")):
            raise InvalidSettings(f"{shown} has a malformed [IPv6] address, e.g. http://[::1]:8765")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidSettings(f"{shown} has an invalid IPv6 address {host!r}") from None
        raw_port = rest[1:]
    else:
        host, _, raw_port = netloc.rpartition(":") if ":" in netloc else (netloc, "", "")
        if "[" in host or "]" in host or ":" in host:
            raise InvalidSettings(f"{shown} has a malformed address; an IPv6 address goes in brackets, e.g. http://[::1]:8765")
    if not raw_port:
        return host.lower(), None
    if not (raw_port.isascii() and raw_port.isdigit() and 1 <= int(raw_port) <= 65535):
        raise InvalidSettings(f"{shown} has an invalid port {raw_port!r}: a port is a number from 1 to 65535")
    return host.lower(), int(raw_port)


def site_parts(url: str) -> tuple[str, str, str, str]:
    """(scheme, site host[:port] for companyinfo, API host[:port], explicit base path or '').
    Raises InvalidSettings, naming what is wrong, for anything that is not a usable address."""
    text = url.strip()
    if not text:
        raise InvalidSettings(f"the API URL is empty ({EXAMPLE})")
    if "://" not in text:
        text = "https://" + text
    netloc = re.split(r"[/?#]", text.partition("://")[2])[0]
    if "@" in netloc:  # not echoed: it may hold a password
        raise InvalidSettings("the API URL must not contain a user name or password; the keys have their own fields")
    shown = f"the API URL {url.strip()!r}"
    try:
        parts = urlsplit(text)
    except ValueError:  # only brackets make urlsplit fail: say which part is wrong
        _host_and_port(netloc, shown)
        raise InvalidSettings(f"{shown} has a malformed [IPv6] address, e.g. http://[::1]:8765") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidSettings(f"{shown} is not a web address: it must start with https:// ({EXAMPLE})")
    host, port = _host_and_port(parts.netloc, shown)
    if not host:
        raise InvalidSettings(f"{shown} has no host name ({EXAMPLE})")
    if host in ("http", "https"):
        raise InvalidSettings(f"{shown} looks mistyped: it must start with https:// ({EXAMPLE})")
    if not _valid_host(host):
        raise InvalidSettings(f"{shown} has an invalid host name {host!r} ({EXAMPLE})")
    scheme = parts.scheme.lower()
    if scheme == "http" and not is_loopback(host):
        raise InvalidSettings("ConnectWise requires https; plain http is accepted only for a local sandbox (127.0.0.1, ::1)")
    if host.startswith("api-") and host[4:] in CLOUD_SITES:
        site, api = host[4:], host
    elif host in CLOUD_SITES:
        site, api = host, "api-" + host
    else:
        site = api = f"[{host}]" if ":" in host else host
    suffix = f":{port}" if port else ""
    path = parts.path.rstrip("/")
    base_path = path if "/apis/3.0" in path else ""
    return scheme, site + suffix, api + suffix, base_path


class _MinuteBudget:
    """At most `limit` requests in any `window_s`-second window (60: a minute). A request
    holds its place from its start until `release` (its answer) plus the window: ConnectWise
    counted it at some moment in between, so its window has freed the place too when ours
    does (counting starts only, a burst let in as the oldest leave can land while the
    server still counts them). After a 429, `hold` stops every start until ConnectWise's
    Retry-After has passed: the other requests would only be throttled too."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic, window_s: float = 60.0):
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.starts: collections.deque[list[float]] = collections.deque()  # [start, then answer time]
        self.lock = asyncio.Lock()
        self.held_until = 0.0

    def hold(self, seconds: float) -> None:
        self.held_until = max(self.held_until, self.clock() + seconds)

    async def acquire(self) -> list[float]:
        async with self.lock:
            while True:
                now = self.clock()
                if now < self.held_until:
                    await asyncio.sleep(min(1.0, self.held_until - now))
                    continue
                while self.starts and now - self.starts[0][0] >= self.window_s:
                    self.starts.popleft()
                if len(self.starts) < self.limit:
                    place = [now]
                    self.starts.append(place)
                    return place
                # wake at least once a second: cheap, and robust to clock adjustments
                await asyncio.sleep(max(0.001, min(1.0, self.window_s - (now - self.starts[0][0]) + 0.001)))

    def release(self, place: list[float]) -> None:
        place[0] = max(place[0], self.clock())


class ConnectWiseClient:
    def __init__(
        self,
        credentials: Credentials,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        max_in_flight: int = 8,
        requests_per_minute: int = 950,  # just below ConnectWise's throttle of about 1000 (API-NOTES §4.3)
        budget_window_s: float = 60.0,
        retries: int = 5,
        throttle_retries: int = 12,
        backoff_base: float = 0.25,
        backoff_cap: float = 10.0,
        max_retry_after: float = 60.0,
        api_version: str = API_VERSION,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_list_rows: int = MAX_LIST_ROWS,
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
        register_secret(token)  # an odd answer may echo the Authorization header
        self._headers = {
            "Authorization": f"Basic {token}",
            "clientId": credentials.client_id,
            "Accept": f"application/vnd.connectwise.com+json; version={api_version}",
        }
        self._http = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                                       follow_redirects=False, trust_env=False)
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._budget = _MinuteBudget(requests_per_minute, window_s=budget_window_s)
        self.retries = retries
        self.throttle_retries = max(retries, throttle_retries)  # a 429 says when to come back: not a failure
        self.throttled = 0  # 429 answers seen
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self.max_body_bytes = max_body_bytes
        self.max_list_rows = max_list_rows
        self._sleep = sleep
        self._base: str | None = None
        self._base_lock = asyncio.Lock()
        self.api_calls = 0  # requests sent, retries included
        self.server_version: str | None = None
        self.api_version = api_version
        self.codebase_moves = 0
        self.current_api_version: str | None = None  # ConnectWise's api-current-version header
        self.last_request_id: str | None = None  # its x-cw-request-id, for the log

    async def __aenter__(self) -> ConnectWiseClient:
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

    async def _codebase_moved(self, used: str) -> bool:
        """After a 404: whether the codebase moved (a cloud upgrade, API-NOTES §1.3), asking
        companyinfo again. If it did, the API base is the new one and the request is sent
        again there: a 404 at the old path carried nothing out. Only a discovered base moves."""
        if self.base_path:
            return False
        async with self._base_lock:
            if self._base != used:  # another request found the move already
                return True
            try:
                fresh = await self._discover_base()
            except ConnectWiseError:
                return False
            if fresh == used:
                return False
            self._base = fresh
            self.codebase_moves += 1
            return True

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
        except (ConnectWiseError, ValueError, RecursionError) as error:  # an odd answer: the default codebase
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
        path = url.removeprefix(self._base) if self._base and url.startswith(self._base) else urlsplit(url).path
        attempt = throttled_attempt = 0
        while True:
            place = await self._budget.acquire()
            async with self._in_flight:
                self.api_calls += 1
                try:
                    response = await self._exchange(method, url, path, params=params, content=content, headers=headers)
                except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
                    # site_parts refuses what it knows to be malformed; this is the last guard
                    raise InvalidSettings(f"the API URL cannot be used ({error}); check it", method=method, path=path) from None
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
            self._budget.release(place)
            if response is not None:
                self.current_api_version = response.headers.get("api-current-version") or self.current_api_version
                self.last_request_id = response.headers.get("x-cw-request-id") or self.last_request_id
                if 300 <= response.status_code < 400:
                    # never followed; a write may have been applied before it (303 See Other)
                    redirected = _redirect_error(response, method, path)
                    raise redirected if safe else _unknown(redirected)
                if response.status_code == 429:
                    # refused before it was carried out: safe to send again for every method
                    self.throttled += 1
                    failure = _error_from(response, method, path)
                    if throttled_attempt < self.throttle_retries:
                        wait = self._retry_after(response, throttled_attempt)
                        self._budget.hold(wait)
                        await self._sleep(wait)
                        throttled_attempt += 1
                        continue
                    raise failure
                blocked = response.status_code == 403 and _html(response)  # a proxy's page: ConnectWise saw nothing
                if response.status_code >= 500 or blocked:
                    if not safe and blocked:
                        raise _error_from(response, method, path)
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

    async def _exchange(self, method: str, url: str, path: str, **options: Any) -> httpx.Response:
        """Send, and read the body streamed: past `max_body_bytes` it is refused, not held."""
        async with self._http.stream(method, url, **options) as streamed:
            declared = streamed.headers.get("Content-Length", "")
            # declared too large: refused once the start of the body is read (for the message);
            # a first chunk can be a single byte
            refused = declared.isdigit() and int(declared) > self.max_body_bytes
            body = bytearray()
            async for chunk in streamed.aiter_bytes():  # decoded: a compressed body counts as unpacked
                body += chunk
                if (refused and len(body) >= _START_BYTES) or len(body) > self.max_body_bytes:
                    break
            if refused or len(body) > self.max_body_bytes:
                raise self._too_large(method, path, streamed, bytes(body[:4096]))
        kept = [(k, v) for k, v in streamed.headers.multi_items()
                if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return httpx.Response(streamed.status_code, headers=kept, content=bytes(body), request=streamed.request)

    def _too_large(self, method: str, path: str, response: httpx.Response, start: bytes) -> BadResponse:
        return BadResponse(f"ConnectWise answered {method} {path} with {_status_and_type(response)} and more than "
                           f"{self.max_body_bytes // (1024 * 1024)} MiB: {body_start(start)}; the answer was refused",
                           status=response.status_code, method=method, path=path)

    def _retry_after(self, response: httpx.Response, attempt: int) -> float:
        value = response.headers.get("Retry-After", "")
        try:
            seconds = float(value)
        except ValueError:
            return self._backoff(attempt)
        return max(0.0, min(seconds, self.max_retry_after)) + random.uniform(0, 0.05)

    async def _answer(self, method: str, path: str, *, params: dict | None = None,
                      body: Any = None) -> tuple[httpx.Response, Any]:
        """A call to `{api base}{path}`: the response and its parsed JSON (Decimals for
        numbers), None for an answer without content (204, or an empty body to a write)."""
        base = await self.api_base()
        response = await self._send(method, base + path, params=params, body=body)
        if response.status_code == 404 and await self._codebase_moved(base):
            response = await self._send(method, await self.api_base() + path, params=params, body=body)
        if response.status_code >= 400:
            raise _error_from(response, method, path)
        if response.status_code == 204 or (not response.content and method != "GET"):
            return response, None
        return response, _json(response, method, path)

    async def request(self, method: str, path: str, *, params: dict | None = None, body: Any = None) -> Any:
        """The parsed JSON of a call (see `_answer`). A POST's unreadable success is
        OutcomeUnknown: ConnectWise may have applied it."""
        try:
            return (await self._answer(method, path, params=params, body=body))[1]
        except BadResponse as error:
            raise _unknown_if_written(error, method) from None

    async def _one(self, model: type[M], method: str, path: str, *, body: Any = None) -> M:
        """The record a call answers with; to a POST, an answer that is no such record is
        OutcomeUnknown (the caller looks the record up before posting again)."""
        try:
            response, data = await self._answer(method, path, body=body)
            return _record(model, data, method, path, response)
        except BadResponse as error:
            raise _unknown_if_written(error, method) from None

    async def list_all(self, path: str, *, conditions: str | None = None, fields: str | None = None,
                       order_by: str | None = "id asc", page_size: int = PAGE_SIZE,
                       model: type[models.CWModel] | None = None) -> list[Any]:
        """Every row of a list, page by page, conditions kept on every page. A short page, or
        a `Link` header without `rel="next"`, is the last; without any `Link` header a full
        page asks for the next (no row is left out). A row seen twice, or more than
        `max_list_rows` rows, is an error: the server is not paging as it should. With
        `model`, each row is read as one as its page arrives (an unreadable row is an error
        naming its page's answer)."""
        base = await self.api_base()
        params: dict[str, Any] = {"page": 1, "pageSize": min(page_size, PAGE_SIZE)}
        if conditions:
            params["conditions"] = conditions
        if fields:
            params["fields"] = fields
        if order_by:
            params["orderBy"] = order_by
        rows: list[dict] = []
        seen: set[Any] = set()
        while True:
            response = await self._send("GET", base + path, params=params)
            if response.status_code == 404 and await self._codebase_moved(base):
                base = await self.api_base()
                response = await self._send("GET", base + path, params=params)
            if response.status_code >= 400:
                raise _error_from(response, "GET", path)
            page = _json(response, "GET", path)
            if not isinstance(page, list) or not all(isinstance(row, dict) for row in page):
                raise BadResponse(f"ConnectWise answered GET {path} (page {params['page']}) with "
                                  f"{_status_and_type(response)}, something other than a list of records: "
                                  f"{body_start(response.content)}; nothing of it was used",
                                  status=response.status_code, method="GET", path=path)
            ids = [row["id"] for row in page if isinstance(row.get("id"), int)]
            if seen.intersection(ids) or len(set(ids)) < len(ids):
                raise BadResponse(f"ConnectWise sent a record twice while paging GET {path} (page {params['page']}); "
                                  "the list cannot be trusted: try again", method="GET", path=path)
            seen.update(ids)
            rows.extend(page if model is None else (_record(model, row, "GET", path, response) for row in page))
            if len(rows) > self.max_list_rows:
                raise BadResponse(f"ConnectWise sent more than {self.max_list_rows:,} rows for GET {path} and still said "
                                  "there were more; the list was refused", method="GET", path=path)
            link = response.headers.get("Link")
            more = len(page) >= params["pageSize"] and (link is None or bool(_LINK_NEXT.search(link)))
            if not more:
                return rows
            params = {**params, "page": params["page"] + 1}

    async def count(self, path: str, conditions: str | None = None) -> int:
        response, data = await self._answer("GET", path + "/count", params={"conditions": conditions} if conditions else None)
        if not isinstance(data, dict) or isinstance(data.get("count"), bool) or not isinstance(data.get("count"), int):
            raise BadResponse(f"ConnectWise answered GET {path}/count with {_status_and_type(response)} without a count: "
                              f"{body_start(response.content)}", status=response.status_code, method="GET",
                              path=path + "/count")
        return data["count"]

    async def _list(self, model: type[M], path: str, conditions: str | None = None, fields: str | None = None) -> list[M]:
        return await self.list_all(path, conditions=conditions, fields=fields, model=model)

    # ------------------------------------------------------------ operations

    async def system_info(self) -> models.SystemInfo:
        info = await self._one(models.SystemInfo, "GET", "/system/info")
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
        path = f"/finance/agreements/{int(agreement_id)}"
        return await self._one(models.Agreement, "GET", path)

    async def create_agreement(self, body: dict) -> models.Agreement:
        return await self._one(models.Agreement, "POST", "/finance/agreements", body=body)

    async def invoices(self, *, agreement_id: int | None = None, conditions: str | None = None) -> list[models.Invoice]:
        """Invoices (read only, API-NOTES §2.7a), e.g. an agreement's, to tell whether a period
        was invoiced."""
        where = all_of(condition("agreement/id", "=", agreement_id) if agreement_id is not None else None, conditions)
        return await self._list(models.Invoice, "/finance/invoices", where,
                                "id,invoiceNumber,type,date,dueDate,agreement/id,agreement/name,company/id,applyToType,applyToId,total")

    async def additions(self, agreement_id: int, conditions: str | None = None,
                        fields: str | None = None) -> list[models.Addition]:
        return await self._list(models.Addition, f"/finance/agreements/{int(agreement_id)}/additions", conditions, fields)

    async def create_addition(self, agreement_id: int, body: dict) -> models.Addition:
        path = f"/finance/agreements/{int(agreement_id)}/additions"
        return await self._one(models.Addition, "POST", path, body=body)

    async def patch_addition(self, agreement_id: int, addition_id: int, changes: dict[str, Any]) -> models.Addition:
        ops = [{"op": "replace", "path": key, "value": value} for key, value in changes.items()]
        path = f"/finance/agreements/{int(agreement_id)}/additions/{int(addition_id)}"
        return await self._one(models.Addition, "PATCH", path, body=ops)

    async def delete_addition(self, agreement_id: int, addition_id: int) -> None:
        await self.request("DELETE", f"/finance/agreements/{int(agreement_id)}/additions/{int(addition_id)}")

    async def delete_agreement(self, agreement_id: int) -> None:
        """An empty agreement (undo deletes only the ones cw-tui created and nothing else uses)."""
        await self.request("DELETE", f"/finance/agreements/{int(agreement_id)}")


def _status_and_type(response: httpx.Response) -> str:
    """`200 (text/html; charset=utf-8)`: what an answer said it was, for a message."""
    content_type = harmless(response.headers.get("Content-Type", ""), 100)
    return f"{response.status_code} ({content_type or 'no content type'})"


def _json(response: httpx.Response, method: str, path: str) -> Any:
    if not response.content:
        raise BadResponse(f"ConnectWise answered {method} {path} with {_status_and_type(response)} and an empty body",
                          status=response.status_code, method=method, path=path)
    try:
        return json.loads(response.content, parse_float=Decimal)
    except (ValueError, RecursionError):  # RecursionError: nested too deep to be a record
        raise BadResponse(f"ConnectWise answered {method} {path} with {_status_and_type(response)} that is not JSON: "
                          f"{body_start(response.content)}", status=response.status_code, method=method, path=path) from None


def _record(model: type[M], data: Any, method: str, path: str, response: httpx.Response) -> M:
    """One record; an answer that is no record (null, a list, a number) is an error. The
    message shows the start of the body, or the record itself (a row of a list)."""
    if not isinstance(data, dict):
        raise BadResponse(f"ConnectWise answered {method} {path} with {_status_and_type(response)} that is not a record: "
                          f"{body_start(response.content)}", status=response.status_code, method=method, path=path)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        where = "/".join(str(x) for x in first["loc"])
        shown = body_start(json.dumps(data, default=str).encode())
        raise BadResponse(f"ConnectWise answered {method} {path} with {_status_and_type(response)} and an unreadable "
                          f"record ({where}: {first['msg']}): {shown}", status=response.status_code, method=method,
                          path=path) from None


def _unknown(error: ConnectWiseError) -> OutcomeUnknown:
    return OutcomeUnknown(f"{error.message}; it may or may not have applied it", status=error.status,
                          method=error.method, path=error.path, request_id=error.request_id)


def _unknown_if_written(error: BadResponse, method: str) -> ConnectWiseError:
    """ConnectWise took a POST, but its answer cannot be read: the outcome is unknown. A
    refusal (4xx) applied nothing, and the other methods are safe to send again."""
    if method in SAFE_METHODS or 400 <= (error.status or 0) < 500:
        return error
    return _unknown(error)


def _redirect_error(response: httpx.Response, method: str, path: str) -> Redirected:
    """Where it pointed, without user info, query or fragment (they may hold a secret)."""
    location = response.headers.get("Location", "").strip()
    try:
        target = urlsplit(urljoin(str(response.request.url), location)) if location else None
        host, port = (target.hostname or "", target.port) if target else ("", None)
    except ValueError:
        target = None
    if target is None:
        where = "an address it did not give" if not location else "an unreadable address"
    else:
        netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
        where = harmless(f"{target.scheme}://{netloc}{target.path}")
    return Redirected(
        f"ConnectWise answered {method} {path} with {_status_and_type(response)}, a redirect to {where}: "
        f"{body_start(response.content)}; cw-tui does not follow redirects, which would send your credentials there: "
        "check the API URL",
        status=response.status_code, method=method, path=path, request_id=response.headers.get("x-cw-request-id"))


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


SECURITY_AREAS = (  # ConnectWise's Security Roles modules, by API path
    ("/company/", "Companies > Company Maintenance"),
    ("/procurement/", "Procurement > Product Catalog"),
    ("/finance/invoices", "Finance > Invoicing"),
    ("/finance/agreements", "Finance > Agreements"),
    ("/system/", "System > Table Setup"),
)


_ACCESS = {"POST": "Add", "PATCH": "Edit", "PUT": "Edit", "DELETE": "Delete"}


def _security_area(path: str) -> str:
    return next((area for prefix, area in SECURITY_AREAS if path.startswith(prefix)), "this part of ConnectWise")


def _html(response: httpx.Response) -> bool:
    content_type = response.headers.get("Content-Type", "").lower()
    return "html" in content_type or response.content.lstrip()[:1] == b"<"


def _html_title(content: bytes) -> str:
    match = re.search(rb"<title[^>]*>(.*?)</title>", content[:8192], re.IGNORECASE | re.DOTALL)
    return harmless(match.group(1).decode("utf-8", "replace"), 80) if match else ""


def _asked_version(response: httpx.Response) -> str:
    accept = response.request.headers.get("Accept", "") if response.request is not None else ""
    match = re.search(r"version=([^;,\s]+)", accept)
    return harmless(match.group(1), 20) if match else "(none)"


def _error_from(response: httpx.Response, method: str, path: str) -> ConnectWiseError:
    status = response.status_code
    code, message, errors = parse_error_body(response.content)
    common = dict(status=status, code=code, cw_message=message, errors=errors, method=method, path=path,
                  request_id=response.headers.get("x-cw-request-id"))
    said = f": {message}" if message else ""
    if (status == 403 or status >= 500) and _html(response):
        title = _html_title(response.content)
        return Outage(
            f"ConnectWise did not answer {method} {path}: a proxy in front of it sent an HTML error page "
            f"({status}{': ' + title if title else ''}); this is an outage on ConnectWise's side or its network, "
            "not your settings: try again in a few minutes", **common)
    if status == 401:
        return AuthenticationFailed(
            f"ConnectWise refused the credentials (401{said}); check the Company ID, the public and private keys and the Client ID",
            **common)
    if status == 403:
        area = _security_area(path)
        return PermissionDenied(
            f"the API member's security role does not allow {method} {path} (403{said}); ask your ConnectWise "
            f"administrator to give the API member's security role {_ACCESS.get(method, 'Inquire')} rights on {area} "
            "(System > Security Roles)", **common)
    if status == 404:
        return NotFound(f"not found (404) at {path}{said}; check the API URL (site and codebase) or the record", **common)
    if status == 400 and "does not support the api version" in (message or "").lower():
        current = harmless(response.headers.get("api-current-version", ""), 20)
        return UnsupportedVersion(
            f"ConnectWise does not serve API version {_asked_version(response)} that cw-tui uses"
            + (f" (it serves up to {current})" if current else "")
            + f" (400{said}); update cw-tui to a release that supports your ConnectWise, or ask your ConnectWise "
            "administrator which API versions the tenant serves", **common)
    if status == 429:
        return Throttled(f"ConnectWise is throttling requests (429{said}); try again in a few minutes", **common)
    if status >= 500:
        return ServerError(f"ConnectWise had a server error ({status}{said}); try again in a few minutes", **common)
    detail = "; ".join(e.message or e.code or "" for e in errors if e.message or e.code)
    return RequestRejected(f"ConnectWise rejected {method} {path} ({status}{said}{': ' + detail if detail else ''})", **common)

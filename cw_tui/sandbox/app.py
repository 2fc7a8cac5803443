"""The ConnectWise sandbox: an ASGI app serving the subset of the ConnectWise Manage REST API
that cw-tui uses, as ConnectWise does it (API-NOTES, openapi-subset.json): Basic auth plus
`clientId`, paging with `Link` headers, `conditions`, `fields`, `orderBy`, `/count`,
ConnectWise-shaped errors, and optional latency, faults and odd answers (odd_answers.py)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import contextvars
import fnmatch
import json
import logging
import math
import random
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cw_tui.sandbox import MEDIA_TYPE, invoicing
from cw_tui.sandbox.conditions import ConditionError, _get, compile_conditions
from cw_tui.sandbox.data import SandboxState, now_text
from cw_tui.sandbox.journal import Entry, Journal
from cw_tui.sandbox.odd_answers import OddAnswer, answer_oddly

API = "/{codebase}/apis/3.0"
MAX_PAGE_SIZE = 1000
CODEBASES = ("v4_6_release", "v2025_1")
# no fractional seconds; `Z` or an offset (ConnectWise accepts both and answers in UTC)
_CW_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# ConnectWise's length limits (API-NOTES §2; the spec has them only in descriptions)
LIMITS = {
    "company": {"identifier": 30, "name": 50},
    "agreement": {"name": 100, "customerPO": 50, "reasonCancelled": 100},
    "addition": {"serialNumber": 50, "invoiceDescription": 6000, "description": 6000, "uom": 50},
}
BILL_CUSTOMER = ("Billable", "DoNotBill", "NoCharge")
DROP_HEADER = "x-sandbox-drop"
# the changes the current request made, for the journal (each request runs in its own task,
# so its own context)
_CHANGES: contextvars.ContextVar[list[Entry] | None] = contextvars.ContextVar("sandbox_changes", default=None)


CURRENT_VERSION = "2025.1"  # the newest API model this "server" has (api-current-version)
OLDEST_VERSION = "2019.1"  # API versions follow PSA releases since 2019.1 (API-NOTES §1.4)
VENDOR_TYPE = "application/vnd.connectwise.com+json"
CONNECTWISE_RATE_LIMIT = 1000  # requests a minute before ConnectWise throttles (API-NOTES §4.3)


def too_many(retry_after: int) -> Response:
    """ConnectWise's 429: its own body shape (API-NOTES §4.2) and Retry-After in seconds."""
    return JSONResponse({"error": "ConnectWiseAPI", "message": f"Too many requests. Please try again in {retry_after} seconds."},
                        status_code=429, headers={"Retry-After": str(retry_after)})


class RateWindow:
    """A sliding window: at most `limit` API requests in any `window_s` seconds. Refused
    requests do not count. Retry-After is the wait until the oldest request leaves it."""

    def __init__(self, limit: int, window_s: float = 60.0, clock: Any = time.monotonic):
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.starts: collections.deque[float] = collections.deque()

    def admit(self) -> int | None:
        """None when the request may go on, else the seconds to wait."""
        now = self.clock()
        while self.starts and now - self.starts[0] >= self.window_s:
            self.starts.popleft()
        if len(self.starts) < self.limit:
            self.starts.append(now)
            return None
        return max(1, math.ceil(self.window_s - (now - self.starts[0])))


@dataclass
class Faults:
    rate_limit_per_min: int = 0  # 0: off (tests); the demo uses CONNECTWISE_RATE_LIMIT
    rate_window_s: float = 60.0  # tests shorten the minute
    versions: tuple[str, str] = (OLDEST_VERSION, CURRENT_VERSION)  # the API versions served, oldest and newest
    latency_ms: float = 0.0
    deny: list[str] = field(default_factory=list)  # "PATH" or "METHOD PATH" globs the security role lacks: 403
    stall_rate: float = 0.0  # share of requests carried out, then answered only after stall_s
    stall_s: float = 120.0
    # an Addition in an invoiced period: changing or deleting it is refused (the strict reading, invoicing.py)
    refuse_invoiced_changes: bool = True
    fail_rate: float = 0.0
    throttle_rate: float = 0.0
    drop_after_commit_rate: float = 0.0
    retry_after_s: int = 1
    seed: int | None = None
    odd_answers: list[OddAnswer] = field(default_factory=list)  # the first that takes a request answers it


@dataclass
class Keys:
    company_id: str
    public_key: str
    private_key: str
    client_id: str


class _Dropped(Exception):
    """Raised after a write is applied, to drop the connection without a response."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _Dropped))


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


def _cw_json(data: Any, status: int = 200, headers: dict | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _error(status: int, code: str, message: str, errors: list[dict] | None = None) -> Response:
    return JSONResponse({"code": code, "message": message, "errors": errors}, status_code=status)


def _utc(value: str) -> str:
    """A ConnectWise datetime as ConnectWise answers it: in UTC with a Z."""
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spaces(value: Any) -> Any:
    """Control characters in JSON strings become spaces, as ConnectWise does (API-NOTES §3.2)."""
    if isinstance(value, str):
        return _CONTROL.sub(" ", value) if _CONTROL.search(value) else value
    if isinstance(value, list):
        return [_spaces(v) for v in value]
    if isinstance(value, dict):
        return {k: _spaces(v) for k, v in value.items()}
    return value


def _plain(value: Any) -> Any:
    """A body read with Decimals, stored as JSON numbers (the nearest double, as ConnectWise
    stores doubles)."""
    if value is None or type(value) in (str, int, bool, float):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _decimal(value: Any) -> Decimal:
    if value is None or isinstance(value, bool):
        return Decimal(0)
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _amount(value: Decimal) -> float | int:
    return int(value) if value == value.to_integral_value() else float(value)


def _length_errors(resource: str, body: dict) -> list[tuple[str, str, str]]:
    errors = []
    for name, limit in LIMITS[resource].items():
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            errors.append(("InvalidField", name, f"The field {name} must be a string."))
        elif value is not None and len(value) > limit:
            errors.append(("InvalidField", name, f"The field {name} must be a string with a maximum length of {limit}."))
    return errors


def _date_errors(body: dict, *names: str) -> list[tuple[str, str, str]]:
    errors = []
    for name in names:
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or not _CW_DATETIME.match(value)):
            errors.append(("UnsupportedFormat", name,
                           f"{value!r} is not a supported date format (use YYYY-MM-DDTHH:MM:SSZ, or an offset)."))
        elif value is not None:
            try:
                body[name] = _utc(value)
            except ValueError:
                errors.append(("UnsupportedFormat", name, f"{value!r} is not a valid date."))
    return errors


def _invalid(resource: str, *errors: tuple[str, str, str]) -> Response:
    return _error(400, "InvalidObject", f"{resource} object is invalid",
                  [{"code": code, "message": message, "resource": resource, "field": field} for code, field, message in errors])


def _version_key(text: str) -> tuple[int, int]:
    """`2025.1` as (2025, 1); anything else (`3.0.0`, `latest`) sorts before every release."""
    match = re.fullmatch(r"(\d{4})\.(\d{1,2})", text.strip())
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _sort_key(value: Any) -> tuple:
    if isinstance(value, str):
        return (value is None, 1, value.casefold())
    if value is None:
        return (True, 0, 0)
    return (False, 0, value)


def _project(record: dict, fields: str | None) -> dict:
    if not fields:
        return record
    result: dict = {}
    for path in (p.strip() for p in fields.split(",")):
        if not path:
            continue
        parts = path.split("/")
        value = _get(record, path)
        if value is None and not isinstance(record.get(parts[0]), dict) and parts[0] not in record:
            continue
        target = result
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return result


class Sandbox:
    def __init__(self, state: SandboxState, keys: Keys, faults: Faults | None = None, state_file: Path | None = None):
        self.state = state
        self.keys = keys
        self.faults = faults or Faults()
        self.random = random.Random(self.faults.seed)
        self.state_file = state_file
        # No global lock: a change is applied in memory with no await between reading and
        # writing (so requests never see half a change), then committed to the journal, which
        # batches the fsyncs of concurrent writes. Requests are served concurrently.
        self.journal = Journal(state_file, state) if state_file else None
        self.requests = 0  # API requests answered or faulted, for tests and benchmarks
        self.injected: collections.Counter[str] = collections.Counter()  # faults injected, by kind
        self.deletes: collections.Counter[int] = collections.Counter()  # Additions deleted, by ID (tests: never twice)
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests seen at once
        self.rate_window: RateWindow | None = None
        # the codebases served; companyinfo names the first (move_codebase: an upgrade)
        self.codebases: tuple[str, ...] = CODEBASES
        self.app = Starlette(routes=self._routes(), lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        self.close()

    # ------------------------------------------------------------ ASGI entry

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        drop = False
        api = "/apis/3.0" in scope.get("path", "")

        async def guarded_send(message: dict) -> None:
            nonlocal drop
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() != DROP_HEADER]
                drop = len(headers) != len(message.get("headers", []))
                if api:  # on every API answer, as ConnectWise sends them (API-NOTES §1.4)
                    headers += [(b"api-current-version", self.faults.versions[1].encode()),
                                (b"x-cw-request-id", str(uuid.uuid4()).encode()), (b"x-server-name", b"cw-tui-sandbox")]
                await send({**message, "headers": headers})
                return
            if drop and message["type"] == "http.response.body":
                # the write is applied and the status line is out; the body never comes
                raise _Dropped()
            await send(message)

        await self.app(scope, receive, guarded_send)

    # ------------------------------------------------------------ persistence

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close(self.state)

    def _note(self, entry: Entry) -> None:
        changes = _CHANGES.get()
        if changes is not None:
            changes.append({**entry, "next_ids": dict(self.state.next_ids)})

    def put(self, table: str, row: dict) -> dict:
        """Store a row (a new one or a whole new version) and note it for the journal."""
        getattr(self.state, table)[row["id"]] = row
        self._note({"put": table, "row": row})
        return row

    def remove(self, table: str, row_id: int) -> None:
        getattr(self.state, table).pop(row_id, None)
        self._note({"delete": table, "id": row_id})

    # ------------------------------------------------------------ plumbing

    def _check_auth(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        expected = f"{self.keys.company_id}+{self.keys.public_key}:{self.keys.private_key}"
        given = ""
        if header[:6].lower() == "basic ":
            try:
                given = base64.b64decode(header[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                given = ""
        if given != expected:
            return _error(401, "Unauthorized", "Password or user name is invalid.")
        if request.headers.get("clientid") != self.keys.client_id:
            return _error(401, "Unauthorized", "A valid clientId header is required.")
        return None

    def invoice_through(self, through: str, agreement_ids: list[int] | None = None) -> list[tuple[str, dict]]:
        rows = invoicing.invoice_through(self.state, through, agreement_ids)
        for table, row in rows:
            self.put(table, row)
        return rows

    def _admin(self, func: Any) -> Any:
        """A sandbox-only route (not ConnectWise's): its changes are journaled like any write."""
        async def endpoint(request: Request) -> Response:
            changes: list[Entry] = []
            token = _CHANGES.set(changes)
            try:
                response = await func(request)
            finally:
                _CHANGES.reset(token)
            if changes and self.journal is not None:
                await self.journal.commit(changes)
            return response

        return endpoint

    def move_codebase(self, codebase: str) -> None:
        """A cloud upgrade: companyinfo answers `codebase`, and only it is served (the old
        path 404s, API-NOTES §1.3)."""
        self.codebases = (codebase.strip("/"),)

    def _check_role(self, request: Request) -> Response | None:
        if not self.faults.deny:
            return None
        path = request.url.path.partition("/apis/3.0")[2]
        for rule in self.faults.deny:
            method, _, glob = rule.strip().rpartition(" ")
            if (not method or method.upper() == request.method) and fnmatch.fnmatchcase(path, glob):
                self.injected["403"] += 1
                return _error(403, "Forbidden", "You do not have permission to access this resource. "
                              "Check the security role of the API member.")
        return None

    async def _stall(self, request: Request) -> None:
        """Answer only after stall_s, or never if the client gives up first."""
        deadline = time.monotonic() + self.faults.stall_s
        while time.monotonic() < deadline:
            await asyncio.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
            if await request.is_disconnected():
                return

    def _check_version(self, request: Request) -> Response | None:
        """The version asked for in `Accept`: only when the vendor media type comes first
        (else the newest models answer, API-NOTES §1.4); one outside the versions served is
        refused with ConnectWise's message."""
        first = request.headers.get("accept", "").split(",")[0]
        media, _, parameters = first.partition(";")
        if media.strip().lower() != VENDOR_TYPE:
            return None
        asked = next((p.split("=", 1)[1].strip().strip('"') for p in parameters.split(";")
                      if p.strip().lower().startswith("version=")), None)
        if asked is None or _version_key(self.faults.versions[0]) <= _version_key(asked) <= _version_key(self.faults.versions[1]):
            return None
        return _error(400, "ConnectWiseApi", f"The HTTP resource that matches the request URI '{request.url}' does not "
                      f"support the API version '{asked}'.")

    async def _faults(self, request: Request, write: bool) -> Response | None:
        faults = self.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.throttle_rate and self.random.random() < faults.throttle_rate:
            self.injected["429"] += 1
            return too_many(faults.retry_after_s)
        if faults.fail_rate and self.random.random() < faults.fail_rate:
            self.injected["500"] += 1
            return _error(500, "InternalServerError", "An unexpected error occurred (injected by the sandbox).")
        return None

    def _rate_limited(self) -> Response | None:
        faults = self.faults
        if not faults.rate_limit_per_min:
            self.rate_window = None
            return None
        window = self.rate_window
        if window is None or (window.limit, window.window_s) != (faults.rate_limit_per_min, faults.rate_window_s):
            window = self.rate_window = RateWindow(faults.rate_limit_per_min, faults.rate_window_s)
        wait = window.admit()
        if wait is None:
            return None
        self.injected["rate_limited"] += 1
        return too_many(wait)

    def _drop(self, write: bool) -> bool:
        rate = self.faults.drop_after_commit_rate
        return write and bool(rate) and self.random.random() < rate

    def _handler(self, func: Any, *, write: bool = False) -> Any:
        async def endpoint(request: Request) -> Response:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                return await answer(request)
            finally:
                self.in_flight -= 1

        async def answer(request: Request) -> Response:
            self.requests += 1
            limited = self._rate_limited()
            if limited is not None:
                return limited
            if request.path_params.get("codebase") not in self.codebases:
                return _error(404, "NotFound", "The requested resource was not found (unknown codebase).")
            path = request.url.path.partition("/apis/3.0")[2]
            odd = next((o for o in self.faults.odd_answers if o.takes(request.method, path)), None)
            if odd is not None:
                self.injected[odd.kind] += 1
                return await answer_oddly(odd, request, lambda: normal(request))
            return await normal(request)

        async def normal(request: Request) -> Response:
            denied = self._check_auth(request) or self._check_version(request) or self._check_role(request)
            if denied is not None:
                return denied
            faulted = await self._faults(request, write)
            if faulted is not None:
                return faulted
            changes: list[Entry] = []
            token = _CHANGES.set(changes)
            try:
                response = await func(request)
            except ConditionError as error:
                return _error(400, "InvalidCondition", f"conditions: {error}")
            finally:
                _CHANGES.reset(token)
            if changes and self.journal is not None:
                await self.journal.commit(changes)  # on disk before the answer is sent
            if self.faults.stall_rate and self.random.random() < self.faults.stall_rate:
                self.injected["stall"] += 1
                await self._stall(request)
            if self._drop(write) and response.status_code < 300:
                self.injected["drop"] += 1
                response.headers[DROP_HEADER] = "1"
            return response

        return endpoint

    async def _body(self, request: Request) -> Any:
        try:
            return _spaces(json.loads(await request.body(), parse_float=Decimal))
        except (ValueError, RecursionError):
            return None

    def _list(self, request: Request, rows: list[dict]) -> Response:
        params = request.query_params
        predicate = compile_conditions(params.get("conditions"))
        matched = [r for r in rows if predicate(r)]
        fields = params.get("fields")
        if request.headers.get("pagination-type", "").strip().lower() == "forward-only":
            return self._forward_only(request, matched)
        order = (params.get("orderBy") or "id asc").strip()
        keys = []
        for part in order.split(","):
            match = re.fullmatch(r"\s*([A-Za-z_][\w/]*)(?:\s+(asc|desc))?\s*", part, re.IGNORECASE)
            if not match:
                return _error(400, "InvalidOrderBy", f"orderBy: cannot sort by {order!r}")
            keys.append((match.group(1), (match.group(2) or "asc").lower()))
        for key, direction in reversed(keys):  # stable sorts, the last key first
            matched.sort(key=lambda r, key=key: _sort_key(_get(r, key)), reverse=direction == "desc")
        try:
            page = max(1, int(params.get("page") or 1))
            size = int(params.get("pageSize") or 25)
        except ValueError:
            return _error(400, "InvalidParameter", "page and pageSize must be whole numbers")
        size = max(1, min(size, MAX_PAGE_SIZE))
        last = max(1, -(-len(matched) // size))
        chunk = matched[(page - 1) * size : page * size]
        links = []

        def link(p: int, rel: str) -> str:
            query = dict(params)
            query.update(page=str(p), pageSize=str(size))
            return f'<{request.url.replace(query=urlencode(query))}>; rel="{rel}"'

        links.append(link(1, "first"))
        if page > 1:
            links.append(link(page - 1, "prev"))
        if page < last:
            links.append(link(page + 1, "next"))
        links.append(link(last, "last"))
        return _cw_json([_project(r, fields) for r in chunk], headers={"Link": ", ".join(links)})

    def _forward_only(self, request: Request, matched: list[dict]) -> Response:
        """`pagination-type: forward-only` (API-NOTES §3.1): rows after `pageId` in id order,
        `page` ignored, `orderBy` refused; the Link header always there, empty at the end."""
        params = request.query_params
        if params.get("orderBy"):
            return _error(400, "InvalidParameter", "orderBy cannot be used with forward-only pagination")
        try:
            after = int(params.get("pageId") or 0)
            size = max(1, min(int(params.get("pageSize") or 25), MAX_PAGE_SIZE))
        except ValueError:
            return _error(400, "InvalidParameter", "pageId and pageSize must be whole numbers")
        rest = sorted((r for r in matched if isinstance(r.get("id"), int) and r["id"] > after), key=lambda r: r["id"])
        chunk = rest[:size]
        link = ""
        if len(rest) > size:
            query = {k: v for k, v in params.items() if k != "page"}
            query.update(pageId=str(chunk[-1]["id"]), pageSize=str(size))
            link = f'<{request.url.replace(query=urlencode(query))}>; rel="next"'
        return _cw_json([_project(r, params.get("fields")) for r in chunk], headers={"Link": link})

    def _count(self, request: Request, rows: list[dict]) -> Response:
        predicate = compile_conditions(request.query_params.get("conditions"))
        return _cw_json({"count": sum(1 for r in rows if predicate(r))})

    def _one(self, request: Request, table: dict[int, dict], name: str) -> Response:
        record = table.get(int(request.path_params["id"]))
        if record is None:
            return _error(404, "NotFound", f"{name} recId {request.path_params['id']} not found")
        return _cw_json(_project(record, request.query_params.get("fields")))

    # ------------------------------------------------------------ routes

    def _routes(self) -> list[Route]:
        s = self.state

        def collection(path: str, table: str, name: str) -> list[Route]:
            async def list_rows(request: Request) -> Response:
                return self._list(request, list(getattr(s, table).values()))

            async def count_rows(request: Request) -> Response:
                return self._count(request, list(getattr(s, table).values()))

            async def one(request: Request) -> Response:
                return self._one(request, getattr(s, table), name)

            return [
                Route(f"{API}{path}", self._handler(list_rows), methods=["GET"]),
                Route(f"{API}{path}/count", self._handler(count_rows), methods=["GET"]),
                Route(f"{API}{path}/{{id:int}}", self._handler(one), methods=["GET"]),
            ]

        async def company_info(request: Request) -> Response:
            if request.path_params["company_id"].lower() != self.keys.company_id.lower():
                return JSONResponse(None)
            return JSONResponse({
                "CompanyName": self.keys.company_id, "Codebase": f"{self.codebases[0]}/", "VersionCode": "v2025.1",
                "VersionNumber": "v4.6", "CompanyID": self.keys.company_id, "IsCloud": "False",
            })

        async def system_info(request: Request) -> Response:
            return _cw_json({"version": f"v{self.faults.versions[1]}.10431", "isCloud": False, "serverTimeZone": "Eastern Standard Time",
                             "licenseBits": [], "cloudRegion": "NA", "maxWorkFlowRecordsAllowed": 100})

        async def create_agreement(request: Request) -> Response:
            return self.create_agreement(await self._body(request))

        async def create_company(request: Request) -> Response:
            return self.create_company(await self._body(request))

        async def list_additions(request: Request) -> Response:
            parent = self._agreement_or_404(request)
            if isinstance(parent, Response):
                return parent
            return self._list(request, [a for a in s.additions.values() if a["agreementId"] == parent["id"]])

        async def count_additions(request: Request) -> Response:
            parent = self._agreement_or_404(request)
            if isinstance(parent, Response):
                return parent
            return self._count(request, [a for a in s.additions.values() if a["agreementId"] == parent["id"]])

        async def one_addition(request: Request) -> Response:
            addition = self._addition_or_404(request)
            return addition if isinstance(addition, Response) else _cw_json(_project(addition, request.query_params.get("fields")))

        async def create_addition(request: Request) -> Response:
            parent = self._agreement_or_404(request)
            if isinstance(parent, Response):
                return parent
            return self.create_addition(parent, await self._body(request))

        async def patch_addition(request: Request) -> Response:
            addition = self._addition_or_404(request)
            if isinstance(addition, Response):
                return addition
            return self.patch_addition(addition, await self._body(request))

        async def invoice(request: Request) -> Response:
            """The sandbox's admin route: {"through": "YYYY-MM", "agreementIds": [..]} (all
            active agreements when left out) runs agreement billing through that month."""
            body = await self._body(request)
            if not isinstance(body, dict) or not isinstance(body.get("through"), str):
                return _error(400, "InvalidObject", 'Send {"through": "YYYY-MM", "agreementIds": [ids]}.')
            ids = body.get("agreementIds")
            if ids is not None and (not isinstance(ids, list) or any(i not in s.agreements for i in ids)):
                return _error(400, "InvalidObject", "agreementIds must list existing agreement ids.")
            try:
                rows = self.invoice_through(body["through"], ids)
            except ValueError as error:
                return _error(400, "InvalidObject", str(error))
            return JSONResponse(invoicing.describe(rows))

        async def delete_addition(request: Request) -> Response:
            addition = self._addition_or_404(request)
            if isinstance(addition, Response):
                return addition
            refused = self.faults.refuse_invoiced_changes and invoicing.refusal(s, addition["agreementId"], "delete", addition, None)
            if refused:
                return _invalid("addition", refused)
            self.remove("additions", addition["id"])
            self.deletes[addition["id"]] += 1
            return Response(status_code=204)

        async def delete_agreement(request: Request) -> Response:
            """Refused while the agreement holds Additions or has been invoiced (the strict
            reading; API-NOTES gives DELETE 204 and no more)."""
            agreement = s.agreements.get(int(request.path_params["id"]))
            if agreement is None:
                return _error(404, "NotFound", f"Agreement recId {request.path_params['id']} not found")
            if any(a["agreementId"] == agreement["id"] for a in s.additions.values()):
                return _invalid("agreement", ("InvalidObject", "id",
                                              "This agreement has additions and cannot be deleted. Delete them first."))
            if agreement["id"] in s.invoiced or any((i.get("agreement") or {}).get("id") == agreement["id"]
                                                    for i in s.invoices.values()):
                return _invalid("agreement", ("InvalidObject", "id",
                                              "This agreement has been invoiced and cannot be deleted."))
            self.remove("agreements", agreement["id"])
            return Response(status_code=204)

        additions = f"{API}/finance/agreements/{{parentId:int}}/additions"
        return [
            Route("/login/companyinfo/{company_id}", company_info, methods=["GET"]),
            Route(f"{API}/system/info", self._handler(system_info), methods=["GET"]),
            *collection("/company/companies/statuses", "statuses", "CompanyStatus"),
            Route(f"{API}/company/companies", self._handler(create_company, write=True), methods=["POST"]),
            *collection("/company/companies", "companies", "Company"),
            *collection("/procurement/catalog", "catalog", "CatalogItem"),
            *collection("/finance/agreements/types", "agreement_types", "AgreementType"),
            Route(f"{API}/finance/agreements", self._handler(create_agreement, write=True), methods=["POST"]),
            *collection("/finance/agreements", "agreements", "Agreement"),
            Route(f"{API}/finance/agreements/{{id:int}}", self._handler(delete_agreement, write=True), methods=["DELETE"]),

            Route(additions, self._handler(list_additions), methods=["GET"]),
            Route(additions, self._handler(create_addition, write=True), methods=["POST"]),
            Route(f"{additions}/count", self._handler(count_additions), methods=["GET"]),
            Route(f"{additions}/{{id:int}}", self._handler(one_addition), methods=["GET"]),
            Route(f"{additions}/{{id:int}}", self._handler(patch_addition, write=True), methods=["PATCH"]),
            Route(f"{additions}/{{id:int}}", self._handler(delete_addition, write=True), methods=["DELETE"]),
            *collection("/finance/invoices", "invoices", "Invoice"),
            Route("/sandbox/admin/invoice", self._admin(invoice), methods=["POST"]),
        ]

    def _agreement_or_404(self, request: Request) -> dict | Response:
        agreement = self.state.agreements.get(int(request.path_params["parentId"]))
        if agreement is None:
            return _error(404, "NotFound", f"Agreement recId {request.path_params['parentId']} not found")
        return agreement

    def _addition_or_404(self, request: Request) -> dict | Response:
        parent = self._agreement_or_404(request)
        if isinstance(parent, Response):
            return parent
        addition = self.state.additions.get(int(request.path_params["id"]))
        if addition is None or addition["agreementId"] != parent["id"]:
            return _error(404, "NotFound", f"Addition recId {request.path_params['id']} not found")
        return addition

    # ------------------------------------------------------------ writes

    def _reference(self, value: Any, table: dict[int, dict], keys: tuple[str, ...] = ("identifier", "name")) -> dict | None:
        if not isinstance(value, dict):
            return None
        if isinstance(value.get("id"), int) and not isinstance(value.get("id"), bool):
            return table.get(value["id"])
        for key in keys:
            if isinstance(value.get(key), str):
                wanted = value[key].casefold()
                return next((r for r in table.values() if str(r.get(key, "")).casefold() == wanted), None)
        return None

    def _validate_addition(self, body: dict) -> list[tuple[str, str, str]]:
        errors: list[tuple[str, str, str]] = []
        product_ref = body.get("product")
        if product_ref is None:
            errors.append(("Required", "product", "The product field is required."))
        else:
            product = self._reference(product_ref, self.state.catalog, ("identifier",))
            if product is None:
                errors.append(("NotFound", "product", "Product not found."))
            elif product.get("inactiveFlag"):
                errors.append(("InvalidObject", "product", f"Product {product['identifier']} is inactive and cannot be added."))
        if body.get("billCustomer") is None:
            errors.append(("Required", "billCustomer", "The billCustomer field is required."))
        elif body["billCustomer"] not in BILL_CUSTOMER:
            errors.append(("InvalidValue", "billCustomer", f"billCustomer must be one of {', '.join(BILL_CUSTOMER)}."))
        for name in ("quantity", "unitPrice", "unitCost", "lessIncluded"):
            value = body.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, Decimal))):
                errors.append(("InvalidValue", name, f"{name} must be a number."))
        errors += _date_errors(body, "effectiveDate", "cancelledDate")
        errors += _length_errors("addition", body)
        return errors

    def _store_addition(self, addition: dict) -> dict:
        product = self._reference(addition["product"], self.state.catalog, ("identifier",)) or {}
        addition["product"] = {"id": product.get("id"), "identifier": product.get("identifier")}
        # in Decimal, from the numbers as sent: 2.5 x 19.99 is 49.975, not a float's 49.97
        quantity, price, cost = (_decimal(addition.get(k)) for k in ("quantity", "unitPrice", "unitCost"))
        addition.update(extPrice=quantity * price, extCost=quantity * cost, margin=quantity * (price - cost))
        return _plain(addition)

    def create_addition(self, agreement: dict, body: Any) -> Response:
        if not isinstance(body, dict):
            return _invalid("addition", ("InvalidObject", "", "The request body must be an addition object."))
        if agreement.get("agreementStatus") != "Active" or agreement.get("cancelledFlag"):
            return _invalid("addition", ("InvalidObject", "agreement",
                            f"Additions cannot be added to agreement {agreement['id']}: its status is {agreement.get('agreementStatus')}."))
        errors = self._validate_addition(body)
        if errors:
            return _invalid("addition", *errors)
        refused = invoicing.refusal(self.state, agreement["id"], "add", None, body)
        if refused:
            return _invalid("addition", refused)
        addition_id = self.state.new_id("addition")
        allowed = {k: v for k, v in body.items() if k not in ("id", "agreementId", "_info", "extPrice", "extCost", "margin")}
        addition = self._store_addition({
            **allowed, "id": addition_id, "agreementId": agreement["id"], "agreementStatus": "Active",
            "billedQuantity": 0.0, "sequenceNumber": float(addition_id % 1000),
            "_info": {"lastUpdated": now_text(), "updatedBy": "api", "dateEntered": now_text()},
        })
        self.put("additions", addition)
        return _cw_json(addition, status=201)

    def patch_addition(self, addition: dict, body: Any) -> Response:
        if not isinstance(body, list) or not all(isinstance(op, dict) for op in body):
            return _invalid("addition", ("InvalidObject", "", "The request body must be a list of patch operations."))
        updated = dict(addition)
        for op in body:
            kind, path = op.get("op"), str(op.get("path", "")).lstrip("/")
            if kind not in ("add", "replace", "remove"):
                return _invalid("addition", ("InvalidValue", "op", f"Unsupported patch operation {kind!r}."))
            if not path or "/" in path:
                # ConnectWise does not support nested paths; it would silently ignore them
                continue
            if path in ("id", "agreementId", "_info"):
                return _invalid("addition", ("ReadOnly", path, f"{path} cannot be changed."))
            if kind == "remove":
                updated.pop(path, None)
            else:
                updated[path] = op.get("value")
        errors = self._validate_addition(updated)
        if errors:
            return _invalid("addition", *errors)
        refused = self.faults.refuse_invoiced_changes and invoicing.refusal(
            self.state, addition["agreementId"], "change", addition, updated)
        if refused:
            return _invalid("addition", refused)
        updated["_info"] = {**addition.get("_info", {}), "lastUpdated": now_text(), "updatedBy": "api"}
        return _cw_json(self.put("additions", self._store_addition(updated)))

    def create_company(self, body: Any) -> Response:
        if not isinstance(body, dict):
            return _invalid("company", ("InvalidObject", "", "The request body must be a company object."))
        errors = []
        for name in ("identifier", "name"):
            if not isinstance(body.get(name), str) or not body[name].strip():
                errors.append(("Required", name, f"The {name} field is required."))
        errors += [e for e in _length_errors("company", body) if not any(x[1] == e[1] for x in errors)]
        if not errors and any(c["identifier"].casefold() == body["identifier"].casefold() for c in self.state.companies.values()):
            errors.append(("ObjectExists", "identifier", f"The identifier {body['identifier']} is already in use."))
        if errors:
            return _invalid("company", *errors)
        company_id = self.state.new_id("company")
        status = self._reference(body.get("status"), self.state.statuses, ("name",)) or self.state.statuses.get(1, {})
        company = self.put("companies", {
            **_plain({k: v for k, v in body.items() if k not in ("id", "_info")}),
            "id": company_id, "status": {"id": status.get("id"), "name": status.get("name")}, "deletedFlag": False,
            "_info": {"lastUpdated": now_text(), "updatedBy": "api", "dateEntered": now_text()},
        })
        return _cw_json(company, status=201)

    def create_agreement(self, body: Any) -> Response:
        if not isinstance(body, dict):
            return _invalid("agreement", ("InvalidObject", "", "The request body must be an agreement object."))
        errors = []
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            errors.append(("Required", "name", "The name field is required."))
        agreement_type = self._reference(body.get("type"), self.state.agreement_types, ("name",))
        if agreement_type is None:
            errors.append(("Required" if body.get("type") is None else "NotFound", "type", "A valid agreement type is required."))
        elif agreement_type.get("inactiveFlag"):
            errors.append(("InvalidObject", "type", f"Agreement type {agreement_type['name']} is inactive."))
        company = self._reference(body.get("company"), self.state.companies, ("identifier",))
        if company is None:
            errors.append(("Required" if body.get("company") is None else "NotFound", "company", "A valid company is required."))
        contact = body.get("contact")
        if not isinstance(contact, dict) or not isinstance(contact.get("id"), int):
            errors.append(("Required", "contact", "The contact field is required."))
        errors += _date_errors(body, "startDate", "endDate")
        errors += [e for e in _length_errors("agreement", body) if e[1] != "name" or not any(x[1] == "name" for x in errors)]
        if errors:
            return _invalid("agreement", *errors)
        assert company is not None and agreement_type is not None
        agreement_id = self.state.new_id("agreement")
        agreement = {
            **_plain({k: v for k, v in body.items() if k not in ("id", "_info")}),
            "id": agreement_id,
            "type": {"id": agreement_type["id"], "name": agreement_type["name"]},
            "company": {"id": company["id"], "identifier": company["identifier"], "name": company["name"]},
            "agreementStatus": "Active",
            "cancelledFlag": False,
            "_info": {"lastUpdated": now_text(), "updatedBy": "api", "dateEntered": now_text()},
        }
        self.put("agreements", agreement)
        return _cw_json(agreement, status=201)

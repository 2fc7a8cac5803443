"""Contract tests: every request the client sends and every sandbox response it reads
validate against ../shared/connectwise/openapi-subset.json (API-NOTES "Validating")."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.request.exceptions import RequestValidationError
from werkzeug.datastructures import Headers, ImmutableMultiDict

from cw_tui.services.connectwise import ConnectWiseClient
from cw_tui.services.connectwise.conditions import condition
from tests.sandbox_helpers import sandbox_thread

# shared/ sits beside the repository (DEVELOPERS.md); CW_TUI_SHARED points elsewhere if needed.
SHARED = Path(os.environ.get("CW_TUI_SHARED") or Path(__file__).resolve().parents[2] / "shared")
SPEC_PATH = SHARED / "connectwise" / "openapi-subset.json"
SERVER = "https://na.myconnectwise.net"
PREFIX = "/v4_6_release/apis/3.0"


def load_openapi() -> OpenAPI:
    spec = json.loads(SPEC_PATH.read_text())
    # The spec is generated from .NET, where PatchOperation.value is `object`, meaning any JSON
    # value; ConnectWise takes numbers and strings there (API-NOTES §2.9). Read it as "any".
    spec["components"]["schemas"]["PatchOperation"]["properties"]["value"] = {}
    config = Config(extra_media_type_deserializers={
        "application/vnd.connectwise.com+json": lambda value, **params: json.loads(value)})
    return OpenAPI.from_dict(spec, config=config)


class _Request:
    def __init__(self, request: httpx.Request):
        url = urlsplit(str(request.url))
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qs(url.query)), header=Headers(dict(request.headers)),
            cookie=ImmutableMultiDict({}),
        )
        self.host_url = SERVER
        self.path = url.path
        self.method = request.method.lower()
        self.body = request.content or None
        self.content_type = request.headers.get("content-type") or request.headers.get("accept", "")


class _Response:
    def __init__(self, response: httpx.Response):
        self.status_code = response.status_code
        self.headers = Headers(dict(response.headers))
        self.content_type = response.headers.get("content-type", "")
        self.data = response.content or None


class RecordingTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.exchanges.append((request, response))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return load_openapi()


def test_every_request_and_response_matches_the_spec(openapi: OpenAPI) -> None:
    transport = RecordingTransport()
    with sandbox_thread() as sandbox:
        async def scenario() -> None:
            async with ConnectWiseClient(sandbox.credentials, transport=transport) as client:
                await client.system_info()
                companies = await client.companies(condition("status/name", "=", "Active"))
                await client.count("/company/companies", condition("name", "like", "B*"))
                await client.company_statuses()
                items = await client.catalog_items(condition("inactiveFlag", "=", False))
                types = await client.agreement_types()
                agreements = await client.agreements(company_id=companies[0].id)
                active = [a for a in await client.agreements(status="Active")]
                await client.agreement(active[0].id)
                created = await client.create_agreement({
                    "name": "Contract test", "type": {"id": types[0].id}, "company": {"id": companies[0].id},
                    "contact": {"id": companies[0].defaultContact.id},
                })
                addition = await client.create_addition(created.id, {
                    "product": {"id": items[0].id}, "billCustomer": "Billable", "quantity": 3, "unitPrice": 12.5,
                    "unitCost": 9.75, "effectiveDate": "2026-10-01T00:00:00Z", "description": "M365 x3",
                    "invoiceDescription": "Microsoft 365 (Oct 2026)", "serialNumber": "cwt:contract-test",
                })
                await client.additions(created.id, condition("serialNumber", "=", "cwt:contract-test"))
                await client.count(f"/finance/agreements/{created.id}/additions")
                await client.patch_addition(created.id, addition.id, {"quantity": 4, "cancelledDate": "2026-10-31T00:00:00Z"})
                await client.delete_addition(created.id, addition.id)
                await client.invoices(agreement_id=active[0].id, conditions=condition("type", "=", "Agreement"))
                await client.count("/finance/invoices", condition("agreement/id", "=", active[0].id))
                assert agreements is not None

        asyncio.run(scenario())
    api = [(q, r) for q, r in transport.exchanges if q.url.path.startswith(PREFIX)]
    assert len(api) >= 15
    problems = []
    for request, response in api:
        wrapped = _Request(request)
        wrapped.path = wrapped.path  # the spec's server carries the /v4_6_release/apis/3.0 prefix
        try:
            openapi.validate_request(wrapped)
        except Exception as error:
            problems.append(f"request {request.method} {request.url.path}: {error!r} {getattr(error, '__cause__', '')}")
        if response.status_code < 400:
            try:
                openapi.validate_response(wrapped, _Response(response))
            except Exception as error:
                cause = getattr(error, "__cause__", None)
                detail = list(getattr(cause, "schema_errors", None) or [cause])[:3]
                problems.append(f"response {request.method} {request.url.path} {response.status_code}: {error!r} {detail}")
    assert not problems, "\n".join(problems)


def test_the_validator_catches_a_bad_body(openapi: OpenAPI) -> None:
    """The control: a body without `product` and with a bad billCustomer fails validation."""
    request = httpx.Request(
        "POST", f"http://127.0.0.1{PREFIX}/finance/agreements/5/additions",
        headers={"clientId": "x", "Content-Type": "application/json"},
        content=json.dumps({"billCustomer": "Yes"}).encode(),
    )
    with pytest.raises(RequestValidationError):
        openapi.validate_request(_Request(request))

"""Issue 14 item 4: the sandbox's data rules, over a socket: amounts in Decimal, control
characters as spaces (and the client's exact-name look-up still finding the record), field
limits as ConnectWise-shaped 400s naming the field, datetimes with an offset, orderBy on
several fields, forward-only paging with pageId."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from cw_tui.services.connectwise import ConnectWiseClient, RequestRejected
from cw_tui.services.connectwise.conditions import condition
from tests.sandbox_helpers import raw_client, sandbox_thread


@pytest.fixture(scope="module")
def running():
    with sandbox_thread(seed=7) as sandbox:
        yield sandbox


def _active(running) -> tuple[int, int]:
    state = running.sandbox.state
    agreement = next(a for a in state.agreements.values() if a["agreementStatus"] == "Active")
    product = next(p for p in state.catalog.values() if not p["inactiveFlag"])
    return agreement["id"], product["id"]


def _addition(running, **fields):
    agreement_id, product_id = _active(running)
    body = {"product": {"id": product_id}, "billCustomer": "Billable", **fields}
    with raw_client(running) as http:
        return http.post(f"/finance/agreements/{agreement_id}/additions", json=body)


def test_amounts_are_computed_in_decimal(running) -> None:
    with raw_client(running) as http:
        agreement_id, product_id = _active(running)
        answer = http.post(f"/finance/agreements/{agreement_id}/additions",
                           content=b'{"product":{"id":%d},"billCustomer":"Billable","quantity":2.5,"unitPrice":19.99,'
                                   b'"unitCost":0.1}' % product_id, headers={"Content-Type": "application/json"})
    assert answer.status_code == 201, answer.text
    data = answer.json(parse_float=Decimal)
    assert data["extPrice"] == Decimal("49.975")  # a float rounded per line gave 49.97
    assert data["extCost"] == Decimal("0.25")
    assert data["margin"] == Decimal("49.725")


def test_control_characters_become_spaces_and_the_exact_name_still_finds_it(running) -> None:
    with raw_client(running) as http:
        made = http.post("/company/companies", json={"identifier": "CtlChars", "name": "Line\nBreak\tand\x07bell"})
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "Line Break and bell"

    async def look_up():
        async with ConnectWiseClient(running.credentials) as client:
            return await client.companies(condition("name", "=", "Line\nBreak\tand\x07bell"))

    found = asyncio.run(look_up())
    assert [c.identifier for c in found] == ["CtlChars"]


@pytest.mark.parametrize(("path", "body", "field", "limit"), [
    ("/company/companies", {"identifier": "X" * 31, "name": "ok"}, "identifier", 30),
    ("/company/companies", {"identifier": "LongName", "name": "N" * 51}, "name", 50),
])
def test_company_field_limits_are_a_400_naming_the_field(running, path, body, field, limit) -> None:
    with raw_client(running) as http:
        answer = http.post(path, json=body)
    assert answer.status_code == 400
    data = answer.json()
    assert data["code"] == "InvalidObject" and data["message"] == "company object is invalid"
    assert [(e["field"], e["resource"]) for e in data["errors"]] == [(field, "company")]
    assert f"maximum length of {limit}" in data["errors"][0]["message"]


@pytest.mark.parametrize(("field", "limit"), [("serialNumber", 50), ("invoiceDescription", 6000), ("description", 6000)])
def test_addition_field_limits_are_a_400_naming_the_field(running, field, limit) -> None:
    assert _addition(running, **{field: "x" * limit}).status_code == 201
    answer = _addition(running, **{field: "x" * (limit + 1)})
    assert answer.status_code == 400
    assert [e["field"] for e in answer.json()["errors"]] == [field]


def test_agreement_name_limit_and_the_client_names_the_field(running) -> None:
    state = running.sandbox.state
    company = next(iter(state.companies.values()))

    async def create(name: str):
        async with ConnectWiseClient(running.credentials) as client:
            return await client.create_agreement({"name": name, "type": {"id": 2}, "company": {"id": company["id"]},
                                                  "contact": {"id": 1}})

    assert asyncio.run(create("A" * 100)).name == "A" * 100
    with pytest.raises(RequestRejected) as caught:
        asyncio.run(create("A" * 101))
    assert caught.value.status == 400 and caught.value.errors[0].field == "name"
    assert "maximum length of 100" in caught.value.message


def test_datetimes_with_an_offset_are_accepted_and_answered_in_utc(running) -> None:
    answer = _addition(running, effectiveDate="2026-10-01T02:00:00+02:00")
    assert answer.status_code == 201, answer.text
    assert answer.json()["effectiveDate"] == "2026-10-01T00:00:00Z"
    for bad in ("2026-10-01T00:00:00.000Z", "2026-10-01T00:00:00", "2026-10-01"):
        refused = _addition(running, effectiveDate=bad)
        assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == "UnsupportedFormat"


def test_order_by_several_fields(running) -> None:
    with raw_client(running) as http:
        rows = http.get("/finance/agreements", params={"orderBy": "type/id desc, id asc", "pageSize": 1000,
                                                       "fields": "id,type/id"}).json()
    assert rows == sorted(rows, key=lambda r: (-r["type"]["id"], r["id"]))
    assert len({r["type"]["id"] for r in rows}) > 1


def test_forward_only_paging_with_page_id(running) -> None:
    every = sorted(running.sandbox.state.companies)
    seen: list[int] = []
    with raw_client(running, **{"pagination-type": "forward-only"}) as http:
        params = {"pageSize": 40, "fields": "id", "page": 3}  # page is ignored
        while True:
            answer = http.get("/company/companies", params=params)
            assert answer.status_code == 200 and "Link" in answer.headers
            seen += [r["id"] for r in answer.json()]
            link = answer.headers["Link"]
            if not link:
                break
            assert 'rel="next"' in link and f"pageId={seen[-1]}" in link
            params = {"pageSize": 40, "fields": "id", "pageId": seen[-1]}
        refused = http.get("/company/companies", params={"orderBy": "name asc"})
    assert seen == every
    assert refused.status_code == 400

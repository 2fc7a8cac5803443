"""Issue 14 item 5: invoicing in the sandbox. Agreements can be invoiced through a month
(the admin route, `cw-tui sandbox --invoiced-through`; seeded agreements have history),
`/finance/invoices` lists what was invoiced, and an Addition in an invoiced period cannot be
added (ConnectWise's message), changed or deleted (the strict reading, README)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest

from cw_tui.sandbox.invoicing import ADD_REFUSED
from cw_tui.services.connectwise import ConnectWiseClient, RequestRejected
from cw_tui.services.connectwise.conditions import all_of, condition
from tests.sandbox_helpers import Announced, raw_client, sandbox_process, sandbox_thread


@pytest.fixture
def running():
    with sandbox_thread(seed=7) as sandbox:
        yield sandbox


def _ids(state) -> tuple[int, int]:
    agreement = next(a for a in state.agreements.values() if a["agreementStatus"] == "Active")
    product = next(p for p in state.catalog.values() if not p["inactiveFlag"])
    return agreement["id"], product["id"]


def _body(product_id: int, day: str, **more) -> dict:
    return {"product": {"id": product_id}, "billCustomer": "Billable", "quantity": 2.5, "unitPrice": 19.99,
            "effectiveDate": f"{day}T00:00:00Z", **more}


def _invoice(running, through: str, *ids: int) -> dict:
    answer = httpx.post(f"{running.url}/sandbox/admin/invoice", json={"through": through, "agreementIds": list(ids)})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_seeded_agreements_have_invoice_history(running) -> None:
    agreement_id, _ = _ids(running.sandbox.state)

    async def go():
        async with ConnectWiseClient(running.credentials) as client:
            march = await client.invoices(agreement_id=agreement_id, conditions=all_of(
                condition("type", "=", "Agreement"), "date>=[2024-03-01T00:00:00Z]", "date<[2024-04-01T00:00:00Z]"))
            every = await client.invoices(agreement_id=agreement_id)
            counted = await client.count("/finance/invoices", condition("agreement/id", "=", agreement_id))
            agreement = await client.agreement(agreement_id)
            return march, every, counted, agreement

    march, every, counted, agreement = asyncio.run(go())
    assert len(march) == 1 and march[0].applyToType == "Agreement" and march[0].applyToId == agreement_id
    assert len(every) == counted == 12  # January to December 2024
    assert agreement.model_extra["nextInvoiceDate"] == "2025-01-01T00:00:00Z"
    with raw_client(running) as http:
        one = http.get(f"/finance/invoices/{march[0].id}")
    assert one.status_code == 200 and one.json()["agreement"]["id"] == agreement_id


def test_adding_in_an_invoiced_period_is_refused_with_connectwise_s_message(running) -> None:
    agreement_id, product_id = _ids(running.sandbox.state)
    assert _invoice(running, "2026-10", agreement_id) == {"invoices": 22, "agreements": 1}  # 2025-01 to 2026-10

    async def add(day: str):
        async with ConnectWiseClient(running.credentials) as client:
            return await client.create_addition(agreement_id, _body(product_id, day))

    with pytest.raises(RequestRejected) as caught:
        asyncio.run(add("2026-10-01"))
    assert caught.value.status == 400 and caught.value.code == "InvalidObject"
    assert caught.value.errors[0].field == "effectiveDate" and caught.value.errors[0].message == ADD_REFUSED
    assert "already been invoiced" in caught.value.message
    assert asyncio.run(add("2026-11-01")).id  # on the Next Invoice Date: fine


def test_changing_or_deleting_in_an_invoiced_period_is_refused_but_ending_it_later_is_not(running) -> None:
    agreement_id, product_id = _ids(running.sandbox.state)
    with raw_client(running) as http:
        base = f"/finance/agreements/{agreement_id}/additions"
        october = http.post(base, json=_body(product_id, "2026-10-01")).json()["id"]
        ended = http.post(base, json=_body(product_id, "2026-10-01")).json()["id"]
        november = http.post(base, json=_body(product_id, "2026-11-01")).json()["id"]
        invoice = _invoice(running, "2026-10", agreement_id)
        assert invoice["invoices"] == 22
        totals = {i["date"][:7]: Decimal(str(i["productTotal"])) for i in running.sandbox.state.invoices.values()
                  if i["agreement"]["id"] == agreement_id}
        assert totals["2026-10"] - totals["2026-09"] == Decimal("99.95")  # both October additions, in Decimal

        changed = http.patch(f"{base}/{october}", json=[{"op": "replace", "path": "quantity", "value": 3}])
        moved = http.patch(f"{base}/{november}", json=[{"op": "replace", "path": "effectiveDate", "value": "2026-09-01T00:00:00Z"}])
        early_end = http.patch(f"{base}/{october}", json=[{"op": "replace", "path": "cancelledDate", "value": "2026-10-15T00:00:00Z"}])
        deleted = http.delete(f"{base}/{october}")
        for refused in (changed, moved, early_end, deleted):
            assert refused.status_code == 400, refused.text
            assert refused.json()["code"] == "InvalidObject" and "already been invoiced" in refused.json()["errors"][0]["message"]
        assert changed.json()["errors"][0]["field"] == "quantity"
        assert "cannot be deleted" in deleted.json()["errors"][0]["message"]

        end = http.patch(f"{base}/{ended}", json=[{"op": "replace", "path": "cancelledDate", "value": "2026-11-30T00:00:00Z"}])
        assert end.status_code == 200 and end.json()["cancelledDate"] == "2026-11-30T00:00:00Z"
        assert http.patch(f"{base}/{november}", json=[{"op": "replace", "path": "quantity", "value": 4}]).status_code == 200
        assert http.delete(f"{base}/{november}").status_code == 204  # November is not invoiced

        running.sandbox.faults.refuse_invoiced_changes = False  # the lenient reading, switched on
        assert http.patch(f"{base}/{october}", json=[{"op": "replace", "path": "quantity", "value": 3}]).status_code == 200
        assert http.delete(f"{base}/{october}").status_code == 204


def test_the_admin_route_refuses_what_it_cannot_do(running) -> None:
    for body in ({"through": "2026-13"}, {"through": "soon"}, {"agreementIds": [1]}, {"through": "2026-10", "agreementIds": [1]}):
        assert httpx.post(f"{running.url}/sandbox/admin/invoice", json=body).status_code == 400


def test_invoiced_through_from_the_command_line(tmp_path) -> None:
    state = tmp_path / "sandbox.json"
    with sandbox_process("--invoiced-through", "2026-10", "--state", str(state)) as announced:
        credentials = Announced(announced).credentials

        async def go():
            async with ConnectWiseClient(credentials) as client:
                agreement = (await client.agreements(status="Active"))[0]
                product = next(p for p in await client.catalog_items() if not p.inactiveFlag)
                october = await client.invoices(agreement_id=agreement.id, conditions="date=[2026-10-01T00:00:00Z]")
                try:
                    await client.create_addition(agreement.id, _body(product.id, "2026-10-31"))
                except RequestRejected as error:
                    return agreement, october, error
                return agreement, october, None

        agreement, october, error = asyncio.run(go())
    assert agreement.model_extra["nextInvoiceDate"] == "2026-11-01T00:00:00Z"
    assert len(october) == 1
    assert error is not None and error.errors[0].message == ADD_REFUSED

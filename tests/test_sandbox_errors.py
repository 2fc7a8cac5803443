"""Issue 14 item 3: errors ConnectWise really gives, over a socket, and the client's reaction
to each: a 403 for a missing security role (per endpoint), a proxy's HTML 403/503 page (an
outage, not a permission), an answer that stalls past the client's timeout (a timeout; for
a POST the outcome is unknown), and the codebase moving (rediscovered)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from cw_tui.sandbox.odd_answers import OddAnswer
from cw_tui.services.connectwise import (
    ConnectWiseClient,
    Outage,
    OutcomeUnknown,
    PermissionDenied,
    TimedOut,
)
from tests.sandbox_helpers import Announced, raw_client, sandbox_process, sandbox_thread


def _ids(running) -> tuple[int, int]:
    state = running.sandbox.state
    agreement = next(a for a in state.agreements.values() if a["agreementStatus"] == "Active")
    product = next(p for p in state.catalog.values() if not p["inactiveFlag"])
    return agreement["id"], product["id"]


def _body(product_id: int) -> dict:
    return {"product": {"id": product_id}, "billCustomer": "Billable", "quantity": 1, "unitPrice": 1,
            "effectiveDate": "2026-10-01T00:00:00Z"}


def test_a_denied_endpoint_is_a_403_and_the_client_says_which_right_is_missing() -> None:
    with sandbox_thread(deny=["POST /finance/agreements/*/additions"]) as running:
        agreement_id, product_id = _ids(running)
        with raw_client(running) as http:
            assert http.get(f"/finance/agreements/{agreement_id}/additions").status_code == 200
            refused = http.post(f"/finance/agreements/{agreement_id}/additions", json=_body(product_id))
        assert refused.status_code == 403 and refused.json()["code"] == "Forbidden"

        async def go():
            async with ConnectWiseClient(running.credentials) as client:
                await client.additions(agreement_id)  # reading is allowed
                await client.create_addition(agreement_id, _body(product_id))

        with pytest.raises(PermissionDenied) as caught:
            asyncio.run(go())
        assert running.sandbox.injected["403"] == 2  # not retried
    message = caught.value.message
    assert "security role" in message and "Add rights on Finance > Agreements" in message
    assert "System > Security Roles" in message and "administrator" in message


def test_deny_from_the_command_line() -> None:
    with sandbox_process("--deny", "/procurement/*") as announced:
        async def go():
            async with ConnectWiseClient(Announced(announced).credentials) as client:
                await client.companies()
                await client.catalog_items()

        with pytest.raises(PermissionDenied) as caught:
            asyncio.run(go())
    assert "Inquire rights on Procurement > Product Catalog" in caught.value.message


@pytest.mark.parametrize("status", [403, 503])
def test_a_proxy_s_html_page_is_read_as_an_outage(status: int) -> None:
    with sandbox_thread() as running:
        running.sandbox.faults.odd_answers.append(OddAnswer("html_error", "/company/companies", {"status": status}))

        async def go():
            async with ConnectWiseClient(running.credentials, retries=2, backoff_base=0.01) as client:
                await client.companies()

        with pytest.raises(Outage) as caught:
            asyncio.run(go())
        assert running.sandbox.injected["html_error"] == 3  # a read: retried, as for any outage
    message = caught.value.message
    assert not isinstance(caught.value, PermissionDenied)
    assert "proxy" in message and "HTML error page" in message and "outage" in message and "try again" in message
    assert f"{status} " in message and "<" not in message


def test_a_proxy_s_page_to_a_post() -> None:
    with sandbox_thread() as running:
        agreement_id, product_id = _ids(running)
        before = len(running.sandbox.state.additions)
        odd = OddAnswer("html_error", "/finance/agreements/*/additions", {"status": 403}, method="POST")
        running.sandbox.faults.odd_answers.append(odd)

        async def go():
            async with ConnectWiseClient(running.credentials) as client:
                await client.create_addition(agreement_id, _body(product_id))

        with pytest.raises(Outage):  # blocked in front of ConnectWise: nothing was carried out
            asyncio.run(go())
        odd.options["status"] = 503
        with pytest.raises(OutcomeUnknown):  # a gateway's 503 after a POST: not known
            asyncio.run(go())
        assert len(running.sandbox.state.additions) == before


def test_a_stalled_read_is_a_timeout() -> None:
    with sandbox_thread(stall_rate=1.0, stall_s=30) as running:
        async def go():
            async with ConnectWiseClient(running.credentials, timeout=0.4, retries=1, backoff_base=0.01) as client:
                await client.system_info()

        with pytest.raises(TimedOut) as caught:
            asyncio.run(go())
        assert running.sandbox.injected["stall"] == 2  # retried once
    assert "did not answer GET /system/info in time" in caught.value.message


def test_a_stalled_post_is_outcome_unknown_and_was_carried_out() -> None:
    with sandbox_thread() as running:
        agreement_id, product_id = _ids(running)
        before = set(running.sandbox.state.additions)

        async def go():
            async with ConnectWiseClient(running.credentials, timeout=0.4) as client:
                await client.api_base()
                running.sandbox.faults.stall_rate, running.sandbox.faults.stall_s = 1.0, 30
                await client.create_addition(agreement_id, {**_body(product_id), "serialNumber": "stalled"})

        with pytest.raises(OutcomeUnknown) as caught:
            asyncio.run(go())
        assert running.sandbox.injected["stall"] == 1  # never sent twice
        created = set(running.sandbox.state.additions) - before
    assert "may or may not have applied it" in caught.value.message
    assert len(created) == 1  # ConnectWise did apply it: the sync must look it up, not post again


def test_the_codebase_moves_and_the_client_finds_it_again() -> None:
    with sandbox_thread() as running:
        async def go():
            async with ConnectWiseClient(running.credentials) as client:
                first = await client.api_base()
                await client.system_info()
                running.sandbox.move_codebase("v2025_8")  # the tenant is upgraded under the client
                companies = await client.companies()
                info = await client.system_info()
                return first, await client.api_base(), client.codebase_moves, len(companies), info.version

        first, then, moves, companies, version = asyncio.run(go())
        with raw_client(running) as http:  # the old path
            old = http.get("/system/info")
        info = httpx.get(f"{running.url}/login/companyinfo/sandbox").json()
    assert first.endswith("/v4_6_release/apis/3.0") and then.endswith("/v2025_8/apis/3.0")
    assert moves == 1 and companies > 0 and version
    assert old.status_code == 404
    assert info["Codebase"] == "v2025_8/"

"""The ConnectWise client against the real sandbox over a loopback socket, faults on."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import httpx
import pytest

from cw_tui.sandbox.server import free_port
from cw_tui.services.connectwise import (
    AuthenticationFailed,
    ConnectionFailed,
    ConnectWiseClient,
    NotFound,
    OutcomeUnknown,
    RequestRejected,
    TimedOut,
)
from cw_tui.services.connectwise.client import _MinuteBudget, site_parts
from cw_tui.services.connectwise.conditions import all_of, condition
from cw_tui.services.connectwise.errors import InvalidSettings
from tests.sandbox_helpers import sandbox_thread


def run(coroutine):
    return asyncio.run(coroutine)


def add_companies(sandbox, count: int) -> None:
    state = sandbox.sandbox.state
    for n in range(count):
        cid = 100_000 + n
        state.companies[cid] = {"id": cid, "identifier": f"Bulk{n}", "name": f"Bulk Customer {n:05d}",
                                "status": {"id": 1, "name": "Active" if n % 3 else "Inactive"}, "deletedFlag": False}


class RecordingSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(seconds)


def test_paging_past_1000_rows_keeps_the_conditions() -> None:
    with sandbox_thread() as sandbox:
        add_companies(sandbox, 2600)
        before = sandbox.sandbox.requests

        async def go():
            async with ConnectWiseClient(sandbox.credentials) as client:
                everything = await client.companies()
                bulk = await client.companies(all_of(condition("name", "like", "Bulk*"), condition("status/name", "=", "Active")))
                counted = await client.count("/company/companies", all_of(condition("name", "like", "Bulk*"), condition("status/name", "=", "Active")))
                return everything, bulk, counted

        everything, bulk, counted = run(go())
        assert len(everything) == 3000 and len({c.id for c in everything}) == 3000
        expected = sum(1 for n in range(2600) if n % 3)
        assert len(bulk) == counted == expected > 1000
        assert all(c.status.name == "Active" and c.name.startswith("Bulk") for c in bulk)
        # 3 + 2 pages of 1000, one count, one companyinfo
        assert sandbox.sandbox.requests - before == 3 + 2 + 1


def test_429_is_retried_after_the_retry_after_delay() -> None:
    with sandbox_thread(throttle_rate=0.5) as sandbox:
        sleep = RecordingSleep()

        async def go():
            async with ConnectWiseClient(sandbox.credentials, sleep=sleep, retries=20) as client:
                return [await client.system_info() for _ in range(3)], client.api_calls

        started = time.monotonic()
        infos, calls = run(go())
        assert all(i.version for i in infos)
        assert sleep.waits, "with half the requests throttled some must have waited"
        assert all(w >= 1.0 for w in sleep.waits)  # Retry-After: 1
        assert time.monotonic() - started >= len(sleep.waits) * 1.0
        assert calls == 3 + 1 + len(sleep.waits)


def test_5xx_is_retried_for_reads() -> None:
    with sandbox_thread(fail_rate=0.4) as sandbox:
        sleep = RecordingSleep()

        async def go():
            async with ConnectWiseClient(sandbox.credentials, sleep=sleep, retries=30, backoff_base=0.01) as client:
                return await client.companies(), client.api_calls

        companies, calls = run(go())
        assert len(companies) == 400
        assert sleep.waits and calls > 2


def test_a_dropped_post_is_outcome_unknown_and_not_retried() -> None:
    with sandbox_thread(drop_after_commit_rate=1.0) as sandbox:
        state = sandbox.sandbox.state
        agreement = next(a for a in state.agreements.values() if a["agreementStatus"] == "Active")
        product = next(p for p in state.catalog.values() if not p["inactiveFlag"])
        before_additions = len(state.additions)

        async def go():
            async with ConnectWiseClient(sandbox.credentials) as client:
                await client.api_base()
                before = sandbox.sandbox.requests
                with pytest.raises(OutcomeUnknown) as caught:
                    await client.create_addition(agreement["id"], {"product": {"id": product["id"]}, "billCustomer": "Billable",
                                                                   "serialNumber": "cwt:drop-test"})
                return caught.value, sandbox.sandbox.requests - before

        error, posts = run(go())
        assert posts == 1, "an outcome-unknown POST must not be retried"
        assert "may or may not have applied" in error.message
        # it was applied: the caller finds it by its marker
        assert len(state.additions) == before_additions + 1
        assert any(a.get("serialNumber") == "cwt:drop-test" for a in state.additions.values())


def test_a_dropped_patch_is_retried_because_it_is_idempotent() -> None:
    with sandbox_thread() as sandbox:
        state = sandbox.sandbox.state
        addition = next(iter(state.additions.values()))

        async def go():
            async with ConnectWiseClient(sandbox.credentials, backoff_base=0.01) as client:
                await client.api_base()
                sandbox.sandbox.faults.drop_after_commit_rate = 0.5
                for quantity in range(1, 6):
                    result = await client.patch_addition(addition["agreementId"], addition["id"], {"quantity": quantity})
                    assert result.quantity == quantity

        run(go())


def test_distinct_clear_errors() -> None:
    with sandbox_thread(latency_ms=0) as sandbox:
        good = sandbox.credentials

        async def failure(creds, **options):
            async with ConnectWiseClient(creds, retries=1, backoff_base=0.01, **options) as client:
                with pytest.raises(Exception) as caught:
                    await client.system_info()
                return caught.value

        unauthorized = run(failure(replace(good, private_key="wrong-key")))
        no_client_id = run(failure(replace(good, client_id="not-the-client-id")))
        wrong_codebase = run(failure(replace(good, url=good.url + "/v1999_1/apis/3.0")))
        refused = run(failure(replace(good, url=f"http://127.0.0.1:{free_port()}")))
        sandbox.sandbox.faults.latency_ms = 1500
        timeout = run(failure(good, timeout=0.3))
    assert isinstance(unauthorized, AuthenticationFailed) and "refused the credentials (401" in unauthorized.message
    assert isinstance(no_client_id, AuthenticationFailed) and "clientId" in no_client_id.message
    assert isinstance(wrong_codebase, NotFound) and "(404)" in wrong_codebase.message and "check the API URL" in wrong_codebase.message
    assert isinstance(refused, ConnectionFailed) and "refused the connection" in refused.message
    assert isinstance(timeout, TimedOut) and "did not answer" in timeout.message
    messages = [e.message for e in (unauthorized, wrong_codebase, refused, timeout)]
    assert len(set(messages)) == 4
    assert all("wrong-key" not in e.details() for e in (unauthorized, no_client_id))


def test_a_rejected_addition_carries_connectwise_errors() -> None:
    with sandbox_thread() as sandbox:
        state = sandbox.sandbox.state
        agreement = next(a for a in state.agreements.values() if a["agreementStatus"] == "Active")
        cancelled = next(a for a in state.agreements.values() if a["agreementStatus"] == "Cancelled")
        inactive = next(p for p in state.catalog.values() if p["inactiveFlag"])
        active = next(p for p in state.catalog.values() if not p["inactiveFlag"])

        async def go():
            async with ConnectWiseClient(sandbox.credentials) as client:
                results = {}
                for name, agreement_id, body in (
                    ("missing", agreement["id"], {"quantity": 1}),
                    ("inactive", agreement["id"], {"product": {"id": inactive["id"]}, "billCustomer": "Billable"}),
                    ("millis", agreement["id"], {"product": {"id": active["id"]}, "billCustomer": "Billable",
                                                 "effectiveDate": "2026-10-01T00:00:00.000Z"}),
                    ("cancelled", cancelled["id"], {"product": {"id": active["id"]}, "billCustomer": "Billable"}),
                ):
                    with pytest.raises(RequestRejected) as caught:
                        await client.create_addition(agreement_id, body)
                    results[name] = caught.value
                return results

        results = run(go())
    assert {e.field for e in results["missing"].errors} == {"product", "billCustomer"}
    assert results["missing"].status == 400 and results["missing"].code == "InvalidObject"
    assert "inactive" in results["inactive"].message
    assert results["millis"].errors[0].code == "UnsupportedFormat"
    assert "Cancelled" in results["cancelled"].message


def test_codebase_is_discovered_and_falls_back() -> None:
    with sandbox_thread() as sandbox:
        async def base(creds):
            async with ConnectWiseClient(creds) as client:
                return await client.api_base()

        assert run(base(sandbox.credentials)).endswith("/v4_6_release/apis/3.0")
        # an unknown company id: companyinfo answers null, the default codebase is used
        assert run(base(replace(sandbox.credentials, company_id="other"))).endswith("/v4_6_release/apis/3.0")


def test_site_parts() -> None:
    assert site_parts("https://na.myconnectwise.net") == ("https", "na.myconnectwise.net", "api-na.myconnectwise.net", "")
    assert site_parts("api-eu.myconnectwise.net") == ("https", "eu.myconnectwise.net", "api-eu.myconnectwise.net", "")
    assert site_parts("https://cw.example.com/v4_6_release/apis/3.0/")[3] == "/v4_6_release/apis/3.0"
    assert site_parts("http://127.0.0.1:8765")[1] == "127.0.0.1:8765"
    with pytest.raises(InvalidSettings, match="requires https"):
        site_parts("http://cw.example.com")
    with pytest.raises(InvalidSettings):
        site_parts("")


def test_the_minute_budget_caps_request_starts() -> None:
    now = [0.0]

    async def go():
        budget = _MinuteBudget(3, clock=lambda: now[0])
        for _ in range(3):
            await budget.acquire()
        waiter = asyncio.create_task(budget.acquire())
        await asyncio.sleep(0.05)
        assert not waiter.done()
        now[0] = 60.0
        await asyncio.wait_for(waiter, 2)

    run(go())


def test_bounded_concurrency() -> None:
    with sandbox_thread(latency_ms=100) as sandbox:
        async def go():
            async with ConnectWiseClient(sandbox.credentials, max_in_flight=4) as client:
                await client.api_base()
                await asyncio.gather(*(client.system_info() for _ in range(12)))

        run(go())
        assert sandbox.sandbox.max_in_flight == 4  # seen by the server: never more, and used fully


def test_asgi_transport_works_for_fast_unit_tests() -> None:
    from cw_tui.sandbox.server import build_sandbox

    sandbox = build_sandbox(7)
    from cw_tui.services.credentials import Credentials

    keys = sandbox.keys
    creds = Credentials("http://127.0.0.1:9", keys.company_id, keys.public_key, keys.private_key, keys.client_id)

    async def go():
        async with ConnectWiseClient(creds, transport=httpx.ASGITransport(app=sandbox)) as client:
            return await client.count("/company/companies")

    assert run(go()) == 400

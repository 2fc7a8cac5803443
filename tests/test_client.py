"""The ConnectWise client against the real sandbox over a loopback socket, faults on."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import httpx
import pytest

from cw_tui.sandbox.odd_answers import OddAnswer
from cw_tui.sandbox.server import free_port, url_for
from cw_tui.services.connectwise import (
    AuthenticationFailed,
    ConnectionFailed,
    ConnectWiseClient,
    ConnectWiseError,
    NotFound,
    OutcomeUnknown,
    RequestRejected,
    TimedOut,
)
from cw_tui.services.connectwise.client import MAX_BODY_BYTES, MAX_LIST_ROWS, _MinuteBudget, site_parts
from cw_tui.services.connectwise.conditions import all_of, condition
from cw_tui.services.connectwise.errors import BadResponse, InvalidSettings, Redirected
from tests.sandbox_helpers import sandbox_thread

CT = "application/vnd.connectwise.com+json; version=2025.1"  # what the sandbox answers with


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


# ---------------------------------------------------------------- odd answers (issue 10, part 6)


def failure_of(creds, call, **options) -> Exception:
    async def go():
        async with ConnectWiseClient(creds, retries=1, backoff_base=0.01, **options) as client:
            with pytest.raises(ConnectWiseError) as caught:
                await call(client)
            return caught.value

    return run(go())


@pytest.mark.parametrize(("status", "json_body"), [(301, True), (302, False), (307, True), (308, False)])
def test_a_redirect_is_an_error_and_never_followed(status: int, json_body: bool) -> None:
    with sandbox_thread() as sandbox, sandbox_thread() as elsewhere:
        target = f"{elsewhere.url.replace('http://', 'http://member:s3cret@')}/v4_6_release/apis/3.0/system/info?token=t0ken#x"
        sandbox.sandbox.faults.odd_answers.append(
            OddAnswer("redirect", "/system/info", {"status": status, "location": target, "json_body": json_body}))
        error = failure_of(sandbox.credentials, lambda client: client.system_info())
        assert isinstance(error, Redirected) and error.status == status
        assert f"GET /system/info with {status} (" in error.message
        assert f", a redirect to {elsewhere.url}/v4_6_release/apis/3.0/system/info: " in error.message
        assert ('"{"version":' if json_body else ": an empty body;") in error.message
        assert "check the API URL" in error.message
        assert "s3cret" not in error.details() and "t0ken" not in error.details()
        assert elsewhere.sandbox.requests == 0, "a redirect must never be followed (it would carry the credentials)"
        assert sandbox.sandbox.injected["redirect"] == 1  # not retried either


def test_a_redirect_on_a_list_is_an_error_not_an_empty_list() -> None:
    with sandbox_thread() as sandbox:
        sandbox.sandbox.faults.odd_answers.append(OddAnswer("redirect", "/company/companies"))
        error = failure_of(sandbox.credentials, lambda client: client.companies())
    assert isinstance(error, Redirected)
    assert "https://elsewhere.example.com/v4_6_release/apis/3.0/company/companies" in error.message


@pytest.mark.parametrize(("odd", "said"), [
    (OddAnswer("empty", "/company/companies"), f"with 200 ({CT}) and an empty body"),
    (OddAnswer("body", "/company/companies", {"text": '{"companies": []}'}),
     f'with 200 ({CT}), something other than a list of records: "{{"companies": []}}"'),
    (OddAnswer("body", "/company/companies", {"text": "[1, 2, 3]"}), 'something other than a list of records: "[1, 2, 3]"'),
    (OddAnswer("body", "/company/companies", {"text": "<html>Sign in</html>", "media_type": "text/html; charset=utf-8"}),
     'with 200 (text/html; charset=utf-8) that is not JSON: "<html>Sign in</html>"'),
    (OddAnswer("body", "/company/companies", {"text": '[{"id": 1, "name": ["not", "a", "name"]}]'}),
     f'with 200 ({CT}) and an unreadable record (name: Input should be a valid string): "{{"id": 1, "name": ["not", "a", "name"]}}"'),
])
def test_an_empty_or_odd_body_on_a_list_is_an_error(odd: OddAnswer, said: str) -> None:
    with sandbox_thread() as sandbox:
        sandbox.sandbox.faults.odd_answers.append(odd)
        error = failure_of(sandbox.credentials, lambda client: client.companies())
    assert isinstance(error, BadResponse) and said in error.message, error.message
    assert "GET /company/companies" in error.message


def test_an_empty_answer_to_a_record_is_an_error() -> None:
    with sandbox_thread() as sandbox:
        sandbox.sandbox.faults.odd_answers += [OddAnswer("empty", "/system/info"),
                                               OddAnswer("body", "/company/companies/count", {"text": "{}"})]
        info = failure_of(sandbox.credentials, lambda client: client.system_info())
        counted = failure_of(sandbox.credentials, lambda client: client.count("/company/companies"))
    assert isinstance(info, BadResponse) and f"GET /system/info with 200 ({CT}) and an empty body" in info.message
    assert isinstance(counted, BadResponse) and f'/count with 200 ({CT}) without a count: "{{}}"' in counted.message


def test_paging_stops_on_a_short_page_even_when_link_says_next() -> None:
    with sandbox_thread() as sandbox:
        add_companies(sandbox, 1100)  # 1500: a full page, then a short one
        sandbox.sandbox.faults.odd_answers.append(OddAnswer("link_always_next", "/company/companies"))

        async def go():
            async with ConnectWiseClient(sandbox.credentials) as client:
                return await client.companies()

        assert len(run(go())) == 1500
        assert sandbox.sandbox.injected["link_always_next"] == 2


def test_paging_stops_when_the_link_header_has_no_next() -> None:
    with sandbox_thread() as sandbox:
        add_companies(sandbox, 2600)
        sandbox.sandbox.faults.odd_answers.append(OddAnswer("link_without_next", "/company/companies"))

        async def go():
            async with ConnectWiseClient(sandbox.credentials) as client:
                return await client.companies()

        assert len(run(go())) == 1000
        assert sandbox.sandbox.injected["link_without_next"] == 1


def test_a_list_that_never_ends_is_an_error_at_the_row_limit() -> None:
    assert MAX_LIST_ROWS == 250_000  # the documented default (README, ConnectWise client)
    with sandbox_thread() as sandbox:
        sandbox.sandbox.faults.odd_answers.append(OddAnswer("endless", "/company/companies"))
        error = failure_of(sandbox.credentials, lambda client: client.companies(), max_list_rows=5000)
        assert isinstance(error, BadResponse) and "more than 5,000 rows" in error.message
        assert sandbox.sandbox.injected["endless"] == 6  # stopped at the first page past the limit


def test_a_server_repeating_a_page_is_an_error() -> None:
    with sandbox_thread() as sandbox:
        add_companies(sandbox, 1100)
        # a server that ignores `page`: every answer is the first page, and it says there is more
        sandbox.sandbox.faults.odd_answers.append(OddAnswer("body", "/company/companies", {"text": json.dumps(
            [{"id": n, "name": f"C{n}"} for n in range(1000)])}))
        error = failure_of(sandbox.credentials, lambda client: client.companies())
    assert isinstance(error, BadResponse) and "a record twice" in error.message


@pytest.mark.parametrize("declare_length", [False, True])
def test_a_body_over_the_size_limit_is_refused(declare_length: bool) -> None:
    assert MAX_BODY_BYTES == 32 * 1024 * 1024  # the documented default
    with sandbox_thread() as sandbox:
        sandbox.sandbox.faults.odd_answers.append(
            OddAnswer("oversized", "/company/companies", {"size": 40 * 1024 * 1024, "declare_length": declare_length}))
        error = failure_of(sandbox.credentials, lambda client: client.companies())
        assert isinstance(error, BadResponse) and f"GET /company/companies with 200 ({CT}) and more than 32 MiB: " in error.message
        assert '"[{"name":"xxx' in error.message and len(error.message) < 400  # only the start of the body
        assert sandbox.sandbox.injected["oversized"] == 1  # refused, not retried
        # the client is still usable afterwards, and so is the sandbox
        sandbox.sandbox.faults.odd_answers.clear()

        async def go():
            async with ConnectWiseClient(sandbox.credentials) as client:
                return len(await client.companies())

        assert run(go()) == 400


def test_an_odd_answer_can_be_limited_to_a_number_of_times() -> None:
    with sandbox_thread() as sandbox:
        sandbox.sandbox.faults.odd_answers.append(OddAnswer("empty", "/company/companies", times=1))
        error = failure_of(sandbox.credentials, lambda client: client.companies())

        async def go():
            async with ConnectWiseClient(sandbox.credentials) as client:
                return len(await client.companies())

        assert isinstance(error, BadResponse) and run(go()) == 400
    with pytest.raises(ValueError, match="unknown odd answer"):
        OddAnswer("no-such-answer")


# ---------------------------------------------------------------- malformed URLs, IPv6 (issue 10, part 8)


@pytest.mark.parametrize(("url", "said"), [
    ("https://host:58371z", "has an invalid port '58371z'"),
    ("https://host:99999", "has an invalid port '99999'"),
    ("https://host:0", "has an invalid port '0'"),
    ("https://host:+80", "has an invalid port '+80'"),
    ("http://[::1", "malformed [IPv6] address"),
    ("http://[::1]x:80", "malformed [IPv6] address"),
    ("http://[not-v6]:80", "invalid IPv6 address 'not-v6'"),
    ("http://::1:8080", "an IPv6 address goes in brackets"),
    ("https://ho st.example.com", "invalid host name 'ho st.example.com'"),
    ("https://-bad-.example.com", "invalid host name"),
    ("https://a..b", "invalid host name"),
    ("https://:8080", "has no host name"),
    ("https//na.myconnectwise.net", "looks mistyped"),
    ("ftp://na.myconnectwise.net", "must start with https://"),
    ("http://cw.example.com", "requires https"),
    ("   ", "is empty"),
])
def test_a_malformed_url_is_refused_with_what_is_wrong(url: str, said: str) -> None:
    with pytest.raises(InvalidSettings) as caught:
        site_parts(url)
    assert said in caught.value.message


def test_a_url_with_a_password_is_refused_without_repeating_it() -> None:
    with pytest.raises(InvalidSettings) as caught:
        site_parts("https://member:s3cret@na.myconnectwise.net")
    assert "user name or password" in caught.value.message and "s3cret" not in caught.value.message


def test_good_urls_including_ipv6_loopback() -> None:
    assert site_parts("http://[::1]:8765") == ("http", "[::1]:8765", "[::1]:8765", "")
    assert site_parts("http://localhost:8765/") == ("http", "localhost:8765", "localhost:8765", "")
    assert site_parts("https://cw.Example.com:8443")[2] == "cw.example.com:8443"
    assert site_parts("https://bücher.example")[1] == "bücher.example"


def test_the_client_works_on_ipv6_loopback() -> None:
    # what `cw-tui sandbox --host H` prints: a URL a client on this machine can use
    assert (url_for("::1", 8765), url_for("::", 8765), url_for("0.0.0.0", 8765)) == (
        "http://[::1]:8765", "http://[::1]:8765", "http://127.0.0.1:8765")
    with sandbox_thread(host="::1") as sandbox:
        assert sandbox.url.startswith("http://[::1]:")

        async def go():
            async with ConnectWiseClient(sandbox.credentials) as client:
                return (await client.system_info()).version, await client.api_base(), len(await client.companies())

        version, base, companies = run(go())
    assert version and base.startswith(sandbox.url + "/v4_6_release") and companies == 400


@pytest.mark.parametrize(("odd", "said"), [
    (OddAnswer("empty", "/finance/agreements/*/additions", method="POST", times=1), "that is not a record: an empty body"),
    (OddAnswer("body", "/finance/agreements/*/additions", {"text": "<html>ok</html>"}, method="POST", times=1),
     f'with 200 ({CT}) that is not JSON: "<html>ok</html>"'),
    (OddAnswer("body", "/finance/agreements/*/additions", {"text": '{"id": null}', "status": 201}, method="POST"),
     f'with 201 ({CT}) and an unreadable record (id: Input should be a valid integer): "{{"id": null}}"'),
    (OddAnswer("redirect", "/finance/agreements/*/additions", {"status": 303, "json_body": True}, method="POST"),
     f"with 303 ({CT}), a redirect to https://elsewhere.example.com/v4_6_release/apis/3.0/finance/agreements/"),
])
def test_an_unreadable_answer_to_a_post_is_outcome_unknown_and_not_retried(odd: OddAnswer, said: str) -> None:
    """A 2xx that cannot be read, or a redirect, may hide a created record: the engine looks
    it up first."""
    with sandbox_thread() as sandbox:
        agreement = next(a for a in sandbox.sandbox.state.agreements.values() if a["agreementStatus"] == "Active")
        product = next(p for p in sandbox.sandbox.state.catalog.values() if not p["inactiveFlag"])
        sandbox.sandbox.faults.odd_answers.append(odd)
        error = failure_of(sandbox.credentials, lambda client: client.create_addition(
            agreement["id"], {"product": {"id": product["id"]}, "billCustomer": "Billable"}))
        assert isinstance(error, OutcomeUnknown) and "may or may not have applied it" in error.message
        assert f"ConnectWise answered POST /finance/agreements/{agreement['id']}/additions " in error.message
        assert said in error.message
        assert sandbox.sandbox.injected[odd.kind] == 1


def test_an_odd_answer_can_start_after_some_requests_and_come_every_nth() -> None:
    with sandbox_thread() as sandbox:
        sandbox.sandbox.faults.odd_answers.append(OddAnswer("body", "/company/companies/count", {"text": "{}"},
                                                            after=2, every=3, times=2))

        async def go():
            async with ConnectWiseClient(sandbox.credentials, retries=0) as client:
                answers = []
                for _ in range(12):
                    try:
                        answers.append(await client.count("/company/companies"))
                    except BadResponse:
                        answers.append("odd")
                return answers

        # requests 1-2 pass, then every 3rd of the others (5th, 8th), then no more (times=2)
        assert run(go()) == [400, 400, 400, 400, "odd", 400, 400, "odd", 400, 400, 400, 400]
    for wrong in ({"every": 0}, {"after": -1}):
        with pytest.raises(ValueError, match="every is at least 1"):
            OddAnswer("empty", **wrong)

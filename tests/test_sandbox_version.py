"""Issue 14 item 2: the `Accept` version is checked as ConnectWise checks it, and every API
answer carries `api-current-version` and a request id; the client reports a refused version
in words a user can act on."""

from __future__ import annotations

import asyncio

import pytest

from cw_tui.services.connection import check_connection
from cw_tui.services.connectwise import ConnectWiseClient, UnsupportedVersion
from tests.sandbox_helpers import raw_client, sandbox_thread


@pytest.fixture
def running():
    with sandbox_thread(seed=7) as sandbox:
        yield sandbox


def test_every_api_answer_carries_the_current_version_and_a_request_id(running) -> None:
    with raw_client(running) as http:
        answers = [http.get("/system/info"), http.get("/company/companies/count"), http.get("/finance/agreements/1")]
    assert [a.status_code for a in answers] == [200, 200, 404]
    assert {a.headers["api-current-version"] for a in answers} == {"2025.1"}
    assert len({a.headers["x-cw-request-id"] for a in answers}) == 3
    assert all(a.headers["x-server-name"] for a in answers)


@pytest.mark.parametrize("version", ["3.0.0", "2018.6", "2099.1", "latest"])
def test_a_version_the_server_does_not_serve_is_refused_with_connectwise_s_message(running, version) -> None:
    with raw_client(running, version=version) as http:
        answer = http.get("/system/info")
    assert answer.status_code == 400
    data = answer.json()
    assert data["code"] == "ConnectWiseApi"
    assert data["message"].endswith(f"does not support the API version '{version}'.")
    assert "matches the request URI" in data["message"]


def test_served_versions_and_the_version_ignored_when_not_first(running) -> None:
    for version in ("2019.1", "2023.2", "2025.1"):
        with raw_client(running, version=version) as http:
            assert http.get("/system/info").status_code == 200
    with raw_client(running, version=None) as http:
        assert http.get("/system/info").status_code == 200  # no version: the newest models
        # the vendor type not first: its version is not selected (connectwise-rest PR#19)
        late = http.get("/system/info", headers={"Accept": "application/json, application/vnd.connectwise.com+json; version=3.0.0"})
        assert late.status_code == 200


def test_the_client_reports_a_refused_version_in_words_a_user_can_act_on(running) -> None:
    running.sandbox.faults.versions = ("2025.8", "2026.1")  # a tenant upgraded past what cw-tui pins

    async def go():
        async with ConnectWiseClient(running.credentials) as client:
            await client.system_info()

    with pytest.raises(UnsupportedVersion) as caught:
        asyncio.run(go())
    message = caught.value.message
    assert "does not serve API version 2025.1 that cw-tui uses" in message
    assert "serves up to 2026.1" in message and "update cw-tui" in message
    assert caught.value.request_id  # x-cw-request-id kept for the log
    check = asyncio.run(check_connection(running.credentials))
    assert not check.ok and "API version 2025.1" in check.message


def test_the_client_keeps_the_current_version_and_request_id(running) -> None:
    async def go():
        async with ConnectWiseClient(running.credentials) as client:
            await client.system_info()
            return client.current_api_version, client.last_request_id

    current, request_id = asyncio.run(go())
    assert current == "2025.1" and request_id

"""Issue 14 item 1: the sandbox throttles by rate as ConnectWise does (a sliding window,
ConnectWise's 429 body, Retry-After), and the client's request budget keeps a run under it,
or waits out the 429s without losing a request when the budget is set above it. The
minute is shortened to a few seconds (`rate_window_s`, `budget_window_s`) so the tests run
fast; the arithmetic is the same."""

from __future__ import annotations

import asyncio
import time

from cw_tui.cli.commands import _per_minute
from cw_tui.sandbox.server import demo_faults
from cw_tui.services.connectwise import ConnectWiseClient
from tests.sandbox_helpers import Announced, raw_client, sandbox_process, sandbox_thread

WINDOW = 2.0


def test_the_sandbox_refuses_above_the_rate_with_connectwise_s_429() -> None:
    with sandbox_thread(rate_limit_per_min=5, rate_window_s=30) as running, raw_client(running) as http:
        codes = [http.get("/system/info").status_code for _ in range(5)]
        refused = http.get("/system/info")
    assert codes == [200] * 5
    assert refused.status_code == 429
    retry_after = int(refused.headers["Retry-After"])
    assert 25 <= retry_after <= 30
    assert refused.json() == {"error": "ConnectWiseAPI",
                              "message": f"Too many requests. Please try again in {retry_after} seconds."}


def test_the_window_slides() -> None:
    with sandbox_thread(rate_limit_per_min=3, rate_window_s=1.0) as running, raw_client(running) as http:
        assert [http.get("/system/info").status_code for _ in range(4)] == [200, 200, 200, 429]
        time.sleep(1.05)
        assert http.get("/system/info").status_code == 200


def _run(running, budget: int, calls: int) -> tuple[int, int, float]:
    async def go():
        async with ConnectWiseClient(running.credentials, requests_per_minute=budget, budget_window_s=WINDOW,
                                     max_in_flight=8) as client:
            await client.api_base()
            started = time.perf_counter()
            infos = await asyncio.gather(*(client.system_info() for _ in range(calls)))
            return len([i for i in infos if i.version]), client.throttled, time.perf_counter() - started

    return asyncio.run(go())


def test_a_budget_below_the_limit_sees_no_429() -> None:
    with sandbox_thread(rate_limit_per_min=20, rate_window_s=WINDOW) as running:
        answered, throttled, took = _run(running, budget=18, calls=60)
    assert answered == 60
    assert throttled == 0 and running.sandbox.injected["rate_limited"] == 0
    assert took >= 2 * WINDOW  # 60 calls at 18 a window: the budget did the waiting


def test_a_budget_above_the_limit_waits_out_the_429s_and_loses_nothing() -> None:
    with sandbox_thread(rate_limit_per_min=20, rate_window_s=WINDOW) as running:
        answered, throttled, took = _run(running, budget=1000, calls=60)
    assert answered == 60  # every call answered: none given up
    assert throttled > 0 and running.sandbox.injected["rate_limited"] == throttled
    assert took >= 2 * WINDOW


def test_the_command_line_and_the_demo() -> None:
    assert _per_minute("6000/min") == _per_minute("6000") == 6000 and _per_minute(None) == 0
    assert demo_faults().rate_limit_per_min == 1000  # ConnectWise's figure
    with sandbox_process("--rate-limit", "2/min") as announced:
        credentials = Announced(announced).credentials

        async def go():
            async with ConnectWiseClient(credentials, throttle_retries=0, retries=0) as client:
                await client.api_base()  # companyinfo is not an API call
                await client.system_info()
                await client.system_info()
                try:
                    await client.system_info()
                except Exception as error:
                    return error
            return None

        error = asyncio.run(go())
        assert error is not None and error.status == 429
        assert "throttling" in error.message

"""Issue 13: one way to run a service from the UI. The daily sync runs in a thread worker
(never on the UI loop) and a failure follows the one policy: logged, then told in words."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path

from cw_tui.services import settings, system_log
from cw_tui.services.system_log import Category, LogQuery
from cw_tui.tasks import run_service
from tests.app_helpers import make_app, seeded_store, wait_for


def test_a_failing_daily_sync_is_logged_and_told_and_ran_off_the_ui_thread(tmp_path: Path, demo_folder: Path) -> None:
    store = seeded_store(tmp_path / "s.sqlite3", demo_folder)  # credentials point at a port nobody serves
    config = settings.load_configuration(store)
    config.daily_sync = True
    settings.save_configuration(store, config)

    async def scenario() -> None:
        app = make_app(store, clock=lambda: datetime(2026, 11, 19, 0, 0, 5, tzinfo=UTC))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            app.check_daily_sync()
            await wait_for(pilot, lambda: system_log.count(store, LogQuery(text="Daily sync failed")) > 0, timeout=20)
            # a toast is a message the app handles next (Notify): wait for it too
            await wait_for(pilot, lambda: any(n.message.startswith("Daily sync failed: ") for n in app._notifications))

    asyncio.run(scenario())
    store.close()


def test_run_service_hands_the_result_back_on_the_ui_thread_and_lets_a_handler_take_an_error(tmp_path: Path,
                                                                                             demo_folder: Path) -> None:
    store = seeded_store(tmp_path / "s.sqlite3", demo_folder)
    seen: dict[str, object] = {}

    async def scenario() -> None:
        app = make_app(store)
        async with app.run_test(size=(100, 30)) as pilot:
            ui_thread = threading.get_ident()

            def job() -> int:
                seen["job_thread"] = threading.get_ident()
                return 42

            run_service(app, "Answer", job, category=Category.SYNC,
                        done=lambda result: seen.update(result=result, done_thread=threading.get_ident()))
            await wait_for(pilot, lambda: "result" in seen)
            assert seen["result"] == 42 and seen["done_thread"] == ui_thread != seen["job_thread"]

            async def failing() -> None:
                raise ValueError("no such period")

            taken: list[BaseException] = []
            run_service(app, "Taken", failing, category=Category.SYNC, failed=lambda e: taken.append(e) or True)
            run_service(app, "Told", failing, category=Category.SYNC)
            await wait_for(pilot, lambda: taken and system_log.count(store, LogQuery(text="Told failed")) == 1)
            await wait_for(pilot, lambda: any(n.message == "Told failed: no such period" for n in app._notifications))
            assert system_log.count(store, LogQuery(text="Taken failed")) == 0  # the handler took it over

    asyncio.run(scenario())
    store.close()

"""Issue 11, part 3: an odd answer from ConnectWise gets a message with the status, the content
type and the start of the body (control characters made harmless, secrets masked), never a
pydantic or JSON traceback, and changes nothing it should not. The real CLI and app against the
real sandbox on a loopback socket, with its odd answers switched on (cw_tui/sandbox/odd_answers.py).
The lists and the posting of Additions run on SQLite and on PostgreSQL (both_backends): nothing
cached from an odd list, and exactly once under odd answers, on either store."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from cw_tui.sandbox.odd_answers import OddAnswer
from cw_tui.services import credentials as credential_store
from cw_tui.services import system_log
from cw_tui.services.connectwise.errors import BODY_START_CHARS, body_start, harmless
from cw_tui.store import InvoiceLine, open_store
from tests.app_helpers import make_app, run, wait_for
from tests.sandbox_helpers import sandbox_thread
from tests.sync_helpers import assert_exactly_once, cw_env

P1 = "2026-09"
CT = "application/vnd.connectwise.com+json; version=2025.1"  # what the sandbox answers with
HTML = "text/html; charset=utf-8"
ADDITIONS = "/finance/agreements/*/additions"
TRACEBACK_WORDS = ("Traceback", "ValidationError", "JSONDecodeError", "pydantic", "input_value")


def basic_token(creds) -> str:
    return base64.b64encode(f"{creds.company_id}+{creds.public_key}:{creds.private_key}".encode()).decode()


# ---------------------------------------------------------------- the start of a body


def test_the_start_of_a_body_is_short_harmless_and_holds_no_secret() -> None:
    system_log.register_secret("priv-0123456789abcdef")
    body = ('\x1b]0;owned\x07\x1b[2J<html>\r\n\t<p>[bold]x[/]</p>\x9b31m {"Authorization": "Basic c2VjcmV0OmtleQ=="} '
            "key priv-0123456789abcdef\x00" + "A" * 5000).encode()
    shown = body_start(body)
    assert shown.startswith('"\ufffd]0;owned\ufffd\ufffd[2J<html> <p>[bold]x[/]</p>\ufffd31m')
    assert not any(ch in shown for ch in "\x1b\x07\x9b\x00\r\n\t")
    assert "priv-0123456789abcdef" not in shown and "c2VjcmV0OmtleQ==" not in shown and system_log.MASK in shown
    assert len(shown) == BODY_START_CHARS + len('"…"') and shown.endswith('A…"')
    # a secret across the cut is masked whole: no part of it shows
    assert "priv-0123" not in harmless("x" * (BODY_START_CHARS - 9) + "priv-0123456789abcdef")
    assert body_start(b"") == body_start(b" \r\n") == "an empty body"
    assert body_start("é".encode()[:1]) == '"\ufffd"'  # not UTF-8: shown, not raised


# ---------------------------------------------------------------- cw-tui connect


def connect_env(monkeypatch: pytest.MonkeyPatch, sandbox) -> None:
    for key, value in cw_env(sandbox).items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize(("odd", "said"), [
    (OddAnswer("redirect", "/system/info", {"status": 302, "text": "<html><body>Object moved</body></html>"}),
     f"GET /system/info with 302 ({HTML}), a redirect to https://elsewhere.example.com/v4_6_release/apis/3.0/system/info: "
     '"<html><body>Object moved</body></html>"; cw-tui does not follow redirects, which would send your credentials '
     "there: check the API URL; nothing was saved"),
    (OddAnswer("empty", "/system/info"), f"GET /system/info with 200 ({CT}) and an empty body; nothing was saved"),
    (OddAnswer("body", "/system/info", {"text": "null"}),
     f'GET /system/info with 200 ({CT}) that is not a record: "null"; nothing was saved'),
    (OddAnswer("body", "/system/info", {"text": "<html>\n<head><title>Sign in</title>", "media_type": HTML}),
     f'GET /system/info with 200 ({HTML}) that is not JSON: "<html> <head><title>Sign in</title>"; nothing was saved'),
    (OddAnswer("body", "/system/info", {"text": '{"version": ["v2025.1"]}'}),
     f'GET /system/info with 200 ({CT}) and an unreadable record (version: Input should be a valid string): '
     '"{"version": ["v2025.1"]}"; nothing was saved'),
])
def test_connect_refuses_an_odd_system_info_and_saves_nothing(cli, tmp_path: Path, monkeypatch, odd, said: str) -> None:
    db, credentials_file = tmp_path / "x.sqlite3", tmp_path / "config" / "credentials.json"
    with sandbox_thread() as sandbox:
        sandbox.sandbox.faults.odd_answers.append(odd)
        connect_env(monkeypatch, sandbox)
        refused = cli("--db", db, "connect")
        assert refused.code == 2
        assert refused.err == f"cw-tui: error: ConnectWise: ConnectWise answered {said}\n"
        assert not any(word in refused.err for word in TRACEBACK_WORDS)
        assert not credentials_file.exists()
        [entry] = cli("--db", db, "logs", "--category", "Authentication", "--details", "--json").json()
        assert entry["summary"] == "Connection test failed; credentials not saved"
        assert said.removesuffix("; nothing was saved") in entry["details"]
        assert sandbox.sandbox.injected[odd.kind] == 1  # not retried, never followed

        sandbox.sandbox.faults.odd_answers.clear()  # the control: the same sandbox answering normally
        assert cli("--db", db, "connect").code == 0 and credentials_file.exists()


def test_an_answer_echoing_the_credentials_and_terminal_escapes_is_shown_harmless(cli, tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "x.sqlite3"
    with sandbox_thread() as sandbox:
        creds = sandbox.credentials
        echoed = (f'\x1b]0;pwned\x07\x1b[31m<pre>{{"headers": {{"Authorization": "Basic {basic_token(creds)}", '
                  f'"clientId": "{creds.client_id}"}}, "key": "{creds.private_key}"}}</pre>')
        sandbox.sandbox.faults.odd_answers.append(OddAnswer("body", "/system/info", {"text": echoed, "media_type": HTML}))
        connect_env(monkeypatch, sandbox)
        refused = cli("--db", db, "connect")
        entries = cli("--db", db, "logs", "--details", "--json").out
    assert refused.code == 2
    assert f'GET /system/info with 200 ({HTML}) that is not JSON: "\ufffd]0;pwned\ufffd\ufffd[31m<pre>{{"headers": ' in refused.err
    for secret in (basic_token(creds), creds.private_key, creds.client_id):
        assert secret not in refused.err and secret not in entries
    assert "\x1b" not in refused.err and "\x07" not in refused.err


def _connect_process(db: Path, sandbox) -> tuple[int, str, int]:
    """`cw-tui connect` as a separate process: exit code, stderr, and its peak RSS in KiB."""
    proc = subprocess.Popen([sys.executable, "-m", "cw_tui", "--db", str(db), "connect"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **cw_env(sandbox)})
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own figures, not all children's
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, err, usage.ru_maxrss


def test_a_50_mb_system_info_is_refused_with_the_start_of_its_body_and_memory_stays_bounded(tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite3"
    with sandbox_thread() as sandbox:
        code, _, normal_kib = _connect_process(db, sandbox)
        assert code == 0
        (tmp_path / "config" / "credentials.json").unlink()
        sandbox.sandbox.faults.odd_answers.append(OddAnswer("oversized", "/system/info", {"size": 50 * 1024 * 1024}))
        code, err, odd_kib = _connect_process(db, sandbox)
    assert code == 2
    # the body is held up to the 32 MiB cap, never whole (50 MB, a copy and its parse: 410 MB before)
    assert odd_kib - normal_kib < 48 * 1024, (normal_kib, odd_kib)
    assert f"GET /system/info with 200 ({CT}) and more than 32 MiB: " in err and "the answer was refused" in err
    assert '"[{"name":"' + "x" * (BODY_START_CHARS - 10) + '…"' in err
    assert len(err) < 600  # the start of the body, not the body
    assert not (tmp_path / "config" / "credentials.json").exists()


# ---------------------------------------------------------------- Settings: Test Connection


def test_settings_test_connection_shows_odd_answers_and_saves_nothing(tmp_path: Path) -> None:
    from textual.widgets import Static

    with sandbox_thread() as sandbox, open_store(tmp_path / "s.sqlite3") as store:
        odd = sandbox.sandbox.faults.odd_answers

        async def scenario() -> None:
            app = make_app(store, prefill_credentials=sandbox.credentials)
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.pause()
                screen = app.screen

                def status() -> str:
                    return str(screen.query_one("#test-status", Static).render())

                for answer, title, said in (
                    (OddAnswer("redirect", "/system/info", {"status": 302, "text": "<html>[/b] \x1b[2J moved</html>"}),
                     "Redirected", f'GET /system/info with 302 ({HTML}), a redirect to https://elsewhere.example.com/'
                                   'v4_6_release/apis/3.0/system/info: "<html>[/b] \ufffd[2J moved</html>"'),
                    (OddAnswer("empty", "/system/info"), "Unexpected answer",
                     f"GET /system/info with 200 ({CT}) and an empty body"),
                    (OddAnswer("body", "/system/info", {"text": "null"}), "Unexpected answer",
                     f'GET /system/info with 200 ({CT}) that is not a record: "null"'),
                ):
                    odd[:] = [answer]
                    await pilot.press("ctrl+t")
                    await wait_for(pilot, lambda said=said: "✗" in status() and said in status())
                    assert status().startswith(f"✗ {title}: ConnectWise answered GET /system/info with ")
                    assert "\x1b" not in status()
                    await pilot.press("ctrl+s")  # Save tests first: nothing is saved
                    await wait_for(pilot, lambda: "✗" in status() and "Checking" not in status())
                    assert credential_store.current() is None

                odd.clear()  # the control: the same form connects
                await pilot.press("ctrl+t")
                await wait_for(pilot, lambda: "Connected to ConnectWise" in status())

        run(scenario())
        entries = system_log.entries(store, system_log.LogQuery(category=system_log.Category.AUTHENTICATION))
        failed = [e.details for e in entries if e.level == "ERROR"]
        assert len(failed) == 6 and all("ConnectWise answered GET /system/info with " in d for d in failed)


# ---------------------------------------------------------------- lists


@pytest.fixture
def connected(cli, demo_folder: Path, new_db, monkeypatch: pytest.MonkeyPatch):
    with sandbox_thread(seed=7) as sandbox:
        connect_env(monkeypatch, sandbox)
        db = new_db("odd")
        for args in (("connect",), ("configure", "--platform-dir", demo_folder, "--agreement-type", "Cloud Services")):
            result = cli("--db", db, *args)
            assert result.code == 0, (args, result.err)
        yield sandbox, db


@pytest.mark.both_backends
@pytest.mark.parametrize(("odd", "said"), [
    (OddAnswer("body", "/company/companies", {"text": "<!DOCTYPE html><html><head><title>Login</title>", "media_type": HTML}),
     f'GET /company/companies with 200 ({HTML}) that is not JSON: "<!DOCTYPE html><html><head><title>Login</title>"'),
    (OddAnswer("body", "/procurement/catalog", {"text": '[{"id": 1, "identifier": "A"}, {"id": 2,'}),
     f'GET /procurement/catalog with 200 ({CT}) that is not JSON: "[{{"id": 1, "identifier": "A"}}, {{"id": 2,"'),
    (OddAnswer("body", "/finance/agreements", {"text": "[" * 100_000 + "]" * 100_000}),
     f'GET /finance/agreements with 200 ({CT}) that is not JSON: "{"[" * BODY_START_CHARS}…"'),
])
def test_a_list_answering_html_or_invalid_json_is_refused_and_nothing_is_cached(cli, connected, odd, said: str) -> None:
    sandbox, db = connected
    sandbox.sandbox.faults.odd_answers.append(odd)
    result = cli("--db", db, "sync-organizations")
    assert result.code == 1
    assert said in result.err and not any(word in result.err for word in TRACEBACK_WORDS)
    with open_store(db) as store:
        assert store.db.execute_sql("SELECT (SELECT COUNT(*) FROM company) + (SELECT COUNT(*) FROM product) + "
                                    "(SELECT COUNT(*) FROM agreement)").fetchone() == (0,)
    logs = cli("--db", db, "logs", "--category", "Organizations", "--details", "--json").json()
    assert logs[0]["summary"] == "Organizations sync failed" and said in logs[0]["details"]


# ---------------------------------------------------------------- posting Additions


@pytest.fixture
def world(connected, cli):
    """A store with P1 loaded and automapped, not synced yet."""
    sandbox, db = connected
    for args in (("sync-organizations",), ("load-invoices", "--period", P1), ("automap", "--include")):
        result = cli("--db", db, *args)
        assert result.code == 0, (args, result.err)
    return sandbox, db


def line_states(db: Path) -> dict[str, tuple[str, str | None]]:
    with open_store(db):
        return {line.line_id: (line.sync_status, line.last_error) for line in InvoiceLine.select()}


@pytest.mark.both_backends
def test_posts_redirected_for_one_agreement_leave_its_lines_in_error_and_the_run_goes_on(cli, world) -> None:
    sandbox, db = world
    plan = cli("--db", db, "sync", "--period", P1, "--dry-run", "--json").json()
    agreement, _ = Counter(c["agreement"] for c in plan["creates"] if isinstance(c["agreement"], int)).most_common(1)[0]
    concerned = {lid for c in plan["creates"] if c["agreement"] == agreement for lid in c["lines"]}
    planned = {lid for c in plan["creates"] for lid in c["lines"]}
    creates_there = sum(1 for c in plan["creates"] if c["agreement"] == agreement)
    before = line_states(db)
    sandbox.sandbox.faults.odd_answers.append(OddAnswer(
        "redirect", f"/finance/agreements/{agreement}/additions", {"status": 302, "text": "<html><body>Moved</body></html>"},
        method="POST"))

    result = cli("--db", db, "sync", "--period", P1)
    assert result.code == 1, result.err
    assert f"{len(planned) - len(concerned)} lines synced" in result.out and f"{len(concerned)} errors" in result.out
    after = line_states(db)
    for line_id, (state, error) in after.items():
        if line_id in concerned:
            assert state == "error"
            assert error == (f"ConnectWise answered POST /finance/agreements/{agreement}/additions with 302 ({HTML}), "
                             f"a redirect to https://elsewhere.example.com/v4_6_release/apis/3.0/finance/agreements/"
                             f'{agreement}/additions: "<html><body>Moved</body></html>"; cw-tui does not follow '
                             "redirects, which would send your credentials there: check the API URL; it may or may not "
                             "have applied it; the next sync checks ConnectWise before posting again")
        elif line_id in planned:
            assert (state, error) == ("synced", None)
        else:
            assert (state, error) == before[line_id]  # not in the plan: untouched
    # each looked up, posted again, three times in all, then left for the next sync; never followed
    assert sandbox.sandbox.injected["redirect"] == 3 * creates_there
    logs = cli("--db", db, "logs", "--level", "error", "--category", "Sync", "--json").json()
    assert {e["summary"].split(" ")[1] for e in logs if e["summary"].startswith("Line ")} == concerned

    sandbox.sandbox.faults.odd_answers.clear()
    again = cli("--db", db, "sync", "--period", P1, "--json")
    assert again.code == 0, again.err
    assert again.json()["synced_lines"] == len(concerned) and again.json()["errors"] == 0
    assert all(line_states(db)[lid][0] == "synced" for lid in planned)
    counts = assert_exactly_once(sandbox, db)
    assert len(counts) == len(plan["creates"])


@pytest.mark.both_backends
@pytest.mark.parametrize(("kind", "options"), [
    ("redirect", {"status": 303, "json_body": True}),  # applied, then "see other"
    ("body", {"text": '{"result": "created"}', "status": 201, "applied": True}),  # not an Addition
])
def test_every_tenth_post_applied_but_answered_oddly_is_found_not_posted_again(cli, world, kind: str, options: dict) -> None:
    """ConnectWise took the POST; its answer cannot be read: the engine looks the marker up,
    finds it, and the line is Synced in the same run, with nothing posted twice."""
    sandbox, db = world
    sandbox.sandbox.faults.odd_answers.append(OddAnswer(kind, ADDITIONS, options, method="POST", every=10))
    result = cli("--db", db, "sync", "--period", P1, "--json")
    assert result.code == 0, result.err
    summary = result.json()
    assert summary["errors"] == 0 and summary["created"] >= 20
    assert sandbox.sandbox.injected[kind] == summary["created"] // 10  # each line posted once
    assert not [s for s, _ in line_states(db).values() if s in ("claimed", "error")]
    assert len(assert_exactly_once(sandbox, db)) == summary["created"]


@pytest.mark.both_backends
def test_every_tenth_post_redirected_and_not_applied_is_posted_again_once(cli, world) -> None:
    """Not applied: the lookup finds nothing, so the line is posted again (at most three times
    in a run; a line whose every attempt was odd is Error, and the next sync resolves it)."""
    sandbox, db = world
    plan = cli("--db", db, "sync", "--period", P1, "--dry-run", "--json").json()
    planned = {lid for c in plan["creates"] for lid in c["lines"]}
    before = line_states(db)
    sandbox.sandbox.faults.odd_answers.append(
        OddAnswer("redirect", ADDITIONS, {"status": 302, "text": "<html>Moved</html>"}, method="POST", every=10))
    result = cli("--db", db, "sync", "--period", P1, "--json")
    assert result.code == (1 if result.json()["errors"] else 0), result.err
    assert sandbox.sandbox.injected["redirect"] >= len(plan["creates"]) // 10 >= 2
    after = line_states(db)
    assert {lid for lid, (s, _) in after.items() if s in ("synced", "error")} == planned
    assert all(after[lid] == before[lid] for lid in set(before) - planned)
    for state, error in after.values():
        if state == "error":
            assert f"with 302 ({HTML}), a redirect to" in error and "may or may not have applied it" in error
    sandbox.sandbox.faults.odd_answers.clear()
    assert cli("--db", db, "sync", "--period", P1).code == 0
    assert all(line_states(db)[lid][0] == "synced" for lid in planned)
    assert len(assert_exactly_once(sandbox, db)) == len(plan["creates"])


@pytest.mark.both_backends
def test_a_marker_list_with_a_record_that_is_not_an_addition_stops_the_sync_before_anything_is_sent(cli, world) -> None:
    sandbox, db = world
    state = sandbox.sandbox.state
    additions, before = len(state.additions), line_states(db)
    sandbox.sandbox.faults.odd_answers.append(
        OddAnswer("body", ADDITIONS, {"text": '[{"id": "first", "serialNumber": "cwt:L:x"}]'}))
    result = cli("--db", db, "sync", "--period", P1)
    assert result.code == 1
    assert (f"with 200 ({CT}) and an unreadable record (id: Input should be a valid integer, unable to parse string as "
            'an integer): "{"id": "first", "serialNumber": "cwt:L:x"}"') in result.err
    assert not any(word in result.err for word in TRACEBACK_WORDS)
    assert len(state.additions) == additions and line_states(db) == before


def test_the_apps_sync_organizations_shows_an_odd_answer_as_text_not_markup(cli, connected) -> None:
    """The message quotes the body: `[/b]` in it is shown, not read as markup (which would
    fail to render the notification)."""
    from textual.widgets._toast import Toast

    from cw_tui.screens.mapping import MappingScreen

    sandbox, db = connected
    sandbox.sandbox.faults.odd_answers.append(
        OddAnswer("body", "/company/companies", {"text": "<html>[/b][red]Sign in</html>", "media_type": HTML}))
    said = f'GET /company/companies with 200 ({HTML}) that is not JSON: "<html>[/b][red]Sign in</html>"'
    with open_store(db) as store:
        async def scenario() -> None:
            app = make_app(store)
            async with app.run_test(size=(80, 24), notifications=True) as pilot:
                await pilot.press("2")
                await wait_for(pilot, lambda: isinstance(app.screen, MappingScreen))
                await pilot.press("o")
                await wait_for(pilot, lambda: any(said in str(t.render()) for t in app.screen.query(Toast)), timeout=20)
                await pilot.pause(0.2)
                assert isinstance(app.screen, MappingScreen) and app.is_running

        run(scenario())
        assert store.db.execute_sql("SELECT COUNT(*) FROM company").fetchone() == (0,)

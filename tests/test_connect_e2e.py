"""Issue 3, must show 3 and 4: the sandbox and cw-tui as separate processes, as a user runs them.
Issue 10, parts 6 and 8: `connect` and the sandbox with redirects, malformed URLs and IPv6."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cw_tui.sandbox.odd_answers import OddAnswer
from cw_tui.services.credentials import Credentials
from tests.conftest import run_process
from tests.sandbox_helpers import all_bytes, env_for, sandbox_process, sandbox_thread


def test_connect_map_and_status_with_a_sandbox_process(tmp_path: Path) -> None:
    db, folder = tmp_path / "x.sqlite3", tmp_path / "D"
    outputs: list[str] = []

    def cw(*args: str, env: dict | None = None):
        result = run_process("--db", db, *args, env=env)
        outputs.extend([result.out, result.err])
        return result

    assert run_process("demo-data", folder, "--seed", "7").code == 0
    with sandbox_process(seed=7) as announced:
        assert set(announced) == {"url", "company_id", "public_key", "private_key", "client_id"}
        private_key = announced["private_key"]
        env = env_for(announced)
        connected = cw("connect", env=env)
        assert connected.code == 0, connected.err
        credentials_file = tmp_path / "config" / "credentials.json"
        saved = credentials_file.read_bytes()
        assert oct(credentials_file.stat().st_mode & 0o777) == "0o600"

        # a wrong private key: exit 2, the cause named, the saved credentials untouched
        wrong = cw("connect", env=env_for(announced, CW_PRIVATE_KEY="not-the-key"))
        assert wrong.code == 2
        assert "refused the credentials (401" in wrong.err and "private keys" in wrong.err
        assert credentials_file.read_bytes() == saved

        types = cw("configure", "--agreement-type", "cloud services", "--platform-dir", str(folder), "--json")
        assert types.code == 0, types.err
        assert json.loads(types.out)["agreement_type"]["name"] == "Cloud Services"
        assert cw("configure", "--agreement-type", "No Such Type").code == 2

        synced = cw("sync-organizations", "--json")
        assert synced.code == 0, synced.err
        assert json.loads(synced.out)["companies"] == 400
        assert cw("load-invoices", "--period", "previous").code == 0
        dry = cw("automap", "--include", "--dry-run", "--json")
        assert dry.code == 0 and json.loads(dry.out)["organizations"] > 150
        assert json.loads(cw("status", "--json").out)["organizations"]["mapped"] == 0  # a dry run changes nothing
        mapped = cw("automap", "--include", "--json")
        assert mapped.code == 0

        status = json.loads(cw("status", "--json").out)
        orgs, products, [period] = status["organizations"], status["products"], status["periods"]
        assert orgs["mapped"] > orgs["total"] / 2 and orgs["mapped"] > orgs["unmapped"]
        assert products["mapped"] > products["total"] / 2
        assert period["mapped"] > period["lines"] / 3
        assert period["lines"] == period["mapped"] + period["unmapped"] + period["excluded"]
        assert status["last_organizations_sync"] is not None

        outputs.append(cw("logs", "--details", "--json").out)

    # issue 3, must show 4: the private key is in no log entry, no database byte, no CLI output
    assert private_key not in "\n".join(outputs)
    assert private_key.encode() not in all_bytes(db)
    assert announced["client_id"].encode() not in all_bytes(db)


# ---------------------------------------------------------------- issue 10, parts 6 and 8


def connect_env(monkeypatch: pytest.MonkeyPatch, creds, **overrides: str) -> None:
    values = {"CW_URL": creds.url, "CW_COMPANY_ID": creds.company_id, "CW_PUBLIC_KEY": creds.public_key,
              "CW_PRIVATE_KEY": creds.private_key, "CW_CLIENT_ID": creds.client_id, **overrides}
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def authentication_log(cli, db: Path) -> list[dict]:
    return cli("--db", db, "logs", "--category", "Authentication", "--details", "--json").json()


def test_connect_refuses_a_redirect_with_a_json_body_and_saves_nothing(cli, tmp_path: Path, monkeypatch) -> None:
    db, credentials_file = tmp_path / "x.sqlite3", tmp_path / "config" / "credentials.json"
    with sandbox_thread() as sandbox:
        sandbox.sandbox.faults.odd_answers.append(OddAnswer("redirect", "/system/info", {"status": 301, "json_body": True}))
        connect_env(monkeypatch, sandbox.credentials)
        refused = cli("--db", db, "connect")
        assert refused.code == 2
        assert "with 301 (application/vnd.connectwise.com+json; version=2025.1), a redirect to https://elsewhere.example.com/v4_6_release/apis/3.0/system/info: \"{" in refused.err
        assert "check the API URL" in refused.err and "nothing was saved" in refused.err
        assert not credentials_file.exists()
        [entry] = authentication_log(cli, db)
        assert entry["level"] == "ERROR" and "a redirect to" in entry["details"]

        # the control: the same sandbox without the odd answer connects and saves
        sandbox.sandbox.faults.odd_answers.clear()
        assert cli("--db", db, "connect").code == 0 and credentials_file.exists()

        # a redirect on a later command is a configuration error too
        sandbox.sandbox.faults.odd_answers.append(OddAnswer("redirect", "/company/companies"))
        synced = cli("--db", db, "sync-organizations")
        assert synced.code == 2 and "with 302 (no content type), a redirect to" in synced.err and "check the API URL" in synced.err


@pytest.mark.parametrize(("url", "said"), [
    ("https://host:58371z", "has an invalid port '58371z'"),
    ("http://[::1", "malformed [IPv6] address"),
    ("https://ho st.example.com", "invalid host name"),
    ("https://host:70000", "has an invalid port '70000'"),
])
def test_connect_with_a_malformed_url_exits_2_at_once(cli, tmp_path: Path, monkeypatch, url: str, said: str) -> None:
    db = tmp_path / "x.sqlite3"
    connect_env(monkeypatch, Credentials("", "sandbox", "pub", "priv", "client"), CW_URL=url)
    result = cli("--db", db, "connect")
    assert result.code == 2
    assert said in result.err and "nothing was saved" in result.err and "unexpected" not in result.err
    assert not (tmp_path / "config" / "credentials.json").exists()
    [entry] = authentication_log(cli, db)
    assert entry["summary"].startswith("Connection test failed") and said in entry["details"]


def test_the_sandbox_on_ipv6_loopback_prints_a_url_that_works(tmp_path: Path) -> None:
    db = tmp_path / "x.sqlite3"
    with sandbox_process(host="::1") as announced:
        assert announced["url"].startswith("http://[::1]:")
        connected = run_process("--db", db, "connect", env=env_for(announced))
        assert connected.code == 0, connected.err
        assert f"at {announced['url']}/v4_6_release/apis/3.0" in connected.out
        synced = run_process("--db", db, "sync-organizations", "--json", env=env_for(announced))
        assert synced.code == 0 and json.loads(synced.out)["companies"] == 400

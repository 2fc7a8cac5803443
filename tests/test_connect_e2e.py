"""Issue 3, must show 3 and 4: the sandbox and cw-tui as separate processes, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_process
from tests.sandbox_helpers import all_bytes, env_for, sandbox_process


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

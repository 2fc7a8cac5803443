from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cw_tui.services import credentials
from cw_tui.services.credentials import Credentials, CredentialsError


def test_saved_with_mode_0600_and_read_back(tmp_path: Path) -> None:
    creds = Credentials("http://127.0.0.1:1", "acme", "pub", "priv-secret-1", "client-guid-1")
    path = credentials.save(creds)
    assert path.parent == tmp_path / "config"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert credentials.load_saved() == creds
    assert "priv-secret-1" not in repr(creds) and "client-guid-1" not in str(creds)


def test_environment_takes_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    credentials.save(Credentials("http://127.0.0.1:1", "acme", "pub", "priv", "cid"))
    monkeypatch.setenv("CW_PRIVATE_KEY", "from-env")
    current = credentials.current()
    assert current is not None and current.private_key == "from-env" and current.company_id == "acme"


def test_environment_alone_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    assert credentials.current() is None
    for name, var in credentials.ENVIRONMENT.items():
        monkeypatch.setenv(var, f"{name}-value")
    current = credentials.current()
    assert current is not None and current.complete()


def test_a_damaged_file_is_an_error(tmp_path: Path) -> None:
    path = credentials.credentials_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(CredentialsError, match="damaged"):
        credentials.load_saved()


def test_missing_fields_are_named() -> None:
    assert Credentials(url="x").missing() == ["Company ID", "Public Key", "Private Key", "Client ID"]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_file_others_can_read_is_refused_like_ssh_does(cli, mode: int) -> None:
    path = credentials.save(Credentials("http://127.0.0.1:1", "acme", "pub", "priv-secret-9", "cid-9"))
    path.chmod(mode)
    with pytest.raises(CredentialsError, match=rf"mode {mode:04o}.*chmod 600 {path}"):
        credentials.current()
    result = cli("sync-organizations")  # any command that needs the credentials
    assert result.code == 2
    assert f"chmod 600 {path}" in result.err and "priv-secret-9" not in result.err + result.out
    path.chmod(0o600)
    assert credentials.current().private_key == "priv-secret-9"


def test_the_app_says_a_credentials_file_others_can_read_is_refused(tmp_path: Path) -> None:
    from textual.widgets import Static

    from cw_tui.screens.settings import SettingsScreen
    from cw_tui.store import open_store
    from tests.app_helpers import make_app, run, wait_for

    path = credentials.save(Credentials("http://127.0.0.1:1", "acme", "pub", "priv-secret-9", "cid-9"))
    path.chmod(0o644)
    store = open_store(tmp_path / "s.sqlite3")

    async def scenario() -> None:
        app = make_app(store)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen))  # only Settings opens
            status = app.screen.query_one("#test-status", Static)
            await wait_for(pilot, lambda: f"chmod 600 {path}" in str(status.render()))
            assert "priv-secret-9" not in str(status.render())
            assert app.is_running

    run(scenario())
    store.close()

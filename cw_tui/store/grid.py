"""The grid engine. SQL-paged grids: every grid is a `GridSource` (a FROM clause and columns), and
a `GridState` (search, sort, filters, page) becomes one SELECT ... LIMIT/OFFSET plus one
COUNT. Sorting, filtering, searching and counting happen in the database, so a grid costs the
same at 100 rows and at 100,000. SQLite's fast paths (rowids, a period's rowid range, temp
tables of matches) are taken on SQLite only: on PostgreSQL rows are paged by their key. Both keep
the costly columns per row in a temp table (GridSource.kept), and each row's searchable text
(GridSource.search_kept). The app's grids are in grid_sources.py; nothing here imports
textual."""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from cw_tui.rules.display import plain
from cw_tui.store.database import Store

PAGE_SIZES = (20, 50, 100, 500)


@lru_cache(maxsize=256)
def _alias_pattern(alias: str) -> re.Pattern:
    return re.compile(rf"(?<![\w.]){re.escape(alias)}\.")


def _uses(sql: str, alias: str) -> bool:
    return bool(_alias_pattern(alias).search(sql))


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    sql: str
    sortable: bool = True
    filterable: bool = False
    searchable: bool = False
    width: int | None = None
    numeric: bool = False
    # The text a person reads for a stored value (rules/display.py): the grid styles it,
    # the CSV export holds it. None: the value's own text.
    display: Callable[[Any], str] | None = None
    # The export's text where a spreadsheet needs more than the grid shows (a timestamp in
    # ISO 8601 UTC), and the export's extra columns after this one: (title, text of the value).
    csv: Callable[[Any], str] | None = None
    csv_extra: tuple[tuple[str, Callable[[Any], str]], ...] = ()
    # How the search box matches this column, with one `?` for the LIKE pattern; default
    # `CAST(sql AS TEXT) LIKE ?`. A column of a joined table can match through a subquery on
    # that small table instead, so a search scans the big one once, without joins.
    search_sql: str | None = None
    # Sorting by this column walks an index (with the source's `where`): no sort needed.
    indexed: bool = False
    # The column holds text: the search compares it as it is (a CAST per row costs ~2 ms
    # per 100,000 rows and column).
    text: bool = False
    # A column of a small joined table (an organization's name) sorts by walking that table's
    # index and each row's lines: (its alias, a FROM clause that starts with it and joins the
    # grid's base table). Pages come out in order without sorting every line.
    sort_driver: tuple[str, str] | None = None
    # The column can hold NULL. One that cannot sorts without a NULLS clause on PostgreSQL,
    # which can then walk its index.
    nulls: bool = True
    # An index of the source's rows leads with this column (after the source's `where`): a
    # filter on it reads the rows it keeps, not every row.
    filter_indexed: bool = False

    def shown(self, value: Any) -> str:
        return (self.display or plain)(value)

    def csv_cells(self, value: Any) -> list[str]:
        return [(self.csv or self.shown)(value), *(text(value) for _, text in self.csv_extra)]

    def csv_titles(self) -> list[str]:
        return [self.title, *(title for title, _ in self.csv_extra)]


@dataclass(frozen=True)
class GridSource:
    name: str  # "organizations", for the summary line
    from_sql: str
    columns: tuple[Column, ...]
    key_sql: str  # a unique key per row: the row key in the widget, the tie-breaker in sorts
    where: str = ""
    params: tuple = ()
    default_sort: tuple[tuple[str, bool], ...] = ()  # (column key, descending)
    summary: Callable[[Store, GridSource], str] | None = None
    # Counting and choosing a page's keys need only the joins their SQL uses: the base table
    # (with its alias) and (alias, JOIN clause) pairs in the order they depend on each other.
    # Empty: every query uses from_sql.
    base: str = ""
    joins: tuple[tuple[str, str], ...] = ()
    # The same rows as `where`, phrased for a scan in file order (a full sort, a search):
    # walking an index of 100k rows costs one lookup per row, a scan reads pages in order.
    scan_where: str = ""
    scan_params: tuple = ()
    # Columns whose values cost joins per row (a line's Mapping Status): a grid's cache keeps
    # them per row in a temp table while the data is unchanged, and sorts, filters and counts
    # by them read that instead of joining every row again.
    kept: tuple[str, ...] = ()
    singular: str = ""  # "invoice line": for a count of one
    # the column that names a row (an organization's name): it stays in view, after the mark,
    # when the columns scroll to the right
    name_key: str | None = None
    # The key as sorts break ties with it, when not key_sql: a kept column's copy of it (the
    # cache's kept_source), which an index of the kept table holds after the value.
    tie_sql: str = ""
    # A grid's cache keeps each row's searchable text in a narrow temp table while the data is
    # unchanged, and a search reads that instead of every wide row (GridCache._search_table)
    search_kept: bool = False
    # The search as one predicate, instead of a LIKE per searchable column: on PostgreSQL, the
    # cache's kept search text (GridCache.kept_source). Its parameters: `search_params`, or
    # (None) one contains_pattern of the search.
    search_where: str = ""
    search_params: tuple | None = None

    def __post_init__(self) -> None:
        if not self.singular:
            object.__setattr__(self, "singular", self.name.removesuffix("s"))

    @property
    def rowid_sql(self) -> str:
        alias = self.key_sql.rsplit(".", 1)[0] if "." in self.key_sql else ""
        return f"{alias}.rowid" if alias else "rowid"

    def from_for(self, sql: str, driver: tuple[str, str] | None = None) -> str:
        """The base table (or a sort driver) and the joins that `sql` needs, directly or
        through another join."""
        if not self.base:
            return self.from_sql
        provided = {driver[0]} if driver else set()
        needed = {alias for alias, _ in self.joins if _uses(sql, alias)} - provided
        for alias, clause in reversed(self.joins):  # a join can need an earlier one (cm needs o)
            if alias in needed:
                needed |= {a for a, _ in self.joins if a != alias and _uses(clause, a)} - provided
        return " ".join([driver[1] if driver else self.base, *(c for a, c in self.joins if a in needed)])

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)


@dataclass(frozen=True)
class GridState:
    search: str = ""
    sort: tuple[tuple[str, bool], ...] = ()
    filters: tuple[tuple[str, frozenset], ...] = ()
    page: int = 1
    page_size: int = 20

    def with_filter(self, key: str, values: frozenset) -> GridState:
        others = tuple((k, v) for k, v in self.filters if k != key)
        return replace(self, filters=others + (((key, values),) if values else ()), page=1)

    def filter_values(self, key: str) -> frozenset:
        return next((v for k, v in self.filters if k == key), frozenset())

    def with_sort_key(self, key: str) -> GridState:
        """`S`: the column as one more sort key after the others (asc -> desc -> off); the
        sort by the other columns stays."""
        current = dict(self.sort).get(key)
        if current is None:
            return replace(self, sort=(*self.sort, (key, False)), page=1)
        if current is False:
            return replace(self, sort=tuple((k, True if k == key else d) for k, d in self.sort), page=1)
        return replace(self, sort=tuple((k, d) for k, d in self.sort if k != key), page=1)

    def toggled_sort(self, key: str) -> GridState:
        """asc -> desc -> off, on one column."""
        current = dict(self.sort).get(key)
        if current is None:
            return replace(self, sort=((key, False),), page=1)
        if current is False:
            return replace(self, sort=((key, True),), page=1)
        return replace(self, sort=(), page=1)


@dataclass
class Page:
    keys: list[str]
    rows: list[tuple]
    total: int  # rows matching search and filters
    page: int
    page_size: int
    all_rows: int = 0  # rows before search and filters

    @property
    def first(self) -> int:
        return 0 if self.total == 0 else (self.page - 1) * self.page_size + 1

    @property
    def last(self) -> int:
        return min(self.total, self.page * self.page_size)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    def range_text(self) -> str:
        return f"{self.first:,}–{self.last:,} of {self.total:,}"


def contains_pattern(text: str) -> str:
    """A `LIKE ? ESCAPE '\\'` pattern for "contains `text`": a typed % or _ is that character,
    not a wildcard."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass
class _Where:
    parts: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def sql(self) -> str:
        return (" WHERE " + " AND ".join(f"({p})" for p in self.parts)) if self.parts else ""


def _where(source: GridSource, state: GridState, *, skip_filter: str | None = None, scan: bool = False) -> _Where:
    where = _Where()
    if scan and source.scan_where:
        where.parts.append(source.scan_where)
        where.params.extend(source.scan_params)
    elif source.where:
        where.parts.append(source.where)
        where.params.extend(source.params)
    search = state.search.strip()
    if search and source.search_where:
        where.parts.append(source.search_where)
        where.params.extend([contains_pattern(search)] if source.search_params is None else source.search_params)
    elif search:
        like = contains_pattern(search)
        columns = [c for c in source.columns if c.searchable]
        where.parts.append(" OR ".join(c.search_sql or (f"{c.sql} LIKE ? ESCAPE '\\'" if c.text else f"CAST({c.sql} AS TEXT) LIKE ? ESCAPE '\\'")
                                       for c in columns))
        where.params.extend([like] * len(columns))
    for key, values in state.filters:
        if key == skip_filter or not values:
            continue
        column = source.column(key)
        concrete = [v for v in values if v is not None]
        clause = []
        if concrete:
            clause.append(f"{column.sql} IN ({','.join('?' * len(concrete))})")
            where.params.extend(sorted(concrete, key=str))
        if None in values:
            clause.append(f"{column.sql} IS NULL")
        where.parts.append(" OR ".join(clause))
    return where


def _temp_schema(store: Store) -> str:
    return "temp" if store.backend.HAS_ROWID else "pg_temp"


def _snapshot(text: object) -> tuple[int, int, frozenset] | None:
    """PostgreSQL's snapshot text xmin:xmax:in-progress as numbers; None for anything else."""
    parts = str(text).split(":")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1]), frozenset(int(x) for x in parts[2].split(",") if x)


def _only_own_commit(before: object, after: object, own: int) -> bool:
    """Whether the only transaction committed between two PostgreSQL snapshots is ours (`own`):
    it was the next ID to be given out, the next one now follows it, and the same others are in
    progress. Any other commit took an ID in the list (it would leave it) or after ours (xmax
    would be further on)."""
    was, now = _snapshot(before), _snapshot(after)
    if was is None or now is None:
        return False
    xmin, xmax, running = was
    return xmax == own and now == (xmin if running else own + 1, own + 1, running)


def _row_id(store: Store, source: GridSource) -> str:
    """What identifies a row in the page queries: SQLite's rowid, else the source's key."""
    return source.rowid_sql if store.backend.HAS_ROWID else source.key_sql


def _order_sql(source: GridSource, state: GridState, store: Store, reverse: bool = False) -> str:
    # Plain ORDER BY (NULLs first when ascending, as SQLite does; PostgreSQL is told so where a
    # column can hold them: a NULLS clause the index does not have keeps PostgreSQL from walking
    # it): an `x IS NULL` term would keep SQLite from walking an index and make it sort every row.
    # `reverse`: the exact opposite order (the key too), for pages read from the end.
    nulls_asc, nulls_desc = store.backend.NULLS_LIKE_SQLITE
    terms = []
    for key, desc in state.sort or source.default_sort:
        column, desc = source.column(key), desc != reverse
        nulls = (nulls_desc if desc else nulls_asc) if column.nulls else ""
        terms.append(f"{column.sql} {'DESC' if desc else 'ASC'}{nulls}")
    terms.append(f"{source.tie_sql or source.key_sql} {'DESC' if reverse else 'ASC'}")
    return " ORDER BY " + ", ".join(terms)


class GridCache:
    """What a grid's fetches learned, kept while the database is unchanged: counts, and for a
    search or filter the set of matching rows (a temp table of rowids). Paging, sorting and
    marking then cost no scan, and a longer search typed after a shorter one looks only at
    the shorter one's matches. Any commit to the database (seen through `PRAGMA
    data_version` and the connection's change count) forgets it all.

    Temp tables belong to one connection: use a cache from one thread (the grids use the
    app's database thread)."""

    _numbers = itertools.count(1)

    def __init__(self) -> None:
        number = next(self._numbers)
        self._tables = [f"grid_match_{number}_a", f"grid_match_{number}_b"]
        self._version: tuple | None = None
        self._checked: tuple = ()
        self.counts: dict[tuple, int] = {}
        self.match_table: str | None = None
        self._match_key: tuple | None = None
        self._match_search = ""
        self._match_scope: tuple | None = None
        self.match_count = 0
        self._number = number
        self._kept: dict[str, tuple] = {}  # column key -> the rows its temp table holds values of
        self._kept_indexes: set[tuple[str, bool]] = set()  # (column key, descending) indexed
        # what the kept search text holds rows of (None: not made), and whether it holds every row
        self._searched: tuple | None = None
        self._search_whole = False
        # PostgreSQL: a search -> how many rows' kept text holds it, and their keys if few (else None)
        self._kept_matches: dict[str, tuple[int, tuple | None]] = {}
        self._steady = False  # the data did not change since the fetch before this one
        # a prefill running on the database thread: its connection, to interrupt it from another
        self._filling: Any = None
        self._stop = False
        self._fill_lock = threading.Lock()

    def check(self, store: Store) -> None:
        self._checked = self._current(store)
        self._steady = self._checked == self._version
        if not self._steady:
            self.counts.clear()
            self.match_table = self._match_key = self._match_scope = None
            self._kept.clear()
            self._kept_indexes.clear()
            self._searched = None
            self._kept_matches.clear()

    def kept_source(self, store: Store, source: GridSource, state: GridState, also: str | None = None) -> GridSource:
        """The source as the fast paths read it: each kept column that the state sorts or
        filters by (or `also`) read from its temp table, filled now if it is not. Call
        check() first. On PostgreSQL, the search too reads the kept search text, when it answers
        the search (SQLite reads that in matches(), into a temp table of matching rowids)."""
        source = self._searched_source(store, source, state)
        used = {k for k, _ in state.sort} | {k for k, v in state.filters if v} | {also}
        keys = [k for k in source.kept if k in used] if source.base else []
        if not keys:
            return source
        columns, joins = list(source.columns), list(source.joins)
        row, schema = _row_id(store, source), _temp_schema(store)
        sort = state.sort or source.default_sort
        tie_sql = ""
        for key in keys:
            table, alias = self._kept_table(store, source, key), f"kept_{key}"
            at = next(n for n, c in enumerate(columns) if c.key == key)
            driver = None
            if store.backend.HAS_ROWID and sort and sort[0][0] == key:
                # sorted by it first: the pages walk the kept table's index of (value, key) and
                # look up each row's line, instead of sorting every line (30-60 ms at 100k)
                self._kept_index(store, table, key, sort[0][1])
                driver = (alias, f"{schema}.{table} {alias} CROSS JOIN {source.base} ON {row} = {alias}.kept_row")
                tie_sql = f"{alias}.kept_key"
            columns[at] = replace(columns[at], sql=f"{alias}.kept_value", search_sql=None, sort_driver=driver)
            joins.append((alias, f"JOIN {schema}.{table} {alias} ON {alias}.kept_row = {row}"))
        return replace(source, columns=tuple(columns), joins=tuple(joins), tie_sql=tie_sql)

    def _kept_index(self, store: Store, table: str, key: str, desc: bool) -> None:
        """The kept table's index by value (descending or not) and key (ascending, as the sorts
        break ties), made when a sort first needs it: each costs ~50 ms at 100k rows."""
        if (key, desc) in self._kept_indexes:
            return
        store.db.execute_sql(f"CREATE INDEX IF NOT EXISTS temp.{table}_{'down' if desc else 'up'} "
                             f"ON {table} (kept_value{' DESC' if desc else ''}, kept_key)")
        self._kept_indexes.add((key, desc))
        self._settle(store)

    def prefill(self, store: Store, source: GridSource) -> bool:
        """Fill the source's kept columns and their indexes now if they are not made for the
        data as it is, so that the first sort or filter by one finds them ready (on the grid's
        database thread, once a page is shown: ~250 ms at 100k lines). Whether anything was made.
        The next fetch checks the data again: nothing here is trusted past a change. interrupt()
        stops it (a page is wanted): what it had not finished is made when needed."""
        if not source.base or not (source.kept or self._search_keepable(store, source)):
            return False
        self.check(store)
        steps = []
        if self._search_keepable(store, source) and self._searched != self._search_rows(store, source):
            steps.append(lambda: self._search_table(store, source))
        for key in source.kept:
            if self._kept.get(key) != self._kept_rows(source):
                steps.append(lambda key=key: self._kept_table(store, source, key))
            if store.backend.HAS_ROWID:
                steps += [lambda key=key, desc=desc: self._kept_index(store, self._kept_table(store, source, key), key, desc)
                          for desc in (False, True) if (key, desc) not in self._kept_indexes]
        if not steps:
            return False
        with self._fill_lock:
            self._stop = False
            self._filling = self._stopper(store)
        try:
            for step in steps:
                if self._stop:
                    return False
                step()
        except Exception:
            if not self._stop:
                raise
            return False  # interrupted: the statement was rolled back, its table or index is not counted as made
        finally:
            with self._fill_lock:
                self._filling = None
        return True

    def interrupt(self) -> None:
        """Stop a prefill running on the database thread, from any thread (a grid wants a page
        now): the statement it runs ends at once, and it starts no other. Nothing otherwise."""
        with self._fill_lock:
            if self._filling is not None:
                self._stop = True
                with suppress(Exception):  # not stopped (a cancel request not delivered): it ends by itself
                    self._filling()

    @staticmethod
    def _stopper(store: Store) -> Callable[[], None]:
        """What stops the statement the grid's connection runs now. PostgreSQL: a cancel request,
        which the server ignores from a connection between statements. interrupt() sends it with
        the lock held that a prefill takes to end, so it is delivered before the database
        thread's next statement (a page's query) is sent: it cannot cancel that one."""
        connection = store.db.connection()
        if store.backend.HAS_ROWID:
            return connection.interrupt
        cancel_safe = getattr(connection, "cancel_safe", None)  # psycopg 3.2: with a time limit
        return (lambda: cancel_safe(timeout=2.0)) if cancel_safe else connection.cancel

    def _in_own_transaction(self, store: Store, fill: Callable[[], Any]) -> Any:
        """PostgreSQL: `fill` in one transaction, so that the only transaction ID it takes is
        known (a temp table's writes take one too, and move the server's snapshot): if it is the
        only one that ended since the data was read, the data read is the data now. So too when
        an interrupted prefill rolled it back."""
        db = store.db
        own = None
        try:
            with db.atomic():
                own = int(db.execute_sql("SELECT pg_current_xact_id()::text").fetchone()[0])
                result = fill()
        except Exception:
            if own is not None and self._stop:
                with suppress(Exception):
                    self._trust_own(store, own)
            raise
        self._trust_own(store, own)
        return result

    def _trust_own(self, store: Store, own: int) -> None:
        current = self._current(store)
        if _only_own_commit(self._checked[1], current[1], own):
            self._checked = current  # the data read before the fill is the data now
        self._settle(store)

    @staticmethod
    def _kept_rows(source: GridSource) -> tuple:
        """What a kept table's rows are of: it is reused while the data and these are the same."""
        return source.from_sql, source.where, source.params, source.scan_where, source.scan_params

    def _kept_table(self, store: Store, source: GridSource, key: str) -> str:
        # names of their own: a query's `AS v` must not meet a column of the same name
        table = f"grid_kept_{self._number}_{key}"
        rows = self._kept_rows(source)
        if self._kept.get(key) == rows:
            return table
        column, scan = source.column(key), _where(source, GridState(), scan=store.backend.HAS_ROWID)
        fill = (f"SELECT {_row_id(store, source)}, {column.sql} FROM {source.from_for(scan.sql() + column.sql)}"
                f"{scan.sql()}")
        db = store.db
        if store.backend.HAS_ROWID:
            # with each row's key: indexed by (value, key) when a sort needs it (_kept_index)
            fill = (f"SELECT {_row_id(store, source)}, {column.sql}, {source.key_sql} "
                    f"FROM {source.from_for(scan.sql() + column.sql)}{scan.sql()}")
            db.execute_sql(f"DROP TABLE IF EXISTS temp.{table}")
            db.execute_sql(f"CREATE TEMP TABLE {table} (kept_row INTEGER PRIMARY KEY, kept_value, kept_key)")
            db.execute_sql(f"INSERT INTO temp.{table} (kept_row, kept_value, kept_key) {fill}", scan.params)
            self._kept[key] = rows
            self._kept_indexes -= {(key, False), (key, True)}
            self._settle(store)
            return table
        # PostgreSQL: one transaction of its own (_in_own_transaction). Indexes by value,
        # either way (the key ascends in both sorts): a sort walks one to the first page's rows.
        # Built after the rows are in (cheaper than kept up row by row). ANALYZE: autovacuum
        # never looks at temp tables, and the planner needs their size.
        def make() -> None:
            db.execute_sql(f"DROP TABLE IF EXISTS pg_temp.{table}")
            db.execute_sql(f"CREATE TEMP TABLE {table} (kept_row TEXT NOT NULL, kept_value TEXT)")
            db.execute_sql(f"INSERT INTO pg_temp.{table} (kept_row, kept_value) {fill}", scan.params)
            db.execute_sql(f"ALTER TABLE pg_temp.{table} ADD PRIMARY KEY (kept_row)")
            db.execute_sql(f"CREATE INDEX ON pg_temp.{table} (kept_value, kept_row)")
            db.execute_sql(f"CREATE INDEX ON pg_temp.{table} (kept_value DESC, kept_row)")
            db.execute_sql(f"ANALYZE pg_temp.{table}")

        self._in_own_transaction(store, make)
        self._kept[key] = rows
        return table

    @staticmethod
    def _search_keepable(store: Store, source: GridSource) -> bool:
        return source.search_kept and bool(source.base)

    @staticmethod
    def _search_text(store: Store, source: GridSource) -> str:
        """One text per row of every searchable column's, joined by U+001F: a search without that
        character matches it exactly where it matches one of the columns (the LIKE is literal).
        PostgreSQL: in lower case, as its ILIKE compares a column (lower() of the text and of the
        pattern), so that a search is a plain LIKE of the lowered pattern: the ILIKE's lower() of
        every row was most of a search's time. One lower() of the joined text is each column's
        lower() joined: the contexts a lowering looks at (ICU's final sigma, Turkish dotted I)
        end at a character that is neither cased nor case-ignorable, as U+001F."""
        joined = (" || char(31) || " if store.backend.HAS_ROWID else " || chr(31) || ").join(
            f"COALESCE(CAST({c.sql} AS TEXT), '')" for c in source.columns if c.searchable)
        return joined if store.backend.HAS_ROWID else f"lower({joined})"

    def _search_rows(self, store: Store, source: GridSource) -> tuple:
        return (*self._kept_rows(source), self._search_text(store, source))

    def _search_table(self, store: Store, source: GridSource) -> str:
        """The kept search text: each row's rowid and _search_text, made for the data as it is
        (~180 ms at 100k lines; a search of it ~12 ms, of the lines themselves 60-180 ms). It
        answers a search only if it holds every row of the source: the joins its text needs
        (a line's organization and offer) could leave out a row the plain search would find."""
        table, rows = f"grid_search_{self._number}", self._search_rows(store, source)
        if self._searched == rows:
            return table
        if not store.backend.HAS_ROWID:
            return self._search_table_pg(store, source, table, rows)
        text, scan = self._search_text(store, source), _where(source, GridState(), scan=True)
        db = store.db
        db.execute_sql(f"DROP TABLE IF EXISTS temp.{table}")
        db.execute_sql(f"CREATE TEMP TABLE {table} (kept_row INTEGER PRIMARY KEY, kept_text TEXT NOT NULL)")
        made = db.execute_sql(
            f"INSERT INTO temp.{table} (kept_row, kept_text) SELECT {_row_id(store, source)}, {text} "
            f"FROM {source.from_for(scan.sql() + text)}{scan.sql()}", scan.params).rowcount
        # and per chunk of 64 rows (by rowid), each column's distinct values: a search first finds
        # the chunks that hold it (a LIKE's cost is mostly per row; a chunk's text is ~30% of its
        # rows'), then looks only at their rows. Made by the same scan: the data read between the
        # two is checked as for one (_settle)
        rowid = _row_id(store, source)
        values = " || char(31) || ".join(f"group_concat(DISTINCT COALESCE(CAST({c.sql} AS TEXT), ''))"
                                         for c in source.columns if c.searchable)
        db.execute_sql(f"DROP TABLE IF EXISTS temp.{table}_chunks")
        db.execute_sql(f"CREATE TEMP TABLE {table}_chunks (first_row INTEGER PRIMARY KEY, last_row INTEGER NOT NULL, "
                       "kept_text TEXT NOT NULL)")
        db.execute_sql(f"INSERT INTO temp.{table}_chunks SELECT MIN({rowid}), MAX({rowid}), {values} "
                       f"FROM {source.from_for(scan.sql() + values)}{scan.sql()} GROUP BY {rowid} >> {SEARCH_CHUNK_SHIFT}",
                       scan.params)
        self._search_whole = made == self.count(store, source, _where(source, GridState()))
        self._searched = rows
        self._settle(store)
        return table

    def _search_table_pg(self, store: Store, source: GridSource, table: str, rows: tuple) -> str:
        """PostgreSQL's kept search text: each row's key and lowered text (~250 ms at 100k lines;
        a search of it ~25 ms, of the lines with an ILIKE per column ~50 ms on three processes).
        Made as _kept_table makes its table, in one transaction of its own. The key's primary
        index: a page of a common search walks the sort's index and looks each line up in it.
        ANALYZE: the planner's guess of how many rows a search keeps."""
        text, where = self._search_text(store, source), _where(source, GridState())
        lines = self.count(store, source, where)  # before the transaction: a count settles the cache
        db = store.db

        def make() -> int:
            db.execute_sql(f"DROP TABLE IF EXISTS pg_temp.{table}")
            made = db.execute_sql(
                f"CREATE TEMP TABLE {table} AS SELECT {_row_id(store, source)} AS kept_row, {text} AS kept_text "
                f"FROM {source.from_for(where.sql() + text)}{where.sql()}", where.params).rowcount
            db.execute_sql(f"ALTER TABLE pg_temp.{table} ADD PRIMARY KEY (kept_row)")
            db.execute_sql(f"ANALYZE pg_temp.{table} (kept_text)")  # the keys need none: their index is unique
            return made

        self._search_whole = self._in_own_transaction(store, make) == lines
        self._kept_matches.clear()
        self._searched = rows
        return table

    def _searched_source(self, store: Store, source: GridSource, state: GridState) -> GridSource:
        """PostgreSQL: the source whose search reads the kept search text, when that text answers
        the state's search (made now if the data held still since the last fetch): the keys of
        its rows if few, else one LIKE of the text by key. `~~` is LIKE itself: the store's SQL
        reads LIKE as ILIKE, which would lower every row again. The pattern is lowered as ILIKE
        lowers it."""
        if store.backend.HAS_ROWID or not source.base:
            return source
        search = state.search.strip()
        table = self._searched_table(store, source, search, make=True)
        if table is None:
            return source
        filters = tuple((k, v) for k, v in state.filters if v)
        if filters and self._few_by_index(store, source, GridState(filters=filters)):
            return source  # an index keeps few rows: a LIKE per column of those costs less than any scan
        _, keys = self._kept_matching(store, table, search)
        if keys is not None:
            # a rare search: the pages and counts look its rows up by key, instead of scanning the
            # text again (the text of a search that finds many: the sort's first rows pass it soon)
            return replace(source, search_where=f"{_row_id(store, source)} = ANY(string_to_array(?, chr(31)))",
                           search_params=("\x1f".join(keys),))
        return replace(source, search_where=f"{_row_id(store, source)} IN "
                                            f"(SELECT kept_row FROM pg_temp.{table} WHERE kept_text ~~ lower(?))")

    def _kept_matching(self, store: Store, table: str, search: str) -> tuple[int, tuple | None]:
        """PostgreSQL: how many rows' kept search text holds `search`, and their keys if at most
        FEW_KEYS (else None), in one scan of the text: the count, then the pages, need no other
        (gathering the keys of a search found everywhere costs ~10 ms at 100k lines; a second
        scan ~25). No keys either if one holds U+001F, which joins them for the pages. A longer
        search typed after a shorter one of few rows looks only at those (ASCII: lower() of the
        longer holds that of the shorter; a context-dependent lowering, ICU's final sigma, could
        break that)."""
        if search not in self._kept_matches:
            shorter = next((keys for typed, (_, keys) in self._kept_matches.items()
                            if keys is not None and typed in search and search.isascii()), None)
            inside = "kept_row = ANY(string_to_array(?, chr(31))) AND " if shorter is not None else ""
            count, keys = store.db.execute_sql(
                f"SELECT COUNT(*), CASE WHEN COUNT(*) <= ? THEN array_agg(kept_row) END FROM pg_temp.{table} "
                f"WHERE {inside}kept_text ~~ lower(?)",
                [FEW_KEYS, *(["\x1f".join(shorter)] if shorter is not None else []), contains_pattern(search)]).fetchone()
            keys = tuple(keys or ()) if count <= FEW_KEYS else None
            if keys and not all(isinstance(k, str) and "\x1f" not in k for k in keys):
                keys = None
            self._kept_matches[search] = (count, keys)
            self._settle(store)
        return self._kept_matches[search]

    def _searched_table(self, store: Store, source: GridSource, search: str, make: bool) -> str | None:
        """The kept search text that answers `search`, if there is one (made now if `make` and the
        data did not change since the last fetch: while lines are being written, each fetch
        would make it again for one search)."""
        if not search or "\x1f" in search or not self._search_keepable(store, source):
            return None
        if self._searched != self._search_rows(store, source):
            if not (make and self._steady):
                return None
            self._search_table(store, source)
        return f"grid_search_{self._number}" if self._search_whole else None

    def _current(self, store: Store) -> tuple:
        return store.backend.change_marks(store.db)

    def _settle(self, store: Store) -> None:
        current = self._current(store)
        # our own temp-table writes are not changes; a commit by another connection while
        # this fetch ran is one: then nothing learnt now is kept past the next fetch
        self._version = current if current[1] == self._checked[1] else None

    def count(self, store: Store, source: GridSource, where: _Where) -> int:
        key = (source.from_for(where.sql()), where.sql(), tuple(where.params))
        if key not in self.counts:
            self.counts[key] = store.db.execute_sql(f"SELECT COUNT(*) FROM {key[0]}{key[1]}", where.params).fetchone()[0]
            self._settle(store)
        return self.counts[key]

    def _few_by_index(self, store: Store, source: GridSource, state: GridState) -> bool:
        """Whether the filters on indexed columns keep few enough rows (a third at most) that
        reading them through the index beats reading every row in file order. Their count
        comes from the index alone."""
        indexed = tuple((k, v) for k, v in state.filters if v and source.column(k).filter_indexed)
        if state.search.strip() or not indexed:
            return False
        kept = self.count(store, source, _where(source, GridState(filters=indexed)))
        return kept * 3 <= self.count(store, source, _where(source, GridState()))

    def matches(self, store: Store, source: GridSource, state: GridState) -> int:
        """Fill a temp table with the rowids that match the search and filters; their count."""
        where = _where(source, state)
        key = (source.from_sql, source.where, source.params, where.sql(), tuple(where.params))
        if key == self._match_key:
            return self.match_count
        search = state.search.strip()
        filtered = any(values for _, values in state.filters)
        if not store.backend.HAS_ROWID:  # no rowids to keep: the pages are chosen with the predicate
            self.match_table = None
            # a search alone, answered by the kept search text (kept_source): counted there alone
            kept = self._searched_table(store, source, search, make=False) if source.search_where and not filtered else None
            if kept:
                self.match_count = self._kept_matching(store, kept, search)[0]
            else:
                self.match_count = self.count(store, source, where)
            self._match_key = key
            return self.match_count
        scope = (source.from_sql, source.where, source.params, state.filters)
        narrower = bool(self._match_search) and self._match_search in search and scope == self._match_scope
        target = self._tables[1] if self.match_table == self._tables[0] else self._tables[0]
        db = store.db
        db.execute_sql(f"CREATE TEMP TABLE IF NOT EXISTS {target} (k INTEGER PRIMARY KEY)")
        db.execute_sql(f"DELETE FROM temp.{target}")
        # a search alone reads the kept search text; with filters, one scan checking both costs
        # less than looking each row it finds up for them, once most rows match
        searched = self._searched_table(store, source, search, make=not narrower and not filtered)
        if narrower and searched and not filtered and self.match_count > NARROW_UP_TO:
            narrower = False  # "a" then "Harbor": the chunks find the few sooner than a look at 96k rows
        if narrower and searched:  # the earlier matches passed the filters: only the search is new
            sql = (f"INSERT INTO temp.{target} (k) SELECT m.k FROM temp.{self.match_table} m CROSS JOIN "
                   f"temp.{searched} s ON s.kept_row = m.k WHERE s.kept_text LIKE ? ESCAPE '\\'")
            params = [contains_pattern(search)]
        elif narrower:  # every row matching "harbor" matches "harbo": look only at those
            inside = _Where([f"{source.rowid_sql} = m.k", *where.parts], where.params)
            sql = (f"INSERT INTO temp.{target} (k) SELECT m.k FROM temp.{self.match_table} m CROSS JOIN "
                   f"{source.from_for(inside.sql())}{inside.sql()}")
            params = inside.params
        elif searched and not filtered:
            # each of a row's values is whole in its chunk's text: every row that holds the search
            # is in a chunk that does (a match across two values only costs a look at its rows)
            sql = (f"INSERT INTO temp.{target} (k) SELECT s.kept_row FROM temp.{searched}_chunks c CROSS JOIN "
                   f"temp.{searched} s ON s.kept_row BETWEEN c.first_row AND c.last_row "
                   "WHERE c.kept_text LIKE ? ESCAPE '\\' AND s.kept_text LIKE ? ESCAPE '\\'")
            params = [contains_pattern(search)] * 2
        else:
            scan = _where(source, state, scan=not self._few_by_index(store, source, state))
            sql = f"INSERT INTO temp.{target} (k) SELECT {source.rowid_sql} FROM {source.from_for(scan.sql())}{scan.sql()}"
            params = scan.params
        self.match_count = db.execute_sql(sql, params).rowcount
        self.match_table, self._match_key, self._match_search, self._match_scope = target, key, search, scope
        self._settle(store)
        return self.match_count


# The kept search text's chunks: rows whose rowids share all but these low bits (64 rows).
SEARCH_CHUNK_SHIFT = 6
# A longer search looks only at the last one's matches if they are this few (a look at each
# costs ~0.2 us; the kept text's chunks read 100k lines' in 5-18 ms).
NARROW_UP_TO = 20_000

# A sorted set of matching rows this small is sorted whole; a larger one is paged by walking
# the sort's index (or driver) and skipping rows that do not match.
SORT_MATCHES_UP_TO = 20_000
# PostgreSQL: a search found in this many rows at most is paged by their keys (GridCache._kept_matching)
FEW_KEYS = 1000


def _page_keys(store: Store, source: GridSource, state: GridState, matches: str | None, total: int,
               offset: int, limit: int) -> list:
    """The row ids of one page. A page in the second half is read from the end, in the
    opposite order: the last page costs what the first does (an OFFSET walks every row it skips)."""
    if offset > (total - 1) // 2 and offset < total:
        rows = min(limit, total - offset)
        return _page_keys_in_order(store, source, state, matches, total, total - offset - rows, rows, True)[::-1]
    return _page_keys_in_order(store, source, state, matches, total, offset, limit, False)


def _page_keys_in_order(store: Store, source: GridSource, state: GridState, matches: str | None, total: int,
                        offset: int, limit: int, reverse: bool) -> list:
    order_sql = _order_sql(source, state, store, reverse)
    sort = state.sort or source.default_sort
    first = source.column(sort[0][0]) if sort else None
    rowid = _row_id(store, source)
    sqlite_paths = store.backend.HAS_ROWID  # the sort drivers and the scans in file order
    if matches is not None and total <= SORT_MATCHES_UP_TO:
        sql = (f"SELECT {rowid} FROM temp.{matches} m CROSS JOIN {source.from_for(order_sql)} "
               f"WHERE {rowid} = m.k{order_sql} LIMIT ? OFFSET ?")
        return [r[0] for r in store.db.execute_sql(sql, [limit, offset])]
    if not sqlite_paths:
        where = _where(source, state)
        from_sql = source.from_for(where.sql() + order_sql)
    elif first is not None and first.sort_driver is not None:
        where = _where(source, state)
        from_sql = source.from_for(where.sql() + order_sql, first.sort_driver)
    elif first is None or first.indexed:
        where = _where(source, state)
        from_sql = source.from_for(where.sql() + order_sql)
    else:  # every row is sorted anyway: read them in file order
        where = _where(source, state, scan=True)
        from_sql = source.from_for(where.sql() + order_sql)
    sql = f"SELECT {rowid} FROM {from_sql}{where.sql()}{order_sql} LIMIT ? OFFSET ?"
    return [r[0] for r in store.db.execute_sql(sql, [*where.params, limit, offset])]


def _page_number(total: int, state: GridState) -> int:
    """The page asked for, within the pages that `total` rows make (page 1 when none)."""
    return min(max(1, state.page), max(1, -(-total // state.page_size)))


def fetch_page(store: Store, source: GridSource, state: GridState, cache: GridCache) -> Page:
    """One page: the keys of its rows are chosen with as few tables as the search, filters
    and sort need, then the page's rows are read with every column. The cache belongs to
    one grid (its temp tables to one connection)."""
    if not source.base:
        return _fetch_page_simple(store, source, state)
    cache.check(store)
    fast = cache.kept_source(store, source, state)  # the page's rows are read from `source` below
    base = _where(fast, GridState())
    all_rows = cache.count(store, fast, base)
    narrowed = bool(state.search.strip() or any(values for _, values in state.filters))
    total = cache.matches(store, fast, state) if narrowed else all_rows
    page = _page_number(total, state)
    matches = cache.match_table if narrowed else None
    rowids = _page_keys(store, fast, state, matches, total, (page - 1) * state.page_size, state.page_size) if total else []
    rows: list = []
    if rowids:
        rowid = _row_id(store, source)
        select = ", ".join([rowid, source.key_sql] + [c.sql for c in source.columns])
        found = {r[0]: r[1:] for r in store.db.execute_sql(
            f"SELECT {select} FROM {source.from_sql} WHERE {rowid} IN ({','.join('?' * len(rowids))})", rowids)}
        rows = [found[r] for r in rowids if r in found]
    return Page([str(r[0]) for r in rows], [tuple(r[1:]) for r in rows], total, page, state.page_size, all_rows)


def _fetch_page_simple(store: Store, source: GridSource, state: GridState) -> Page:
    """A small grid: one COUNT and one SELECT over the whole FROM clause."""
    where = _where(source, state)
    where_sql = where.sql()
    total = store.db.execute_sql(f"SELECT COUNT(*) FROM {source.from_sql}{where_sql}", where.params).fetchone()[0]
    page = _page_number(total, state)
    select = ", ".join([source.key_sql] + [c.sql for c in source.columns])
    rows = store.db.execute_sql(
        f"SELECT {select} FROM {source.from_sql}{where_sql}{_order_sql(source, state, store)} LIMIT ? OFFSET ?",
        [*where.params, state.page_size, (page - 1) * state.page_size],
    ).fetchall()
    base = _Where([source.where] if source.where else [], list(source.params))
    all_rows = total if not (state.search or state.filters) else store.db.execute_sql(
        f"SELECT COUNT(*) FROM {source.from_sql}{base.sql()}", base.params).fetchone()[0]
    return Page([str(r[0]) for r in rows], [tuple(r[1:]) for r in rows], total, page, state.page_size, all_rows)


@dataclass(frozen=True)
class Selection:
    """The rows a person chose in a grid, as data: every row matching the grid's search and
    filters (`state`), or these `keys`. Marks travel as a Selection, never as SQL text; the
    SQL is written here, below the UI, when the selection is used."""

    source: GridSource
    state: GridState | None = None
    keys: tuple = ()

    @classmethod
    def all_matching(cls, source: GridSource, state: GridState) -> Selection:
        return cls(source, state)

    @classmethod
    def of_keys(cls, source: GridSource, keys) -> Selection:
        return cls(source, None, tuple(sorted(keys)))

    def subquery(self) -> tuple[str, list[Any]]:
        """A subquery of the chosen keys, and its parameters."""
        if self.state is not None:
            return matching_keys(self.source, self.state)
        column = self.source.key_sql.split(".")[-1]
        table = self.source.from_sql.split()[0]
        return f"SELECT {column} FROM {table} WHERE {column} IN ({','.join('?' * len(self.keys))})", list(self.keys)


def selected_keys(store: Store, selection: Selection) -> list[Any]:
    """The keys a selection stands for, read now."""
    sql, params = selection.subquery()
    return [r[0] for r in store.db.execute_sql(sql, params)]


def matching_keys(source: GridSource, state: GridState) -> tuple[str, list[Any]]:
    """A subquery of the keys of every row that matches the grid's search and filters: bulk
    changes use the same predicate as the grid, so "all matching" means what is shown."""
    where = _where(source, state)
    return f"SELECT {source.key_sql} FROM {source.from_sql}{where.sql()}", where.params


def matching_rows(store: Store, source: GridSource, state: GridState):
    """Every row matching the grid's search and filters, all columns, in the grid's order; read
    as the caller iterates (an export of 100,000 lines never holds them all)."""
    where = _where(source, state)
    return store.db.execute_sql(
        f"SELECT {', '.join(c.sql for c in source.columns)} FROM {source.from_sql}{where.sql()}{_order_sql(source, state, store)}",
        where.params)


def distinct_values(store: Store, source: GridSource, key: str, state: GridState, limit: int = 200,
                    cache: GridCache | None = None) -> list[tuple[Any, int]]:
    """A filterable column's values with their counts, under the other active filters. With
    the grid's `cache` (on its thread), kept columns are read from it."""
    if cache is not None and source.base:
        cache.check(store)
        source = cache.kept_source(store, source, state, also=key)
    column = source.column(key)
    others = state.search.strip() or any(v for k, v in state.filters if v and k != key)
    # every matching row is read: in file order (SQLite), unless an index of the column holds them all
    scan = store.backend.HAS_ROWID and (bool(others) or not column.filter_indexed)
    where = _where(source, state, skip_filter=key, scan=scan)
    return [tuple(r) for r in store.db.execute_sql(
        f"SELECT {column.sql} AS v, COUNT(*) FROM {source.from_for(where.sql() + column.sql)}{where.sql()} "
        f"GROUP BY v ORDER BY v{store.backend.NULLS_LIKE_SQLITE[0]} LIMIT ?",
        [*where.params, limit])]

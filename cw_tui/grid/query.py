"""SQL-paged grids: every grid of the app is a `GridSource` (a FROM clause and columns), and
a `GridState` (search, sort, filters, page) becomes one SELECT ... LIMIT/OFFSET plus one
COUNT. Sorting, filtering, searching and counting happen in SQLite, so a grid costs the same
at 100 rows and at 100,000. Nothing here imports textual."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from cw_tui.services.display import (
    AGREEMENT_SEPARATOR,
    agreement_full,
    agreement_short,
    dated_day,
    dated_source,
    exact_money_text,
    iso_utc,
    line_mapping_text,
    local_minute,
    money_text,
    plain,
    quantity_text,
    sync_status_text,
)
from cw_tui.store import Store
from cw_tui.store.line_sql import LINE_MAPPING_JOINS, LINE_MAPPING_STATUS

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
    # The text a person reads for a stored value (services/display.py): the grid styles it,
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
    singular: str = ""  # "invoice line": for a count of one
    # the column that names a row (an organization's name): it stays in view, after the mark,
    # when the columns scroll to the right
    name_key: str | None = None

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
    if search:
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


def _order_sql(source: GridSource, state: GridState) -> str:
    # Plain ORDER BY (NULLs first when ascending, as SQLite does): an `x IS NULL` term would
    # keep SQLite from walking an index and make it sort every row.
    order = [(source.column(k).sql, desc) for k, desc in (state.sort or source.default_sort)]
    terms = [f"{expr} {'DESC' if desc else 'ASC'}" for expr, desc in order]
    return " ORDER BY " + ", ".join([*terms, source.key_sql])


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

    def check(self, store: Store) -> None:
        self._checked = self._current(store)
        if self._checked != self._version:
            self.counts.clear()
            self.match_table = self._match_key = self._match_scope = None

    def _current(self, store: Store) -> tuple:
        connection = store.db.connection()
        return id(connection), connection.execute("PRAGMA data_version").fetchone()[0], connection.total_changes

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

    def matches(self, store: Store, source: GridSource, state: GridState) -> int:
        """Fill a temp table with the rowids that match the search and filters; their count."""
        where = _where(source, state)
        key = (source.from_sql, source.where, source.params, where.sql(), tuple(where.params))
        if key == self._match_key:
            return self.match_count
        search = state.search.strip()
        scope = (source.from_sql, source.where, source.params, state.filters)
        narrower = bool(self._match_search) and self._match_search in search and scope == self._match_scope
        target = self._tables[1] if self.match_table == self._tables[0] else self._tables[0]
        db = store.db
        db.execute_sql(f"CREATE TEMP TABLE IF NOT EXISTS {target} (k INTEGER PRIMARY KEY)")
        db.execute_sql(f"DELETE FROM temp.{target}")
        if narrower:  # every row matching "harbor" matches "harbo": look only at those
            inside = _Where([f"{source.rowid_sql} = m.k", *where.parts], where.params)
            sql = (f"INSERT INTO temp.{target} (k) SELECT m.k FROM temp.{self.match_table} m CROSS JOIN "
                   f"{source.from_for(inside.sql())}{inside.sql()}")
            params = inside.params
        else:
            scan = _where(source, state, scan=True)
            sql = f"INSERT INTO temp.{target} (k) SELECT {source.rowid_sql} FROM {source.from_for(scan.sql())}{scan.sql()}"
            params = scan.params
        self.match_count = db.execute_sql(sql, params).rowcount
        self.match_table, self._match_key, self._match_search, self._match_scope = target, key, search, scope
        self._settle(store)
        return self.match_count


# A sorted set of matching rows this small is sorted whole; a larger one is paged by walking
# the sort's index (or driver) and skipping rows that do not match.
SORT_MATCHES_UP_TO = 20_000


def _page_keys(store: Store, source: GridSource, state: GridState, matches: str | None, total: int,
               offset: int, limit: int) -> list:
    order_sql = _order_sql(source, state)
    sort = state.sort or source.default_sort
    first = source.column(sort[0][0]) if sort else None
    rowid = source.rowid_sql
    if matches is not None and total <= SORT_MATCHES_UP_TO:
        sql = (f"SELECT {rowid} FROM temp.{matches} m CROSS JOIN {source.from_for(order_sql)} "
               f"WHERE {rowid} = m.k{order_sql} LIMIT ? OFFSET ?")
        return [r[0] for r in store.db.execute_sql(sql, [limit, offset])]
    if first is not None and first.sort_driver is not None:
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
    base = _where(source, GridState())
    all_rows = cache.count(store, source, base)
    narrowed = bool(state.search.strip() or any(values for _, values in state.filters))
    total = cache.matches(store, source, state) if narrowed else all_rows
    page = _page_number(total, state)
    matches = cache.match_table if narrowed else None
    rowids = _page_keys(store, source, state, matches, total, (page - 1) * state.page_size, state.page_size) if total else []
    rows: list = []
    if rowids:
        select = ", ".join([source.rowid_sql, source.key_sql] + [c.sql for c in source.columns])
        found = {r[0]: r[1:] for r in store.db.execute_sql(
            f"SELECT {select} FROM {source.from_sql} WHERE {source.rowid_sql} IN ({','.join('?' * len(rowids))})", rowids)}
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
        f"SELECT {select} FROM {source.from_sql}{where_sql}{_order_sql(source, state)} LIMIT ? OFFSET ?",
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
        f"SELECT {', '.join(c.sql for c in source.columns)} FROM {source.from_sql}{where.sql()}{_order_sql(source, state)}",
        where.params)


def distinct_values(store: Store, source: GridSource, key: str, state: GridState, limit: int = 200) -> list[tuple[Any, int]]:
    """A filterable column's values with their counts, under the other active filters."""
    column = source.column(key)
    where = _where(source, state, skip_filter=key, scan=True)  # every matching row is read: in file order
    return [tuple(r) for r in store.db.execute_sql(
        f"SELECT {column.sql} AS v, COUNT(*) FROM {source.from_for(where.sql() + column.sql)}{where.sql()} "
        "GROUP BY v ORDER BY v LIMIT ?",
        [*where.params, limit])]


# ---------------------------------------------------------------- the grids of the app


def _logs_source() -> GridSource:
    return GridSource(
        "log entries", "log_entry",
        (
            Column("level", "Level", "level", filterable=True, width=9),
            Column("timestamp", "Timestamp", "timestamp", width=16, display=local_minute, csv=iso_utc),
            Column("category", "Category", "category", filterable=True, searchable=True, width=14),
            Column("summary", "Summary", "summary", searchable=True, width=60),
            Column("details", "Details", "details", sortable=False, searchable=True, width=0),
        ),
        key_sql="id", default_sort=(("timestamp", True),), singular="log entry",
    )


LOGS = _logs_source()


def organizations_source() -> GridSource:
    return GridSource(
        "organizations",
        "organization o LEFT JOIN company cm ON cm.id = o.company_id",
        (
            Column("name", "Organization Name", "o.name", searchable=True, width=30),
            Column("reference", "Organization Reference #", "o.reference", searchable=True, width=14),
            Column("status", "Organization Status", "o.status", filterable=True, width=12),
            Column("psa_name", "PSA Organization Name", "cm.name", searchable=True, width=30),
            Column("psa_id", "PSA Organization ID", "o.company_id", searchable=True, width=10, numeric=True),
            Column("psa_status", "PSA Organization Status", "cm.status_name", filterable=True, width=12),
            Column("excluded", "Excluded from Sync", "CASE WHEN o.excluded THEN 'Yes' ELSE 'No' END", filterable=True, width=9),
            Column("mapping", "Mapping Status",
                   "CASE WHEN o.mapping_error IS NOT NULL THEN 'Response Error' WHEN o.company_id IS NULL THEN 'Unmapped' "
                   "ELSE 'Mapped' END", filterable=True, width=14),
        ),
        key_sql="o.platform_id", default_sort=(("name", False),), name_key="name",
    )


def products_source() -> GridSource:
    return GridSource(
        "products",
        "offer f LEFT JOIN product p ON p.id = f.product_id",
        (
            Column("name", "Offer Name", "f.name", searchable=True, width=34),
            Column("offer_id", "Offer ID", "f.platform_id", searchable=True, width=12),
            Column("external_id", "Offer External ID", "COALESCE(f.external_id, 'n/a')", searchable=True, width=16),
            Column("vendor", "Vendor Name", "f.vendor", filterable=True, width=12),
            Column("psa_name", "PSA Product Name", "p.description", width=34),
            Column("psa_id", "PSA Product ID", "f.product_id", searchable=True, width=10, numeric=True),
            Column("mapping", "Mapping Status",
                   "CASE WHEN f.mapping_error IS NOT NULL THEN 'Response Error' WHEN f.product_id IS NULL THEN 'Unmapped' "
                   "ELSE 'Mapped' END", filterable=True, width=14),
        ),
        key_sql="f.platform_id", default_sort=(("name", False),), name_key="name",
    )


def _agreement_sql(type_id: int | None) -> str:
    """The line's agreement as agreement_short/agreement_full read it (display.py): the one it
    was posted to, the one chosen (line or contract), the one SPEC §8 rule 3 proposes (the
    company's only active agreement of the configured type, or its active one of the name a new
    one would get), or a new one (rule 4); none while the line is unmapped (rule 5 included)."""
    us = f"'{AGREEMENT_SEPARATOR}'"
    company = "COALESCE(l.override_company_id, o.company_id)"
    tail = f" || {us} || COALESCE(cm.name, '') || {us} || o.name || {us} || "
    active = f"a2.company_id = {company} AND a2.status = 'Active' AND NOT a2.cancelled"
    of_type = f"a2.type_id = {int(type_id)}" if type_id is not None else "0"
    return (
        "CASE WHEN l.sync_status IN ('synced', 'claimed') AND l.posted_agreement_id IS NOT NULL "
        f"THEN COALESCE(pa.name, '#' || l.posted_agreement_id){tail}'posted' "
        f"WHEN COALESCE(l.override_agreement_id, c.agreement_id) IS NOT NULL "
        f"THEN COALESCE(ag.name, '#' || COALESCE(l.override_agreement_id, c.agreement_id)){tail}'mapped' "
        f"WHEN {company} IS NULL OR COALESCE(l.override_product_id, f.product_id) IS NULL "
        f"OR (SELECT COUNT(*) FROM organization o2 WHERE o2.company_id = {company}) > 1 THEN NULL "
        f"ELSE COALESCE(COALESCE((SELECT CASE WHEN COUNT(*) = 1 THEN MAX(a2.name) END FROM agreement a2 "
        f"WHERE {active} AND {of_type}), (SELECT MIN(a2.name) FROM agreement a2 WHERE {active} "
        f"AND a2.name = substr(o.name || ' - ' || l.contract_id, 1, 100))){tail}'proposed', ''{tail}'new') END"
    )


def invoices_source(period: str, agreement_type: tuple[int, str] | None = None) -> GridSource:
    """The lines of a period. `agreement_type` (id, name): the configured Agreement Type, for
    the agreement a line will get (SPEC §8 rules 3 and 4)."""
    type_id, type_name = agreement_type or (None, "")
    return GridSource(
        "invoice lines",
        f"invoice_line l {LINE_MAPPING_JOINS} "
        "LEFT JOIN company cm ON cm.id = COALESCE(l.override_company_id, o.company_id) "
        "LEFT JOIN product p ON p.id = COALESCE(l.override_product_id, f.product_id) "
        "LEFT JOIN agreement ag ON ag.id = COALESCE(l.override_agreement_id, c.agreement_id) "
        "LEFT JOIN agreement pa ON pa.id = l.posted_agreement_id",
        (
            Column("invoice_date", "Invoice Date", "l.invoice_date", width=10, indexed=True),
            Column("invoice_number", "Invoice #", "l.invoice_number", searchable=True, width=16, text=True),
            Column("organization", "Organization Name", "o.name", searchable=True, width=24,
                   search_sql="l.organization_id IN (SELECT platform_id FROM organization WHERE name LIKE ? ESCAPE '\\')",
                   sort_driver=("o", "organization o CROSS JOIN invoice_line l ON l.organization_id = o.platform_id")),
            Column("contract", "Contract ID", "l.contract_id", searchable=True, width=10, text=True),
            Column("subscription", "Subscription Name", "l.subscription_name", searchable=True, width=24, text=True),
            Column("offer", "Offer Name", "f.name", searchable=True, width=24,
                   search_sql="l.offer_id IN (SELECT platform_id FROM offer WHERE name LIKE ? ESCAPE '\\')",
                   sort_driver=("f", "offer f CROSS JOIN invoice_line l ON l.offer_id = f.platform_id")),
            Column("charge_type", "Charge Type", "l.charge_type", filterable=True, width=13),
            Column("quantity", "Quantity", "l.quantity", numeric=True, width=10, display=quantity_text),
            # money to the cent on screen; the export holds the exact amounts
            Column("unit_price", "Unit Price", "l.unit_price", numeric=True, width=10, display=money_text,
                   csv=exact_money_text),
            Column("unit_cost", "Unit Cost", "l.unit_cost", numeric=True, width=10, display=money_text,
                   csv=exact_money_text),
            Column("total", "Total", "l.total", numeric=True, width=11, display=money_text, csv=exact_money_text),
            Column("currency", "Currency", "l.currency", filterable=True, width=8),
            Column("charge_start", "Charge Start Date", "l.charge_start || '|' || l.charge_start_badge", width=13,
                   display=dated_day, csv_extra=(("Charge Start Source", dated_source),)),
            Column("charge_end", "Charge End Date", "COALESCE(l.charge_end, '') || '|' || l.charge_end_badge", width=13,
                   display=dated_day, csv_extra=(("Charge End Source", dated_source),)),
            Column("psa_org", "PSA Organization Name", "cm.name", width=24),
            Column("psa_product", "PSA Product Name", "p.description", width=24),
            # a line posted (or being posted) shows where it went, whatever its mapping says now
            # the part of the name that tells the customer's agreements apart; the export: all of it
            Column("psa_agreement", "PSA Agreement Name", _agreement_sql(type_id), width=24,
                   display=lambda value, new=type_name: agreement_short(value, new), csv=agreement_full),
            Column("mapping", "Mapping Status", f"({LINE_MAPPING_STATUS})", filterable=True, width=10,
                   display=line_mapping_text),
            Column("sync", "Status in PSA", "l.sync_status", filterable=True, width=10, display=sync_status_text),
            # why ConnectWise refused an Error line (SPEC §5): on the row, not only in the edit form
            Column("error", "Error", "CASE WHEN l.sync_status = 'error' THEN l.last_error END", width=24),
            Column("last_sync", "Last Sync", "l.last_sync_at", width=16, display=local_minute, csv=iso_utc),
        ),
        key_sql="l.line_id", where="l.period = ?", params=(period,), default_sort=(("invoice_date", False),),
        name_key="organization",
        base="invoice_line l",
        joins=(
            ("o", "JOIN organization o ON o.platform_id = l.organization_id"),
            ("f", "JOIN offer f ON f.platform_id = l.offer_id"),
            ("c", "JOIN contract c ON c.platform_id = l.contract_id"),
            ("cm", "LEFT JOIN company cm ON cm.id = COALESCE(l.override_company_id, o.company_id)"),
            ("p", "LEFT JOIN product p ON p.id = COALESCE(l.override_product_id, f.product_id)"),
            ("ag", "LEFT JOIN agreement ag ON ag.id = COALESCE(l.override_agreement_id, c.agreement_id)"),
            ("pa", "LEFT JOIN agreement pa ON pa.id = l.posted_agreement_id"),
        ),
        # a period's lines were loaded together: their rowids lie between the period's first
        # and last (found at once in invoice_line_period), and `+` keeps SQLite from walking
        # an index of the period instead of the table
        scan_where="l.rowid BETWEEN (SELECT MIN(rowid) FROM invoice_line WHERE period = ?) "
                   "AND (SELECT MAX(rowid) FROM invoice_line WHERE period = ?) AND +l.period = ?",
        scan_params=(period, period, period),
    )

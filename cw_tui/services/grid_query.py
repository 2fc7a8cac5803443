"""SQL-paged grids: every grid of the app is a `GridSource` (a FROM clause and columns), and
a `GridState` (search, sort, filters, page) becomes one SELECT ... LIMIT/OFFSET plus one
COUNT. Sorting, filtering, searching and counting happen in SQLite, so a grid costs the same
at 100 rows and at 100,000. Nothing here imports textual."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cw_tui.services.repository import LINE_MAPPING_JOINS, LINE_MAPPING_STATUS
from cw_tui.services.store import Store

PAGE_SIZES = (20, 50, 100, 500)


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
    format: Callable[[Any], str] | None = None
    # How the search box matches this column, with one `?` for the LIKE pattern; default
    # `CAST(sql AS TEXT) LIKE ?`. A column of a joined table can match through a subquery on
    # that small table instead, so a search scans the big one once, without joins.
    search_sql: str | None = None


@dataclass(frozen=True)
class GridSource:
    name: str  # "organizations", for the summary line
    from_sql: str
    columns: tuple[Column, ...]
    key_sql: str  # a unique key per row: the row key in the widget, the tie-breaker in sorts
    where: str = ""
    params: tuple = ()
    default_sort: tuple[tuple[str, bool], ...] = ()  # (column key, descending)
    summary: Callable[[Store, "GridSource"], str] | None = None
    # Counting needs only the joins the WHERE clause uses: (alias, JOIN clause) pairs that are
    # added to `count_base` when "alias." appears in it. Empty: count over from_sql.
    count_base: str = ""
    count_joins: tuple[tuple[str, str], ...] = ()

    def count_from(self, where_sql: str) -> str:
        if not self.count_base:
            return self.from_sql
        joins = [join for alias, join in self.count_joins if f"{alias}." in where_sql]
        return " ".join([self.count_base, *joins])

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)


@dataclass(frozen=True)
class GridState:
    search: str = ""
    sort: tuple[tuple[str, bool], ...] = ()
    filters: tuple[tuple[str, frozenset], ...] = ()
    page: int = 1
    page_size: int = 20

    def with_filter(self, key: str, values: frozenset) -> "GridState":
        others = tuple((k, v) for k, v in self.filters if k != key)
        return replace(self, filters=others + (((key, values),) if values else ()), page=1)

    def filter_values(self, key: str) -> frozenset:
        return next((v for k, v in self.filters if k == key), frozenset())

    def toggled_sort(self, key: str) -> "GridState":
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
        return f"{self.first:,} – {self.last:,} of {self.total:,}"


@dataclass
class _Where:
    parts: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def sql(self) -> str:
        return (" WHERE " + " AND ".join(f"({p})" for p in self.parts)) if self.parts else ""


def _where(source: GridSource, state: GridState, *, skip_filter: str | None = None) -> _Where:
    where = _Where()
    if source.where:
        where.parts.append(source.where)
        where.params.extend(source.params)
    search = state.search.strip()
    if search:
        like = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        columns = [c for c in source.columns if c.searchable]
        where.parts.append(" OR ".join(c.search_sql or f"CAST({c.sql} AS TEXT) LIKE ? ESCAPE '\\'" for c in columns))
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


def fetch_page(store: Store, source: GridSource, state: GridState) -> Page:
    where = _where(source, state)
    where_sql = where.sql()
    total = store.db.execute_sql(f"SELECT COUNT(*) FROM {source.count_from(where_sql)}{where_sql}", where.params).fetchone()[0]
    pages = max(1, -(-total // state.page_size))
    page = min(max(1, state.page), pages)
    order_sql = _order_sql(source, state)
    select = ", ".join([source.key_sql] + [c.sql for c in source.columns])
    rows = store.db.execute_sql(
        f"SELECT {select} FROM {source.from_sql}{where.sql()}{order_sql} LIMIT ? OFFSET ?",
        [*where.params, state.page_size, (page - 1) * state.page_size],
    ).fetchall()
    base = _Where([source.where] if source.where else [], list(source.params))
    all_rows = total if not (state.search or state.filters) else store.db.execute_sql(
        f"SELECT COUNT(*) FROM {source.count_from(base.sql())}{base.sql()}", base.params).fetchone()[0]
    return Page([str(r[0]) for r in rows], [tuple(r[1:]) for r in rows], total, page, state.page_size, all_rows)


def matching_keys(source: GridSource, state: GridState) -> tuple[str, list[Any]]:
    """A subquery of the keys of every row that matches the grid's search and filters: bulk
    changes use the same predicate as the grid, so "all matching" means what is shown."""
    where = _where(source, state)
    return f"SELECT {source.key_sql} FROM {source.from_sql}{where.sql()}", where.params


def export_csv(store: Store, source: GridSource, state: GridState, path) -> int:  # noqa: ANN001 - a Path
    """Every row matching the grid's search and filters, all columns, in the grid's order."""
    import csv

    where = _where(source, state)
    cursor = store.db.execute_sql(
        f"SELECT {', '.join(c.sql for c in source.columns)} FROM {source.from_sql}{where.sql()}{_order_sql(source, state)}",
        where.params)
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([c.title for c in source.columns])
        for row in cursor:
            writer.writerow([c.format(v) if c.format else ("" if v is None else v) for c, v in zip(source.columns, row)])
            count += 1
    return count


def distinct_values(store: Store, source: GridSource, key: str, state: GridState, limit: int = 200) -> list[tuple[Any, int]]:
    """A filterable column's values with their counts, under the other active filters."""
    column = source.column(key)
    where = _where(source, state, skip_filter=key)
    return [tuple(r) for r in store.db.execute_sql(
        f"SELECT {column.sql} AS v, COUNT(*) FROM {source.from_sql}{where.sql()} GROUP BY v ORDER BY v LIMIT ?",
        [*where.params, limit])]


# ---------------------------------------------------------------- the grids of the app


def _logs_source() -> GridSource:
    return GridSource(
        "log entries", "log_entry",
        (
            Column("level", "Level", "level", filterable=True, width=9),
            Column("timestamp", "Timestamp", "timestamp", width=16),
            Column("category", "Category", "category", filterable=True, searchable=True, width=14),
            Column("summary", "Summary", "summary", searchable=True, width=60),
            Column("details", "Details", "details", sortable=False, searchable=True, width=0),
        ),
        key_sql="id", default_sort=(("timestamp", True),),
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
        key_sql="o.platform_id", default_sort=(("name", False),),
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
        key_sql="f.platform_id", default_sort=(("name", False),),
    )


def invoices_source(period: str) -> GridSource:
    return GridSource(
        "invoice lines",
        f"invoice_line l {LINE_MAPPING_JOINS} "
        "LEFT JOIN company cm ON cm.id = COALESCE(l.override_company_id, o.company_id) "
        "LEFT JOIN product p ON p.id = COALESCE(l.override_product_id, f.product_id) "
        "LEFT JOIN agreement ag ON ag.id = COALESCE(l.override_agreement_id, c.agreement_id)",
        (
            Column("invoice_date", "Invoice Date", "l.invoice_date", width=10),
            Column("invoice_number", "Invoice #", "l.invoice_number", searchable=True, width=16),
            Column("organization", "Organization Name", "o.name", searchable=True, width=24,
                   search_sql="l.organization_id IN (SELECT platform_id FROM organization WHERE name LIKE ? ESCAPE '\\')"),
            Column("contract", "Contract ID", "l.contract_id", searchable=True, width=10),
            Column("subscription", "Subscription Name", "l.subscription_name", searchable=True, width=24),
            Column("offer", "Offer Name", "f.name", searchable=True, width=24,
                   search_sql="l.offer_id IN (SELECT platform_id FROM offer WHERE name LIKE ? ESCAPE '\\')"),
            Column("charge_type", "Charge Type", "l.charge_type", filterable=True, width=13),
            Column("quantity", "Quantity", "l.quantity", numeric=True, width=10),
            Column("unit_price", "Unit Price", "l.unit_price", numeric=True, width=10),
            Column("unit_cost", "Unit Cost", "l.unit_cost", numeric=True, width=10),
            Column("total", "Total", "l.total", numeric=True, width=11),
            Column("currency", "Currency", "l.currency", filterable=True, width=8),
            Column("charge_start", "Charge Start Date", "l.charge_start || '|' || l.charge_start_badge", width=13),
            Column("charge_end", "Charge End Date", "COALESCE(l.charge_end, '') || '|' || l.charge_end_badge", width=13),
            Column("psa_org", "PSA Organization Name", "cm.name", width=24),
            Column("psa_product", "PSA Product Name", "p.description", width=24),
            Column("psa_agreement", "PSA Agreement Name", "ag.name", width=24),
            Column("mapping", "Mapping Status", f"({LINE_MAPPING_STATUS})", filterable=True, width=10),
            Column("sync", "Status in PSA", "l.sync_status", filterable=True, width=10),
            Column("last_sync", "Last Sync", "l.last_sync_at", width=16),
        ),
        key_sql="l.line_id", where="l.period = ?", params=(period,), default_sort=(("invoice_date", False),),
        count_base="invoice_line l",
        count_joins=(
            ("o", "JOIN organization o ON o.platform_id = l.organization_id"),
            ("f", "JOIN offer f ON f.platform_id = l.offer_id"),
            ("c", "JOIN contract c ON c.platform_id = l.contract_id"),
        ),
    )

"""What the "Click to select" pickers offer (SPEC §5): the cached ConnectWise companies,
products or agreements, searched by name, by the text after it, or by ID. The search is
literal, as the grids' is: a typed % or _ is that character. No textual here."""

from __future__ import annotations

from dataclasses import dataclass

from cw_tui.store.database import Store
from cw_tui.store.grid import contains_pattern


@dataclass(frozen=True)
class PickerKind:
    title: str
    table: str
    name_sql: str
    extra_sql: str  # shown after the name (identifier, status)
    where: str = ""
    per_company: bool = False  # only the records of the picker's company (none without one)


COMPANIES = PickerKind("PSA Organization", "company", "name", "identifier", "NOT deleted")
PRODUCTS = PickerKind("PSA Product", "product", "description", "identifier", "NOT inactive")  # inactive ones hidden
AGREEMENTS = PickerKind("PSA Agreement", "agreement", "name", "COALESCE(type_name, '') || ' · ' || status",
                        "status = 'Active' AND NOT cancelled", per_company=True)
LIMIT = 200


def _scope(kind: PickerKind, company_id: int | None) -> tuple[list[str], list]:
    where = [kind.where] if kind.where else []
    if not kind.per_company:
        return where, []
    return [*where, "company_id = ?"], [company_id]  # no company: NULL matches nothing


def _where_sql(where: list[str]) -> str:
    return f" WHERE {' AND '.join(where)}" if where else ""


def offered(store: Store, kind: PickerKind, text: str, company_id: int | None = None) -> list[tuple[int, str, str]]:
    """(id, name, extra) of the records whose name or extra contains `text`, or whose ID is
    `text`; by name, at most LIMIT."""
    where, params = _scope(kind, company_id)
    text = text.strip()
    if text:
        where.append(f"({kind.name_sql} LIKE ? ESCAPE '\\' OR {kind.extra_sql} LIKE ? ESCAPE '\\' OR CAST(id AS TEXT) = ?)")
        params += [contains_pattern(text), contains_pattern(text), text]
    sql = (f"SELECT id, {kind.name_sql}, {kind.extra_sql} FROM {kind.table}{_where_sql(where)} "
           f"ORDER BY {kind.name_sql} LIMIT {LIMIT}")
    return [tuple(r) for r in store.db.execute_sql(sql, params)]


def all_names(store: Store, kind: PickerKind, company_id: int | None = None) -> dict[int, str]:
    """Every record's name by ID, for the fuzzy suggestions."""
    where, params = _scope(kind, company_id)
    sql = f"SELECT id, {kind.name_sql} FROM {kind.table}{_where_sql(where)}"
    return dict(store.db.execute_sql(sql, params).fetchall())


def name_of(store: Store, kind: PickerKind, record_id: int) -> str:
    return store.db.execute_sql(f"SELECT {kind.name_sql} FROM {kind.table} WHERE id = ?", (record_id,)).fetchone()[0]

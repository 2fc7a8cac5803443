"""The grids of the app as sources of the grid engine (grid.py): the columns a person sees,
the SQL each one reads, and the formatter (rules/display.py) that turns a stored value into
the text shown and exported."""

from __future__ import annotations

from cw_tui.rules.display import (
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
    quantity_text,
    sync_status_text,
)
from cw_tui.store.grid import Column, GridSource
from cw_tui.store.line_sql import LINE_MAPPING_JOINS, LINE_MAPPING_STATUS, SHARED_COMPANIES


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
    of_type = f"a2.type_id = {int(type_id)}" if type_id is not None else "FALSE"
    return (
        "CASE WHEN l.sync_status IN ('synced', 'claimed') AND l.posted_agreement_id IS NOT NULL "
        f"THEN COALESCE(pa.name, '#' || l.posted_agreement_id){tail}'posted' "
        f"WHEN COALESCE(l.override_agreement_id, c.agreement_id) IS NOT NULL "
        f"THEN COALESCE(ag.name, '#' || COALESCE(l.override_agreement_id, c.agreement_id)){tail}'mapped' "
        f"WHEN {company} IS NULL OR COALESCE(l.override_product_id, f.product_id) IS NULL "
        f"OR {company} IN ({SHARED_COMPANIES}) THEN NULL "
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
            Column("invoice_date", "Invoice Date", "l.invoice_date", width=10, indexed=True, nulls=False),
            Column("invoice_number", "Invoice #", "l.invoice_number", searchable=True, width=16, text=True),
            Column("organization", "Organization Name", "o.name", searchable=True, width=24,
                   search_sql="l.organization_id IN (SELECT platform_id FROM organization WHERE name LIKE ? ESCAPE '\\')",
                   sort_driver=("o", "organization o CROSS JOIN invoice_line l ON l.organization_id = o.platform_id"), nulls=False),
            Column("contract", "Contract ID", "l.contract_id", searchable=True, width=10, text=True),
            Column("subscription", "Subscription Name", "l.subscription_name", searchable=True, width=24, text=True),
            Column("offer", "Offer Name", "f.name", searchable=True, width=24,
                   search_sql="l.offer_id IN (SELECT platform_id FROM offer WHERE name LIKE ? ESCAPE '\\')",
                   sort_driver=("f", "offer f CROSS JOIN invoice_line l ON l.offer_id = f.platform_id"), nulls=False),
            Column("charge_type", "Charge Type", "l.charge_type", filterable=True, width=13, nulls=False, filter_indexed=True),
            Column("quantity", "Quantity", "l.quantity", numeric=True, width=10, display=quantity_text),
            # money to the cent on screen; the export holds the exact amounts
            Column("unit_price", "Unit Price", "l.unit_price", numeric=True, width=10, display=money_text,
                   csv=exact_money_text),
            Column("unit_cost", "Unit Cost", "l.unit_cost", numeric=True, width=10, display=money_text,
                   csv=exact_money_text),
            Column("total", "Total", "l.total", numeric=True, width=11, display=money_text, csv=exact_money_text,
                   indexed=True, nulls=False),
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
            # never NULL (the CASE ends in ELSE): PostgreSQL sorts by walking its kept index
            Column("mapping", "Mapping Status", f"({LINE_MAPPING_STATUS})", filterable=True, width=10,
                   display=line_mapping_text, nulls=False),
            Column("sync", "Status in PSA", "l.sync_status", filterable=True, width=10, display=sync_status_text,
                   nulls=False, filter_indexed=True),
            # why ConnectWise refused an Error line (SPEC §5): on the row, not only in the edit form
            Column("error", "Error", "CASE WHEN l.sync_status = 'error' THEN l.last_error END", width=24),
            Column("last_sync", "Last Sync", "l.last_sync_at", width=16, display=local_minute, csv=iso_utc),
        ),
        key_sql="l.line_id", where="l.period = ?", params=(period,), default_sort=(("invoice_date", False),),
        name_key="organization",
        kept=("mapping",),
        search_kept=True,
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

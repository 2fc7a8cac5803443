"""The floor of a load (issue 18): the least that Python and SQLite do for the same work.

    python benchmarks/import_floor.py LINES.csv DB SCHEMA.sql

Reads the invoice-line file with `csv` (streamed from the opened file), turns the amounts into
integer micro-units with `Decimal` and the dates with `date.fromisoformat`, skips the lines of
New invoices, and writes the same 35 columns per line with one `executemany` in one
transaction, into a table of the same shape (SCHEMA.sql: the store's own CREATE TABLE and
indexes of invoice_line, read from a fresh store) and with the store's PRAGMAs. Nothing is
checked, nothing is compared with what is stored: only the standard library, on purpose.
"""

from __future__ import annotations

import csv
import sqlite3
import sys
from datetime import date
from decimal import Decimal

MICRO = Decimal(1_000_000)


def main(source: str, db_path: str, schema: str) -> None:
    connection = sqlite3.connect(db_path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = wal")
    connection.execute("PRAGMA synchronous = normal")
    connection.execute("PRAGMA cache_size = -65536")
    with open(schema, encoding="utf-8") as file:
        statements = file.read().split(";\n")
    for statement in statements:
        if statement.strip():
            connection.execute(statement)
    with open(source, encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        header = [c.strip().lower() for c in next(reader)]
        at = {c: header.index(c) for c in header}
        (line_id, number, inv_date, status, org, contract, sub, sub_name, offer, charge, cycle, qty, price, cost,
         currency, start, end) = (at[c] for c in (
            "line_id", "invoice_number", "invoice_date", "invoice_status", "organization_id", "contract_id",
            "subscription_id", "subscription_name", "offer_id", "charge_type", "billing_cycle", "quantity",
            "unit_price", "unit_cost", "currency", "charge_start", "charge_end"))

        def rows():
            for cells in reader:
                if cells[status] == "New":
                    continue
                invoiced = date.fromisoformat(cells[inv_date])
                starts = date.fromisoformat(cells[start])
                ends = date.fromisoformat(cells[end]) if cells[end] else None
                quantity, unit_price, unit_cost = Decimal(cells[qty]), Decimal(cells[price]), Decimal(cells[cost])
                yield (
                    cells[line_id], cells[inv_date][:7], cells[number], invoiced.isoformat(), cells[status],
                    cells[org], cells[contract], cells[sub], cells[sub_name], cells[offer], cells[charge], cells[cycle],
                    int(quantity * MICRO), int(unit_price * MICRO), int(unit_cost * MICRO),
                    int(quantity * unit_price * MICRO), cells[currency], starts.isoformat(),
                    ends.isoformat() if ends else None, starts.isoformat(), "default",
                    ends.isoformat() if ends else None, "default", None, None, None, "not_synced", None, None, None,
                    None, None, "2026-12-01T00:00:00Z", None, None, None, None,  # ..., changed_by, changed_at
                )

        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(f"INSERT INTO invoice_line VALUES ({','.join('?' * 37)})", rows())
        connection.execute("COMMIT")
    connection.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])

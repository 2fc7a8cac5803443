"""The Platform export folder: file format, reading and validation (SPEC §2, §14).

A folder holds four kinds of file, each CSV (one header row, case-insensitive column names,
UTF-8 with or without BOM, LF or CRLF) or JSON (an array of objects with the same keys):

    organizations.csv   contracts.csv   offers.csv   invoice_lines*.csv

Invoice lines may be split into several files; a file named `invoice_lines_YYYY-MM.csv`
holds that month only and is skipped when another month is loaded. Reading is
all-or-nothing: every bad row is reported as `file:line: column: what is wrong` (the line where
its record starts), and a caller gets either every row or a `PlatformDataError`.
"""

from __future__ import annotations

import csv
import io
import json
import operator
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from cw_tui.rules.money import check_total, parse_decimal, plain_micros, shown, to_micros, total_too_large
from cw_tui.rules.periods import parse_period, period_of
from cw_tui.rules.vocabulary import BillingCycle, ChargeType, InvoiceStatus, parse_enum

MAX_REPORTED_ERRORS = 50
# Text is single-line and bounded (README): a runaway quote makes a cell of many lines, or pages long.
ID_LENGTH = 100  # IDs, numbers, references, codes, statuses and types
NAME_LENGTH = 255  # names


class PlatformDataError(Exception):
    """The export folder cannot be loaded. `errors` holds one `file:line: column: problem`
    string per problem (capped); `total` counts them all."""

    def __init__(self, errors: list[str], total: int | None = None):
        self.errors = errors[:MAX_REPORTED_ERRORS]
        self.total = total if total is not None else len(errors)
        more = self.total - len(self.errors)
        text = "\n".join(self.errors) + (f"\n... and {more} more" if more > 0 else "")
        super().__init__(text)


# ---------------------------------------------------------------- cell parsers


def _too_long(value: str, limit: int) -> str:
    return f"too long: {len(value):,} characters (at most {limit}): {value[:40]!r}…"


def _text(limit: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        value = value.strip()
        if len(value) > limit:
            raise ValueError(_too_long(value, limit))
        return value

    return check


def _required(limit: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("empty (a value is required)")
        if len(value) > limit:
            raise ValueError(_too_long(value, limit))
        return value

    return check


def _iso_date(value: str) -> date:
    if len(value) == 10 and value[4] == "-" and value[7] == "-" and value[:4].isdigit():
        try:  # the common case, without the regex
            return date.fromisoformat(value)
        except ValueError:
            pass
    value = value.strip()
    if not value:
        raise ValueError("empty (a date YYYY-MM-DD is required)")
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise ValueError(f"not a date: {shown(value)} (expected YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not a valid date: {shown(value)}") from None


def _optional_date(value: str) -> date | None:
    return _iso_date(value) if value.strip() else None


def _decimal(value: str) -> Decimal:
    return parse_decimal(value)


def _currency(value: str) -> str:
    value = value.strip().upper()
    if not (len(value) == 3 and value.isascii() and value.isalpha()):
        raise ValueError(f"not a currency code: {shown(value)} (expected 3 letters, e.g. USD)")
    return value


def _billing_day(value: str) -> int:
    value = value.strip()
    if not value.isdigit() or not 1 <= int(value) <= 28:
        raise ValueError(f"not a billing day: {shown(value)} (expected a whole number 1-28)")
    return int(value)


def _enum(enum: Any) -> Callable[[str], Any]:
    return lambda value: parse_enum(enum, value)


_code = _text(ID_LENGTH)


def _external_id(value: str) -> str | None:
    value = _code(value)
    return None if value.lower() in ("", "n/a") else value


_id = _required(ID_LENGTH)
_name = _required(NAME_LENGTH)
_name_text = _text(NAME_LENGTH)
REQUIRED: Any = object()  # a field without a default


# Validated rows: slotted frozen dataclasses, checked by plain functions (one per column, in
# the order of the fields: every bad column of a row is reported, in that order).
_row = dataclass(frozen=True, slots=True)


@_row
class OrganizationRow:
    organization_id: str
    name: str
    reference: str = ""
    status: str = "Active"


@_row
class OfferRow:
    offer_id: str
    name: str
    external_id: str | None = None
    vendor: str = ""


@_row
class ContractRow:
    contract_id: str
    organization_id: str
    billing_day: int
    currency: str
    contract_type: str = ""


class InvoiceLineRow(NamedTuple):
    """A valid invoice line: a tuple (less memory than an instance, and the hot path builds it
    with tuple.__new__, without a Python-level __init__)."""

    line_id: str
    invoice_number: str
    invoice_date: date
    invoice_status: InvoiceStatus
    organization_id: str
    contract_id: str
    subscription_id: str
    subscription_name: str
    offer_id: str
    charge_type: ChargeType
    billing_cycle: BillingCycle
    quantity: Decimal
    unit_price: Decimal
    unit_cost: Decimal
    currency: str
    charge_start: date
    charge_end: date | None = None

    @property
    def period(self) -> str:
        return period_of(self.invoice_date)


# column -> (check, default); the columns in the order their errors are reported
_FIELDS: dict[type, list[tuple[str, Callable[[str], Any], Any]]] = {
    OrganizationRow: [("organization_id", _id, REQUIRED), ("name", _name, REQUIRED), ("reference", _code, ""),
                      ("status", _code, "Active")],
    OfferRow: [("offer_id", _id, REQUIRED), ("name", _name, REQUIRED), ("external_id", _external_id, None),
               ("vendor", _name_text, "")],
    ContractRow: [("contract_id", _id, REQUIRED), ("organization_id", _id, REQUIRED),
                  ("billing_day", _billing_day, REQUIRED), ("currency", _currency, REQUIRED),
                  ("contract_type", _code, "")],
    InvoiceLineRow: [
        ("line_id", _id, REQUIRED), ("invoice_number", _id, REQUIRED), ("invoice_date", _iso_date, REQUIRED),
        ("invoice_status", _enum(InvoiceStatus), REQUIRED), ("organization_id", _id, REQUIRED),
        ("contract_id", _id, REQUIRED), ("subscription_id", _id, REQUIRED), ("subscription_name", _name, REQUIRED),
        ("offer_id", _id, REQUIRED), ("charge_type", _enum(ChargeType), REQUIRED),
        ("billing_cycle", _enum(BillingCycle), REQUIRED), ("quantity", _decimal, REQUIRED),
        ("unit_price", _decimal, REQUIRED), ("unit_cost", _decimal, REQUIRED), ("currency", _currency, REQUIRED),
        ("charge_start", _iso_date, REQUIRED), ("charge_end", _optional_date, None),
    ],
}


def _line_row(values: dict[str, Any]) -> InvoiceLineRow:
    invoice_date, start, end = values["invoice_date"], values["charge_start"], values["charge_end"]
    return InvoiceLineRow(
        values["line_id"], values["invoice_number"], invoice_date,
        values["invoice_status"], values["organization_id"], values["contract_id"], values["subscription_id"],
        values["subscription_name"], values["offer_id"], values["charge_type"], values["billing_cycle"],
        values["quantity"], values["unit_price"], values["unit_cost"], values["currency"], start, end,
    )


def validate_row(row_type: type, raw: dict[str, str]) -> tuple[Any, list[tuple[str, str]]]:
    """A row of text cells checked column by column: (the row, []) or (None, [(column, problem), ...])."""
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for column, check, default in _FIELDS[row_type]:
        text = raw.get(column)
        if text is None:
            if default is REQUIRED:  # the readers check for required columns first: not reached from a file
                problems.append((column, "Field required"))
            values[column] = default
            continue
        try:
            values[column] = check(text)
        except ValueError as error:
            problems.append((column, str(error)))
    if problems:
        return None, problems
    return (_line_row(values) if row_type is InvoiceLineRow else row_type(**values)), []


_EXACT = {enum: {m.value: m for m in enum} for enum in (InvoiceStatus, ChargeType, BillingCycle)}
_STATUSES, _CHARGE_TYPES, _CYCLES = _EXACT[InvoiceStatus], _EXACT[ChargeType], _EXACT[BillingCycle]
_new_line = tuple.__new__
_fromisoformat = date.fromisoformat
_plain_micros = plain_micros


def _iso_text(value: str) -> bool:
    return len(value) == 10 and value[4] == "-" and value[7] == "-" and value[:4].isdigit()


_pick_line = operator.itemgetter(
    "line_id", "invoice_number", "invoice_date", "invoice_status", "organization_id", "contract_id", "subscription_id",
    "subscription_name", "offer_id", "charge_type", "billing_cycle", "quantity", "unit_price", "unit_cost", "currency",
    "charge_start", "charge_end")  # the same order as _LINE_CELLS


def _fast_line(cells: Any, pick: Callable[[Any], tuple[str, ...]] = _pick_line,
               ) -> InvoiceLineRow | None:
    """The common case of an invoice line, checked inline: the same result as validate_row
    where the cells are plain (no spaces around, exact vocabulary, plain numbers), else None
    and validate_row says what is wrong."""
    try:
        line_id, number, day, status, org, contract, sub, sub_name, offer, charge, cycle, qty, price, cost, \
            currency, start, end = pick(cells)
        for value in (line_id, number, org, contract, sub, offer):
            if not value or len(value) > ID_LENGTH or value.strip() != value:
                return None
        if not sub_name or len(sub_name) > NAME_LENGTH or sub_name.strip() != sub_name:
            return None
        if not (_iso_text(day) and _iso_text(start) and (not end or _iso_text(end))):
            return None
        if len(currency) != 3 or not currency.isascii() or not currency.isalpha():
            return None
        return _new_line(InvoiceLineRow, (
            line_id, number, _fromisoformat(day), _STATUSES[status], org, contract, sub, sub_name,
            offer, _CHARGE_TYPES[charge], _CYCLES[cycle], parse_decimal(qty), parse_decimal(price), parse_decimal(cost),
            currency.upper(), _fromisoformat(start), _fromisoformat(end) if end else None,
        ))
    except (KeyError, ValueError):
        return None


class LineCells(NamedTuple):
    """A valid invoice line in the form the store keeps it: dates as ISO text, amounts as
    integer micro-units (a load streams these, and compares and writes them as they are)."""

    line_id: str
    invoice_number: str
    invoice_date: str
    invoice_status: InvoiceStatus
    organization_id: str
    contract_id: str
    subscription_id: str
    subscription_name: str
    offer_id: str
    charge_type: ChargeType
    billing_cycle: BillingCycle
    quantity: int
    unit_price: int
    unit_cost: int
    currency: str
    charge_start: str
    charge_end: str | None


def cells_of(row: InvoiceLineRow) -> LineCells:
    """A checked row in the store's form."""
    return LineCells(
        row.line_id, row.invoice_number, row.invoice_date.isoformat(), row.invoice_status, row.organization_id,
        row.contract_id, row.subscription_id, row.subscription_name, row.offer_id, row.charge_type, row.billing_cycle,
        to_micros(row.quantity), to_micros(row.unit_price), to_micros(row.unit_cost), row.currency,
        row.charge_start.isoformat(), row.charge_end.isoformat() if row.charge_end else None)


def _fast_cells(cells: Any, pick: Callable[[Any], tuple[str, ...]]) -> LineCells | None:
    """_fast_line straight to the store's form, without a Decimal or a date kept: the same as
    cells_of(validate_row(...)) where the cells are plain, else None. (A 10-character text with
    dashes at 4 and 7 that date.fromisoformat takes is YYYY-MM-DD in ASCII digits: its own
    isoformat, so the text is kept.)"""
    try:
        line_id, number, day, status, org, contract, sub, sub_name, offer, charge, cycle, qty, price, cost, \
            currency, start, end = pick(cells)
        for value in (line_id, number, org, contract, sub, offer):
            if not 0 < len(value) <= ID_LENGTH or value.strip() != value:
                return None
        if not 0 < len(sub_name) <= NAME_LENGTH or sub_name.strip() != sub_name:
            return None
        if not (len(day) == 10 and day[4] == "-" and day[7] == "-" and len(start) == 10 and start[4] == "-"
                and start[7] == "-" and (not end or (len(end) == 10 and end[4] == "-" and end[7] == "-"))):
            return None
        if len(currency) != 3 or not currency.isascii() or not currency.isalpha():
            return None
        _fromisoformat(day), _fromisoformat(start), end and _fromisoformat(end)  # real days, or ValueError
        quantity, unit_price, unit_cost = _plain_micros(qty), _plain_micros(price), _plain_micros(cost)
        if quantity is None or unit_price is None or unit_cost is None:
            return None
        return _new_line(LineCells, (
            line_id, number, day, _STATUSES[status], org, contract, sub, sub_name, offer, _CHARGE_TYPES[charge],
            _CYCLES[cycle], quantity, unit_price, unit_cost, currency.upper(), start, end or None,
        ))
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class FileKind:
    stem: str
    row: type
    key: str
    description: str
    columns: dict[str, str]  # column -> meaning; optional ones say so

    def required_columns(self) -> list[str]:
        return [c for c, meaning in self.columns.items() if not meaning.startswith("optional")]


ORGANIZATIONS = FileKind(
    "organizations", OrganizationRow, "organization_id", "customer organizations",
    {
        "organization_id": "the Platform's ID of the organization (unique)",
        "name": "organization name",
        "reference": "optional: Organization Reference #",
        "status": "optional: Active, New, Suspended, ... (default Active)",
    },
)
OFFERS = FileKind(
    "offers", OfferRow, "offer_id", "offers (products) sold on the Platform",
    {
        "offer_id": "the Platform's ID of the offer (unique)",
        "name": "offer name",
        "external_id": "optional: vendor SKU; empty or n/a for the default offer of custom invoices",
        "vendor": "optional: vendor name",
    },
)
CONTRACTS = FileKind(
    "contracts", ContractRow, "contract_id", "invoice contracts, normally one per customer",
    {
        "contract_id": "the Platform's ID of the contract (unique)",
        "organization_id": "the organization the contract bills",
        "billing_day": "billing-cycle day, 1-28",
        "currency": "ISO 4217 code, e.g. USD",
        "contract_type": "optional: the Platform's contract type",
    },
)
INVOICE_LINES = FileKind(
    "invoice_lines", InvoiceLineRow, "line_id", "invoice lines; one file or one per month",
    {
        "line_id": "stable, unique ID of the line",
        "invoice_number": "invoice number",
        "invoice_date": "YYYY-MM-DD; its month is the line's period",
        "invoice_status": "New, Verified or Processed (New invoices are skipped)",
        "organization_id": "the customer organization",
        "contract_id": "the invoice contract",
        "subscription_id": "subscription ID (recurring lines of one subscription share it)",
        "subscription_name": "subscription name",
        "offer_id": "the offer",
        "charge_type": "Purchase Fee, Cycle Fee, Correction, Usage Fee, One Time Fee, Item Fee or User Correction",
        "billing_cycle": "Monthly, Annual, Triennial or None",
        "quantity": "decimal, '.' as decimal point, at most 6 decimals, below 10^9; negative for credits",
        "unit_price": "decimal, as quantity",
        "unit_cost": "decimal, as quantity",
        "currency": "ISO 4217 code",
        "charge_start": "YYYY-MM-DD",
        "charge_end": "YYYY-MM-DD, or empty",
    },
)
FILE_KINDS = (ORGANIZATIONS, OFFERS, CONTRACTS, INVOICE_LINES)

_PERIOD_IN_NAME = re.compile(r"^invoice_lines[_-](\d{4}-\d{2})$", re.IGNORECASE)


@dataclass
class SourceRow:
    file: str
    line: int | str  # line number in a CSV, "item N" in a JSON array
    row: Any


@dataclass
class _Errors:
    items: list[str] = field(default_factory=list)
    total: int = 0

    def add(self, where: str, column: str | None, message: str) -> None:
        self.total += 1
        if len(self.items) < MAX_REPORTED_ERRORS:
            self.items.append(f"{where}: {column}: {message}" if column else f"{where}: {message}")

    def raise_if_any(self) -> None:
        if self.total:
            raise PlatformDataError(self.items, self.total)


def _where(file: str, line: int | str) -> str:
    return f"{file}:{line}"


def _decode(path: Path, data: bytes, errors: _Errors) -> str | None:
    name = path.name
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        errors.add(_where(name, 1), None, "the file is UTF-16 encoded; save it as UTF-8 (CSV UTF-8)")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        byte = data[error.start : error.start + 1].hex().upper()
        errors.add(
            _where(name, line), None,
            f"not valid UTF-8 (byte 0x{byte}); save the file as UTF-8 (CSV UTF-8)",
        )
        return None


def _csv_rows(name: str, text: str, kind: FileKind, errors: _Errors) -> Iterator[tuple[int, dict[str, str]]]:
    if not text.strip():
        errors.add(_where(name, 1), None, f"the file is empty; expected a header row: {','.join(kind.columns)}")
        return
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as error:
        errors.add(_where(name, 1), None, f"cannot read the header row: {error}")
        return
    columns = [c.strip().lower() for c in header]
    missing = [c for c in kind.required_columns() if c not in columns]
    if missing:
        errors.add(_where(name, 1), None, f"missing column(s): {', '.join(missing)}")
        return
    seen = set()
    for column in columns:
        if column and column in seen:
            errors.add(_where(name, 1), column, "the column appears twice")
            return
        seen.add(column)
    width = len(columns)
    known = [c for c in columns if c in kind.columns]
    end = reader.line_num  # the last line read so far
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank line
            if len(cells) != width:
                errors.add(_where(name, start), None, f"expected {width} cells, found {len(cells)}{_span(start, end)}")
                continue
            row = dict(zip(columns, cells, strict=False))
            if end > start:  # a quoted cell holds a line break: every cell of ours is single-line
                broken = [c for c in known if "\n" in row[c] or "\r" in row[c]]
                for column in broken:
                    errors.add(_where(name, start), column, f"contains a line break{_span(start, end)}")
                if broken:
                    continue
            yield start, row
    except csv.Error as error:
        errors.add(_where(name, end + 1), None, f"not valid CSV: {error}{_span(end + 1, reader.line_num)}")


def _span(start: int, end: int) -> str:
    """Where a record runs over several lines, say so: an unbalanced quote is the usual cause."""
    if end <= start:
        return ""
    return f" (the record runs from line {start} to line {end}: is a quote unbalanced?)"


def _json_rows(name: str, text: str, kind: FileKind, errors: _Errors) -> Iterator[tuple[str, dict[str, str]]]:
    if not text.strip():
        errors.add(_where(name, 1), None, "the file is empty; expected a JSON array of objects")
        return
    try:
        data = json.loads(text, parse_float=str, parse_int=str)
    except json.JSONDecodeError as error:
        errors.add(_where(name, error.lineno), None, f"not valid JSON: {error.msg} (column {error.colno})")
        return
    except RecursionError:
        errors.add(_where(name, 1), None, "not valid JSON: arrays or objects nested too deeply")
        return
    if not isinstance(data, list):
        errors.add(_where(name, 1), None, "expected a JSON array of objects")
        return
    required = kind.required_columns()
    for index, item in enumerate(data, start=1):
        where = f"item {index}"
        if not isinstance(item, dict):
            errors.add(_where(name, where), None, "expected an object")
            continue
        row = {str(k).strip().lower(): ("" if v is None else str(v)) for k, v in item.items()}
        missing = [c for c in required if c not in row]
        if missing:
            errors.add(_where(name, where), None, f"missing key(s): {', '.join(missing)}")
            continue
        broken = [c for c in kind.columns if c in row and ("\n" in row[c] or "\r" in row[c])]
        for column in broken:
            errors.add(_where(name, where), column, "contains a line break (every value is a single line)")
        if not broken:
            yield where, row


def _raw_rows(path: Path, kind: FileKind, errors: _Errors) -> Iterator[tuple[int | str, dict[str, str]]]:
    """The rows of one file as text cells, not validated; unreadable ones go to `errors`."""
    name = path.name
    try:
        data = path.read_bytes()
    except OSError as error:
        errors.add(_where(name, 1), None, f"cannot read the file: {error.strerror or error}")
        return iter(())
    text = _decode(path, data, errors)
    if text is None:
        return iter(())
    return _json_rows(name, text, kind, errors) if path.suffix.lower() == ".json" else _csv_rows(name, text, kind, errors)


def read_rows(path: Path, kind: FileKind, errors: _Errors, keep: Callable[[Any], bool] | None = None) -> list[SourceRow]:
    """Validate every row of one file; bad rows go to `errors`. `keep` filters valid rows."""
    name = path.name
    row_type = kind.row
    fast = _fast_line if row_type is InvoiceLineRow else None
    result: list[SourceRow] = []
    for line, raw in _raw_rows(path, kind, errors):
        row = fast(raw) if fast is not None else None
        if row is None:
            row, problems = validate_row(row_type, raw)
            if problems:
                for column, message in problems:
                    errors.add(_where(name, line), column, message)
                continue
        if keep is None or keep(row):
            result.append(SourceRow(name, line, row))
    return result


# ---------------------------------------------------------------- the folder


@dataclass
class ExportFolder:
    path: Path
    organizations: Path
    offers: Path
    contracts: Path
    invoice_lines: list[Path]

    def invoice_files_for(self, wanted: Callable[[str], bool]) -> list[Path]:
        """Invoice-line files that may hold a period for which `wanted(period)` is true."""
        files = []
        for path in self.invoice_lines:
            match = _PERIOD_IN_NAME.match(path.stem)
            if match is None or wanted(match.group(1)):
                files.append(path)
        return files


def find_export_files(folder: Path | str) -> ExportFolder:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise PlatformDataError([f"{folder}: the Platform export folder does not exist"])
    by_stem: dict[str, list[Path]] = {}
    invoice_files: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in (".csv", ".json"):
            continue  # a folder or broken link with one of our names is kept: reading it says what is wrong
        stem = path.stem.lower()
        if stem.startswith("invoice_lines"):
            if stem != "invoice_lines" and not _PERIOD_IN_NAME.match(stem):
                raise PlatformDataError([f"{path.name}: invoice line files are named invoice_lines.csv or invoice_lines_YYYY-MM.csv"])
            invoice_files.append(path)
        else:
            by_stem.setdefault(stem, []).append(path)
    errors = []
    found = {}
    for kind in (ORGANIZATIONS, OFFERS, CONTRACTS):
        paths = by_stem.get(kind.stem, [])
        if not paths:
            errors.append(f"{folder}: missing {kind.stem}.csv (or {kind.stem}.json)")
        elif len(paths) > 1:
            errors.append(f"{folder}: both {paths[0].name} and {paths[1].name}; keep one")
        else:
            found[kind.stem] = paths[0]
    if not invoice_files:
        errors.append(f"{folder}: no invoice_lines*.csv (or .json) file")
    if errors:
        raise PlatformDataError(errors)
    return ExportFolder(folder, found["organizations"], found["offers"], found["contracts"], invoice_files)


@dataclass
class PlatformData:
    """Validated rows of one load: the lines asked for and the records they refer to."""

    organizations: dict[str, OrganizationRow]
    offers: dict[str, OfferRow]
    contracts: dict[str, ContractRow]
    lines: list[InvoiceLineRow]
    skipped_new: dict[str, int]  # period -> lines of invoices still in status New
    # period -> subscriptions on those New invoices: billed this month, so never cancelled
    new_subscriptions: dict[str, set[str]] = field(default_factory=dict)


def _unique(rows: list[SourceRow], kind: FileKind, errors: _Errors) -> dict[str, Any]:
    result: dict[str, Any] = {}
    first: dict[str, SourceRow] = {}
    for source in rows:
        key = getattr(source.row, kind.key)
        if key in first:
            other = first[key]
            errors.add(_where(source.file, source.line), kind.key, f"duplicate {kind.key} {key!r} (first at {other.file}:{other.line})")
            continue
        first[key] = source
        result[key] = source.row
    return result


def _file_period(path: Path) -> str | None:
    """The month a file is named for, or None for an invoice_lines file of any months."""
    match = _PERIOD_IN_NAME.match(path.stem)
    return match.group(1) if match else None


def read_export(folder: Path | str, include: Callable[[InvoiceLineRow], bool], wanted_period: Callable[[str], bool],
                required: Collection[str] = ()) -> PlatformData:
    """Read and validate the folder. `include` picks the invoice lines of this load,
    `wanted_period` lets files named for other months be skipped unread, and each of the
    `required` periods must have invoice lines in the folder (New ones count)."""
    export = find_export_files(folder)
    errors = _Errors()
    organizations = _unique(read_rows(export.organizations, ORGANIZATIONS, errors), ORGANIZATIONS, errors)
    offers = _unique(read_rows(export.offers, OFFERS, errors), OFFERS, errors)
    contracts = _unique(read_rows(export.contracts, CONTRACTS, errors), CONTRACTS, errors)

    sources: list[SourceRow] = []
    # every line read, included or not: a line ID is unique across the months of the folder
    seen: dict[str, SourceRow] = {}
    found_periods: set[str] = set()
    bad_files = False  # a period may hide among the bad rows of a file: its absence is not reported
    files = export.invoice_files_for(wanted_period)
    for path in files:
        file_period = _file_period(path)
        before = errors.total
        rows = read_rows(path, INVOICE_LINES, errors)
        if errors.total > before:
            bad_files = True
        elif not rows and file_period in required:
            what = "no invoice lines" if path.suffix.lower() == ".json" else "a header row but no invoice lines"
            errors.add(_where(path.name, 1), None, f"the file has {what} (period {file_period} was requested)")
        for source in rows:
            row: InvoiceLineRow = source.row
            other = seen.get(row.line_id)
            if other is not None:
                errors.add(_where(source.file, source.line), "line_id",
                           f"duplicate line ID {row.line_id!r} (first at {other.file}:{other.line})")
                continue
            seen[row.line_id] = source
            if file_period is None:
                found_periods.add(row.period)
            elif row.period != file_period:
                errors.add(_where(source.file, source.line), "invoice_date", f"{row.invoice_date} is not in the file's month {file_period}")
                continue
            if include(row):
                sources.append(source)
        if file_period is not None and rows:
            found_periods.add(file_period)
    if not bad_files:
        _missing_periods(export, files, [p for p in sorted(required) if p not in found_periods], errors)

    lines: list[InvoiceLineRow] = []
    skipped_new: dict[str, int] = {}
    new_subscriptions: dict[str, set[str]] = {}
    for source in sources:
        row = source.row
        where = _where(source.file, source.line)
        if row.organization_id not in organizations:
            errors.add(where, "organization_id", f"unknown organization {row.organization_id!r} (not in {export.organizations.name})")
        contract = contracts.get(row.contract_id)
        if contract is None:
            errors.add(where, "contract_id", f"unknown contract {row.contract_id!r} (not in {export.contracts.name})")
        elif contract.organization_id != row.organization_id:
            errors.add(where, "contract_id", f"contract {row.contract_id!r} belongs to organization {contract.organization_id!r}, not {row.organization_id!r}")
        if row.offer_id not in offers:
            errors.add(where, "offer_id", f"unknown offer {row.offer_id!r} (not in {export.offers.name})")
        if row.charge_end is not None and row.charge_end < row.charge_start:
            errors.add(where, "charge_end", f"{row.charge_end} is before charge_start {row.charge_start}")
        try:
            check_total(row.quantity, row.unit_price)
        except ValueError as error:
            errors.add(where, "quantity", str(error))
        if row.invoice_status is InvoiceStatus.NEW:
            skipped_new[row.period] = skipped_new.get(row.period, 0) + 1
            new_subscriptions.setdefault(row.period, set()).add(row.subscription_id)
            continue
        lines.append(row)
    errors.raise_if_any()
    return PlatformData(organizations, offers, contracts, lines, skipped_new, new_subscriptions)


class StreamedExport:
    """The export read for a load line by line, never held: `lines()` yields each valid line
    of the wanted files as it is read, with what it is to the load (OTHER, NEW or LOAD).

    It checks what read_export checks, but stops at the first problem and sets `clean` to
    False instead of saying what is wrong; read_export then reads the folder again and
    reports every problem, exactly as ever. Two checks are the caller's: that no line ID is
    given twice (OTHER and NEW lines are yielded for that alone) and `clean` after the last
    line (a requested period may have no line). JSON invoice-line files are left to
    read_export too (a JSON array is read whole anyway)."""

    OTHER, NEW, LOAD = 0, 1, 2

    def __init__(self, folder: Path | str, wanted_period: Callable[[str], bool], required: Collection[str] = ()) -> None:
        self.export = export = find_export_files(folder)
        errors = _Errors()
        self.organizations: dict[str, OrganizationRow] = _unique(read_rows(export.organizations, ORGANIZATIONS, errors), ORGANIZATIONS, errors)
        self.offers: dict[str, OfferRow] = _unique(read_rows(export.offers, OFFERS, errors), OFFERS, errors)
        self.contracts: dict[str, ContractRow] = _unique(read_rows(export.contracts, CONTRACTS, errors), CONTRACTS, errors)
        self.files = export.invoice_files_for(wanted_period)
        self.clean = errors.total == 0 and all(path.suffix.lower() == ".csv" for path in self.files)
        self._wanted = wanted_period  # the periods of this load (files of other months are not read)
        self._required = set(required)
        self.skipped_new: dict[str, int] = {}
        self.new_subscriptions: dict[str, set[str]] = {}  # period -> subscriptions on New invoices

    def lines(self) -> Iterator[tuple[int, LineCells, str]]:
        """(OTHER, NEW or LOAD; the line; its period), in the order of the files."""
        if not self.clean:
            return
        found: set[str] = set()
        organizations, contracts, offers = self.organizations, self.contracts, self.offers
        wanted, new = self._wanted, InvoiceStatus.NEW
        for path in self.files:
            file_period = _file_period(path)
            count = 0
            for line in self._file_lines(path):
                count += 1
                period = line.invoice_date[:7]
                if file_period is None:
                    found.add(period)
                elif period != file_period:
                    self.clean = False
                    return
                if not wanted(period):
                    yield self.OTHER, line, period
                    continue
                contract = contracts.get(line.contract_id)
                if (line.organization_id not in organizations or contract is None
                        or contract.organization_id != line.organization_id or line.offer_id not in offers
                        or (line.charge_end is not None and line.charge_end < line.charge_start)
                        or total_too_large(line.quantity, line.unit_price)):
                    self.clean = False
                    return
                if line.invoice_status is new:
                    self.skipped_new[period] = self.skipped_new.get(period, 0) + 1
                    self.new_subscriptions.setdefault(period, set()).add(line.subscription_id)
                    yield self.NEW, line, period
                    continue
                yield self.LOAD, line, period
            if not self.clean:
                return
            if count and file_period is not None:
                found.add(file_period)
            elif not count and file_period in self._required:
                self.clean = False
                return
        if not self._required <= found:
            self.clean = False

    def _file_lines(self, path: Path) -> Iterator[LineCells]:
        """The valid lines of one CSV file, streamed; at the first problem `clean` turns False."""
        try:
            with path.open(encoding="utf-8-sig", newline="") as file:
                reader = csv.reader(file)
                header = next(reader, None)
                columns = [c.strip().lower() for c in header or ()]
                if (not columns or any(c not in columns for c in INVOICE_LINES.required_columns())
                        or len({c for c in columns if c}) != len([c for c in columns if c])):
                    self.clean = False
                    return
                width = len(columns)
                known = [c for c in columns if c in INVOICE_LINES.columns]
                # the cells by their place in the row, where every column is there
                pick = (operator.itemgetter(*(columns.index(c) for c in _LINE_CELLS))
                        if all(c in columns for c in _LINE_CELLS) else None)
                end = reader.line_num
                for cells in reader:
                    start, end = end + 1, reader.line_num
                    if not cells or (len(cells) == 1 and not cells[0].strip()):
                        continue
                    if len(cells) != width:
                        self.clean = False
                        return
                    line = _fast_cells(cells, pick) if pick is not None else None
                    if line is None or end > start:
                        raw = dict(zip(columns, cells, strict=False))
                        if end > start and any("\n" in raw[c] or "\r" in raw[c] for c in known):
                            self.clean = False
                            return
                        if line is None:
                            row, problems = validate_row(InvoiceLineRow, raw)
                            if problems:
                                self.clean = False
                                return
                            line = cells_of(row)
                    yield line
        except (OSError, UnicodeDecodeError, csv.Error):
            self.clean = False


_LINE_CELLS = ("line_id", "invoice_number", "invoice_date", "invoice_status", "organization_id", "contract_id",
               "subscription_id", "subscription_name", "offer_id", "charge_type", "billing_cycle", "quantity",
               "unit_price", "unit_cost", "currency", "charge_start", "charge_end")


def _missing_periods(export: ExportFolder, files: list[Path], periods: list[str], errors: _Errors) -> None:
    """A requested period without a single line is an error, never "no lines" (which would
    remove the period's lines from the store)."""
    combined = [path.name for path in files if _file_period(path) is None]
    named = {_file_period(path) for path in files}
    for period in periods:
        if period in named:
            continue  # its file has only a header: reported
        if combined:
            errors.add(combined[0], None, f"no invoice line is dated in {period} (a requested period), "
                                          f"and there is no invoice_lines_{period}.csv")
        else:
            errors.add(str(export.path), None, f"no invoice_lines_{period}.csv (or .json) for the requested period {period}")


def locate_lines(folder: Path | str, wanted: Collection[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Where each (line ID, period) is in the export, as `file:line`, reading only the files
    that may hold that period; those not found are left out. For error messages."""
    export = find_export_files(folder)
    periods = {period for _, period in wanted}
    found: dict[tuple[str, str], str] = {}
    for path in export.invoice_files_for(periods.__contains__):
        file_period = _file_period(path)
        for line, raw in _raw_rows(path, INVOICE_LINES, _Errors()):
            key = (raw["line_id"].strip(), file_period or raw["invoice_date"].strip()[:7])
            if key in wanted and key not in found:
                found[key] = _where(path.name, line)
    return found


def period_filter(periods: Iterable[str]) -> tuple[Callable[[InvoiceLineRow], bool], Callable[[str], bool]]:
    wanted = set(periods)
    for period in wanted:
        parse_period(period)
    return (lambda row: row.period in wanted), (lambda period: period in wanted)


def since_filter(since: date) -> tuple[Callable[[InvoiceLineRow], bool], Callable[[str], bool]]:
    first_period = period_of(since)
    return (lambda row: row.invoice_date >= since), (lambda period: period >= first_period)

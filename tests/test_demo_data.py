from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from cw_tui.platform.demo_export import write_demo_data
from cw_tui.rules.vocabulary import ChargeType
from cw_tui.services.world import make_world


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_defaults_are_realistic_and_names_match_the_sandbox_world(tmp_path: Path) -> None:
    summary = write_demo_data(tmp_path, seed=7, end_month="2026-10")
    assert summary.periods[0] == "2025-08" and summary.periods[-1] == "2026-10" and len(summary.periods) == 15
    orgs = _rows(tmp_path / "organizations.csv")
    offers = _rows(tmp_path / "offers.csv")
    assert len(orgs) == 300 and 35 <= len(offers) <= 45
    world = make_world(7)
    companies = {c.name for c in world.companies}
    products = {p.description for p in world.products}
    org_share = sum(o["name"] in companies for o in orgs) / len(orgs)
    offer_share = sum(o["name"] in products for o in offers) / len(offers)
    assert 0.6 <= org_share <= 0.8 and 0.6 <= offer_share <= 0.8
    # a few organizations share one company name (several organizations, one ConnectWise company)
    shared = [name for name, n in Counter(o["name"] for o in orgs).items() if n > 1]
    assert 1 <= len(shared) <= 5 and all(name in companies for name in shared)
    lines = [row for f in sorted(tmp_path.glob("invoice_lines_*.csv")) for row in _rows(f)]
    assert len(lines) == summary.lines > 5000
    assert {ChargeType(r["charge_type"]) for r in lines} == set(ChargeType)
    assert any(r["external_id"] == "n/a" for r in offers)
    assert {r["invoice_status"] for r in lines} == {"New", "Verified", "Processed"}
    assert len({r["line_id"] for r in lines}) == len(lines)


def test_the_same_seed_writes_the_same_files(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for folder, seed in ((a, 3), (b, 3), (c, 4)):
        write_demo_data(folder, seed=seed, organizations=40, months=2, end_month="2026-01")
    for name in ("organizations.csv", "offers.csv", "contracts.csv", "invoice_lines_2026-01.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "invoice_lines_2026-01.csv").read_bytes() != (c / "invoice_lines_2026-01.csv").read_bytes()

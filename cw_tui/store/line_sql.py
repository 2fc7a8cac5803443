"""Queries over the store shared by the CLI, the app and the sync engine."""

from __future__ import annotations

# The effective mapping status of a line (rules/mapping.py, as SQL). Expects the aliases
# l = invoice_line, o = organization, f = offer, c = contract. Every line has its
# organization, offer and contract (a load writes them together), so these are inner joins:
# SQLite may then start from any of them, e.g. walk organizations by name to sort lines.
LINE_MAPPING_JOINS = """
    JOIN organization o ON o.platform_id = l.organization_id
    JOIN offer f ON f.platform_id = l.offer_id
    JOIN contract c ON c.platform_id = l.contract_id
"""
# Rule 5 (a company of several organizations needs the agreement chosen) asks whether the
# line's company is one of the shared ones: an uncorrelated IN, which SQLite and PostgreSQL
# each evaluate once per query (an ephemeral index, a hashed subplan), not a count per line.
SHARED_COMPANIES = ("SELECT company_id FROM organization WHERE company_id IS NOT NULL "
                    "GROUP BY company_id HAVING COUNT(*) > 1")
LINE_MAPPING_STATUS = f"""
    CASE
        WHEN COALESCE(l.override_company_id, o.company_id) IS NULL
          OR COALESCE(l.override_product_id, f.product_id) IS NULL THEN 'unmapped'
        WHEN COALESCE(l.override_agreement_id, c.agreement_id) IS NULL
          AND COALESCE(l.override_company_id, o.company_id) IN ({SHARED_COMPANIES}) THEN 'unmapped'
        WHEN o.excluded THEN 'excluded'
        ELSE 'mapped'
    END
"""
